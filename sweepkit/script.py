"""`sweepkit python SCRIPT.py ARGS`: a W&B sweep script, run as it is, its sweeps answered by sweepkit.

The script runs as `python SCRIPT.py ARGS` runs it (runpy: `__name__` is
"__main__", `sys.argv` is the script and its arguments, the script's folder is
first on `sys.path`), with `wandb.sweep` and `wandb.agent` replaced by
`sweepkit.sweep` and `sweepkit.agent`: offline on the local backend when W&B
is not in use, W&B's own functions otherwise. Whatever the script does after
`wandb.agent` returns runs as it would under W&B.
"""

from __future__ import annotations

import contextlib
import os
import runpy
import sys
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

from sweepkit import api
from sweepkit.credentials import use_wandb_server
from sweepkit.errors import ConfigError, SweepkitError
from sweepkit.log import note


def run_script(script: Path, args: list[str]) -> int:
    """Run a Python script with wandb's sweep functions answered by sweepkit; return its exit code.

    Args:
        script: the script (or a folder or zip with a __main__.py, as `python` takes).
        args: its arguments, passed untouched.

    Returns:
        What `python script args` would exit with: 0, the code it gave `sys.exit`, or 1
        after an exception (its traceback printed as Python prints it).

    Raises:
        ConfigError: there is no such script.
        SweepkitError: sweepkit refused a call of the script's (an unknown sweep id, a
            config the engine cannot run): one line, as every sweepkit error.
    """
    if not script.exists():
        raise ConfigError(f"cannot run {script}: no such file (give the path of a Python script)")
    path = script.resolve()
    if "WANDB_MODE" not in os.environ and not use_wandb_server():
        # The script's own wandb calls (wandb.login, a wandb.init outside the sweep) go offline too.
        os.environ["WANDB_MODE"] = "offline"
        note("no W&B credentials found: sweeps run on the local backend, runs log offline")
    saved_argv, saved_path = sys.argv, sys.path[:]
    sys.argv = [str(script), *args]
    sys.path.insert(0, str(path.parent if path.is_file() else path))
    try:
        with _answered_by_sweepkit():
            runpy.run_path(str(path), run_name="__main__")
    except SystemExit as exc:
        return _exit_code(exc.code)
    except (SweepkitError, KeyboardInterrupt):
        raise  # one `error:` line, or "interrupted" (cli.main)
    except BaseException as exc:
        trimmed = _from_the_script(exc.__traceback__, path)
        sys.excepthook(type(exc), exc.with_traceback(trimmed), trimmed)
        return 1
    finally:
        sys.argv, sys.path[:] = saved_argv, saved_path
    return 0


@contextlib.contextmanager
def _answered_by_sweepkit() -> Iterator[None]:
    """`wandb.sweep` and `wandb.agent` are sweepkit's while the script runs; wandb's are kept
    for `sweepkit.api` to hand W&B sweeps to."""
    import wandb

    api.wandb_originals.update(sweep=wandb.sweep, agent=wandb.agent)
    wandb.sweep, wandb.agent = api.sweep, api.agent  # type: ignore[assignment]
    try:
        yield
    finally:
        wandb.sweep, wandb.agent = api.wandb_originals["sweep"], api.wandb_originals["agent"]
        api.wandb_originals.clear()


def _from_the_script(tb: TracebackType | None, path: Path) -> TracebackType | None:
    """The traceback from the script's first frame on, as `python script.py` shows it (not
    sweepkit's and runpy's frames above it)."""
    start = tb
    while start is not None and Path(start.tb_frame.f_code.co_filename) != path:
        start = start.tb_next
    return start or tb


def _exit_code(code: object) -> int:
    """What Python exits with for `sys.exit(code)`: None is 0, a number itself, else the
    value printed and 1."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1
