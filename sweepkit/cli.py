"""The `sweepkit` command line: parse, call one function, turn known errors into exit codes.

Nothing here trains, schedules or stores anything; each command hands its typed
options to one function of the package.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from sweepkit import __version__
from sweepkit.credentials import use_wandb_server
from sweepkit.errors import ConfigError, SweepkitError
from sweepkit.log import note

app = typer.Typer(
    name="sweepkit",
    help="Run Weights & Biases hyperparameter sweeps: on W&B, or fully offline on this machine.",
    context_settings={"help_option_names": ["-h", "--help"]},
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
_debug = False


def _version(value: bool) -> None:
    if value:
        print(f"sweepkit {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    debug: Annotated[
        bool,
        typer.Option("--debug", envvar="SWEEPKIT_DEBUG", help="Show full tracebacks on errors."),
    ] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    global _debug
    _debug = debug


@app.command()
def train(
    settings: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            "-s",
            metavar="KEY=VALUE",
            help="A hyperparameter or setting, e.g. --set lr=0.01 --set epochs=2. "
            "Keys: epochs, batch_size, lr, l1_size, l2_size, conv_kernel, num_batches_to_log, "
            "images_per_batch, seed, dataset (auto|mnist|sample), data_dir, max_train, max_test, "
            "threads, device (auto|cpu|cuda|cuda:N), precision (auto|fp32|bf16), log_interval.",
        ),
    ] = None,
) -> None:
    """Train the MNIST CNN once, without a sweep, logging like a sweep run would.

    Logs loss, acc, test_loss, a prediction table and a confusion matrix to a W&B
    run: online when W&B credentials are configured, otherwise to an offline
    run folder that `wandb sync` uploads later.
    """
    from sweepkit.train.config import TrainConfig

    config = parse_settings(settings or [])
    TrainConfig.from_mapping(config)  # a bad value fails here, before a run folder exists
    _pick_wandb_mode()
    from sweepkit.train import run_training  # torch and wandb load only once they are needed

    result = run_training(config)
    m = result.metrics
    print(
        f"acc {m['acc']:.2f}%  test_loss {m['test_loss']:.4f}  loss {m['loss']:.4f}  "
        f"({m['images_per_sec']:,.0f} train images/s)"
    )
    print(f"run {result.run_id} saved to {result.run_dir}")


StoreOption = Annotated[
    Path | None,
    typer.Option(
        "--store",
        envvar="SWEEPKIT_STORE",
        help="The local backend's SQLite file.  [default: .sweepkit/sweeps.db]",
        show_default=False,
    ),
]
CountOption = Annotated[
    int | None,
    typer.Option(
        "--count",
        "-n",
        min=1,
        help="Stop after this many runs.  [default: until the sweep is done]",
    ),
]
FunctionOption = Annotated[
    str | None,
    typer.Option(
        "--function",
        "-f",
        metavar="MODULE:ATTR",
        help="The function each run calls (W&B's function-agent contract: it calls wandb.init). "
        "[default: the sweep's program if it has one, else sweepkit.train:train]",
        show_default=False,
    ),
]


@app.command()
def validate(file: Annotated[Path, typer.Argument(help="A W&B sweep YAML.")]) -> None:
    """Check a sweep YAML against W&B's sweep schema; print every problem, one per line.

    Exit code 0 and a one-line summary when it is valid, 2 when it is not.
    """
    from sweepkit.config import read_yaml, summarize, violations

    config = read_yaml(file)
    problems = violations(config)
    if problems:
        for problem in problems:
            print(f"{file}: {problem}", file=sys.stderr)
        raise typer.Exit(2)
    print(f"{file}: ok, {summarize(config)}")


@app.command()
def create(
    file: Annotated[Path, typer.Argument(help="A W&B sweep YAML.")],
    project: Annotated[
        str | None, typer.Option(envvar="WANDB_PROJECT", help="W&B project.")
    ] = None,
    entity: Annotated[
        str | None, typer.Option(envvar="WANDB_ENTITY", help="W&B entity (user or team).")
    ] = None,
    name: Annotated[str | None, typer.Option(help="A name for the sweep.")] = None,
    backend: Annotated[
        str,
        typer.Option(
            help="auto: W&B when credentials are configured and WANDB_MODE is not offline, else local."
        ),
    ] = "auto",
    store: StoreOption = None,
) -> None:
    """Validate a sweep YAML and register it; print its id and the command that starts an agent."""
    from sweepkit.backends import backend_for_new_sweep
    from sweepkit.config import load_sweep_config

    config = load_sweep_config(file)
    chosen = backend_for_new_sweep(backend, store)
    sweep_id = chosen.create(config, project=project, entity=entity, name=name)
    print(sweep_id)
    store_flag = f" --store {store}" if store else ""
    note(f"start an agent: sweepkit agent {sweep_id}{store_flag}")


@app.command()
def agent(
    sweep_id: Annotated[
        str, typer.Argument(help="A sweep id from `sweepkit create` (local-... or a W&B id/path).")
    ],
    count: CountOption = None,
    function: FunctionOption = None,
    store: StoreOption = None,
) -> None:
    """Run runs of a sweep until it is done or --count runs have ended."""
    from sweepkit.backends import backend_for_id

    performed = backend_for_id(sweep_id, store).agent(sweep_id, function=function, count=count)
    note(f"agent done: {performed} run(s)")


@app.command()
def run(
    file: Annotated[Path, typer.Argument(help="A W&B sweep YAML.")],
    count: CountOption = None,
    function: FunctionOption = None,
    project: Annotated[
        str | None, typer.Option(envvar="WANDB_PROJECT", help="W&B project.")
    ] = None,
    entity: Annotated[
        str | None, typer.Option(envvar="WANDB_ENTITY", help="W&B entity (user or team).")
    ] = None,
    backend: Annotated[str, typer.Option(help="auto, wandb or local (see `create`).")] = "auto",
    store: StoreOption = None,
) -> None:
    """Create a sweep and run an agent on it, in one command."""
    from sweepkit.backends import backend_for_new_sweep
    from sweepkit.config import load_sweep_config

    config = load_sweep_config(file)
    chosen = backend_for_new_sweep(backend, store)
    sweep_id = chosen.create(config, project=project, entity=entity)
    print(sweep_id)
    performed = chosen.agent(sweep_id, function=function, count=count)
    note(f"agent done: {performed} run(s); see them with: sweepkit status {sweep_id}")


@app.command()
def status(
    sweep_id: Annotated[str, typer.Argument(help="A sweep id (local-... or a W&B id/path).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    store: StoreOption = None,
) -> None:
    """Show a sweep's runs (state, parameters, metric, runtime), the best run, and counts by state."""
    from sweepkit.backends import backend_for_id
    from sweepkit.status import render_status, status_json

    info = backend_for_id(sweep_id, store).sweep(sweep_id)
    if as_json:
        print(status_json(info))
    else:
        render_status(info)


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
            config[key.strip()] = yaml.safe_load(value) if value.strip() else ""
        except yaml.YAMLError:
            config[key.strip()] = value
    return config


def _pick_wandb_mode() -> None:
    """Log offline, saying so once, when there is no W&B server to log to."""
    if "WANDB_MODE" not in os.environ and not use_wandb_server():
        os.environ["WANDB_MODE"] = "offline"
        note("no W&B credentials found: logging offline (upload later with `wandb sync`)")


def main() -> None:
    """Console-script entry point: known errors become one line and an exit code."""
    try:
        app()
    except SweepkitError as exc:
        if _debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
