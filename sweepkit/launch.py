"""Start what `sweepkit agent` / `sweepkit run` ask for: one agent here, or one per GPU or worker.

`AgentLaunch` is the one definition of those options; `start` is the one call
both commands make. The plan (which workers, which GPU, how many threads and
runs each) and every worker's environment and command line are built by pure
functions, tested without GPUs; `run_workers` holds the few lines that spawn
and wait.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from sweepkit.backends.base import AgentOptions, AgentResult, Backend
from sweepkit.core.records import SweepInfo
from sweepkit.errors import ConfigError
from sweepkit.log import note
from sweepkit.proctree import die_with_parent
from sweepkit.progress import LiveLines, OutputTail, sweep_line, sweep_total, worker_line
from sweepkit.runner.workspace import run_log_dir

PROGRESS_EVERY_S = 2.0  # how often the live lines are redrawn from the store
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
EXCLUSIVE = "--gpus and --workers cannot be combined: use --gpus with --per-gpu K"


@dataclasses.dataclass(frozen=True)
class AgentLaunch:
    """What to start on a sweep: which function, how many runs, on which GPUs or workers."""

    # module:attr, or a function (`sweepkit.agent`); None: the sweep's program, else sweepkit's train
    function: str | Callable[[], Any] | None = None
    count: int | None = None  # runs in total, across all workers; None: until the sweep is done
    gpus: str | None = None  # "all" or "0,1,3": one worker per GPU (times per_gpu)
    per_gpu: int = 1
    workers: int | None = None  # CPU workers
    options: AgentOptions = dataclasses.field(default_factory=AgentOptions)

    @property
    def has_workers(self) -> bool:
        return self.gpus is not None or self.workers is not None

    def check(self) -> None:
        """Raise ConfigError for options that contradict each other (before anything starts)."""
        if self.gpus is not None and self.workers is not None:
            raise ConfigError(EXCLUSIVE)
        if self.per_gpu != 1 and self.gpus is None:
            raise ConfigError("--per-gpu needs --gpus")

    def preflight(self, sweep_config: dict[str, Any]) -> None:
        """Everything that would stop runs from starting, checked before a sweep is created:
        the options, the program or function, the GPUs."""
        from sweepkit.runner.target import check_runnable  # imports wandb for a program

        self.check()
        check_runnable(sweep_config, self.function)
        if self.gpus is not None:
            parse_gpus(self.gpus, visible_gpu_count())


def start(backend: Backend, sweep_id: str, launch: AgentLaunch, *, store: str | None) -> int:
    """Run the agent here, or start its workers and wait for them; return the exit code."""
    launch.check()
    if backend.name == "local" and not launch.options.label:  # a worker: its parent said it
        from sweepkit.engine import caveat

        if known_bug := caveat(backend.sweep(sweep_id).config):
            note(known_bug)
    if not launch.has_workers:
        result = backend.agent(
            sweep_id, function=launch.function, count=launch.count, options=launch.options
        )
        _say_done(result, sweep_id, launch.options.label)
        return result.exit_code
    plan = plan_launch(launch, visible_gpus=visible_gpu_count() if launch.gpus else None)
    log_dir = (launch.options.log_dir or run_log_dir(sweep_id)).resolve()
    return start_workers(
        backend, sweep_id, plan, log_dir=log_dir,
        command=lambda worker: worker_argv(
            worker, sweep_id, function=launch.function, log_dir=log_dir, options=launch.options,
        ),
        env=lambda worker: worker_env(worker, os.environ, store=store),
    )  # fmt: skip


def start_workers(
    backend: Backend,
    sweep_id: str,
    plan: list[Worker],
    *,
    log_dir: Path,
    command: Callable[[Worker], list[str]],
    env: Callable[[Worker], dict[str, str]],
    stdin: bytes | None = None,
) -> int:
    """Start `plan`'s workers on the sweep (processes here, or containers) and wait for them,
    with the sweep's progress shown as live lines; return the worst exit code."""
    info = backend.sweep(sweep_id)  # an unknown id fails once here, not once per worker
    local = backend.name == "local"
    return run_workers(
        plan, command, env=env, log_dir=log_dir, stdin=stdin,
        # W&B agents asking at once get the same suggestion; the local store never repeats one.
        stagger_s=0.0 if local else 5.0,
        # The live lines read the local store; W&B's API is not for polling every 2 s.
        sweep_info=(lambda: backend.sweep(sweep_id)) if local else None,
        total=sweep_total(info.config),
    )  # fmt: skip


def _say_done(result: AgentResult, sweep_id: str, label: str) -> None:
    prefix = f"[{label}] " if label else ""
    if result.gave_up:
        note(f"{prefix}giving up: {result.gave_up}")
    if result.preempted_run:
        note(f"{prefix}got SIGTERM: run {result.preempted_run} is recorded preempted and "
             "offered again")  # fmt: skip
    elif result.preempted:
        note(f"{prefix}got SIGTERM between runs: stopping (no run was going)")
    if unfinished := result.unfinished:
        crashed, failed = unfinished.get("crashed", 0), unfinished.get("failed", 0)
        lost = f"{crashed} crashed past their retries" if crashed else ""
        note(
            f"{prefix}{crashed + failed} point(s) of the sweep have no result "
            f"({', '.join(filter(None, [lost, f'{failed} failed' if failed else '']))})"
            + ("; the sweep is not finished while a crashed point is lost" if crashed else "")
            + f": `sweepkit agent {sweep_id} --retry-failed` runs them again"
        )
    note(
        f"{prefix}agent done: {result.performed} run(s), {result.failed} failed; "
        f"see them with: sweepkit status {sweep_id}"
    )


def agent_args(
    sweep_id: str,
    *,
    label: str | None,
    count: int | None,
    function: str | None,
    store: str | Path | None,
    log_dir: str | Path | None,
    options: AgentOptions,
) -> list[str]:
    """The arguments of `sweepkit agent` that start the same agent elsewhere: a worker process
    here or an agent in a container. The one builder of that command line, so every option
    reaches every kind of worker.

    Args:
        label: the worker's name in its lines ("w0 gpu0"); None: the caller adds it.
        count: runs this worker performs (None: until the sweep is done).
        store, log_dir: as the worker sees them (a container sees its mounts); no log_dir:
            the runs' output goes to the agent's own (a Slurm task's output file).
        options: the agent options the worker gets, as this agent was given them.

    >>> agent_args("local-ab", label="w0 cpu", count=2, function=None, store=None,
    ...            log_dir="/logs", options=AgentOptions())  # doctest: +NORMALIZE_WHITESPACE
    ['agent', 'local-ab', '--label', 'w0 cpu', '--run-logs', '/logs', '--max-failures', '5',
     '--crash-grace', '60', '--retries', '2', '--count', '2']
    """
    args = ["agent", sweep_id]
    args += ["--label", label] if label is not None else []
    args += ["--run-logs", str(log_dir)] if log_dir is not None else []
    args += ["--max-failures", str(options.max_failures)]
    args += ["--crash-grace", f"{options.crash_grace_s:g}", "--retries", str(options.max_retries)]
    if options.retry_failed:
        args.append("--retry-failed")
    if options.run_timeout_s is not None:
        args += ["--run-timeout", f"{options.run_timeout_s:g}"]
    if count is not None:
        args += ["--count", str(count)]
    if function:
        args += ["--function", function]
    if store:
        args += ["--store", str(store)]
    return args


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


def plan_launch(launch: AgentLaunch, *, visible_gpus: int | None) -> list[Worker]:
    """The workers `launch` asks for: per GPU (checked against `visible_gpus`; None leaves the
    indices to whoever runs them, as docker does) or CPU workers, sharing the cores."""
    gpus = None if launch.gpus is None else parse_gpus(launch.gpus, visible_gpus)
    return plan_workers(
        gpus=gpus, per_gpu=launch.per_gpu, workers=launch.workers, count=launch.count,
        cores=os.cpu_count() or 1,
    )  # fmt: skip


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


def worker_variables(worker: Worker) -> dict[str, str]:
    """What a worker's environment sets: only its GPU visible (or none), its share of the threads."""
    variables = {"CUDA_VISIBLE_DEVICES": "" if worker.gpu is None else str(worker.gpu)}
    variables.update({name: str(worker.threads) for name in THREAD_VARIABLES})
    return variables


def worker_env(
    worker: Worker, base: Mapping[str, str], *, store: str | None = None
) -> dict[str, str]:
    """The worker process's environment: `base` with the worker's variables and the store.

    The store goes in SWEEPKIT_STORE, not on the command line, where `ps` would show any
    password in a PostgreSQL URL to every user of the machine.
    """
    return {**base, **worker_variables(worker), **({"SWEEPKIT_STORE": store} if store else {})}


def worker_argv(
    worker: Worker,
    sweep_id: str,
    *,
    function: str | None,
    log_dir: Path,
    options: AgentOptions,
) -> list[str]:
    """`sweepkit agent` for one worker process, run by this same Python (its store comes in
    its environment: `worker_env`)."""
    return [
        sys.executable, "-m", "sweepkit",
        *agent_args(
            sweep_id, label=worker.label, count=worker.count, function=function, store=None,
            log_dir=log_dir, options=options,
        ),
    ]  # fmt: skip


def run_workers(
    workers: list[Worker],
    command: Callable[[Worker], list[str]],
    *,
    env: Callable[[Worker], dict[str, str]],
    log_dir: Path,
    stagger_s: float,
    sweep_info: Callable[[], SweepInfo] | None = None,
    total: int | None = None,
    stdin: bytes | None = None,
) -> int:
    """Start the workers (`command` and `env` of each: agent processes here, or `docker run`s),
    relay their lines, forward Ctrl-C to them, wait.

    `stdin`, if given, is written to each worker's standard input, which is then
    closed (how secrets reach a container without a command line or a file).
    Each worker writes to ``log_dir/worker-<label>.log``, and this process
    relays its new lines; on a terminal the last lines show the sweep's
    progress (from `sweep_info`, with `total` runs expected) and one line per
    worker. The exit code is the worst of theirs.
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    processes: list[subprocess.Popen[Any]] = []
    tails: dict[str, OutputTail] = {}
    last_lines: dict[str, str] = {}
    interrupted = []

    def forward(signum: int, frame: Any) -> None:
        interrupted.append(signum)
        for process in processes:
            if process.poll() is None:
                process.send_signal(signum)

    def relay(ended: bool = False) -> None:
        for label, tail in tails.items():
            lines = tail.rest() if ended else tail.lines()
            if lines:
                last_lines[label] = lines[-1].removeprefix(f"sweepkit: [{label}] ")
                LiveLines.echo(lines)

    def progress() -> list[str]:
        if sweep_info is None:  # a W&B sweep: each worker's last line
            return [f"  {label}: {last_lines.get(label, 'starting')}" for label in tails]
        info = sweep_info()
        return [sweep_line(info, total), *(worker_line(info, label) for label in tails)]

    def wait_a_little(seconds: float) -> None:
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            relay()
            time.sleep(0.2)

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # a closed terminal too
        signal.signal(signum, forward)
    note(
        f"starting {len(workers)} workers: {', '.join(w.label for w in workers)}; logs in {log_dir}"
    )
    with LiveLines() as live:
        for i, worker in enumerate(workers):
            if i and stagger_s:
                wait_a_little(stagger_s)  # parallel W&B agents asking at once get one suggestion
            if interrupted:
                break  # Ctrl-C while starting: start no more
            output = log_dir / f"worker-{worker.label.replace(' ', '-')}.log"
            with output.open("ab") as file:  # the worker keeps its own copy of the descriptor
                # A session of its own: the terminal's Ctrl-C reaches only us, and we forward it.
                process = subprocess.Popen(
                    command(worker), env=env(worker), start_new_session=True,
                    stdin=subprocess.DEVNULL if stdin is None else subprocess.PIPE,
                    stdout=file, stderr=subprocess.STDOUT,
                    preexec_fn=die_with_parent,  # this launcher SIGKILLed: its workers stop too
                )  # fmt: skip
            if process.stdin is not None:
                process.stdin.write(stdin or b"")
                process.stdin.close()
            processes.append(process)
            tails[worker.label] = OutputTail(output)
        while any(process.poll() is None for process in processes):
            if live.enabled:
                live.update(progress())
            wait_a_little(PROGRESS_EVERY_S)
    relay(ended=True)
    codes = [process.wait() for process in processes]
    return 130 if 130 in codes else max(codes, default=0)


def visible_gpu_count() -> int:
    """GPUs torch can see (honours CUDA_VISIBLE_DEVICES)."""
    import torch

    return torch.cuda.device_count()
