"""`sweepkit docker` for real: the image built from docker/Dockerfile, its agents running a sweep.

Needs a docker engine (`.ci/run` installs and starts one, and makes the base image with
docker/base-images.sh). Without one these tests are skipped with the reason, unless
SWEEPKIT_REQUIRE_DOCKER is set (as CI sets it): then a missing engine fails them.
"""

from __future__ import annotations

import grp
import hashlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = [pytest.mark.docker, pytest.mark.slow]

REPO = Path(__file__).resolve().parent.parent
BASE = os.environ.get("SWEEPKIT_DOCKER_BASE", "sweepkit-base/python:bookworm")
IMAGE = "sweepkit-test:latest"
SECRET = "wandb-secret-key-that-must-never-appear-0123456789"
NOBODY = 65534

# A user's own function, in the folder `sweepkit docker` mounts: it must import in the container.
# Its loss is off by 100 unless the run sees the W&B key whose hash the module holds (the key
# itself is in no file).
USER_MODULE = """
import hashlib, os, time
import wandb

KEY_SHA256 = "{key_sha256}"
UNTIL_RELEASED = {until_released}  # run until ./release exists: the test decides when runs end

def train():
    key = os.environ.get("WANDB_API_KEY", "")
    key_seen = not KEY_SHA256 or hashlib.sha256(key.encode()).hexdigest() == KEY_SHA256
    with wandb.init() as run:
        x = run.config["x"]
        run.log({{"loss": (x - 2.0) ** 2 + (0.0 if key_seen else 100.0)}})
        while UNTIL_RELEASED and not os.path.exists("release"):
            time.sleep(0.1)
"""


def write_module(project: Path, *, until_released: bool = False, key: str | None = None) -> None:
    """The user's module in `project`, owned by whoever owns the folder."""
    digest = hashlib.sha256(key.encode()).hexdigest() if key else ""
    module = project / "mymodel.py"
    module.write_text(USER_MODULE.format(key_sha256=digest, until_released=until_released))
    os.chown(module, project.stat().st_uid, project.stat().st_gid)


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check)


def engine_answers() -> str | None:
    """None if a docker engine answers, else why not."""
    if shutil.which("docker") is None:
        return "no docker client installed"
    probe = subprocess.run(["docker", "info"], capture_output=True, text=True)
    return None if probe.returncode == 0 else "no docker engine answers (see docker/README.md)"


@pytest.fixture(scope="session")
def image() -> str:
    """The image, built from docker/Dockerfile with only BASE changed (layers cached by docker)."""
    if reason := engine_answers():
        if os.environ.get("SWEEPKIT_REQUIRE_DOCKER"):
            pytest.fail(f"SWEEPKIT_REQUIRE_DOCKER is set but {reason}")
        pytest.skip(reason)
    if docker("image", "inspect", BASE, check=False).returncode != 0:
        subprocess.run(["bash", str(REPO / "docker" / "base-images.sh")], check=True)
    subprocess.run(
        ["docker", "build", "--network=host", "-q", "-f", "docker/Dockerfile",
         "--build-arg", f"BASE={BASE}", "-t", IMAGE, "."],
        cwd=REPO, check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    return IMAGE


def as_user(uid: int | None) -> list[str]:
    """The command prefix that runs as `uid` (None: as we are), with access to docker's socket."""
    if uid is None:
        return []
    docker_gid = grp.getgrnam("docker").gr_gid
    return ["setpriv", f"--reuid={uid}", f"--regid={uid}", f"--groups={docker_gid}", "--"]


@pytest.fixture(params=["this user", "a non-root user"])
def user(request) -> int | None:
    if request.param == "a non-root user":
        if os.getuid() != 0:
            pytest.skip("already not root: 'this user' is the non-root run")
        return NOBODY
    return None


def make_project(user: int | None, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder the user owns, with their own function in it; wandb's folders inside."""
    folder = Path(tempfile.mkdtemp(prefix="sweepkit-docker-"))
    folder.chmod(0o755)
    write_module(folder)
    for sub in ("home", "data", "staging"):
        (folder / sub).mkdir()
    if user is not None:
        for path in [folder, *folder.rglob("*")]:
            os.chown(path, user, user)
    for name in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(folder / "home"))
    monkeypatch.setenv("SWEEPKIT_DATA_DIR", str(folder / "data"))
    monkeypatch.setenv("WANDB_DATA_DIR", str(folder / "staging"))
    monkeypatch.delenv("PYTHONPATH", raising=False)
    return folder


@pytest.fixture
def project(user: int | None, monkeypatch) -> Iterator[Path]:
    """The user's project (each test that takes it runs as this user and as a non-root one)."""
    folder = make_project(user, monkeypatch)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def my_project(monkeypatch) -> Iterator[Path]:
    """A project of this user's."""
    folder = make_project(None, monkeypatch)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def sweepkit(user: int | None, *args: str, cwd: Path, **kwargs) -> subprocess.Popen[str]:
    exe = shutil.which("sweepkit")
    assert exe, "the sweepkit console script is not installed (pip install -e .)"
    return subprocess.Popen(
        [*as_user(user), exe, *args], cwd=cwd, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs,
    )  # fmt: skip


def finished(process: subprocess.Popen[str], timeout: float = 600) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def create(user: int | None, project: Path, values: list[float]) -> str:
    config = project / "sweep.yaml"
    config.write_text(
        "method: grid\nmetric: {name: loss, goal: minimize}\n"
        f"parameters:\n  x: {{values: {values}}}\n"
    )
    if user is not None:
        os.chown(config, user, user)
    code, out, err = finished(
        sweepkit(user, "create", str(config), "--backend", "local", cwd=project)
    )
    assert code == 0, err
    return out.strip()


def status(user: int | None, project: Path, sweep_id: str) -> dict:
    code, out, err = finished(sweepkit(user, "status", sweep_id, "--json", cwd=project))
    assert code == 0, err
    return json.loads(out)


def containers(sweep_id: str, *, all_states: bool = False) -> list[str]:
    flags = ["-a"] if all_states else []
    listed = docker("ps", *flags, "--filter", f"name=sweepkit-{sweep_id}", "--format", "{{.ID}}")
    return listed.stdout.split()


def test_the_image_says_what_it_holds(image):
    result = docker("run", "--rm", image, "--version")
    for part in ("sweepkit 0.1", "python 3.", "wandb 0.", "sweeps 0.", "torch 2."):
        assert part in result.stdout, result.stdout


def test_cpu_containers_finish_every_grid_point_once_as_the_user(image, user, project):
    write_module(project, key=SECRET)
    sweep_id = create(user, project, [0.0, 1.0, 2.0, 3.0])
    env = {**os.environ, "WANDB_API_KEY": SECRET}
    launcher = sweepkit(
        user, "docker", sweep_id, "--workers", "2", "--image", image,
        "--function", "mymodel:train", cwd=project, env=env,
    )  # fmt: skip
    inspected = []
    while launcher.poll() is None:  # the key must not show in any running container's config
        for container in containers(sweep_id):
            got = docker("inspect", container, check=False)
            if got.returncode == 0:
                inspected.append(container)
                assert SECRET not in got.stdout
        time.sleep(0.5)
    code, _, err = finished(launcher)
    assert code == 0, err
    assert len(set(inspected)) == 2, "both containers were running and inspected"
    info = status(user, project, sweep_id)
    assert info["counts"] == {"finished": 4}, info
    assert sorted(r["config"]["x"] for r in info["runs"]) == [0.0, 1.0, 2.0, 3.0]
    for run in info["runs"]:  # each run saw the key (it came in on the container's stdin)
        assert run["metric"] == (run["config"]["x"] - 2.0) ** 2, run
    assert {r["agent"] for r in info["runs"]} == {"w0 cpu", "w1 cpu"}
    for run in info["runs"]:  # recorded at the host's own paths: status, report and sync work
        assert Path(run["location"]).is_dir(), run
    owner = os.getuid() if user is None else user
    written = [p for p in project.rglob("*") if not p.is_symlink()]
    assert any(p.suffix == ".wandb" for p in written)
    for path in written:
        assert path.stat().st_uid == owner, f"{path} is not the user's"
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), f"the key is in {path}"
    assert not containers(sweep_id, all_states=True)


@pytest.mark.parametrize(("sigints", "state"), [(1, "finished"), (2, "killed")])
def test_ctrl_c_once_lets_runs_finish_twice_stops_them_and_no_container_is_left(
    image, my_project, sigints, state
):
    write_module(my_project, until_released=True)
    sweep_id = create(None, my_project, [0.0, 1.0, 2.0, 3.0, 4.0, 5.0])
    launcher = sweepkit(
        None, "docker", sweep_id, "--workers", "2", "--image", image,
        "--function", "mymodel:train", cwd=my_project,
    )  # fmt: skip
    deadline = time.monotonic() + 300  # a guard against a hang, not a measurement
    while status(None, my_project, sweep_id)["counts"].get("running", 0) < 2:
        assert launcher.poll() is None, launcher.communicate()
        assert time.monotonic() < deadline, "two runs never ran at once"
        time.sleep(0.5)
    for _ in range(sigints):
        launcher.send_signal(signal.SIGINT)  # what a terminal's Ctrl-C does to sweepkit docker
        time.sleep(0.5)
    if sigints == 1:
        (my_project / "release").touch()  # the runs end only now, after Ctrl-C: they may finish
    code, _, err = finished(launcher)
    assert code == 130, err
    info = status(None, my_project, sweep_id)
    assert info["counts"] == {state: 2}, (info, err)  # no run was started after Ctrl-C
    assert not containers(sweep_id, all_states=True)
