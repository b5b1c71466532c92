"""The local agent: claim a run, execute it in its own process, hand its result back.

Each run is a separate process, so a crash, an out-of-memory or a leaked CUDA
context in one run cannot poison the next. Function runs are forked from a
`multiprocessing` fork server that has already imported torch, wandb and the
user's module: a run starts in milliseconds instead of paying ~3 s of imports.
A function handed over from a script (`sweepkit.agent`) forks from the script
itself, and one from an interactive session that cannot be imported runs in
this process, as under W&B (`place`). Program runs are plain subprocesses with
the command line and environment that `wandb agent` would give them.

What a run logged reaches the scheduler through its wandb transaction log
(`sweepkit.runlog`), read while it runs (heartbeats, early termination) and
once it has ended: the user's code needs no sweepkit API.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import multiprocessing
import multiprocessing.forkserver
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import wandb
import yaml

from sweepkit import proctree, program
from sweepkit.backends.base import DEFAULT_FUNCTION, AgentOptions, AgentResult
from sweepkit.backends.store import Store, StoreError, redacted
from sweepkit.core import scheduling
from sweepkit.core.lifecycle import RunState
from sweepkit.core.records import ClaimedRun, StoredSweep, SweepInfo
from sweepkit.errors import ConfigError
from sweepkit.follow import RunFollower
from sweepkit.guard import Guard
from sweepkit.launch import run_log_dir
from sweepkit.log import note
from sweepkit.progress import LiveLines, OutputTail, sweep_line, sweep_total
from sweepkit.runner.reaper import reap

HEARTBEAT_S = 2.0
WAITING = {
    "paused": "is paused: waiting for `sweepkit resume`",
    "running": "has runs still going elsewhere: waiting (a crashed one is retried here)",
}
STOP_GRACE_S = 30.0  # after SIGTERM, how long a stopped run may take to finish its wandb run
LEFTOVER_GRACE_S = 5.0  # after a run ended, how long the processes it left get after SIGTERM
# Slurm signals every process of a task one after another, the agent among the last: a run
# that died of a signal may be seen ended before the agent's own SIGTERM arrives.
SIGTERM_SKEW_S = 2.0
STOPPED_BY_SIGTERM = 128 + signal.SIGTERM  # a function run's exit code when SIGTERM stopped it


def resolve_function(ref: str) -> Callable[..., Any]:
    """Import ``module:attr`` and check that it is callable.

    Raises:
        ConfigError: the reference is malformed, does not import, or is not callable.
    """
    module_name, sep, attr = ref.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"--function takes module:attr (e.g. mypkg.train:main), got {ref!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"--function {ref}: cannot import {module_name}: {exc}") from exc
    target: Any = module
    for part in attr.split("."):
        target = getattr(target, part, None)
    if not callable(target):
        raise ConfigError(f"--function {ref}: {attr} is not a callable in {module_name}")
    return target


def check_runnable(sweep_config: dict[str, Any], function: str | Callable[..., Any] | None) -> None:
    """Fail before any run starts if runs could not start here.

    Raises:
        ConfigError: the sweep's command needs a program that does not exist
            (when no --function replaces it), or the function does not import.
    """
    if program.runs_a_command(sweep_config, function):
        program.check(sweep_config)
        return
    if not callable(function):
        resolve_function(function or DEFAULT_FUNCTION)


class RunProcess(Protocol):
    pid: int | None

    def poll(self) -> int | None: ...
    def wait_for(self, seconds: float) -> int | None: ...
    def terminate(self) -> None: ...


class _FunctionProcess:
    """A function run forked from the warm fork server, with the Popen-like surface we use."""

    def __init__(self, process: multiprocessing.process.BaseProcess) -> None:
        self._process = process
        self.pid = process.pid

    def poll(self) -> int | None:
        return self._process.exitcode

    def wait_for(self, seconds: float) -> int | None:
        """Wait up to `seconds`; return at once when the run ends (its exit code), else None."""
        self._process.join(seconds)
        return self._process.exitcode

    def terminate(self) -> None:
        self._process.terminate()


class _ProgramProcess(subprocess.Popen):  # type: ignore[type-arg]
    """A program run: Popen, plus the same `wait_for` as function runs."""

    def wait_for(self, seconds: float) -> int | None:
        try:
            return self.wait(seconds)
        except subprocess.TimeoutExpired:
            return None


STOP_FILE = "stop.txt"  # in a run's scratch folder: why its agent is ending it, for its line


def _run_function_child(
    function: str | Callable[[], Any],
    env: dict[str, str],
    error_file: str,
    log_file: str,
    agent_fds: tuple[int, ...],
) -> None:
    """In the child: become the run's environment, call the function, report a failure."""
    # First: a stop that comes while the child is still setting up ends it quietly (its
    # agent says why), not with a traceback of this set-up.
    signal.signal(signal.SIGTERM, _raise_stopped)
    global _stop_file
    _stop_file = Path(error_file).with_name(STOP_FILE)
    try:
        _become_the_run(env, log_file, agent_fds)
    except RunStopped:
        sys.exit(STOPPED_BY_SIGTERM)
    sys.exit(_call_function(function, error_file, log_file))


def _become_the_run(env: dict[str, str], log_file: str, agent_fds: tuple[int, ...]) -> None:
    for fd in agent_fds:  # the guard must see its pipe close when the agent dies, whatever we do
        os.close(fd)
    # Its own process group: a Ctrl-C in the terminal reaches the agent, which decides
    # whether the run finishes (first Ctrl-C) or is stopped (second).
    os.setpgrp()
    proctree.die_with_parent()
    fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    # A child forked from a script has the script's streams (rich's, under the live lines).
    sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
    for stream in (sys.stdout, sys.stderr):  # a line reaches the file (and the agent) at once
        stream.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    os.environ.update(env)
    _hide_the_store()
    # Our stop (hyperband, Ctrl-C twice) arrives as SIGTERM and raises RunStopped (above), so
    # that the function's `with wandb.init()` / try-finally blocks finish the wandb run on the
    # way out. The agent's own handlers, which a child forked from a script inherits, are not
    # the run's; a fork server's child has SIGINT ignored (`_start_fork_server`).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    _stops_print_one_line()


def _hide_the_store() -> None:
    """A run needs no store: its process forgets the agent's SWEEPKIT_STORE, and the agent's
    command line, which a forked run inherits as its sys.argv and wandb records with the run
    (uploaded by `wandb sync`), names it without its password."""
    os.environ.pop("SWEEPKIT_STORE", None)
    sys.argv = [redacted(arg) for arg in sys.argv]


def _call_function(function: str | Callable[[], Any], error_file: str, log_file: str | None) -> int:
    """Call the run's function as W&B's function agent does; 0 if it ended well, else 1 with
    its traceback in `error_file` and in the run's output (unless that already ends with it).
    A run its agent stopped (RunStopped) exits 143 and says why in one line."""
    try:
        try:
            (resolve_function(function) if isinstance(function, str) else function)()
        except SystemExit as exc:
            if exc.code not in (None, 0):  # sys.exit(0) is a function that is done
                raise
        if wandb.run is not None:  # as W&B's function agent: finish the run the function left open
            wandb.finish()
        return 0
    except BaseException as exc:
        said = exc.line if isinstance(exc, RunStopped) else traceback.format_exc()
        Path(error_file).write_text(said)
        if log_file is None or not _ends_with(log_file, said.strip().splitlines()[-1]):
            sys.stderr.write(said if said.endswith("\n") else f"{said}\n")
        if wandb.run is not None:  # its exit record tells the agent the run is over
            with contextlib.suppress(Exception):
                wandb.finish(exit_code=1)
        return STOPPED_BY_SIGTERM if isinstance(exc, RunStopped) else 1


def _ends_with(log_file: str, line: str) -> bool:
    """Whether the run's output already ends with this line (an exception's last line, which
    `with wandb.init()` prints on the way out): once is enough."""
    with open(log_file, "rb") as file:
        file.seek(max(0, file.seek(0, os.SEEK_END) - 4096))
        lines = file.read().decode(errors="replace").strip().splitlines()
    return bool(lines) and lines[-1] == line.strip()


class RunStopped(KeyboardInterrupt):
    """SIGTERM in a function run: its agent's stop (the reason in its scratch folder's
    STOP_FILE), or a scheduler's (Slurm signals every process of a task). A
    KeyboardInterrupt, so that the user's code treats it as Ctrl-C; said in one line, as
    a stop on purpose is no crash."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.line = f"sweepkit: {reason}"


_stop_file: Path | None = None  # the run's STOP_FILE, in a run's own process
OUTSIDE_STOP = "stopped by SIGTERM from outside its agent (a scheduler, scancel or kill)"


def _raise_stopped(signum: int, frame: Any) -> None:
    try:
        reason = _stop_file.read_text().strip() if _stop_file is not None else ""
    except OSError:
        reason = ""
    raise RunStopped(reason or OUTSIDE_STOP)


def _stops_print_one_line() -> None:
    """In a run's own process: wandb's `with wandb.init()` prints the traceback of whatever
    ends the block, which for our stop reads like a crash in the user's code; a stop prints
    its one line instead (through `traceback`, whoever prints it)."""
    if getattr(traceback.print_exception, "sweepkit_stop_aware", False):
        return
    print_exception = traceback.print_exception

    def print_stop_in_one_line(exc: Any, /, *args: Any, **kwargs: Any) -> None:
        value = args[0] if args else kwargs.get("value", exc)
        if isinstance(value, RunStopped):
            file = kwargs.get("file") or (args[3] if len(args) > 3 else None) or sys.stderr
            print(value.line, file=file)
            return
        print_exception(exc, *args, **kwargs)

    print_stop_in_one_line.sweepkit_stop_aware = True  # type: ignore[attr-defined]
    traceback.print_exception = print_stop_in_one_line  # type: ignore[assignment]


# How a function's runs start (`place`; the README's "W&B sweep scripts and notebooks").
FORKSERVER, FORK, IN_PROCESS = "forkserver", "fork", "in-process"
Function = str | Callable[[], Any]  # module:attr, or a function handed over from Python


def place(function: Function) -> tuple[str, Function]:
    """How a function's runs are started, and what the child is given to call.

    - ``module:attr`` (the CLI): forked from the warm fork server, which imports the module.
    - A function passed from a script (`sweepkit.agent`, or `wandb.agent` under `sweepkit
      python`): forked from the script's own process, which already holds it. Nothing is
      imported again, so a script needs no `if __name__ == "__main__":` guard (the fork
      server would re-run a guardless script's top level, `wandb.agent` and all), and
      lambdas and closures are isolated too.
    - A function passed from an interactive session (a REPL, IPython, Jupyter, `python -c`):
      from the fork server if a fresh process can import it; else in this process, as W&B's
      function agent runs every function. A session is not forked from: a kernel has
      threads of its own, and a CUDA context made in an earlier cell does not survive a fork.
    """
    if isinstance(function, str):
        return FORKSERVER, function
    if not _interactive_session():
        return FORK, function
    ref = importable_reference(function)
    return (FORKSERVER, ref) if ref else (IN_PROCESS, function)


def _interactive_session() -> bool:
    """Whether this process is a session rather than a script: its __main__ is no file (a
    REPL, `python -c`, `python -` reading stdin), or it is IPython's."""
    ipython = sys.modules.get("IPython")
    if ipython is not None and getattr(ipython, "get_ipython", lambda: None)() is not None:
        return True
    main_file = getattr(sys.modules["__main__"], "__file__", None)
    return main_file is None or not os.path.isfile(main_file)


def importable_reference(function: Callable[..., Any]) -> str | None:
    """``module:qualname`` if a fresh process imports this very function that way, else None
    (defined in __main__, a lambda, a closure).

    >>> importable_reference(importable_reference)
    'sweepkit.agent:importable_reference'
    >>> importable_reference(lambda: None) is None
    True
    """
    module, qualname = getattr(function, "__module__", None), getattr(function, "__qualname__", "")
    if not module or module in ("__main__", "__mp_main__") or "<" in qualname:
        return None
    ref = f"{module}:{qualname}"
    try:
        return ref if resolve_function(ref) is function else None
    except ConfigError:
        return None


class _InProcessRun:
    """A function run in a thread of the agent's process, as W&B's function agent runs one.

    It has no process of its own: `pid` is -1, which names no process group, so what it
    leaves behind is found by its token alone (`sweepkit.proctree`); a stop is an exception
    raised in its thread (as W&B's agent stops one), which takes effect at its next Python
    line; its output is the session's own.
    """

    pid = -1

    def __init__(self, function: Callable[[], Any], env: dict[str, str], error_file: str) -> None:
        self._code: int | None = None
        self._thread = threading.Thread(target=self._run, args=(function, env, error_file))
        self._thread.daemon = True  # a run stuck in C code must not keep the session from ending
        self._thread.start()

    def _run(self, function: Callable[[], Any], env: dict[str, str], error_file: str) -> None:
        saved = {name: os.environ.get(name) for name in env}
        # As W&B's agent before each run: end this session's wandb (and the service it owned,
        # which WANDB_SERVICE names), so that wandb.init reads the run's environment.
        wandb.teardown()
        os.environ.update(env)
        os.environ.pop("WANDB_SERVICE", None)
        try:
            self._code = _call_function(function, error_file, None)
        finally:
            # The service the run started carries its token: it ends with the run, not killed.
            wandb.teardown()
            os.environ.pop("WANDB_SERVICE", None)
            for name, value in saved.items():
                if name != "WANDB_SERVICE":
                    os.environ.pop(name) if value is None else os.environ.__setitem__(name, value)

    def poll(self) -> int | None:
        return None if self._thread.is_alive() else (1 if self._code is None else self._code)

    def wait_for(self, seconds: float) -> int | None:
        self._thread.join(seconds)
        return self.poll()

    def terminate(self) -> None:
        if self._thread.ident is not None and self._thread.is_alive():
            ctypes.pythonapi.PyThreadState_SetAsyncExc(
                ctypes.c_ulong(self._thread.ident), ctypes.py_object(KeyboardInterrupt)
            )


class Executor:
    """Starts runs: function runs forked (`place`) or in-process, program runs as subprocesses."""

    def __init__(self, sweep_config: dict[str, Any], function: Function | None) -> None:
        self.sweep_config = sweep_config
        self.is_program = program.runs_a_command(sweep_config, function)
        check_runnable(sweep_config, function)  # a bad --function fails now, not in every run
        self.mode, self.function = place(function or DEFAULT_FUNCTION)
        if self.is_program:
            return
        if self.mode == IN_PROCESS:
            name = getattr(self.function, "__qualname__", repr(self.function))
            note(
                f"runs of {name} go in-process, as W&B's function agent runs them: it was "
                "defined in this interactive session, which cannot be forked from safely "
                "(define it in a module, or run a script, to give each run its own process)"
            )
            return
        self._context = multiprocessing.get_context(self.mode)
        if self.mode == FORK:
            return
        # "__main__" too: each run would otherwise re-import the script that started the agent
        # (multiprocessing imports it as __mp_main__), paying its imports once per run. Python
        # 3.11's server ignores "__main__" (CPython gh-126631) and starts without this process's
        # sys.path (gh-117378): there a module found only through a sys.path entry added at run
        # time (not PYTHONPATH, not the working directory) is imported by each run instead.
        assert isinstance(self.function, str)
        module = self.function.partition(":")[0]
        # And the module that defines the function (check_runnable has imported it): the
        # package `sweepkit.train` loads its `train` (torch, pandas, scikit-learn: seconds)
        # only on first use, which would otherwise be in every run.
        defined_in = getattr(resolve_function(self.function), "__module__", None) or module
        modules = ["__main__", "sweepkit.agent", "wandb", module, defined_in]
        self._context.set_forkserver_preload(modules)
        # Start the server now: it imports those modules while this process gets ready.
        _start_fork_server()

    def start(
        self,
        run_config: dict[str, Any],
        env: dict[str, str],
        scratch: Path,
        log_file: Path,
        agent_fds: tuple[int, ...] = (),
    ) -> RunProcess:
        """Start one run. `agent_fds` are the agent's own descriptors (its guard's pipe) that a
        child forked from this process must not hold open."""
        if self.is_program:
            args_file = scratch / "args.json"
            if "${args_json_file}" in program.command_of(self.sweep_config):
                args_file.write_text(program.args_json(run_config))  # as W&B's agent does
            argv = program.build_command(self.sweep_config, run_config, args_file)
            # A program may run another Python with another wandb: it starts its own service.
            # Nor the store (its URL may hold a password): a run has no use for it.
            hidden = ("WANDB_SERVICE", "SWEEPKIT_STORE")
            program_env = {k: v for k, v in {**os.environ, **env}.items() if k not in hidden}
            # Unbuffered, so that the agent relays a program's lines as they come.
            program_env.setdefault("PYTHONUNBUFFERED", "1")
            with open(log_file, "ab") as output:  # the child keeps its own copy of the descriptor
                return _ProgramProcess(
                    argv, env=program_env, stdout=output, stderr=subprocess.STDOUT,
                    start_new_session=True,  # Ctrl-C goes to the agent, which decides (see above)
                    preexec_fn=proctree.die_with_parent,
                )  # fmt: skip
        error_file = str(scratch / "error.txt")
        if self.mode == IN_PROCESS:
            log_file.touch()  # its output is the session's: the log stays empty
            assert callable(self.function)
            return _InProcessRun(self.function, env, error_file)
        if self.mode == FORKSERVER:
            _start_fork_server()  # again, should it have died: with SIGINT ignored
        process = self._context.Process(
            target=_run_function_child,
            args=(self.function, env, error_file, str(log_file),
                  agent_fds if self.mode == FORK else ()),
        )  # fmt: skip
        process.start()
        return _FunctionProcess(process)


def _start_fork_server() -> None:
    """Start the fork server (unless it runs) with SIGINT ignored, which it keeps through its
    exec: it is in this agent's process group, where the terminal's Ctrl-C would reach it
    while it imports torch and the user's module, and a KeyboardInterrupt there ends it and
    the run it was starting. (Blocking SIGINT instead would lose nothing, but the server's
    exec clears the mask.) Its runs listen again in their own process group
    (`_become_the_run`)."""
    if threading.current_thread() is not threading.main_thread():  # no handlers to change
        multiprocessing.forkserver.ensure_running()
        return
    handler = signal.signal(signal.SIGINT, signal.SIG_IGN)  # for the fork and exec alone
    try:
        multiprocessing.forkserver.ensure_running()
    finally:
        signal.signal(signal.SIGINT, handler)


def run_environment(
    sweep: StoredSweep, run: ClaimedRun, wandb_dir: Path, param_path: Path, token: str
) -> dict[str, str]:
    """The variables `wandb agent` sets for a sweep run, with wandb offline, and the token that
    marks the run's processes (`sweepkit.proctree`)."""
    return {
        proctree.TOKEN_VARIABLE: token,
        "WANDB_SWEEP_ID": sweep.id,
        "WANDB_RUN_ID": run.id,
        "WANDB_NAME": run.display_name,  # offline runs get no name from a server
        "WANDB_SWEEP_PARAM_PATH": str(param_path),
        "WANDB_PROJECT": sweep.project or "sweepkit",
        **({"WANDB_ENTITY": sweep.entity} if sweep.entity else {}),
        "WANDB_DIR": str(wandb_dir),
        "WANDB_MODE": "offline",
        **({"WANDB_SERVICE": os.environ["WANDB_SERVICE"]} if "WANDB_SERVICE" in os.environ else {}),
        # wandb-core flushes the run's .wandb log every 15 s by default: too late for
        # heartbeats and hyperband, which read it every HEARTBEAT_S.
        "WANDB_X_TRANSACTION_LOG_FLUSH_INTERVAL": os.environ.get(
            "WANDB_X_TRANSACTION_LOG_FLUSH_INTERVAL", "1"
        ),
        # wandb's banner lines, once per run, drown the agent's own; WANDB_SILENT=false brings them back.
        "WANDB_SILENT": os.environ.get("WANDB_SILENT", "true"),
    }


class _Interrupts:
    """Ctrl-C once: finish the current run, then stop. Twice: stop the run now (killed).

    SIGTERM from outside (SLURM preemption, `docker stop`, `timeout`) stops the
    run now too, but as preempted: its config is offered again. So does SIGHUP
    (the agent's terminal went away: a `nohup` agent never sees it).
    """

    def __init__(self, label: str) -> None:
        self.drain = False
        self.kill = False
        self._sigterm = threading.Event()  # set by SIGTERM: preempted, and something to wait on
        self._label = label
        self._previous: list[tuple[int, Any]] = []

    def __enter__(self) -> _Interrupts:
        if threading.current_thread() is threading.main_thread():  # signals go to the main thread
            for signum, handler in (
                (signal.SIGINT, self._on_sigint),
                (signal.SIGTERM, self._on_sigterm),
                (signal.SIGHUP, self._on_sigterm),
            ):
                self._previous.append((signum, signal.signal(signum, handler)))
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous:  # a library caller gets its own handlers back
            signal.signal(signum, handler)

    def _on_sigint(self, signum: int, frame: Any) -> None:
        if self.drain:
            self.kill = True
            return
        self.drain = True
        note(f"{self._label}finishing the current run, then stopping (Ctrl-C again to stop it now)")

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        self.drain = self.kill = True
        self._sigterm.set()

    @property
    def preempted(self) -> bool:
        return self._sigterm.is_set()

    def preempted_within(self, seconds: float) -> bool:
        """Whether SIGTERM reaches this agent within `seconds` (at once if it has)."""
        return self._sigterm.wait(seconds)


class _Screen:
    """What this agent shows besides its own lines.

    Each run's output goes to its log file. Unless the agent was given a run-log
    folder (workers are), the new lines of that file are relayed to the agent's
    stderr as they come; on a terminal, the last line(s) keep the sweep's
    progress (`sweepkit.progress`).
    """

    def __init__(self, relay: bool, progress: Callable[[], list[str]] | None) -> None:
        self._relay = relay
        self._progress = progress
        self._tail: OutputTail | None = None
        self.live = LiveLines()

    def follow(self, log_file: Path) -> None:
        self._tail = OutputTail(log_file) if self._relay else None

    def pump(self, *, ended: bool = False) -> None:
        if self._tail is not None:
            LiveLines.echo(self._tail.rest() if ended else self._tail.lines())

    def refresh(self) -> None:
        if self.live.enabled and self._progress is not None:
            self.live.update(self._progress())


def run_agent(
    store: Store,
    sweep_id: str,
    *,
    function: Function | None = None,
    count: int | None = None,
    options: AgentOptions | None = None,
    sweep_info: Callable[[], SweepInfo] | None = None,
) -> AgentResult:
    """Perform runs of a local sweep until it is done, `count` runs have ended, or Ctrl-C.

    Args:
        store: the sweep's store.
        sweep_id: a local sweep id.
        function: ``module:attr`` or a function to call (`place` says how its runs start),
            None for the sweep's program or sweepkit's train.
        count: the most runs to perform.
        options: its label and run-log folder; failure, timeout and crash limits.
        sweep_info: reads the sweep as `sweepkit status` does, for the live progress line.

    Raises:
        StoreError: the store failed (damaged, full, deleted): the run going then is ended,
            and left `running` in the store for the reaper.
    """
    options = options or AgentOptions()
    sweep = store.sweep(sweep_id)
    assert sweep is not None, "resolved by the backend"
    executor = Executor(sweep.config, function)
    # One wandb-core service for all of this agent's function runs: wandb.setup() starts it and
    # puts its address in WANDB_SERVICE, which each run inherits, so a run's wandb.init
    # connects instead of starting its own service (about 0.2 s a run). In-process runs tear
    # wandb down before each run, as W&B's agent does, so they cannot share one.
    if executor.mode != IN_PROCESS and not executor.is_program:  # programs start their own
        wandb.setup()
    result = AgentResult()
    total = sweep_total(sweep.config)

    def progress() -> list[str]:
        lines = [sweep_line(sweep_info(), total)] if sweep_info else []
        if count is not None:
            lines.append(f"  this agent: {result.performed}/{count} runs, {result.failed} failed")
        return lines

    # Without a run-log folder, runs log to the sweep's and the agent relays their lines.
    screen = _Screen(relay=options.log_dir is None, progress=progress)
    prefix = f"[{options.label}] " if options.label else ""
    with _Interrupts(prefix) as interrupts, screen.live, Guard() as guard:
        agent = _Agent(store, sweep, executor, options, interrupts, screen, guard)
        # Told to stop now, the agent does not wait out a lost server's patience: the store
        # gives up (StoreError), the run going is ended by `perform`, the reaper offers it again.
        store.stop_waiting = lambda: interrupts.kill  # type: ignore[method-assign]
        try:
            agent.loop(result, count)
        except StoreError as exc:
            if interrupts.kill:  # the exit code says the signal, as after a recorded stop
                exc.exit_code = 143 if interrupts.preempted else 130
            raise
        finally:
            del store.stop_waiting  # a library caller's store waits as before
        result.interrupted = interrupts.drain
        result.preempted = interrupts.preempted
    result.unfinished = scheduling.unfinished_points(store.runs(sweep_id), options.max_retries)
    return result


class _Agent:
    """One agent's run loop over a sweep, and what it holds while it runs."""

    def __init__(
        self,
        store: Store,
        sweep: StoredSweep,
        executor: Executor,
        options: AgentOptions,
        interrupts: _Interrupts,
        screen: _Screen,
        guard: Guard,
    ) -> None:
        self.store, self.sweep, self.executor, self.options = store, sweep, executor, options
        self.interrupts, self.screen, self.guard = interrupts, screen, guard
        self.sweep_id = sweep.id
        self.wandb_dir = Path(os.environ.get("WANDB_DIR") or os.getcwd()).resolve()
        metric = sweep.config.get("metric") or {}
        self.metric, self.goal = metric.get("name"), metric.get("goal", "minimize")
        self.prefix = f"[{options.label}] " if options.label else ""
        self.log_dir = (options.log_dir or run_log_dir(self.sweep_id)).resolve()
        self.log_dir.mkdir(parents=True, exist_ok=True)

    def loop(self, result: AgentResult, count: int | None) -> None:
        """Claim and perform runs until the sweep, `count` or Ctrl-C says stop."""
        store, sweep_id, options = self.store, self.sweep_id, self.options
        # --retry-failed offers again what failed before this agent started, each point once.
        retry_ended_before = time.time() if options.retry_failed else None
        consecutive_failures = 0
        waiting_for: str | None = None  # the sweep state we last said we wait on
        while (count is None or result.performed < count) and not self.interrupts.drain:
            reap(store, sweep_id, options.crash_grace_s)  # runs whose agent died end first
            run = store.claim_run(
                sweep_id,
                max_retries=options.max_retries,
                log_dir=self.log_dir,
                agent=options.label,
                retry_ended_before=retry_ended_before,
                wandb_dir=self.wandb_dir,
            )
            if run is None:
                # Still "running" with nothing to hand out: other agents' runs are going, and one
                # whose agent died is offered again here once its heartbeat is stale.
                state = store.sweep_state(sweep_id)
                if state not in ("paused", "running"):
                    break
                if state == "running" and not store.has_running(sweep_id):
                    break  # nothing left but points lost for good (see unfinished_points)
                if waiting_for != state:
                    note(f"{self.prefix}sweep {sweep_id} {WAITING[state]}")
                    waiting_for = state
                self.screen.refresh()
                time.sleep(HEARTBEAT_S)
                continue
            waiting_for = None
            result.performed += 1
            state, error = self.perform(run)
            if state is RunState.PREEMPTED:
                result.preempted_run = run.id
            if state is RunState.FAILED:
                result.failed += 1
                consecutive_failures += 1
                if consecutive_failures >= options.max_failures:
                    last_line = (error or "").strip().splitlines()[-1:] or ["unknown error"]
                    result.gave_up = (
                        f"{consecutive_failures} runs failed in a row; the last: {last_line[0]}"
                    )
                    break
            else:
                consecutive_failures = 0
            self.screen.refresh()  # this agent's counts now hold this run

    def perform(self, run: ClaimedRun) -> tuple[RunState, str | None]:
        """One claimed run: write its parameters, start it, watch it, record how it ended."""
        sweep_id, prefix = self.sweep_id, self.prefix
        scratch = self.wandb_dir / "wandb" / f"sweep-{sweep_id}" / run.id
        scratch.mkdir(parents=True, exist_ok=True)
        param_path = scratch / "config.yaml"
        param_path.write_text(yaml.safe_dump(run.config))
        log_file = Path(str(run.log_file))
        params = ", ".join(f"{k}={v['value']}" for k, v in run.config.items())
        where = "" if self.options.log_dir is None else f" (log: {log_file})"
        note(f"{prefix}run {run.id} ({run.display_name}) started: {params}{where}")
        self.screen.follow(log_file)
        token = proctree.new_token(run.id)
        env = run_environment(self.sweep, run, self.wandb_dir, param_path, token)
        try:
            process = self.executor.start(
                run.config, env, scratch, log_file, agent_fds=(self.guard.fileno(),)
            )
        except OSError as exc:  # its command does not exist or cannot be executed
            return self._record_not_started(run, f"its command could not start: {exc}")
        assert process.pid is not None
        self.guard.watch(process.pid, token)  # should this agent die, the guard ends the run
        self.screen.refresh()
        follower = RunFollower(self.wandb_dir, run.id, self.metric, self.goal)
        watch = _RunWatch(
            self.store, sweep_id, run.id, follower, self.interrupts, self.options.run_timeout_s,
            self.screen, (process.pid, token), scratch / STOP_FILE,
        )  # fmt: skip
        try:
            self.store.prepare_claim(sweep_id)  # while the run trains, not while the sweep is held
            state, error = watch.wait(process)
            follower.finish()
        finally:  # also on a store failure: nothing the run started outlives it
            if process.poll() is None:  # the agent is stopping (its own line says why)
                with contextlib.suppress(OSError):
                    (scratch / STOP_FILE).write_text("stopped: its agent is stopping\n")
            if left := proctree.end_tree(process.pid, token, LEFTOVER_GRACE_S):
                note(f"{prefix}run {run.id} left {len(left)} process(es) running: ended them")
            self.guard.forget(token)
        self.screen.pump(ended=True)

        error_file = scratch / "error.txt"
        if error is None and error_file.exists():
            error = error_file.read_text()
        if state is RunState.FINISHED and process.poll() != 0:
            state, error = RunState.FAILED, error or f"exited with code {process.poll()}"
        metrics = follower.metrics
        progress = metrics.progress()
        recorded = self.store.finish_run(
            sweep_id,
            run.id,
            state=state,
            progress=progress if self.metric else None,
            summary=metrics.summary(),
            run_dir=str(follower.run_file.parent) if follower.run_file else None,
            error=error,
        )
        if not recorded:
            note(f"{prefix}run {run.id} was reaped meanwhile (no heartbeat): its first end stands")
        value = progress.value
        note(
            f"{prefix}run {run.id} {state}"
            + (f": {self.metric}={value:g}" if value is not None else "")
        )
        if follower.run_file is None and state is RunState.FINISHED:
            note(f"{prefix}run {run.id} never called wandb.init: it logged nothing, so no metric")
        for problem in follower.problems():
            note(f"{prefix}run {run.id}: {problem}")
        return state, error

    def _record_not_started(self, run: ClaimedRun, error: str) -> tuple[RunState, str | None]:
        """A run whose process could not start is a failed run, counted as any other."""
        self.store.finish_run(
            self.sweep_id, run.id, state=RunState.FAILED, progress=None, summary={},
            run_dir=None, error=error,
        )  # fmt: skip
        note(f"{self.prefix}run {run.id} failed: {error}")
        return RunState.FAILED, error


class _RunWatch:
    """Waits for one run: follows its log, heartbeats, early termination, cancel, timeout,
    Ctrl-C twice.

    Every 0.1 s it reads what the run added to its log (a bounded amount), so
    a beat never waits on a long read: beats go out every HEARTBEAT_S however
    much the run logs, each with only the metric's new points.
    """

    def __init__(
        self,
        store: Store,
        sweep_id: str,
        run_id: str,
        follower: RunFollower,
        interrupts: _Interrupts,
        timeout_s: float | None,
        screen: _Screen,
        tree: tuple[int, str],
        stop_file: Path,
    ) -> None:
        self.store, self.sweep_id, self.run_id = store, sweep_id, run_id
        self.follower, self.interrupts, self.timeout_s = follower, interrupts, timeout_s
        self.screen = screen
        self.tree = tree  # the run's process group and token (`sweepkit.proctree`)
        self.stop_file = stop_file  # why we ended it, for the run's own line (RunStopped)

    def wait(self, process: RunProcess) -> tuple[RunState, str | None]:
        """Block until the run's process ends; return its state and, if we ended it, why."""
        started = time.monotonic()
        ending: tuple[RunState, str | None] | None = None  # once we have asked it to end
        ended_at = 0.0
        next_beat = started + HEARTBEAT_S
        while process.wait_for(0.1) is None:  # returns as soon as the run ends
            self.follower.poll()
            self.screen.pump()
            now = time.monotonic()
            if now >= next_beat:  # also while a stopped run winds down: it is still alive
                next_beat = now + HEARTBEAT_S
                verdict = self._beat()
                self.screen.refresh()
                if ending is None:
                    ending = verdict
                    if ending is not None:
                        ended_at = now
                        self._stop(process, ending)
                        continue
            if ending is not None:
                if now - ended_at > STOP_GRACE_S:  # it ignores SIGTERM: all of it goes, now
                    proctree.end_tree(*self.tree, 0.0, term_first=False)
                continue
            if self.interrupts.preempted:
                ending = (RunState.PREEMPTED, "preempted: its agent got SIGTERM; offered again")
            elif self.interrupts.kill:
                ending = (RunState.KILLED, "stopped by Ctrl-C")
            elif self.timeout_s is not None and now - started > self.timeout_s:
                ending = (RunState.FAILED, f"timed out after {self.timeout_s:g} s (--run-timeout)")
            if ending is not None:
                ended_at = now
                self._stop(process, ending)
        if ending is None and self._preempted_with_its_agent(process.poll()):
            ending = (RunState.PREEMPTED, "preempted: its agent got SIGTERM; offered again")
        return ending or (RunState.FINISHED, None)

    def _stop(self, process: RunProcess, ending: tuple[RunState, str | None]) -> None:
        """End the run on purpose: say why here, and leave the why for its own line."""
        note(f"run {self.run_id}: {ending[1]}")
        with contextlib.suppress(OSError):
            self.stop_file.write_text(f"{ending[1]}\n")
        process.terminate()

    def _preempted_with_its_agent(self, code: int | None) -> bool:
        """Whether a run that ended unasked died of its agent's preemption: SIGTERM reached
        the run too (Slurm signals every process of a task, the run's first), before this
        loop saw the agent's own."""
        if code == 0:
            return False
        if self.interrupts.preempted:
            return True
        # Killed by a signal (-N), stopped by SIGTERM (128+N), or its fork server gone (255:
        # the code is lost): wait a moment for the agent's own SIGTERM.
        signalled = code is not None and (code < 0 or code >= 128)
        return signalled and self.interrupts.preempted_within(SIGTERM_SKEW_S)

    def _beat(self) -> tuple[RunState, str | None] | None:
        """Heartbeat with the metric's news; say whether the sweep wants the run ended."""
        metrics, run_file = self.follower.metrics, self.follower.run_file
        self.store.heartbeat(
            self.sweep_id,
            self.run_id,
            metrics.progress() if metrics.metric else None,
            run_dir=str(run_file.parent) if run_file else None,
        )
        if self.store.sweep_state(self.sweep_id) == "canceled":
            return (RunState.KILLED, "the sweep was canceled")
        if self.run_id in _runs_to_stop(self.store, self.sweep_id):
            return (RunState.STOPPED, "stopped by early termination")
        return None


def _runs_to_stop(store: Store, sweep_id: str) -> set[str]:
    """Running runs that the sweep's early_terminate rule (hyperband) would stop now."""
    sweep = store.sweep(sweep_id)
    if sweep is None or not scheduling.stops_runs(sweep.config):
        return set()
    return scheduling.runs_to_stop(
        sweep.config, store.runs(sweep_id), store.metric_points(sweep_id)
    )
