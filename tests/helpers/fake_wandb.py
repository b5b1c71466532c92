"""A stand-in for the W&B server at wandb's own API boundary (no server can be reached here).

Patches `wandb.sweep`, `wandb.agent` and `wandb.Api`, records every argument
they were called with, and keeps sweeps and runs in memory the way the server
would. Its `wandb.agent` behaves as W&B's function agent does: the server
(here the real `sweeps` engine, which W&B's server runs) hands out each run's
parameters, the agent sets the environment `wandb agent` sets and calls the
function in this process, and the run's state, summary and history are what
the function's real (offline) wandb run logged, read back from its folder.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
from pathlib import Path
from typing import Any

import wandb
import yaml

from sweepkit import engine
from sweepkit.runlog import find_run_file
from tests.helpers.wandb_disk import history, run_summary


@dataclasses.dataclass
class FakeRun:
    id: str
    state: str
    config: dict[str, Any]
    summary: dict[str, Any]
    rows: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # what it logged

    @property
    def name(self) -> str:
        return f"fake-sweep-{self.id.removeprefix('run')}"  # the server's readable run name

    @property
    def url(self) -> str:
        return f"https://wandb.ai/ent/proj/runs/{self.id}"

    def history(self, pandas: bool = True) -> list[dict[str, Any]]:
        assert pandas is False, "sweepkit asks for plain rows"
        return [{"_step": i, **row} for i, row in enumerate(self.rows)]

    def logged_artifacts(self) -> list[Any]:
        return []  # these fake runs logged no tables


@dataclasses.dataclass
class FakeSweep:
    config: dict[str, Any]
    state: str = "RUNNING"
    runs: list[FakeRun] = dataclasses.field(default_factory=list)


class FakeWandbServer:
    def __init__(self, monkeypatch) -> None:
        self.sweeps: dict[str, FakeSweep] = {}
        self.calls: list[tuple[str, tuple, dict]] = []
        self.prior_runs: list[list[str]] = []
        monkeypatch.setenv("WANDB_API_KEY", "fake-key-for-tests-0123456789012345678901")
        # A port that accepts connections stands for the server's address: sweepkit checks
        # that a connection opens before it calls wandb.
        self._listener = socket.create_server(("127.0.0.1", 0))
        monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{self._listener.getsockname()[1]}")
        monkeypatch.setattr(wandb, "sweep", self.sweep)
        monkeypatch.setattr(wandb, "agent", self.agent)
        monkeypatch.setattr(wandb, "Api", lambda *a, **k: _ApiView(self))

    def sweep(self, config, entity=None, project=None, prior_runs=None):
        self.calls.append(("sweep", (config,), {"entity": entity, "project": project}))
        self.prior_runs.append(list(prior_runs or []))
        sweep_id = f"swp{len(self.sweeps):05d}"
        self.sweeps[sweep_id] = FakeSweep(dict(config))
        return sweep_id

    def agent(self, sweep_id, function=None, entity=None, project=None, count=None, **kwargs):
        """W&B's function agent: up to `count` runs that the engine hands out, each calling
        `function` with the run's parameters where `wandb.init` finds them. A program sweep
        (no function) is only recorded: W&B's agent would start the program itself."""
        self.calls.append(
            ("agent", (sweep_id,),
             {"function": function, "entity": entity, "project": project, "count": count, **kwargs})
        )  # fmt: skip
        sweep = self._get(sweep_id)
        if function is None:
            return
        for _ in range(count if count is not None else 1_000):
            suggestion = engine.next_run(sweep.config, [_engine_run(r) for r in sweep.runs])
            if suggestion is None:
                return
            sweep.runs.append(
                self._run_function(sweep_id, function, suggestion.config, len(sweep.runs))
            )

    def _run_function(self, sweep_id, function, config, number) -> FakeRun:
        config = json.loads(json.dumps(config))  # as the server sends it (not numpy's floats)
        run_id = f"run{number}"
        wandb_dir = Path(os.environ["WANDB_DIR"])
        params = wandb_dir / f"fake-sweep-{run_id}.yaml"
        params.write_text(yaml.safe_dump(config))
        env = {
            "WANDB_SWEEP_ID": sweep_id,
            "WANDB_RUN_ID": run_id,
            "WANDB_SWEEP_PARAM_PATH": str(params),
        }
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        state = "finished"
        wandb.teardown()  # as W&B's agent does before each run: wandb reads the new environment
        try:
            function()
        except Exception:
            state = "failed"  # W&B's agent reports the exception and goes on
        finally:
            if wandb.run is not None:
                wandb.finish(exit_code=0 if state == "finished" else 1)
            for k, v in saved.items():
                os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
        run_file = find_run_file(wandb_dir, run_id)
        assert run_file is not None, "the function never called wandb.init"
        logged = run_summary(run_file.parent)
        return FakeRun(
            run_id, state, {k: v["value"] for k, v in config.items()},
            {"_runtime": 1.5, **logged["summary"]}, history(run_file.parent),
        )  # fmt: skip

    def _get(self, path: str) -> FakeSweep:
        sweep_id = path.rsplit("/", 1)[-1]
        if sweep_id not in self.sweeps:
            raise ValueError(f"Could not find sweep {path}")
        return self.sweeps[sweep_id]


class _ApiView:
    """What `wandb.Api()` returns: `.sweep(path)` reads the fake server."""

    def __init__(self, server: FakeWandbServer) -> None:
        self._server = server

    def sweep(self, path: str) -> FakeSweep:
        self._server.calls.append(("Api.sweep", (path,), {}))
        return self._server._get(path)


def _engine_run(run: FakeRun) -> Any:
    return engine.sweep_run(
        run.id,
        state=run.state,
        config={k: {"value": v} for k, v in run.config.items()},
        history=run.rows,
        summary=run.summary,
    )


def install(monkeypatch) -> FakeWandbServer:
    return FakeWandbServer(monkeypatch)
