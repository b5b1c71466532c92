"""`sweepkit slurm`: a Slurm array job whose every task is one `sweepkit agent` of the sweep.

Plain `sbatch` (no submitit: it needs Slurm's accounting daemon to see job
states, and its job process ignores SIGTERM). The script is written by a pure
function (`array_script`) and submitted with `sbatch --parsable`; `--dry-run`
prints it instead. Each task `exec`s the agent, so the signals Slurm sends a
task (SIGTERM on `scancel`, preemption or the time limit, SIGKILL after
KillWait) reach the agent itself, not a bash that would run its trap late:
the agent records its run `preempted` and the point is offered again.

All tasks share the sweep's store: a PostgreSQL URL for tasks on many nodes
(a SQLite file only for tasks on one node; on a network filesystem it is
refused).
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

from sweepkit.backends.base import AgentOptions
from sweepkit.backends.store import is_postgres, redacted
from sweepkit.errors import ConfigError, SweepkitError
from sweepkit.launch import agent_args


class SlurmUnavailableError(SweepkitError):
    """sbatch is missing, or refused the job."""


@dataclasses.dataclass(frozen=True)
class ArrayJob:
    """What the array asks Slurm for, and what each task's agent is told."""

    sweep_id: str
    tasks: int  # --array N: tasks 0..N-1, each one agent
    store: str  # the shared store: a PostgreSQL URL (or, on one node, a SQLite file)
    workdir: Path  # each task's working directory (run folders go to its wandb/)
    gpus_per_task: int = 0  # --gres=gpu:K: Slurm sets CUDA_VISIBLE_DEVICES per task
    time: str | None = None  # --time, as Slurm reads it (e.g. 4:00:00)
    partition: str | None = None
    count: int | None = None  # runs per task (--count of each agent)
    function: str | None = None
    options: AgentOptions = dataclasses.field(default_factory=AgentOptions)  # every task's
    python: str = sys.executable

    def __post_init__(self) -> None:
        if self.tasks < 1:
            raise ConfigError(f"--array takes a number of tasks >= 1, got {self.tasks}")
        if self.gpus_per_task < 0:
            raise ConfigError(f"--gpus-per-task takes a number >= 0, got {self.gpus_per_task}")

    @property
    def log_folder(self) -> Path:
        return self.workdir / ".sweepkit" / "slurm"


def array_script(job: ArrayJob) -> str:
    """The sbatch script of the array.

    A store URL with a password is not written into the script: sbatch passes
    its environment on to the tasks, and `submit` puts SWEEPKIT_STORE there.

    >>> print(array_script(ArrayJob("local-ab12cd34", 4, "postgresql://me@db/sweeps",
    ...     Path("/work"), python="/venv/bin/python")))  # doctest: +ELLIPSIS
    #!/bin/bash
    #SBATCH --job-name=sweepkit-local-ab12cd34
    #SBATCH --array=0-3
    #SBATCH --output=/work/.sweepkit/slurm/%x-%A_%a.out
    #SBATCH --chdir=/work
    ...
    exec /venv/bin/python -m sweepkit agent local-ab12cd34 --max-failures 5 ... --label "slurm-${SLURM_ARRAY_TASK_ID}"
    """
    directives = [
        f"--job-name=sweepkit-{job.sweep_id}",
        f"--array=0-{job.tasks - 1}",
        f"--output={job.log_folder}/%x-%A_%a.out",
        f"--chdir={job.workdir}",
        *([f"--gres=gpu:{job.gpus_per_task}"] if job.gpus_per_task else []),
        *([f"--time={job.time}"] if job.time else []),
        *([f"--partition={job.partition}"] if job.partition else []),
    ]
    # The store comes from SWEEPKIT_STORE; the label, which bash expands, is added below.
    agent = agent_args(
        job.sweep_id, label=None, count=job.count, function=job.function, store=None,
        log_dir=None, options=job.options,
    )  # fmt: skip
    agent = [job.python, "-m", "sweepkit", *agent]
    lines = ["#!/bin/bash", *(f"#SBATCH {d}" for d in directives), ""]
    if _has_password(job.store):
        lines.append(
            "# SWEEPKIT_STORE comes from sbatch's environment: its password stays off disk."
        )
    else:
        lines.append(f"export SWEEPKIT_STORE={shlex.quote(job.store)}")
    lines += [
        "# exec: the agent is the task's process, so Slurm's SIGTERM (scancel, preemption, the",
        "# time limit) reaches it at once: its run is recorded preempted and offered again.",
        f'exec {shlex.join(agent)} --label "slurm-${{SLURM_ARRAY_TASK_ID}}"',
        "",
    ]
    return "\n".join(lines)


def _has_password(store: str) -> bool:
    return redacted(store) != store


def submit(job: ArrayJob) -> tuple[str, Path]:
    """Write the script into the job's log folder and submit it with sbatch.

    Returns:
        The job id sbatch printed, and the script's path.

    Raises:
        SlurmUnavailableError: sbatch is not installed or refused the job (its reason).
    """
    if shutil.which("sbatch") is None:
        raise SlurmUnavailableError(
            "sbatch is not installed here (or not on PATH): run on a Slurm login node, or "
            "--dry-run to print the script"
        )
    job.log_folder.mkdir(parents=True, exist_ok=True)
    script = job.log_folder / f"{job.sweep_id}-{time.strftime('%Y%m%d-%H%M%S')}.sbatch"
    script.write_text(array_script(job))
    script.chmod(0o600)
    env = {**os.environ, "SWEEPKIT_STORE": job.store}
    result = subprocess.run(
        ["sbatch", "--parsable", str(script)], capture_output=True, text=True, env=env
    )
    if result.returncode != 0:
        reason = (result.stderr.strip().splitlines() or ["no reason given"])[-1]
        raise SlurmUnavailableError(f"sbatch refused the job: {reason} (script: {script})")
    return result.stdout.strip().split(";")[0], script


def start_array(
    sweep_id: str,
    *,
    tasks: int,
    store: str | None,
    dry_run: bool = False,
    **options: object,
) -> str:
    """`sweepkit slurm`: check the sweep, then the script (dry run) or the submitted job's id.

    Raises:
        UnknownSweepError: no such local sweep in the store.
        SlurmUnavailableError: sbatch is missing or refused the job.
    """
    from sweepkit.backends.local import LocalBackend
    from sweepkit.backends.store import LOCAL_PREFIX
    from sweepkit.log import note

    if not sweep_id.startswith(LOCAL_PREFIX):
        raise ConfigError(
            f"{sweep_id} is a W&B sweep: run `wandb agent {sweep_id}` in your own sbatch script"
        )
    backend = LocalBackend(store)
    backend.sweep(sweep_id)  # an unknown id fails here, before anything is written
    location = backend.store_location
    if not is_postgres(location):
        location = str(Path(location).resolve())
        note(
            f"the tasks share the SQLite file {location}: only tasks on this node may; for "
            "tasks on several nodes use a PostgreSQL store (--store postgresql://...)"
        )
    job = ArrayJob(sweep_id, tasks, location, Path.cwd(), **options)  # type: ignore[arg-type]
    if dry_run:
        return array_script(job)
    job_id, script = submit(job)
    note(f"submitted {script}; task logs in {job.log_folder}/; `scancel {job_id}` stops them")
    return job_id
