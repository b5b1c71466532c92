"""Docker files and `sweepkit docker`, tested without a docker engine (there is none here)."""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import pytest
import yaml

from sweepkit.docker import docker_argv, plan_containers
from tests.test_cli import sweepkit

REPO = Path(__file__).resolve().parent.parent
SECRET = "wandb-secret-key-that-must-never-appear-0123456789"


def test_dry_run_prints_one_container_per_gpu_with_its_device(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", SECRET)
    result = sweepkit(
        "docker", "local-abc12345", "--gpus", "0,1,2,3", "--count", "6", "--dry-run", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    commands = [shlex.split(line) for line in result.stdout.strip().splitlines()]
    assert len(commands) == 4
    for gpu, argv in enumerate(commands):
        assert argv[:3] == ["docker", "run", "--rm"]
        assert argv[argv.index("--gpus") + 1] == f"device={gpu}"
        assert f"{tmp_path}:/work" in argv
        image = argv.index("sweepkit:latest")
        assert argv[image + 1 : image + 3] == ["agent", "local-abc12345"]
    counts = [int(argv[argv.index("--count") + 1]) for argv in commands]
    assert counts == [2, 2, 1, 1]
    assert SECRET not in result.stdout


def test_the_wandb_key_is_passed_by_name_only(monkeypatch, tmp_path):
    monkeypatch.setenv("WANDB_API_KEY", SECRET)
    argv = docker_argv(
        "abc",
        0,
        image="img",
        workdir=tmp_path,
        data_dir=tmp_path,
        store=None,
        count=None,
        function=None,
    )
    assert argv[argv.index("WANDB_API_KEY") - 1] == "-e"
    assert not any(SECRET in a for a in argv)


def test_custom_store_is_mounted_and_named(tmp_path):
    (commands,) = [
        plan_containers(
            "local-x", [3], image="img", workdir=tmp_path, data_dir=tmp_path,
            store=str(tmp_path / "stores" / "s.db"), count=None, function="m:f",
        )
    ]  # fmt: skip
    argv = commands[0]
    assert f"{tmp_path / 'stores'}:/store" in argv and "SWEEPKIT_STORE=/store/s.db" in argv
    assert argv[-2:] == ["--function", "m:f"]


@pytest.mark.skipif(shutil.which("docker") is None, reason="no docker client installed")
def test_no_engine_is_one_clear_line(tmp_path):
    result = sweepkit("docker", "local-abc12345", "--gpus", "0", cwd=tmp_path)
    if result.returncode == 0:
        pytest.skip("a docker engine answers here")
    assert result.returncode == 1
    assert (
        result.stderr.startswith("error: no docker engine is reachable")
        and "Traceback" not in result.stderr
    )


def test_compose_gives_each_service_one_gpu_and_the_key_by_name():
    compose = yaml.safe_load((REPO / "docker" / "compose.yaml").read_text())
    services = compose["services"]
    assert sorted(services) == ["agent-gpu0", "agent-gpu1", "agent-gpu2", "agent-gpu3"]
    for name, service in services.items():
        (device,) = service["deploy"]["resources"]["reservations"]["devices"]
        assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
        assert device["device_ids"] == [name.removeprefix("agent-gpu")]
        assert service["command"][0] == "agent" and "SWEEP_ID" in service["command"][1]
        assert (
            "WANDB_API_KEY" in service["environment"]
        )  # a bare name: the value comes from the shell
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
