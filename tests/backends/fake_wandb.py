"""A stand-in for the W&B server at wandb's own API boundary (no server can be reached here).

Patches `wandb.sweep`, `wandb.agent` and `wandb.Api`, records what they were
called with, and keeps sweeps and runs in memory the way the server would.
"""

from __future__ import annotations

import dataclasses
import socket
from typing import Any

import wandb


@dataclasses.dataclass
class FakeRun:
    id: str
    state: str
    config: dict[str, Any]
    summary: dict[str, Any]

    @property
    def name(self) -> str:
        return f"fake-sweep-{self.id.removeprefix('run')}"  # the server's readable run name

    @property
    def url(self) -> str:
        return f"https://wandb.ai/ent/proj/runs/{self.id}"

    def history(self, pandas: bool = True) -> list[dict[str, Any]]:
        assert pandas is False, "sweepkit asks for plain rows"
        return [
            {"_step": i, "epoch": i, "loss": self.summary["loss"] + 1 / (i + 1)} for i in range(3)
        ]

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
        """The server hands out `count` runs, recorded as finished with the loss that
        tests.sweep_functions.quadratic logs for x = 0, 1, 2, ... (the function is not called)."""
        self.calls.append(("agent", (sweep_id,), {"function": function, "count": count}))
        sweep = self._get(sweep_id)
        for i in range(count or 1):
            x = float(i)
            sweep.runs.append(
                FakeRun(
                    f"run{len(sweep.runs)}",
                    "finished",
                    {"x": x},
                    {"loss": (x - 3) ** 2, "_runtime": 1.5},
                )
            )

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


def install(monkeypatch) -> FakeWandbServer:
    return FakeWandbServer(monkeypatch)
