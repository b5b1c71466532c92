"""`sweepkit docker`: one container per GPU, each an agent of the same sweep.

`docker_argv` is pure (tested without a docker engine); `run_containers` holds
the few lines that check for an engine and spawn. Secrets travel by name only:
``-e WANDB_API_KEY`` makes docker copy the value from its own environment, so
the key is never on a command line.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
from pathlib import Path

from sweepkit.backends.store import is_postgres
from sweepkit.errors import SweepkitError
from sweepkit.launch import split_count

DEFAULT_IMAGE = "sweepkit:latest"
CONTAINER_WORKDIR = "/work"
CONTAINER_DATA = "/data"
# Passed by name: docker reads each value from the environment of `docker run` itself.
PASS_THROUGH = ("WANDB_API_KEY", "WANDB_BASE_URL", "WANDB_ENTITY", "WANDB_PROJECT", "WANDB_MODE")


class DockerUnavailableError(SweepkitError):
    """No docker client, or no engine behind it."""


def docker_argv(
    sweep_id: str,
    gpu: int,
    *,
    image: str,
    workdir: Path,
    data_dir: Path,
    store: str | None,
    count: int | None,
    function: str | None,
) -> list[str]:
    """`docker run` for the agent on one GPU.

    The working directory is mounted at /work (the local store in .sweepkit/,
    run folders in wandb/, program files), the MNIST folder at /data.
    """
    name = f"sweepkit-{sweep_id.replace('/', '-')}-gpu{gpu}"
    argv = ["docker", "run", "--rm", "--name", name, "--gpus", f"device={gpu}"]
    # Files the container writes into the mounts belong to the user, not root; HOME is
    # only wandb's settings, the staged table images go to the mounted wandb folder.
    argv += ["--user", f"{os.getuid()}:{os.getgid()}", "-e", "HOME=/tmp"]
    for variable in PASS_THROUGH:
        argv += ["-e", variable]
    argv += [
        "-e",
        f"WANDB_DIR={CONTAINER_WORKDIR}",
        "-e",
        f"WANDB_DATA_DIR={CONTAINER_WORKDIR}/wandb/staging",
    ]
    argv += ["-e", f"SWEEPKIT_DATA_DIR={CONTAINER_DATA}"]
    argv += [
        "-v",
        f"{workdir}:{CONTAINER_WORKDIR}",
        "-v",
        f"{data_dir}:{CONTAINER_DATA}",
        "-w",
        CONTAINER_WORKDIR,
    ]
    agent = ["agent", sweep_id, "--label", f"gpu{gpu}"]
    if store is not None and is_postgres(store):
        # A server the container reaches itself; by name, as the W&B key: a password in the
        # URL stays off the command line (run_containers puts it in docker's environment).
        argv += ["-e", "SWEEPKIT_STORE"]
    elif store is not None:
        path = Path(store).resolve()
        argv += ["-v", f"{path.parent}:/store", "-e", f"SWEEPKIT_STORE=/store/{path.name}"]
    if count is not None:
        agent += ["--count", str(count)]
    if function:
        agent += ["--function", function]
    return [*argv, image, *agent]


def plan_containers(
    sweep_id: str,
    gpus: list[int],
    *,
    image: str,
    workdir: Path,
    data_dir: Path,
    store: str | None,
    count: int | None,
    function: str | None,
) -> list[list[str]]:
    """One `docker run` per GPU; `count` is shared between them as with --workers."""
    counts = split_count(count, len(gpus))
    return [
        docker_argv(
            sweep_id,
            gpu,
            image=image,
            workdir=workdir,
            data_dir=data_dir,
            store=store,
            count=n,
            function=function,
        )
        for gpu, n in zip(gpus, counts, strict=True)
        if n != 0
    ]


def check_engine() -> None:
    """Fail with one line unless a docker engine answers."""
    if shutil.which("docker") is None:
        raise DockerUnavailableError(
            "docker is not installed (or not on PATH); see docker/README.md"
        )
    probe = subprocess.run(
        ["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True
    )
    if probe.returncode != 0:
        reason = (probe.stderr.strip().splitlines() or ["no answer"])[-1]
        raise DockerUnavailableError(
            f"no docker engine is reachable ({reason}); start it, or use `sweepkit agent --gpus`"
        )


def run_containers(commands: list[list[str]], store: str | None = None) -> int:
    """Start every container, wait for all; the exit code is the worst of theirs. A PostgreSQL
    `store` reaches the containers through docker's environment (`-e SWEEPKIT_STORE`)."""
    check_engine()
    env = {**os.environ, **({"SWEEPKIT_STORE": store} if store and is_postgres(store) else {})}
    # Ctrl-C reaches each attached `docker run`, which hands it to its agent (once: finish
    # the runs, twice: stop them); this process only waits for them.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    processes = [subprocess.Popen(command, env=env) for command in commands]
    codes = [process.wait() for process in processes]
    return max(codes, default=0)


def render(commands: list[list[str]]) -> str:
    return "\n".join(shlex.join(command) for command in commands)
