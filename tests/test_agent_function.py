"""How a function run is called and ended, in this process: what the forked child and the
in-process run of a notebook do once they hold the function (`_call_function`), with real
offline wandb runs read back from disk.

The agent's loop around them is tests/test_agent_loop.py; real forked runs are in
test_sweep_cli.py and test_lifecycle.py. Here a mutation run sees the child's half too.
"""

from __future__ import annotations

import os
import sys
import threading

import pytest
import wandb

import sweepkit.agent  # noqa: F401  (the package's `sweepkit.agent` is the function)
from sweepkit.errors import ConfigError
from tests.wandb_disk import run_summary

agent = sys.modules["sweepkit.agent"]


def call(function, tmp_path, log_text: str | None = None) -> tuple[int, str]:
    """`_call_function` with a run log holding `log_text` (None: no log): (code, error file)."""
    error_file, log_file = tmp_path / "error.txt", None
    if log_text is not None:
        log_file = tmp_path / "run.log"
        log_file.write_text(log_text)
    code = agent._call_function(function, str(error_file), log_file and str(log_file))
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


def test_a_function_stopped_by_sigterm_exits_143(tmp_path):
    def stopped():
        agent._raise_stopped(15, None)

    code, error = call(stopped, tmp_path)
    assert code == agent.STOPPED_BY_SIGTERM == 143
    assert "stopped by SIGTERM" in error
    assert issubclass(agent._StoppedBySignal, KeyboardInterrupt)  # user code sees Ctrl-C


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
    assert call("tests.test_agent_function:_done", tmp_path) == (0, "")
    assert agent.resolve_function("os:path.join") is os.path.join  # a dotted attribute too


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
    ],
)
def test_a_function_reference_that_cannot_be_called_is_one_line(ref, said):
    with pytest.raises(ConfigError) as refused:
        agent.resolve_function(ref)
    assert str(refused.value).startswith(said)


def test_an_in_process_run_gets_the_runs_environment_and_gives_it_back(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_RUN_ID", "the-sessions")
    monkeypatch.delenv("WANDB_SWEEP_PARAM_PATH", raising=False)
    seen = {}

    def function():
        seen.update({k: os.environ.get(k) for k in ("WANDB_RUN_ID", "WANDB_SWEEP_PARAM_PATH")})

    run = agent._InProcessRun(
        function,
        {"WANDB_RUN_ID": "r1", "WANDB_SWEEP_PARAM_PATH": "/p.yaml"},
        str(tmp_path / "e"),
    )
    assert run.wait_for(60) == 0 and run.pid == -1
    assert seen == {"WANDB_RUN_ID": "r1", "WANDB_SWEEP_PARAM_PATH": "/p.yaml"}
    assert os.environ["WANDB_RUN_ID"] == "the-sessions"  # the session's own again
    assert "WANDB_SWEEP_PARAM_PATH" not in os.environ
    failed = agent._InProcessRun(fails, {}, str(tmp_path / "e"))
    assert failed.wait_for(60) == 1 and "negative" in (tmp_path / "e").read_text()


def test_an_in_process_run_is_stopped_by_an_exception_in_its_thread(tmp_path):
    going, release = threading.Event(), threading.Event()

    def loops():
        going.set()
        while not release.is_set():  # a Python loop: the exception lands at its next line
            pass

    run = agent._InProcessRun(loops, {}, str(tmp_path / "e"))
    assert going.wait(60) and run.poll() is None
    run.terminate()
    code = run.wait_for(60)
    release.set()
    assert code == 1 and "KeyboardInterrupt" in (tmp_path / "e").read_text()
