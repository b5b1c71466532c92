"""How a function run is called and ended, in this process: what the forked child and the
in-process run of a notebook do once they hold the function (`sweepkit.runner.child.call_function`), with real
offline wandb runs read back from disk.

The agent's loop around them is tests/test_agent_loop.py; real forked runs are in
test_sweep_cli.py and test_lifecycle.py. Here a mutation run sees the child's half too.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
import types

import pytest
import wandb

from sweepkit.errors import ConfigError
from sweepkit.runner import child, process, target, workspace
from tests.helpers.wandb_disk import run_summary


def call(function, tmp_path, log_text: str | None = None) -> tuple[int, str]:
    """`_call_function` with a run log holding `log_text` (None: no log): (code, error file)."""
    error_file, log_file = tmp_path / "error.txt", None
    if log_text is not None:
        log_file = tmp_path / "run.log"
        log_file.write_text(log_text)
    code = child.call_function(function, str(error_file), log_file and str(log_file))
    return code, error_file.read_text() if error_file.exists() else ""


def test_a_function_that_returns_or_exits_zero_is_done(tmp_path):
    assert call(lambda: None, tmp_path) == (0, "")
    assert call(lambda: sys.exit(0), tmp_path) == (0, "")
    assert call(lambda: sys.exit(), tmp_path) == (0, "")


def fails():
    raise ValueError("the learning rate is negative")


def test_a_function_that_raises_or_exits_non_zero_fails_with_its_traceback(tmp_path, capsys):
    code, error = call(fails, tmp_path)
    assert code == 1 and error.rstrip().endswith("ValueError: the learning rate is negative")
    assert capsys.readouterr().err == error  # in the run's output too
    code, error = call(lambda: sys.exit(3), tmp_path)
    assert code == 1 and error.rstrip().endswith("SystemExit: 3")


def test_a_traceback_the_output_already_ends_with_is_not_written_again(tmp_path, capsys):
    said = "Traceback (most recent call last):\n  ...\nValueError: the learning rate is negative\n"
    code, error = call(fails, tmp_path, log_text=said)
    assert code == 1 and "ValueError" in error
    assert capsys.readouterr().err == ""  # `with wandb.init()` printed it already
    code, _ = call(fails, tmp_path, log_text="step 1\nValueError: something else\n")
    assert "the learning rate is negative" in capsys.readouterr().err
    call(fails, tmp_path, log_text="")  # an empty log ends with nothing
    assert "the learning rate is negative" in capsys.readouterr().err


def test_a_function_stopped_by_sigterm_exits_143_and_says_who_stopped_it_in_one_line(
    tmp_path, monkeypatch, capsys
):
    def stopped():
        child._raise_stopped(15, None)

    monkeypatch.setattr(child, "_stop_file", tmp_path / workspace.STOP_FILE)
    code, error = call(stopped, tmp_path)  # no reason left: not its agent's stop
    assert code == child.STOPPED_BY_SIGTERM == 143
    outside = "sweepkit: stopped by SIGTERM from outside its agent (a scheduler, scancel or kill)"
    assert error == outside and capsys.readouterr().err == outside + "\n"
    (tmp_path / workspace.STOP_FILE).write_text("stopped by Ctrl-C\n")  # what its agent leaves
    code, error = call(stopped, tmp_path, log_text="step 1\n")
    assert (code, error) == (143, "sweepkit: stopped by Ctrl-C")
    assert capsys.readouterr().err == "sweepkit: stopped by Ctrl-C\n"  # no traceback
    code, error = call(stopped, tmp_path, log_text="sweepkit: stopped by Ctrl-C\n")
    assert capsys.readouterr().err == ""  # `with wandb.init()` said it already
    assert issubclass(child.RunStopped, KeyboardInterrupt)  # user code sees Ctrl-C


def test_a_run_the_function_left_open_is_finished(tmp_path):
    runs = []

    def leaves_it_open():
        runs.append(wandb.init(project="p"))
        wandb.log({"loss": 1.0})

    assert call(leaves_it_open, tmp_path) == (0, "")
    assert wandb.run is None
    assert run_summary(runs[0].dir.removesuffix("/files"))["exit_code"] == 0


def test_a_run_open_when_its_function_raised_ends_with_exit_code_1(tmp_path):
    runs = []

    def raises_inside():
        runs.append(wandb.init(project="p"))
        raise RuntimeError("out of memory")

    code, _ = call(raises_inside, tmp_path)
    assert code == 1 and wandb.run is None
    assert run_summary(runs[0].dir.removesuffix("/files"))["exit_code"] == 1


def test_a_function_named_module_attr_is_imported(tmp_path):
    assert call("tests.runner.test_function_runs:_done", tmp_path) == (0, "")
    assert target.resolve_function("os:path.join") is os.path.join  # a dotted attribute too


def _done():
    return None


@pytest.mark.parametrize(
    ("ref", "said"),
    [
        ("nocolon", "--function takes module:attr (e.g. mypkg.train:main), got 'nocolon'"),
        (":main", "--function takes module:attr"),
        ("mod:", "--function takes module:attr"),
        ("no_such_module_x:main", "--function no_such_module_x:main: cannot import no_such_mod"),
        ("os:no_such_attr", "--function os:no_such_attr: no_such_attr is not a callable in os"),
        ("os:sep", "--function os:sep: sep is not a callable in os"),
        ("os:path:join", "--function os:path:join: path:join is not a callable in os"),
    ],
)
def test_a_function_reference_that_cannot_be_called_is_one_line(ref, said):
    with pytest.raises(ConfigError) as refused:
        target.resolve_function(ref)
    assert str(refused.value).startswith(said)


def test_runs_that_could_not_start_are_refused_before_any_starts(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"program 'missing\.py' does not exist"):
        target.check_runnable({"program": "missing.py"}, None)  # the sweep's command
    with pytest.raises(ConfigError, match="--function no_such_module_x:f: cannot import"):
        target.check_runnable({"program": "missing.py"}, "no_such_module_x:f")  # it replaces it
    monkeypatch.setattr(target, "DEFAULT_FUNCTION", "no_such_module_y:train")
    with pytest.raises(ConfigError, match="--function no_such_module_y:train: cannot import"):
        target.check_runnable({"method": "grid"}, None)  # no command: sweepkit's train
    target.check_runnable({"program": "missing.py"}, _done)  # a function in hand: nothing to import


def test_an_in_process_run_gets_the_runs_environment_and_gives_it_back(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_RUN_ID", "the-sessions")
    monkeypatch.delenv("WANDB_SWEEP_PARAM_PATH", raising=False)
    seen = {}

    def function():
        seen.update({k: os.environ.get(k) for k in ("WANDB_RUN_ID", "WANDB_SWEEP_PARAM_PATH")})

    run = process._InProcessRun(
        function,
        {"WANDB_RUN_ID": "r1", "WANDB_SWEEP_PARAM_PATH": "/p.yaml"},
        str(tmp_path / "e"),
    )
    assert run.wait_for(60) == 0 and run.pid == -1
    assert seen == {"WANDB_RUN_ID": "r1", "WANDB_SWEEP_PARAM_PATH": "/p.yaml"}
    assert os.environ["WANDB_RUN_ID"] == "the-sessions"  # the session's own again
    assert "WANDB_SWEEP_PARAM_PATH" not in os.environ
    failed = process._InProcessRun(fails, {}, str(tmp_path / "e"))
    assert failed.wait_for(60) == 1 and "negative" in (tmp_path / "e").read_text()


def test_an_in_process_run_is_stopped_by_an_exception_in_its_thread(tmp_path):
    going, release = threading.Event(), threading.Event()

    def loops():
        going.set()
        while not release.is_set():  # a Python loop: the exception lands at its next line
            pass

    run = process._InProcessRun(loops, {}, str(tmp_path / "e"))
    assert going.wait(60) and run.poll() is None
    run.terminate()
    code = run.wait_for(60)
    release.set()
    assert code == 1 and "KeyboardInterrupt" in (tmp_path / "e").read_text()


# --- the run's output: does it already end with the traceback? ---------------------------------


def test_a_log_that_is_only_the_exception_line_ends_with_it(tmp_path, capsys):
    call(fails, tmp_path, log_text="ValueError: the learning rate is negative\n")
    assert capsys.readouterr().err == ""


def test_undecodable_bytes_in_a_runs_output_are_read_past(tmp_path, capsys):
    (tmp_path / "run.log").write_bytes(
        b"\xff\xfe binary\nValueError: the learning rate is negative\n"
    )
    error_file = tmp_path / "error.txt"
    assert child.call_function(fails, str(error_file), str(tmp_path / "run.log")) == 1
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(("extra", "written_again"), [(0, False), (1, True)])
def test_only_the_last_4_kib_of_a_runs_output_are_read(tmp_path, capsys, extra, written_again):
    """A log of any size costs one bounded read: a last line longer than the window is not
    recognised, and the traceback is written again rather than lost."""
    message = "x" * (4096 - len("ValueError: \n") + extra)

    def raises():
        raise ValueError(message)

    code, _ = call(raises, tmp_path, log_text="a line before\n" + f"ValueError: {message}\n")
    assert code == 1 and (message in capsys.readouterr().err) is written_again


def test_a_wandb_finish_that_fails_after_the_function_raised_leaves_the_functions_error(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(child.wandb, "run", object())  # a run the function left open

    def broken_finish(**kwargs):
        raise RuntimeError("the service is gone")

    monkeypatch.setattr(child.wandb, "finish", broken_finish)
    code, error = call(fails, tmp_path)
    assert code == 1 and error.rstrip().endswith("the learning rate is negative")


# --- the forked child's set-up (`_run_function_child`), run here ---------------------------------


@pytest.fixture
def as_child(monkeypatch):
    """Run `_run_function_child` in this process and give back what it changes: fds 1 and 2,
    the streams and their buffering, the three signal handlers, the environment. Making a
    process group and the parent-death signal are recorded instead (they would be pytest's)."""
    calls: list[str] = []
    monkeypatch.setattr(child.os, "setpgrp", lambda: calls.append("setpgrp"))
    monkeypatch.setattr(child.proctree, "die_with_parent", lambda: calls.append("die"))
    monkeypatch.delenv("SWEEPKIT_TEST_CHILD", raising=False)
    fds = os.dup(1), os.dup(2)
    streams = sys.stdout, sys.stderr
    buffering = [(s.line_buffering, s.write_through) for s in (sys.__stdout__, sys.__stderr__)]
    for stream in (sys.__stdout__, sys.__stderr__):  # as an agent's pipe is (no PYTHONUNBUFFERED)
        stream.reconfigure(line_buffering=False, write_through=False)
    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    opened = set(os.listdir("/proc/self/fd"))

    def run(function, log_file, agent_fds=()) -> int:
        with pytest.raises(SystemExit) as exited:
            child.run_function_child(
                function, {"SWEEPKIT_TEST_CHILD": "1"}, str(log_file.parent / "error.txt"),
                str(log_file), agent_fds,
            )  # fmt: skip
        return exited.value.code

    yield run, calls
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fds[0], 1)
    os.dup2(fds[1], 2)
    for fd in [*fds, *(int(fd) for fd in set(os.listdir("/proc/self/fd")) - opened)]:
        with contextlib.suppress(OSError):
            os.close(fd)  # the log's descriptor, which the child leaves to its exit
    sys.stdout, sys.stderr = streams
    for stream, (line, through) in zip((sys.__stdout__, sys.__stderr__), buffering, strict=True):
        stream.reconfigure(line_buffering=line, write_through=through)
    for signum, handler in handlers.items():
        signal.signal(signum, handler)


def test_a_child_writes_its_output_to_the_run_log_line_by_line(as_child, tmp_path):
    run, calls = as_child
    log_file = tmp_path / "run.log"
    log_file.write_text("the agent's line before\n")
    seen = {}

    def function():
        print("to stdout")
        print("to stderr", file=sys.stderr)
        seen["at once"] = log_file.read_text()  # line-buffered: already in the file
        seen["env"] = os.environ.get("SWEEPKIT_TEST_CHILD")

    assert run(function, log_file) == 0
    assert calls == ["setpgrp", "die"]  # its own process group; it dies with its agent
    assert seen["at once"] == "the agent's line before\nto stdout\nto stderr\n"  # appended
    assert seen["env"] == "1"


def test_a_new_run_log_is_readable_by_all(as_child, tmp_path):
    run, _ = as_child
    umask = os.umask(0o022)
    try:
        assert run(lambda: None, tmp_path / "run.log") == 0
    finally:
        os.umask(umask)
    assert (tmp_path / "run.log").stat().st_mode & 0o777 == 0o644


def test_a_child_closes_the_agents_descriptors_and_takes_the_runs_signal_handlers(
    as_child, tmp_path
):
    run, _ = as_child
    read_end, write_end = os.pipe()  # the guard's pipe: its far end must see it close
    seen = {}

    def function():
        seen.update(
            {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
        )

    assert run(function, tmp_path / "run.log", agent_fds=(read_end,)) == 0
    with pytest.raises(BrokenPipeError):
        os.write(write_end, b"x")
    os.close(write_end)
    assert seen == {
        signal.SIGTERM: child._raise_stopped,  # a stop raises, so `with wandb.init()` finishes
        signal.SIGINT: signal.default_int_handler,
        signal.SIGHUP: signal.SIG_DFL,
    }


def test_a_stop_while_the_child_sets_up_ends_it_quietly_with_143(as_child, tmp_path, monkeypatch):
    """SIGTERM (Slurm signals every process of a task) may reach a forked run before its
    function starts: its handler is the first thing set, so that too is a stop, not a
    traceback of sweepkit's set-up."""
    run, _ = as_child

    def too_early(signum, frame):
        raise AssertionError("SIGTERM came before the run's own handler was set")

    signal.signal(signal.SIGTERM, too_early)
    monkeypatch.setattr(
        child.proctree, "die_with_parent", lambda: os.kill(os.getpid(), signal.SIGTERM)
    )
    assert run(lambda: pytest.fail("the function ran"), tmp_path / "run.log") == 143
    assert not (tmp_path / "error.txt").exists()
    assert not (tmp_path / "run.log").exists()  # nothing said: its agent says why it stopped


def test_a_child_whose_function_fails_exits_1_with_its_traceback(as_child, tmp_path):
    run, _ = as_child
    assert run(fails, tmp_path / "run.log") == 1
    assert "the learning rate is negative" in (tmp_path / "error.txt").read_text()
    assert "the learning rate is negative" in (tmp_path / "run.log").read_text()


def test_a_child_whose_output_ends_with_the_traceback_does_not_write_it_again(as_child, tmp_path):
    run, _ = as_child

    def says_then_fails():
        print("ValueError: the learning rate is negative", file=sys.stderr)  # as wandb.init does
        fails()

    assert run(says_then_fails, tmp_path / "run.log") == 1
    assert (tmp_path / "run.log").read_text() == "ValueError: the learning rate is negative\n"


# --- where a function's runs start (`place`) ------------------------------------------------------


def test_a_module_attr_runs_from_the_fork_server_and_a_scripts_function_is_forked(monkeypatch):
    assert target.place("mypkg.train:main") == (target.FORKSERVER, "mypkg.train:main")
    monkeypatch.setattr(target, "_interactive_session", lambda: False)
    assert target.place(fails) == (target.FORK, fails)


def test_a_sessions_function_runs_from_the_fork_server_if_importable_else_here(monkeypatch):
    monkeypatch.setattr(target, "_interactive_session", lambda: True)
    assert target.place(fails) == (target.FORKSERVER, "tests.runner.test_function_runs:fails")
    in_session = lambda: None  # noqa: E731
    assert target.place(in_session) == (target.IN_PROCESS, in_session)


def test_an_importable_reference_is_the_very_function_a_fresh_import_gives():
    assert target.importable_reference(fails) == "tests.runner.test_function_runs:fails"
    assert target.importable_reference(os.path.join) == "posixpath:join"
    assert target.importable_reference(lambda: None) is None  # "<lambda>" in its qualname

    def closure():
        return None

    assert target.importable_reference(closure) is None  # "<locals>"
    for module in ("__main__", "__mp_main__"):
        assert (
            target.importable_reference(types.FunctionType(fails.__code__, {"__name__": module}))
            is None
        )
    shadow = types.FunctionType(fails.__code__, {})  # named like `fails`, but not that object
    shadow.__module__, shadow.__qualname__ = __name__, "fails"
    assert target.importable_reference(shadow) is None
    gone = types.FunctionType(fails.__code__, {})
    gone.__module__, gone.__qualname__ = "no_such_module_x", "f"
    assert target.importable_reference(gone) is None  # an import that fails is no reference
    nameless = types.SimpleNamespace(__qualname__="f")
    assert target.importable_reference(nameless) is None  # no __module__
    assert target.importable_reference(CallableThing()) is None  # an instance: no __qualname__


class CallableThing:
    def __call__(self) -> None:
        return None


@pytest.mark.parametrize("main", ["__main__", "__mp_main__"])
def test_a_function_of_the_main_script_is_no_reference(monkeypatch, main):
    """Even where `__main__:f` imports: a fork server would run the script again to get it."""
    script = types.ModuleType(main)
    in_script = types.FunctionType(fails.__code__, {})
    in_script.__module__, in_script.__qualname__ = main, "in_script"
    script.in_script = in_script
    monkeypatch.setitem(sys.modules, main, script)
    assert target.importable_reference(in_script) is None


@pytest.mark.parametrize(
    ("main_file", "ipython", "interactive"),
    [
        ("a_script.py", None, False),  # a script (it exists)
        (None, None, True),  # a REPL or `python -c`: __main__ has no file
        ("<stdin>", None, True),  # `python -` : a name that is no file
        ("a_script.py", lambda: object(), True),  # IPython running a script is IPython's
        ("a_script.py", lambda: None, False),  # IPython imported, no shell running
    ],
)
def test_a_session_is_told_from_a_script(tmp_path, monkeypatch, main_file, ipython, interactive):
    main = types.ModuleType("__main__")
    if main_file is not None:
        (tmp_path / "a_script.py").touch()
        main.__file__ = str(tmp_path / main_file) if main_file.endswith(".py") else main_file
    monkeypatch.setitem(sys.modules, "__main__", main)
    if ipython is None:
        monkeypatch.delitem(sys.modules, "IPython", raising=False)
    else:
        monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=ipython))
    assert target._interactive_session() is interactive


def test_ipython_without_get_ipython_is_not_a_session(tmp_path, monkeypatch):
    (tmp_path / "a_script.py").touch()
    main = types.ModuleType("__main__")
    main.__file__ = str(tmp_path / "a_script.py")
    monkeypatch.setitem(sys.modules, "__main__", main)
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace())
    assert target._interactive_session() is False


# --- an in-process run's details ------------------------------------------------------------------


def test_an_in_process_run_does_not_keep_the_session_from_ending(tmp_path):
    run = process._InProcessRun(lambda: None, {}, str(tmp_path / "e"))
    assert run._thread.daemon is True  # one stuck in C code must not hold the interpreter
    assert run.wait_for(60) == 0


def test_an_in_process_run_that_died_before_its_function_is_a_failed_run(tmp_path, monkeypatch):
    real_teardown = child.wandb.teardown

    def teardown_fails():
        monkeypatch.setattr(child.wandb, "teardown", real_teardown)  # this once
        raise RuntimeError("wandb could not tear down")

    monkeypatch.setattr(child.wandb, "teardown", teardown_fails)
    monkeypatch.setattr(threading, "excepthook", lambda args: None)  # its thread's traceback
    run = process._InProcessRun(lambda: None, {}, str(tmp_path / "e"))
    assert run.wait_for(60) == 1


def test_an_in_process_run_connects_to_no_service_and_leaves_none_named(tmp_path, monkeypatch):
    """The session's service is torn down before the run (as W&B's agent does), and the one the
    run started ends with it: neither address may stay in the session's environment."""
    monkeypatch.setenv("WANDB_SERVICE", "the-sessions-service")
    monkeypatch.setattr(child.wandb, "teardown", lambda: None)  # nothing real to tear down here
    seen = {}

    def function():
        seen["service"] = os.environ.get("WANDB_SERVICE")
        os.environ["WANDB_SERVICE"] = "the-runs-service"  # as wandb.init would set it

    run = process._InProcessRun(
        function, {"WANDB_SERVICE": "the-sessions-service"}, str(tmp_path / "e")
    )
    assert run.wait_for(60) == 0
    assert seen["service"] is None
    assert "WANDB_SERVICE" not in os.environ


def test_an_in_process_run_is_waited_on_for_the_time_asked(tmp_path):
    release = threading.Event()
    run = process._InProcessRun(lambda: release.wait(60), {}, str(tmp_path / "e"))
    assert run.wait_for(0.01) is None  # still going: the wait ends anyway
    release.set()
    assert run.wait_for(60) == 0


def test_terminate_raises_keyboardinterrupt_in_a_live_run_only(tmp_path, monkeypatch):
    sent = []
    monkeypatch.setattr(
        ctypes.pythonapi, "PyThreadState_SetAsyncExc", lambda *args: sent.append(args)
    )
    release = threading.Event()
    run = process._InProcessRun(lambda: release.wait(60), {}, str(tmp_path / "e"))
    ident = run._thread.ident
    run.terminate()
    release.set()
    assert run.wait_for(60) == 0
    ((thread_id, exception),) = sent
    assert thread_id.value == ident and exception.value is KeyboardInterrupt
    run.terminate()  # it has ended: its thread id may be another thread's by now
    assert len(sent) == 1
