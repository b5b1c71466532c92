"""`sweepkit docker`: the agent's workers as containers, one per GPU or N on the CPU.

A container is one more kind of worker: the plan (`launch.plan_launch`), the
agent's command line (`launch.agent_args`), the live progress and the Ctrl-C
handling (`launch.start_workers`) are the ones `sweepkit agent --gpus/--workers`
uses; this module only wraps each worker's command in `docker run`.

Paths are the same inside as outside: the working directory, the store, the
MNIST folder and wandb's staging folder are mounted at their own paths, so
what the runs record (run folders, log files) is valid on the host for
`status`, `report` and `sync`.

The W&B key (and a PostgreSQL store's URL, which may hold a password) reaches
a container on its standard input, never through `-e` (docker keeps `-e`
values in the container's config, where `docker inspect` shows them), a
command line or a file.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import TextIO

from sweepkit import credentials
from sweepkit import launch as launching
from sweepkit.backends.base import Backend
from sweepkit.backends.store import is_postgres
from sweepkit.errors import SweepkitError
from sweepkit.launch import AgentLaunch, Worker
from sweepkit.runner.workspace import run_log_dir

DEFAULT_IMAGE = "sweepkit:latest"
# Passed by name: docker copies each value from the environment of `docker run` itself.
# None of them is a secret (docker inspect shows them).
PASS_THROUGH = ("WANDB_BASE_URL", "WANDB_ENTITY", "WANDB_PROJECT", "WANDB_MODE")
# Handed over on stdin: the W&B key, and a PostgreSQL store's URL (it may hold a password).
SECRETS = ("WANDB_API_KEY", "SWEEPKIT_STORE")
SECRETS_FROM = "SWEEPKIT_SECRETS_FROM"  # "stdin": the agent reads NAME=value lines first


class DockerUnavailableError(SweepkitError):
    """No docker client, or no engine behind it."""


@dataclasses.dataclass(frozen=True)
class Mounts:
    """The host folders a container sees, each at its own path."""

    workdir: Path  # the working directory: programs, --function modules, wandb/ run folders
    data_dir: Path  # MNIST (or the unpacked bundled sample)
    staging_dir: Path  # wandb's staging folder: offline tables' files wait there for `sync`
    store: Path | None  # the local store's file, when --store names one
    log_dir: Path  # where the runs' output goes

    def folders(self) -> list[Path]:
        """The folders to mount (none inside another that is mounted already)."""
        wanted = [self.workdir, self.data_dir, self.staging_dir, self.log_dir]
        if self.store is not None:
            wanted.append(self.store.parent)
        unique = sorted({folder.resolve() for folder in wanted})
        return [f for f in unique if not any(f != o and f.is_relative_to(o) for o in unique)]


def container_argv(
    worker: Worker,
    sweep_id: str,
    launch: AgentLaunch,
    *,
    image: str,
    mounts: Mounts,
    with_secrets: bool,
    user: tuple[int, int],
) -> list[str]:
    """`docker run` of one worker: its GPU (or none), its threads, the agent with every option.

    >>> argv = container_argv(Worker(0, None, 2, None), "local-ab", AgentLaunch(), image="img",
    ...     mounts=Mounts(Path("/w"), Path("/d"), Path("/s"), None, Path("/w/logs")),
    ...     with_secrets=False, user=(1000, 1000))
    >>> argv[argv.index("img"):][:3], "--gpus" in argv, "OMP_NUM_THREADS=2" in argv
    (['img', 'agent', 'local-ab'], False, True)
    """
    name = f"sweepkit-{sweep_id.replace('/', '-')}-{worker.label.replace(' ', '-')}"
    # --init: a small init as PID 1 passes signals on to the agent and reaps what its runs leave.
    # The host's network: the agent reaches W&B, or a store server, as the host does.
    argv = ["docker", "run", "--rm", "--init", "--name", name, "--network", "host"]
    if worker.gpu is not None:
        argv += ["--gpus", f"device={worker.gpu}"]  # inside, that GPU is the only one
    variables = launching.worker_variables(worker)
    if worker.gpu is not None:
        del variables["CUDA_VISIBLE_DEVICES"]  # docker's --gpus decides what the container sees
    # Files the container writes into the mounts belong to the user, not root; HOME is only
    # wandb's settings.
    argv += ["--user", f"{user[0]}:{user[1]}", "-e", "HOME=/tmp"]
    if with_secrets:
        argv += ["--interactive", "-e", f"{SECRETS_FROM}=stdin"]
    for variable in PASS_THROUGH:
        argv += ["-e", variable]
    variables.update(
        WANDB_DIR=str(mounts.workdir),
        WANDB_DATA_DIR=str(mounts.staging_dir),
        SWEEPKIT_DATA_DIR=str(mounts.data_dir),
    )
    for variable, value in variables.items():
        argv += ["-e", f"{variable}={value}"]
    for folder in mounts.folders():
        argv += ["-v", f"{folder}:{folder}"]
    argv += ["-w", str(mounts.workdir), image]
    return argv + launching.agent_args(
        sweep_id, label=worker.label, count=worker.count, function=launch.function,
        store=mounts.store, log_dir=mounts.log_dir, options=launch.options,
    )  # fmt: skip


def secrets_payload(environ: Mapping[str, str]) -> bytes | None:
    """What a container reads on stdin: ``NAME=value`` lines of the secrets set here, or None."""
    lines = [f"{name}={environ[name]}\n" for name in SECRETS if environ.get(name)]
    return "".join(lines).encode() if lines else None


def receive_secrets(stream: TextIO, environ: dict[str, str]) -> None:
    """Inside the container: read the ``NAME=value`` lines `sweepkit docker` wrote, until EOF."""
    for line in stream:
        name, sep, value = line.rstrip("\n").partition("=")
        if sep and name in SECRETS:
            environ[name] = value


def plan_containers(launch: AgentLaunch) -> list[Worker]:
    """One container per listed GPU (times --per-gpu), or --workers N CPU containers; with
    neither, one per GPU of this host (on a host with none, the error says --workers N)."""
    if not launch.has_workers:
        launch = dataclasses.replace(launch, gpus="all")
    # Indices are the docker host's: docker checks them. Only "all" needs to count GPUs here.
    all_gpus = (launch.gpus or "").strip() == "all"
    return launching.plan_launch(
        launch, visible_gpus=launching.visible_gpu_count() if all_gpus else None
    )


def render(commands: list[list[str]], secrets: list[str]) -> str:
    """The commands as shell lines; the `secrets` (names) go in through printf from the shell's
    own variables (printf is a shell builtin: no process's arguments hold them)."""
    feed = ""
    if secrets:
        formats = "".join(f"{name}=%s\\n" for name in secrets)
        feed = f"printf '{formats}' " + " ".join(f'"${name}"' for name in secrets) + " | "
    return "\n".join(feed + shlex.join(command) for command in commands)


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
            f"no docker engine is reachable ({reason}); start it, or use `sweepkit agent "
            "--gpus/--workers` to run the workers without docker"
        )


def start_containers(
    backend: Backend,
    sweep_id: str,
    launch: AgentLaunch,
    *,
    image: str,
    store: str | None,
    data_dir: Path,
    dry_run: bool,
) -> int:
    """Plan the containers, then print them (`dry_run`) or run them as the agent's workers.

    A store file is mounted; a PostgreSQL store is reached over the host's network, its URL
    handed over on stdin with the W&B key."""
    server = store if store is not None and is_postgres(store) else None
    plan = plan_containers(launch)
    log_dir = (launch.options.log_dir or run_log_dir(sweep_id)).resolve()
    mounts = Mounts(
        workdir=Path.cwd().resolve(),
        data_dir=data_dir.resolve(),
        staging_dir=Path(
            os.environ.get("WANDB_DATA_DIR") or Path.home() / ".local" / "share" / "wandb"
        ).resolve(),
        store=Path(store).resolve() if store is not None and server is None else None,
        log_dir=log_dir,
    )
    handed = {"WANDB_API_KEY": credentials.api_key(), "SWEEPKIT_STORE": server}
    handed = {name: value for name, value in handed.items() if value}
    secrets = secrets_payload(handed)
    commands = {
        worker.index: container_argv(
            worker, sweep_id, launch, image=image, mounts=mounts, with_secrets=bool(secrets),
            user=(os.getuid(), os.getgid()),
        )
        for worker in plan
    }  # fmt: skip
    if dry_run:
        print(render(list(commands.values()), list(handed)))
        return 0
    check_engine()
    for folder in mounts.folders():  # else docker makes them, owned by root
        folder.mkdir(parents=True, exist_ok=True)
    return launching.start_workers(
        backend, sweep_id, plan, log_dir=log_dir, stdin=secrets,
        command=lambda worker: commands[worker.index],
        env=lambda worker: dict(os.environ),
    )  # fmt: skip
