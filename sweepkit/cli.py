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
from sweepkit.backends.base import CRASH_GRACE_S, MAX_RETRIES
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


SweepIdArgument = Annotated[str, typer.Argument(help="A sweep id (local-... or a W&B id/path).")]
SweepFileArgument = Annotated[Path, typer.Argument(help="A W&B sweep YAML.")]
ProjectOption = Annotated[str | None, typer.Option(envvar="WANDB_PROJECT", help="W&B project.")]
EntityOption = Annotated[
    str | None, typer.Option(envvar="WANDB_ENTITY", help="W&B entity (user or team).")
]
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
    file: SweepFileArgument,
    project: ProjectOption = None,
    entity: EntityOption = None,
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
    sweep_id: SweepIdArgument,
    count: Annotated[
        int | None,
        typer.Option(
            "--count",
            "-n",
            min=1,
            help="Runs this command performs in total, across all its workers.  [default: until the sweep is done]",
        ),
    ] = None,
    function: FunctionOption = None,
    gpus: Annotated[
        str | None,
        typer.Option(
            help="'all' or indices like 0,1,3: one worker per GPU, each seeing only its GPU."
        ),
    ] = None,
    per_gpu: Annotated[int, typer.Option(min=1, help="Workers per GPU (with --gpus).")] = 1,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1, help="CPU workers; the CPU's cores are split between them (no GPU use)."
        ),
    ] = None,
    store: StoreOption = None,
    label: Annotated[
        str, typer.Option(hidden=True, help="A worker's name in its output lines.")
    ] = "",
    run_logs: Annotated[
        Path | None, typer.Option(hidden=True, help="Folder for per-run log files.")
    ] = None,
    max_failures: Annotated[
        int, typer.Option(min=1, help="Give up after this many failed runs in a row.")
    ] = 5,
    run_timeout: Annotated[
        float | None,
        typer.Option(
            min=1,
            metavar="SECONDS",
            help="Stop a run still going after this long; it counts as failed.",
        ),
    ] = None,
    crash_grace: Annotated[
        float,
        typer.Option(
            min=5,
            metavar="SECONDS",
            help="A run with no heartbeat for this long is marked crashed (local backend).",
        ),
    ] = CRASH_GRACE_S,
    retries: Annotated[
        int,
        typer.Option(
            min=0, help="Times a crashed run's exact config is run again (local backend)."
        ),
    ] = MAX_RETRIES,
) -> None:
    """Run runs of a sweep until it is done or --count runs have ended.

    With --gpus or --workers, starts one agent process per worker; their lines
    name the worker and GPU, each run's output goes to a log file the line names.
    Ctrl-C once: runs finish, then agents stop. Twice: runs are stopped now and
    marked killed. The exit code is 1 if any run failed, 130 after Ctrl-C.
    """
    from sweepkit.backends import AgentOptions, backend_for_id

    backend = backend_for_id(sweep_id, store)
    options = AgentOptions(
        label=label,
        log_dir=run_logs,
        max_failures=max_failures,
        run_timeout_s=run_timeout,
        crash_grace_s=crash_grace,
        max_retries=retries,
    )
    if gpus is None and workers is None:
        if per_gpu != 1:
            raise ConfigError("--per-gpu needs --gpus")
        result = backend.agent(sweep_id, function=function, count=count, options=options)
        prefix = f"[{label}] " if label else ""
        if result.gave_up:
            note(f"{prefix}giving up: {result.gave_up}")
        note(f"{prefix}agent done: {result.performed} run(s), {result.failed} failed")
        raise typer.Exit(result.exit_code)

    from sweepkit import launch

    agent_flags = [
        "--max-failures",
        str(max_failures),
        "--crash-grace",
        str(crash_grace),
        "--retries",
        str(retries),
    ]
    if run_timeout:
        agent_flags += ["--run-timeout", str(run_timeout)]
    if gpus is not None and workers is not None:
        raise ConfigError(launch.EXCLUSIVE)  # before counting GPUs, which may not exist
    plan = launch.plan_workers(
        gpus=None if gpus is None else launch.parse_gpus(gpus, launch.visible_gpu_count()),
        per_gpu=per_gpu,
        workers=workers,
        count=count,
        cores=os.cpu_count() or 1,
    )
    backend.sweep(sweep_id)  # an unknown id fails once here, not once per worker
    log_dir = (
        run_logs
        or Path(os.environ.get("WANDB_DIR") or ".")
        / "wandb"
        / f"sweep-{sweep_id.replace('/', '-')}"
        / "logs"
    )
    stagger = (
        0.0 if backend.name == "local" else 5.0
    )  # the local store already never repeats a suggestion
    raise typer.Exit(
        launch.run_workers(
            plan,
            sweep_id,
            function=function,
            agent_flags=agent_flags,
            store=store,
            log_dir=log_dir.resolve(),
            stagger_s=stagger,
        )
    )


@app.command()
def docker(
    sweep_id: SweepIdArgument,
    gpus: Annotated[
        str, typer.Option(help="'all' or indices like 0,1,2,3: one container per GPU.")
    ] = "all",
    image: Annotated[
        str, typer.Option(help="The image built from docker/Dockerfile.")
    ] = "sweepkit:latest",
    count: Annotated[
        int | None,
        typer.Option("--count", "-n", min=1, help="Runs in total, across all containers."),
    ] = None,
    function: FunctionOption = None,
    store: StoreOption = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the docker commands; start nothing.")
    ] = False,
) -> None:
    """Run the sweep's agents in docker: one container per GPU (`docker run --gpus device=N`).

    The working directory is mounted at /work (local store, run folders), the
    MNIST folder at /data; the W&B key is passed by name (-e WANDB_API_KEY), never
    written out.
    """
    from sweepkit import docker as docker_launch
    from sweepkit import launch
    from sweepkit.train.config import default_data_dir

    # Indices are the docker host's: docker checks them. Only "all" needs to count GPUs here.
    gpu_list = launch.parse_gpus(
        gpus, launch.visible_gpu_count() if gpus.strip() == "all" else None
    )
    commands = docker_launch.plan_containers(
        sweep_id, gpu_list, image=image, workdir=Path.cwd(), data_dir=Path(default_data_dir()),
        store=store, count=count, function=function,
    )  # fmt: skip
    if dry_run:
        print(docker_launch.render(commands))
        return
    Path(default_data_dir()).mkdir(
        parents=True, exist_ok=True
    )  # else docker creates it, owned by root
    raise typer.Exit(docker_launch.run_containers(commands))


@app.command()
def run(
    file: SweepFileArgument,
    count: CountOption = None,
    function: FunctionOption = None,
    project: ProjectOption = None,
    entity: EntityOption = None,
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
    result = chosen.agent(sweep_id, function=function, count=count)
    note(
        f"agent done: {result.performed} run(s), {result.failed} failed; see them with: sweepkit status {sweep_id}"
    )
    raise typer.Exit(result.exit_code)


CONTROL_HELP = {
    "stop": "Start no new runs; running runs finish. Agents stop within seconds.",
    "cancel": "Start no new runs and end the running ones now (marked killed).",
    "pause": "Hand out no runs until `resume`; agents wait, running runs go on.",
    "resume": "Hand out runs again after `pause` or `stop`.",
}


def _control_command(command: str) -> None:
    """Register `sweepkit stop|cancel|pause|resume ID`: the same call with another verb."""

    def control(sweep_id: SweepIdArgument, store: StoreOption = None) -> None:
        from sweepkit.backends import backend_for_id

        state = backend_for_id(sweep_id, store).control(sweep_id, command)
        print(f"{sweep_id}: {state}")

    control.__doc__ = CONTROL_HELP[command]
    app.command(name=command)(control)


for _command in CONTROL_HELP:
    _control_command(_command)


@app.command()
def report(
    sweep_id: SweepIdArgument,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Folder for report.html.  [default: reports/<sweep id>]", show_default=False
        ),
    ] = None,
    open_it: Annotated[bool, typer.Option("--open", help="Open the report in a browser.")] = False,
    store: StoreOption = None,
) -> None:
    """Write a self-contained HTML report: the sweep at a glance, parameters against the metric,
    curves of the best runs, the best run's confusion matrix and misclassified images."""
    from sweepkit.backends import backend_for_id
    from sweepkit.report import write_report

    folder = out or Path("reports") / sweep_id.replace("/", "-")
    page = write_report(backend_for_id(sweep_id, store), sweep_id, folder)
    print(page)
    if open_it:
        import webbrowser

        webbrowser.open(page.resolve().as_uri())


@app.command()
def sync(
    sweep_id: Annotated[str, typer.Argument(help="A local sweep id (local-...).")],
    project: ProjectOption = None,
    entity: EntityOption = None,
    create_sweep: Annotated[
        bool,
        typer.Option(
            "--sweep/--no-sweep",
            help="Also create a W&B sweep with the uploaded runs as prior runs.",
        ),
    ] = True,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be uploaded; upload nothing.")
    ] = False,
    store: StoreOption = None,
) -> None:
    """Upload a local sweep's offline runs with `wandb sync`, then create a W&B sweep from the same
    YAML with those runs as prior runs. Runs already synced are not sent again."""
    from sweepkit import sync as syncing
    from sweepkit.backends.local import LocalBackend

    syncing.require_local(sweep_id)
    backend = LocalBackend(store)
    plan = syncing.plan_sync(backend, sweep_id)
    print(plan.describe())
    if dry_run:
        return
    wandb_sweep = syncing.sync(
        backend, plan, project=project, entity=entity, create_sweep=create_sweep
    )
    if wandb_sweep:
        print(f"W&B sweep: {wandb_sweep}")


@app.command()
def status(
    sweep_id: SweepIdArgument,
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
        code = app(standalone_mode=False)  # errors are printed here, one line each
    except (
        typer.TyperException
    ) as exc:  # a usage error: bad flag, missing argument, unknown command
        ctx = getattr(exc, "ctx", None)
        if type(exc).__name__ == "NoArgsIsHelpError" and ctx is not None:
            print(ctx.get_help())  # `sweepkit` alone: the help, as no_args_is_help promises
            sys.exit(0)
        where = f" (see `{ctx.command_path} -h`)" if ctx is not None else ""
        print(f"error: {exc.format_message()}{where}", file=sys.stderr)  # type: ignore[attr-defined]
        sys.exit(getattr(exc, "exit_code", 2))
    except SweepkitError as exc:
        if _debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except (KeyboardInterrupt, typer.Abort):
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
