"""The `sweepkit` command line: parse, call one function, turn known errors into exit codes.

Nothing here trains, schedules or stores anything; each command hands its typed
options to one function of the package.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from sweepkit.cli_options import (
    SLURM_DECIDES,
    AnySweepArgument,
    ArrayOption,
    BackendOption,
    CompareOption,
    CrashGraceOption,
    EntityOption,
    EveryOption,
    GpusPerTaskOption,
    HostOption,
    OpenAtArgument,
    ProjectOption,
    ReportFolderOption,
    RunOption,
    RunsPerTaskOption,
    SettingsOption,
    StoreOption,
    SweepFileArgument,
    SweepIdArgument,
    TimeLimitOption,
    WatchOption,
    parse_settings,
    with_agent_options,
)
from sweepkit.core.lifecycle import CRASH_GRACE_S, SWEEP_COMMANDS
from sweepkit.credentials import use_wandb_server
from sweepkit.errors import SweepkitError
from sweepkit.launch import AgentLaunch
from sweepkit.launch import start as start_agents
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
        from sweepkit.versions import version_report

        print(version_report())
        raise typer.Exit()


@app.callback()
def _main(
    debug: Annotated[
        bool,
        typer.Option("--debug", envvar="SWEEPKIT_DEBUG", help="Show full tracebacks on errors."),
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_version,
            is_eager=True,
            help="Print the versions of sweepkit, Python, wandb, the sweeps engine, numpy and torch (with the GPUs it sees).",
        ),
    ] = False,
) -> None:
    global _debug
    _debug = debug


@app.command()
def train(settings: SettingsOption = None) -> None:
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


@app.command()
def validate(file: Annotated[Path, typer.Argument(help="A W&B sweep YAML.")]) -> None:
    """Check a sweep YAML against W&B's sweep schema; print every problem, one per line.

    Exit code 2 when the sweeps engine cannot run it. Other schema violations are
    warnings, as on W&B (which creates the sweep and says "Malformed sweep config
    detected"): exit code 0 and a one-line summary.
    """
    from sweepkit.config import examine, summarize
    from sweepkit.engine import caveat

    config, findings = examine(file)  # what `create` refuses on: the two never disagree
    if findings.errors:
        for problem in findings.errors:
            print(f"error: {file}: {problem}", file=sys.stderr)
        raise typer.Exit(2)
    for warning in findings.warnings:
        _warn(f"{file}: {warning}")
    print(f"{file}: ok, {summarize(config)}")
    if known_bug := caveat(config):
        note(known_bug)


@app.command()
def create(
    file: SweepFileArgument,
    project: ProjectOption = None,
    entity: EntityOption = None,
    name: Annotated[str | None, typer.Option(help="A name for the sweep.")] = None,
    backend: BackendOption = "auto",
    store: StoreOption = None,
) -> None:
    """Validate a sweep YAML and register it; print its id and the command that starts an agent."""
    from sweepkit.backends import backend_for_new_sweep
    from sweepkit.backends.store import redacted
    from sweepkit.config import load_sweep_config

    config = load_sweep_config(file, on_warning=_warn)
    chosen = backend_for_new_sweep(backend, store)
    sweep_id = chosen.create(config, project=project, entity=entity, name=name)
    print(sweep_id)
    store_flag = f" --store {redacted(store)}" if store else ""
    note(f"start an agent: sweepkit agent {sweep_id}{store_flag}")


@app.command()
@with_agent_options
def agent(sweep_id: SweepIdArgument, store: StoreOption = None, *, launch: AgentLaunch) -> None:
    """Run runs of a sweep until it is done or --count runs have ended.

    With --gpus or --workers, starts one agent process per worker; their lines
    name the worker and GPU, each run's output goes to a log file the line names.
    Ctrl-C once: runs finish, then agents stop. Twice: runs are stopped now and
    marked killed. The exit code is 1 if any run failed, 130 after Ctrl-C.
    """
    from sweepkit.backends import backend_for_id

    raise typer.Exit(start_agents(backend_for_id(sweep_id, store), sweep_id, launch, store=store))


@app.command()
@with_agent_options(leave_out=SLURM_DECIDES)
def slurm(
    sweep_id: SweepIdArgument,
    array: ArrayOption,
    gpus_per_task: GpusPerTaskOption = 0,
    time_limit: TimeLimitOption = None,
    partition: Annotated[str | None, typer.Option(help="The Slurm partition.")] = None,
    count: RunsPerTaskOption = None,
    store: StoreOption = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the sbatch script; submit nothing.")
    ] = False,
    *,
    launch: AgentLaunch,
) -> None:  # fmt: skip
    """Run the sweep's agents as a Slurm array job: each task runs `sweepkit agent ID` against
    the shared store (a PostgreSQL URL for tasks on many nodes), with every agent option given
    here. Prints the job id. scancel and preemption reach each agent as SIGTERM: its run is
    recorded preempted and offered again."""
    from sweepkit import slurm as slurm_jobs

    print(slurm_jobs.start_array(
        sweep_id, tasks=array, store=store, gpus_per_task=gpus_per_task, time=time_limit,
        partition=partition, count=count, function=launch.function, options=launch.options,
        dry_run=dry_run,
    ))  # fmt: skip


@app.command()
@with_agent_options
def docker(
    sweep_id: SweepIdArgument,
    image: Annotated[
        str, typer.Option(help="The image built from docker/Dockerfile.")
    ] = "sweepkit:latest",
    store: StoreOption = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the docker commands; start nothing.")
    ] = False,
    *,
    launch: AgentLaunch,
) -> None:
    """Run the sweep's agents in docker: one container per GPU (`--gpus`, the default: all of
    them), or `--workers N` CPU containers, each with its share of the cores.

    Every agent option reaches the containers. The working directory, the store, the
    MNIST folder and wandb's staging folder are mounted at their own paths, and the
    containers run as you, so what they write is yours and `status`, `report` and
    `sync` work on it here. The W&B key goes in on the container's standard input,
    never in its config (`docker inspect`), a command line or a file. Ctrl-C once:
    runs finish; twice: they stop now.
    """
    from sweepkit.backends import backend_for_id
    from sweepkit.docker import start_containers
    from sweepkit.train.config import default_data_dir

    code = start_containers(
        backend_for_id(sweep_id, store), sweep_id, launch, image=image, store=store,
        data_dir=Path(default_data_dir()), dry_run=dry_run,
    )  # fmt: skip
    raise typer.Exit(code)


@app.command()
@with_agent_options
def run(
    file: SweepFileArgument,
    project: ProjectOption = None,
    entity: EntityOption = None,
    backend: BackendOption = "auto",
    store: StoreOption = None,
    *,
    launch: AgentLaunch,
) -> None:
    """Create a sweep and run agents on it, in one command (every option of `agent` works).

    Everything is checked before the sweep is created (the YAML, the program or
    --function, the GPUs), so a command that fails leaves nothing in the store.
    """
    from sweepkit.backends import backend_for_new_sweep
    from sweepkit.config import load_sweep_config

    config = load_sweep_config(file, on_warning=_warn)
    launch.preflight(config)
    chosen = backend_for_new_sweep(backend, store)
    sweep_id = chosen.create(config, project=project, entity=entity)
    print(sweep_id)
    raise typer.Exit(start_agents(chosen, sweep_id, launch, store=store))


@app.command(
    name="python",
    # Everything after SCRIPT is the script's, untouched: `--count 3`, `-h`, `--help` too.
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True,
                      "allow_interspersed_args": False},
)  # fmt: skip
def python_script(
    ctx: typer.Context,
    script: Annotated[Path, typer.Argument(metavar="SCRIPT [ARGS]...",
                                           help="A Python script that calls wandb.sweep and "
                                           "wandb.agent, and its arguments (passed untouched).")],
) -> None:  # fmt: skip
    """Run a W&B sweep script as `python SCRIPT ARGS` would, its sweeps answered by sweepkit:
    offline on the local backend without W&B credentials (or with WANDB_MODE=offline), on W&B
    otherwise. The script's code after wandb.agent runs as under W&B; its exit code is ours."""
    from sweepkit.script import run_script

    raise typer.Exit(run_script(script, ctx.args))


def _control_command(command: str) -> None:
    """Register `sweepkit stop|cancel|pause|resume ID`: the same call with another verb."""

    def control(
        sweep_id: SweepIdArgument,
        store: StoreOption = None,
        crash_grace: CrashGraceOption = CRASH_GRACE_S,
    ) -> None:
        from sweepkit.backends import backend_for_id

        backend = backend_for_id(sweep_id, store)
        state = backend.control(sweep_id, command, crash_grace_s=crash_grace)
        print(f"{sweep_id}: {state}")

    control.__doc__ = SWEEP_COMMANDS[command].help
    app.command(name=command)(control)


for _command in SWEEP_COMMANDS:
    _control_command(_command)


@app.command()
def report(
    sweep_id: SweepIdArgument,
    out: ReportFolderOption = None,
    open_it: Annotated[bool, typer.Option("--open", help="Open the report in a browser.")] = False,
    compare: CompareOption = None,
    store: StoreOption = None,
) -> None:
    """Write a self-contained HTML report: the sweep at a glance, parameters against the metric
    and their importance, curves of the best runs (loss, metric, ROC, PR), the best run's
    confusion matrix and mistakes, its images across epochs, two runs side by side, and the
    prediction table to sort, filter and group."""
    from sweepkit.backends import backend_for_id
    from sweepkit.report import write_report

    folder = out or Path("reports") / sweep_id.replace("/", "-")
    page = write_report(backend_for_id(sweep_id, store), sweep_id, folder, compare)
    print(page)
    if open_it:
        import webbrowser

        webbrowser.open(page.resolve().as_uri())


@app.command()
def dashboard(
    sweep_id: OpenAtArgument = None,
    host: HostOption = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8765,
    store: StoreOption = None,
) -> None:
    """Serve the local store's sweeps in the browser, live: runs and what each logged (curves,
    charts, tables, images). Read-only: agents never wait on it. Prints the URL; Ctrl-C stops."""
    from sweepkit.backends.local import LocalBackend
    from sweepkit.dashboard import serve

    serve(lambda: LocalBackend(store), host=host, port=port, sweep_id=sweep_id)


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
    sweep_id: AnySweepArgument = None,
    run_ref: RunOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    watch: WatchOption = False,
    every: EveryOption = 2.0,
    store: StoreOption = None,
) -> None:
    """Show a sweep's runs (state, parameters, metric, runtime, last error line), the best run
    and counts by state; with no id, every sweep in the local store."""
    from sweepkit import status as views
    from sweepkit.backends import backend_for_id
    from sweepkit.backends.local import LocalBackend

    if sweep_id is None:
        local = LocalBackend(store)
        if as_json:
            print(json.dumps([json.loads(views.status_json(i)) for i in local.sweeps()], indent=2))
            return
        views.show(local.sweeps, lambda infos: views.sweep_list_view(infos, local.store_label),
                   watch=every if watch else None,
                   active=lambda infos: any(map(views.is_active, infos)))  # fmt: skip
        return
    backend = backend_for_id(sweep_id, store)
    if as_json:
        info = backend.sweep(sweep_id)
        print(views.status_json(info) if run_ref is None else
              json.dumps(dataclasses.asdict(views.find_run(info, run_ref)), indent=2))  # fmt: skip
        return
    render = views.sweep_view if run_ref is None else (lambda i: views.run_view(i, run_ref))
    views.show(lambda: backend.sweep(sweep_id), render, watch=every if watch else None,
               active=views.is_active)  # fmt: skip


def _warn(message: str) -> None:
    """A schema violation the engine runs anyway: said, as W&B says it, and not refused."""
    print(f"warning: {message} (W&B warns and runs it; so does sweepkit)",
          file=sys.stderr)  # fmt: skip


def _pick_wandb_mode() -> None:
    """Log offline, saying so once, when there is no W&B server to log to."""
    if "WANDB_MODE" not in os.environ and not use_wandb_server():
        os.environ["WANDB_MODE"] = "offline"
        note("no W&B credentials found: logging offline (upload later with `wandb sync`)")


def main() -> None:
    """Console-script entry point: known errors become one line and an exit code."""
    # As under `python -m sweepkit` (how workers start): --function finds modules beside the
    # user's files, and the fork server that runs them inherits this path.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    # An agent that `sweepkit docker` started: its W&B key comes on stdin, never in its config.
    if os.environ.get("SWEEPKIT_SECRETS_FROM") == "stdin":
        from sweepkit.docker import receive_secrets

        receive_secrets(sys.stdin, os.environ)  # type: ignore[arg-type]
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
        for line in str(exc).splitlines() or [type(exc).__name__]:  # one line per problem
            print(f"error: {line}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except (KeyboardInterrupt, typer.Abort):
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
