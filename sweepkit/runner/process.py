"""The agent's side of a run's process: start it in the right kind of process, poll it,
end it.

Each run is a separate process, so a crash, an out-of-memory or a leaked CUDA
context in one run cannot poison the next. Function runs are forked from a
`multiprocessing` fork server that has already imported torch, wandb and the
user's module: a run starts in milliseconds instead of paying seconds of imports.
A function handed over from a script forks from the script itself, and one from
an interactive session that cannot be imported runs in this process, as under
W&B (`sweepkit.runner.target.place`). Program runs are plain subprocesses with
the command line and environment that `wandb agent` would give them.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import multiprocessing.forkserver
import os
import signal
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import wandb

from sweepkit import proctree, program
from sweepkit.backends.base import DEFAULT_FUNCTION
from sweepkit.log import note
from sweepkit.runner.child import call_function, run_function_child
from sweepkit.runner.target import (
    FORK,
    FORKSERVER,
    IN_PROCESS,
    Function,
    check_runnable,
    place,
    resolve_function,
)
from sweepkit.runner.workspace import RunFolder


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
            self._code = call_function(function, error_file, None)
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
        modules = ["__main__", "sweepkit.runner.child", "wandb", module, defined_in]
        self._context.set_forkserver_preload(modules)
        # Start the server now: it imports those modules while this process gets ready.
        _start_fork_server()

    def start(
        self,
        run_config: dict[str, Any],
        env: dict[str, str],
        folder: RunFolder,
        log_file: Path,
        agent_fds: tuple[int, ...] = (),
    ) -> RunProcess:
        """Start one run. `agent_fds` are the agent's own descriptors (its guard's pipe) that a
        child forked from this process must not hold open."""
        if self.is_program:
            args_file = folder.args_file
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
        error_file = str(folder.error_file)
        if self.mode == IN_PROCESS:
            log_file.touch()  # its output is the session's: the log stays empty
            assert callable(self.function)
            return _InProcessRun(self.function, env, error_file)
        if self.mode == FORKSERVER:
            _start_fork_server()  # again, should it have died: with SIGINT ignored
        process = self._context.Process(
            target=run_function_child,
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
    (`sweepkit.runner.child`)."""
    if threading.current_thread() is not threading.main_thread():  # no handlers to change
        multiprocessing.forkserver.ensure_running()
        return
    handler = signal.signal(signal.SIGINT, signal.SIG_IGN)  # for the fork and exec alone
    try:
        multiprocessing.forkserver.ensure_running()
    finally:
        signal.signal(signal.SIGINT, handler)
