"""The `sweepkit` command line: parse, call one function, turn known errors into exit codes.

Nothing here trains, schedules or stores anything; each command hands its typed
options to one function of the package.
"""

from __future__ import annotations

import os
import sys
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
