"""Many agents from one command: one per GPU, or N CPU workers, each its own process.

The plan (which workers, which GPU, how many threads and runs each) and every
worker's environment and command line are built by pure functions, tested
without GPUs; `run_workers` holds the few lines that spawn and wait.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sweepkit.errors import ConfigError
from sweepkit.log import note

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
EXCLUSIVE = "--gpus and --workers cannot be combined: use --gpus with --per-gpu K"


@dataclasses.dataclass(frozen=True)
class Worker:
    """One agent process of a multi-worker launch."""

    index: int
    gpu: int | None  # the one GPU it sees, None for a CPU worker
    threads: int  # torch/OpenMP threads
    count: int | None  # runs it performs, None for "until the sweep is done"

    @property
    def label(self) -> str:
        return f"w{self.index} " + (f"gpu{self.gpu}" if self.gpu is not None else "cpu")


def parse_gpus(spec: str, visible: int | None) -> list[int]:
    """``all`` or a comma list of GPU indices, checked against the GPUs torch can see.

    ``visible=None`` skips that check (a docker host's GPUs, which docker checks).

    >>> parse_gpus("0,2", visible=4)
    [0, 2]
    >>> parse_gpus("all", visible=2)
    [0, 1]
    """
    if spec.strip() == "all":
        if visible is None:
            raise ValueError("'all' needs the number of visible GPUs")
        if visible == 0:
            raise ConfigError(
                "--gpus all: no CUDA GPU is visible here; use --workers N for CPU workers"
            )
        return list(range(visible))
    try:
        gpus = [int(part) for part in spec.split(",") if part.strip()]
    except ValueError:
        raise ConfigError(f"--gpus takes 'all' or indices like 0,1,3, got {spec!r}") from None
    if not gpus:
        raise ConfigError("--gpus takes 'all' or indices like 0,1,3")
    if len(set(gpus)) != len(gpus):
        raise ConfigError(
            f"--gpus lists a GPU twice: {spec!r} (use --per-gpu for several workers per GPU)"
        )
    missing = [g for g in gpus if g < 0 or (visible is not None and g >= visible)]
    if missing:
        seen = f"GPUs 0-{visible - 1}" if visible else "no GPU"
        raise ConfigError(f"--gpus {spec}: GPU {missing[0]} does not exist (torch sees {seen})")
    return gpus


def split_count(count: int | None, parts: int) -> list[int | None]:
    """Share a total run count between workers as evenly as possible.

    >>> split_count(7, 3)
    [3, 2, 2]
    >>> split_count(None, 2)
    [None, None]
    """
    if count is None:
        return [None] * parts
    return [count // parts + (1 if i < count % parts else 0) for i in range(parts)]


def plan_workers(
    *, gpus: list[int] | None, per_gpu: int, workers: int | None, count: int | None, cores: int
) -> list[Worker]:
    """Which workers to start: K per listed GPU, or N CPU workers; never more than `count` runs.

    CPU threads are split between workers (cores // workers each, at least 1)
    so that they do not oversubscribe the machine.
    """
    if gpus is not None and workers is not None:
        raise ConfigError(EXCLUSIVE)
    slots: list[int | None] = (
        [g for g in gpus for _ in range(per_gpu)] if gpus is not None else [None] * (workers or 1)
    )
    counts = split_count(count, len(slots))
    threads = max(1, cores // len(slots))
    planned = [(gpu, n) for gpu, n in zip(slots, counts, strict=True) if n != 0]
    return [Worker(i, gpu, threads, n) for i, (gpu, n) in enumerate(planned)]


def worker_env(worker: Worker, base: Mapping[str, str]) -> dict[str, str]:
    """The worker's environment: only its GPU visible (or none), its share of the CPU threads."""
    env = dict(base)
    env["CUDA_VISIBLE_DEVICES"] = "" if worker.gpu is None else str(worker.gpu)
    for name in THREAD_VARIABLES:
        env[name] = str(worker.threads)
    return env


def worker_argv(
    worker: Worker,
    sweep_id: str,
    *,
    function: str | None,
    store: Path | None,
    log_dir: Path,
    agent_flags: list[str] | None = None,
) -> list[str]:
    """`sweepkit agent` for one worker, run by this same Python; `agent_flags` pass through."""
    argv = [sys.executable, "-m", "sweepkit", "agent", sweep_id]
    argv += ["--label", worker.label, "--run-logs", str(log_dir), *(agent_flags or [])]
    if worker.count is not None:
        argv += ["--count", str(worker.count)]
    if function:
        argv += ["--function", function]
    if store:
        argv += ["--store", str(store)]
    return argv


def run_workers(
    workers: list[Worker],
    sweep_id: str,
    *,
    function: str | None,
    store: Path | None,
    log_dir: Path,
    stagger_s: float,
    agent_flags: list[str] | None = None,
) -> int:
    """Start the workers, forward Ctrl-C to them, wait; the exit code is the worst of theirs."""
    log_dir.mkdir(parents=True, exist_ok=True)
    processes: list[subprocess.Popen[Any]] = []
    interrupted = []

    def forward(signum: int, frame: Any) -> None:
        interrupted.append(signum)
        for process in processes:
            if process.poll() is None:
                process.send_signal(signum)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    note(
        f"starting {len(workers)} workers: {', '.join(w.label for w in workers)}; run logs in {log_dir}"
    )
    for i, worker in enumerate(workers):
        if i and stagger_s:
            time.sleep(stagger_s)  # parallel W&B agents asking at once get the same suggestion
        if interrupted:
            break  # Ctrl-C while starting: start no more
        argv = worker_argv(
            worker,
            sweep_id,
            function=function,
            store=store,
            log_dir=log_dir,
            agent_flags=agent_flags,
        )
        # A session of its own: the terminal's Ctrl-C reaches only us, and we forward it.
        processes.append(
            subprocess.Popen(argv, env=worker_env(worker, os.environ), start_new_session=True)
        )
    codes = [process.wait() for process in processes]
    return 130 if 130 in codes else max(codes, default=0)


def visible_gpu_count() -> int:
    """GPUs torch can see (honours CUDA_VISIBLE_DEVICES)."""
    import torch

    return torch.cuda.device_count()
