"""The options several `sweepkit` commands share, defined once: the sweep id and file, the
store, W&B's project and entity, and every option of `agent` that `run`, `docker` and
`slurm` take too (`with_agent_options`), handed to a command as one `AgentLaunch`."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from sweepkit import yaml12
from sweepkit.backends.base import AgentOptions
from sweepkit.core.lifecycle import CRASH_GRACE_S, MAX_RETRIES
from sweepkit.errors import ConfigError
from sweepkit.launch import AgentLaunch

SweepIdArgument = Annotated[str, typer.Argument(help="A sweep id (local-... or a W&B id/path).")]
SweepFileArgument = Annotated[Path, typer.Argument(help="A W&B sweep YAML.")]
ProjectOption = Annotated[str | None, typer.Option(envvar="WANDB_PROJECT", help="W&B project.")]
EntityOption = Annotated[
    str | None, typer.Option(envvar="WANDB_ENTITY", help="W&B entity (user or team).")
]
StoreOption = Annotated[
    str | None,
    typer.Option(
        "--store",
        envvar="SWEEPKIT_STORE",
        metavar="FILE|URL",
        help="The local backend's store: a SQLite file (one machine) or "
        "postgresql://USER@HOST:PORT/DB (any number of machines).  [default: .sweepkit/sweeps.db]",
        show_default=False,
    ),
]
CrashGraceOption = Annotated[
    float,
    typer.Option(
        min=5,
        metavar="SECONDS",
        help="A run with no heartbeat for this long has lost its agent: its end is recorded "
        "from its own log (finished, or crashed and offered again) (local backend).",
    ),
]
CountOption = Annotated[
    int | None,
    typer.Option(
        "--count",
        "-n",
        min=1,
        help="Runs in total, across all workers.  [default: until the sweep is done]",
        show_default=False,
    ),
]
FunctionOption = Annotated[
    str | None,
    typer.Option(
        "--function",
        "-f",
        metavar="MODULE:ATTR",
        help="The function each run calls (W&B's function-agent contract: it calls wandb.init); "
        "the working directory is on the import path.  "
        "[default: the sweep's program if it has one, else sweepkit.train:train]",
        show_default=False,
    ),
]


# The options of `agent` that `run` shares: one definition, added to both commands.
AGENT_OPTIONS: dict[str, tuple[Any, Any]] = {
    "count": (CountOption, None),
    "function": (FunctionOption, None),
    "gpus": (
        Annotated[
            str | None,
            typer.Option(
                help="'all' or indices like 0,1,3: one worker per GPU, each seeing only its GPU."
            ),
        ],
        None,
    ),
    "per_gpu": (Annotated[int, typer.Option(min=1, help="Workers per GPU (with --gpus).")], 1),
    "workers": (
        Annotated[
            int | None,
            typer.Option(
                min=1, help="CPU workers; the CPU's cores are split between them (no GPU use)."
            ),
        ],
        None,
    ),
    "max_failures": (
        Annotated[int, typer.Option(min=1, help="Give up after this many failed runs in a row.")],
        5,
    ),
    "run_timeout": (
        Annotated[
            float | None,
            typer.Option(
                min=1,
                metavar="SECONDS",
                help="Stop a run still going after this long; it counts as failed.",
            ),
        ],
        None,
    ),
    "crash_grace": (CrashGraceOption, CRASH_GRACE_S),
    "retries": (
        Annotated[
            int,
            typer.Option(
                min=0, help="Times a crashed run's exact config is run again (local backend)."
            ),
        ],
        MAX_RETRIES,
    ),
    "retry_failed": (
        Annotated[
            bool,
            typer.Option(
                "--retry-failed",
                help="Also run again the points that failed, or crashed past --retries, "
                "before this agent started (local backend).",
            ),
        ],
        False,
    ),
    # A worker's name in its lines, and where its runs' output goes: set by the parent of workers.
    "label": (Annotated[str, typer.Option(hidden=True)], ""),
    "run_logs": (Annotated[Path | None, typer.Option(hidden=True)], None),
}


def with_agent_options(
    command: Callable[..., None] | None = None, *, leave_out: frozenset[str] = frozenset()
) -> Any:
    """Give a command the options in AGENT_OPTIONS (but those in `leave_out`, which keep their
    defaults); it receives them as one `launch`."""
    if command is None:
        return functools.partial(with_agent_options, leave_out=leave_out)
    own = inspect.signature(command, eval_str=True)
    shared = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=hint, default=default)
        for name, (hint, default) in AGENT_OPTIONS.items()
        if name not in leave_out
    ]

    @functools.wraps(command)
    def with_launch(**kwargs: Any) -> None:
        chosen = {
            name: kwargs.pop(name) if name not in leave_out else default
            for name, (_, default) in AGENT_OPTIONS.items()
        }
        command(**kwargs, launch=_agent_launch(**chosen))

    mine = [p for name, p in own.parameters.items() if name != "launch"]
    with_launch.__signature__ = own.replace(parameters=[*mine, *shared])  # type: ignore[attr-defined]
    return with_launch


# What a Slurm task's agent does not take from `sweepkit slurm`: the array decides the
# workers and GPUs, the script sets each task's label, the task's output file is its log, and
# --count there means runs per task.
SLURM_DECIDES = frozenset({"count", "gpus", "per_gpu", "workers", "label", "run_logs"})


def _agent_launch(
    *, count: int | None, function: str | None, gpus: str | None, per_gpu: int,
    workers: int | None, max_failures: int, run_timeout: float | None, crash_grace: float,
    retries: int, retry_failed: bool, label: str, run_logs: Path | None,
) -> AgentLaunch:  # fmt: skip
    options = AgentOptions(
        label=label, log_dir=run_logs, max_failures=max_failures, run_timeout_s=run_timeout,
        crash_grace_s=crash_grace, max_retries=retries, retry_failed=retry_failed,
    )  # fmt: skip
    launch = AgentLaunch(function, count, gpus, per_gpu, workers, options)
    launch.check()
    return launch


def parse_settings(settings: list[str]) -> dict[str, Any]:
    """Turn ``key=value`` strings into a dict, reading each value as YAML (so 0.01 is a float).

    >>> parse_settings(["lr=0.01", "dataset=sample", "epochs=2"])
    {'lr': 0.01, 'dataset': 'sample', 'epochs': 2}
    """
    config: dict[str, Any] = {}
    for item in settings:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set takes KEY=VALUE, got {item!r} (e.g. --set lr=0.01)")
        try:
            config[key.strip()] = yaml12.load_yaml(value) if value.strip() else ""
        except yaml.YAMLError:
            config[key.strip()] = value
    return config


SettingsOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        "-s",
        metavar="KEY=VALUE",
        help="A hyperparameter or setting, e.g. --set lr=0.01 --set epochs=2. "
        "Keys: epochs, batch_size, lr, l1_size, l2_size, conv_kernel, num_batches_to_log, "
        "images_per_batch, seed, dataset (auto|mnist|sample), data_dir, max_train, max_test, "
        "threads, device (auto|cpu|cuda|cuda:N), precision (auto|fp32|bf16), log_interval, "
        "curves (true|false), caption_images, watch (none|gradients|parameters|all), watch_freq.",
    ),
]
# `sweepkit slurm`'s own.
ArrayOption = Annotated[
    int, typer.Option("--array", min=1, metavar="N", help="Tasks in the array: each one agent.")
]
GpusPerTaskOption = Annotated[
    int,
    typer.Option(min=0, metavar="K", help="GPUs per task (--gres=gpu:K): Slurm sets "
                 "CUDA_VISIBLE_DEVICES, so each task sees only its own."),
]  # fmt: skip
TimeLimitOption = Annotated[
    str | None, typer.Option("--time", help="Each task's time limit, as sbatch reads it (4:00:00).")
]
RunsPerTaskOption = Annotated[
    int | None,
    typer.Option("--count", "-n", min=1, help="Runs per task.  [default: until the sweep is done]",
                 show_default=False),
]  # fmt: skip
# `sweepkit report`'s own.
ReportFolderOption = Annotated[
    Path | None,
    typer.Option(help="Folder for report.html.  [default: reports/<sweep id>]", show_default=False),
]
CompareOption = Annotated[
    tuple[str, str] | None,
    typer.Option(
        metavar="RUN_A RUN_B",
        help="Two runs (ids or names) to show side by side.  "
        "[default: the best and the worst finished run]",
        show_default=False,
    ),
]
# `sweepkit status`'s own.
AnySweepArgument = Annotated[
    str | None,
    typer.Argument(help="A sweep id (local-... or a W&B id/path).  [default: list every sweep "
                   "in the store]", show_default=False),
]  # fmt: skip
RunOption = Annotated[
    str | None,
    typer.Option("--run", metavar="RUN", help="Show one run in full (its id or name): "
                 "config, metric, state, whole error, folder, log file."),
]  # fmt: skip
WatchOption = Annotated[
    bool, typer.Option("--watch", "-w", help="Redraw in place until the sweep ends; Ctrl-C leaves.")
]
EveryOption = Annotated[
    float, typer.Option(min=0.5, metavar="SECONDS", help="How often --watch redraws.")
]
BackendOption = Annotated[
    str,
    typer.Option(
        help="auto: W&B when credentials are configured and WANDB_MODE is not offline, "
        "else local; or wandb, or local."
    ),
]
# `sweepkit dashboard`'s own.
OpenAtArgument = Annotated[
    str | None,
    typer.Argument(help="A local sweep to open at.  [default: the list of every sweep]",
                   show_default=False),
]  # fmt: skip
HostOption = Annotated[
    str,
    typer.Option(
        help="Where to listen; anything but loopback asks for a token, printed in the URL."
    ),
]
