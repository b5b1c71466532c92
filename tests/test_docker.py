"""`sweepkit docker`'s command lines and files, tested without starting a container.

The real containers are in tests/test_docker_engine.py (marked `docker`).
"""

from __future__ import annotations

import io
import re
import shlex
from pathlib import Path

import pytest
import yaml

from sweepkit import cli_options
from sweepkit.docker import Mounts, container_argv, receive_secrets, secrets_payload
from sweepkit.launch import AgentLaunch, Worker, agent_args
from tests.helpers.cli import sweepkit

REPO = Path(__file__).resolve().parent.parent
SECRET = "wandb-secret-key-that-must-never-appear-0123456789"


def dry_run(tmp_path: Path, *args: str) -> list[list[str]]:
    result = sweepkit("docker", "local-abc12345", *args, "--dry-run", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    return [shlex.split(line) for line in result.stdout.strip().splitlines()]


def agent_part(argv: list[str], image: str = "sweepkit:latest") -> list[str]:
    return argv[argv.index(image) + 1 :]


def test_one_container_per_gpu_sees_its_device_and_shares_the_count(tmp_path):
    commands = dry_run(tmp_path, "--gpus", "0,1,2,3", "--count", "6")
    assert len(commands) == 4
    for gpu, argv in enumerate(commands):
        assert argv[:3] == ["docker", "run", "--rm"]
        assert argv[argv.index("--gpus") + 1] == f"device={gpu}"
        # docker's --gpus decides what the container sees: an index from the host would hide it
        assert not any(a.startswith("CUDA_VISIBLE_DEVICES=") for a in argv)
        assert agent_part(argv)[:2] == ["agent", "local-abc12345"]
    counts = [int(argv[argv.index("--count") + 1]) for argv in commands]
    assert counts == [2, 2, 1, 1]


def test_cpu_containers_get_no_gpu_and_a_share_of_the_cores(tmp_path):
    commands = dry_run(tmp_path, "--workers", "2")
    assert len(commands) == 2
    for argv in commands:
        assert "--gpus" not in argv
        assert "CUDA_VISIBLE_DEVICES=" in argv
        threads = [a for a in argv if a.startswith("OMP_NUM_THREADS=")]
        assert len(threads) == 1 and int(threads[0].split("=")[1]) >= 1
    assert {a for argv in commands for a in argv if a.startswith("sweepkit-local-")} == {
        "sweepkit-local-abc12345-w0-cpu",
        "sweepkit-local-abc12345-w1-cpu",
    }


def test_every_agent_option_reaches_the_containers(tmp_path):
    flags = {
        "--count": "3", "--function": "mod:fn", "--max-failures": "7", "--run-timeout": "99",
        "--crash-grace": "33", "--retries": "4", "--retry-failed": None,
    }  # fmt: skip
    args = [part for flag, value in flags.items() for part in (flag, value) if part is not None]
    commands = dry_run(tmp_path, "--workers", "2", *args)
    # Every option of `agent` except those the plan itself uses up (which workers, per GPU)
    # and the ones the plan sets per worker (its label, its log folder).
    planned = {"gpus", "per_gpu", "workers", "label", "run_logs"}
    wanted = {"--" + name.replace("_", "-") for name in cli_options.AGENT_OPTIONS} - {
        "--" + name.replace("_", "-") for name in planned
    }
    assert wanted == set(flags), "a new agent option needs a value in this test"
    total = 0
    for argv in commands:
        agent = agent_part(argv)
        for flag, value in flags.items():
            assert flag in agent, flag
            if value is not None and flag != "--count":
                assert agent[agent.index(flag) + 1] == value
        total += int(agent[agent.index("--count") + 1])
    assert total == 3


def test_containers_and_worker_processes_get_one_command_line():
    launch = AgentLaunch(function="m:f", count=2, workers=1)
    worker = Worker(index=0, gpu=None, threads=2, count=2)
    mounts = Mounts(Path("/w"), Path("/d"), Path("/s"), Path("/st/s.db"), Path("/w/logs"))
    argv = container_argv(
        worker, "local-x", launch, image="img", mounts=mounts, with_secrets=False, user=(1, 1)
    )
    assert agent_part(argv, "img") == agent_args(
        "local-x", label="w0 cpu", count=2, function="m:f", store=Path("/st/s.db"),
        log_dir=Path("/w/logs"), options=launch.options,
    )  # fmt: skip


def test_folders_are_mounted_at_their_own_paths_once(tmp_path):
    work = tmp_path / "project"
    mounts = Mounts(
        work, tmp_path / "data", tmp_path / "staging", tmp_path / "stores" / "s.db", work / "logs"
    )
    argv = container_argv(
        Worker(0, 1, 4, None), "local-x", AgentLaunch(), image="img", mounts=mounts,
        with_secrets=False, user=(1000, 1000),
    )  # fmt: skip
    volumes = [argv[i + 1] for i, a in enumerate(argv) if a == "-v"]
    expected = [work, tmp_path / "data", tmp_path / "staging", tmp_path / "stores"]
    assert sorted(volumes) == sorted(f"{p}:{p}" for p in expected)  # logs are inside work
    assert argv[argv.index("-w") + 1] == str(work)
    assert f"WANDB_DATA_DIR={tmp_path / 'staging'}" in argv and f"WANDB_DIR={work}" in argv
    assert argv[argv.index("--user") + 1] == "1000:1000"
    assert agent_part(argv, "img")[agent_part(argv, "img").index("--store") + 1] == str(
        tmp_path / "stores" / "s.db"
    )


def test_the_wandb_key_goes_in_on_stdin_never_in_the_command(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", SECRET)
    result = sweepkit("docker", "local-abc12345", "--workers", "1", "--dry-run", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert SECRET not in result.stdout + result.stderr
    (line,) = result.stdout.strip().splitlines()
    feed, command = line.split(" | ", 1)
    assert feed == "printf 'WANDB_API_KEY=%s\\n' \"$WANDB_API_KEY\""  # a builtin: not in ps
    argv = shlex.split(command)
    assert "--interactive" in argv and "SWEEPKIT_SECRETS_FROM=stdin" in argv
    # `-e WANDB_API_KEY` by name would put the value in the container's config (docker inspect)
    assert not any("WANDB_API_KEY" in a for a in argv)


def test_without_a_key_nothing_is_read_from_stdin(tmp_path):
    (argv,) = dry_run(tmp_path, "--workers", "1")
    assert "--interactive" not in argv and not any("SECRETS_FROM" in a for a in argv)
    assert secrets_payload({"WANDB_API_KEY": ""}) is None


def test_the_agent_in_the_container_reads_only_the_secrets_it_expects():
    environ: dict[str, str] = {}
    payload = secrets_payload({"WANDB_API_KEY": "k=1"})
    assert payload == b"WANDB_API_KEY=k=1\n"
    receive_secrets(io.StringIO(payload.decode() + "PATH=/evil\nnoise\n"), environ)
    assert environ == {"WANDB_API_KEY": "k=1"}


def test_a_key_from_wandb_login_reaches_the_containers_too(tmp_path, monkeypatch):
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine api.wandb.ai\n  login user\n  password {SECRET}\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    monkeypatch.setenv("WANDB_BASE_URL", "https://api.wandb.ai")
    from sweepkit.credentials import api_key

    assert api_key() == SECRET


def test_no_gpu_here_says_to_use_workers(tmp_path):
    result = sweepkit("docker", "local-abc12345", "--dry-run", cwd=tmp_path)
    assert result.returncode == 2
    assert "use --workers N" in result.stderr and "Traceback" not in result.stderr


def test_no_engine_is_one_clear_line(tmp_path, monkeypatch):
    # A socket nothing listens on: the real docker client answers "cannot connect".
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    result = sweepkit("docker", "local-abc12345", "--workers", "1", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr
    assert "docker" in result.stderr


def test_compose_gives_each_service_one_gpu_and_the_key_by_name():
    compose = yaml.safe_load((REPO / "docker" / "compose.yaml").read_text())
    services = compose["services"]
    assert sorted(services) == ["agent-gpu0", "agent-gpu1", "agent-gpu2", "agent-gpu3"]
    for name, service in services.items():
        (device,) = service["deploy"]["resources"]["reservations"]["devices"]
        assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
        assert device["device_ids"] == [name.removeprefix("agent-gpu")]
        assert service["command"][0] == "agent" and "SWEEP_ID" in service["command"][1]
        assert "WANDB_API_KEY" in service["environment"]  # a bare name: the value from the shell
        assert not any(str(e).startswith("WANDB_API_KEY=") for e in service["environment"])
        assert any(v.endswith(":/work") for v in service["volumes"])
        assert any(v.endswith(":/data") for v in service["volumes"])


def test_dockerfile_base_pair_satisfies_pyproject():
    from packaging.specifiers import SpecifierSet

    dockerfile = (REPO / "docker" / "Dockerfile").read_text()
    torch_version = re.search(r"ARG BASE=pytorch/pytorch:([\d.]+)-cuda", dockerfile).group(1)
    pyproject = (REPO / "pyproject.toml").read_text()
    torch_spec = re.search(r'"torch(>=[\d.]+)"', pyproject).group(1)
    assert torch_version in SpecifierSet(torch_spec)
    assert 'ENTRYPOINT ["sweepkit"]' in dockerfile


@pytest.mark.parametrize("needed", ["pyproject.toml", "README.md", "sweepkit"])
def test_the_build_context_holds_what_the_dockerfile_copies(needed):
    ignore = (REPO / ".dockerignore").read_text().splitlines()
    assert "*" in ignore and f"!{needed}" in ignore  # and nothing else: no .venv, no wandb/


def test_a_postgresql_store_goes_in_on_stdin_never_in_the_command(tmp_path, monkeypatch):
    url = f"postgresql://sweeper:{SECRET}@db.example:5432/sweeps"
    result = sweepkit(
        "docker", "local-abc12345", "--workers", "1", "--store", url, "--dry-run", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert SECRET not in result.stdout + result.stderr
    (line,) = result.stdout.strip().splitlines()
    feed, command = line.split(" | ", 1)
    assert feed == "printf 'SWEEPKIT_STORE=%s\\n' \"$SWEEPKIT_STORE\""
    argv = shlex.split(command)
    assert "--store" not in agent_part(argv)  # the agent reads SWEEPKIT_STORE from stdin
    assert not any("SWEEPKIT_STORE" in a for a in argv)
