"""One contract, both backends: the local one for real, W&B's with its API boundary faked."""

from __future__ import annotations

import pytest

from sweepkit.backends import UnknownSweepError, backend_for_id, backend_for_new_sweep
from tests.helpers import fake_wandb

CONFIG = {
    "method": "grid",
    "metric": {"name": "loss", "goal": "minimize"},
    "parameters": {"x": {"values": [0.0, 1.0, 2.0, 3.0, 4.0]}},
}
FUNCTION = "tests.sweep_functions:quadratic"


@pytest.fixture(params=["local", "wandb"])
def backend_kind(request, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    if request.param == "wandb":
        request.node.server = fake_wandb.install(monkeypatch)
    return request.param


def new_backend(kind):
    return backend_for_new_sweep(kind)


def test_create_returns_an_id_that_resolves_to_the_same_backend(backend_kind):
    sweep_id = new_backend(backend_kind).create(CONFIG, project="proj")
    assert backend_for_id(sweep_id).name == backend_kind


def test_a_new_sweep_has_its_config_and_no_runs(backend_kind):
    backend = new_backend(backend_kind)
    info = backend.sweep(backend.create(CONFIG, project="proj"))
    assert info.config["parameters"] == CONFIG["parameters"]
    assert info.runs == [] and info.best() is None and info.backend == backend_kind


def test_agent_performs_count_runs_and_status_sees_their_metric(backend_kind):
    backend = new_backend(backend_kind)
    sweep_id = backend.create(CONFIG, project="proj")
    result = backend.agent(sweep_id, function=FUNCTION, count=2)
    assert (result.performed, result.failed, result.exit_code) == (2, 0, 0)
    info = backend_for_id(sweep_id).sweep(sweep_id)
    assert [r.state for r in info.runs] == ["finished", "finished"]
    assert all(r.metric is not None for r in info.runs)
    assert info.best().metric == min(r.metric for r in info.runs)
    assert info.counts() == {"finished": 2}


def test_unknown_id_is_an_error(backend_kind):
    backend = new_backend(backend_kind)
    backend.create(CONFIG)
    missing = "local-zzzzzzzz" if backend_kind == "local" else "nosuchsweep"
    with pytest.raises(UnknownSweepError):
        backend_for_id(missing).sweep(missing)


def test_wandb_backend_calls_wandb_with_what_the_user_gave(monkeypatch):
    server = fake_wandb.install(monkeypatch)
    backend = backend_for_new_sweep("wandb")
    sweep_id = backend.create(CONFIG, project="proj", entity="ent", name="my sweep")
    assert sweep_id == "ent/proj/swp00000"
    kind, (config,), kwargs = server.calls[0]
    assert kind == "sweep" and kwargs == {"entity": "ent", "project": "proj"}
    assert config["name"] == "my sweep" and config["parameters"] == CONFIG["parameters"]

    result = backend.agent(sweep_id, function=FUNCTION, count=3)
    (agent_call,) = [c for c in server.calls if c[0] == "agent"]
    from tests.sweep_functions import quadratic

    assert agent_call[1] == (sweep_id,)
    assert agent_call[2] == {  # every keyword that reached wandb.agent
        "function": quadratic, "entity": None, "project": None, "count": 3,
        "max_consecutive_failed_runs": 5,
    }  # fmt: skip
    # The function ran, with the parameters the server handed out, and what it logged is
    # what sweepkit reads back through wandb.Api.
    runs = backend.sweep(sweep_id).runs
    assert result.performed == 3 and [r.config["x"] for r in runs] == [0.0, 1.0, 2.0]
    assert [r.metric for r in runs] == pytest.approx([(x - 3) ** 2 + 1 / 3 for x in (0, 1, 2)])


def test_wandb_program_sweep_lets_wandb_agent_run_the_program(monkeypatch):
    server = fake_wandb.install(monkeypatch)
    backend = backend_for_new_sweep("wandb")
    sweep_id = backend.create({**CONFIG, "program": "train.py"}, project="p")
    backend.agent(sweep_id, count=1)
    (agent_call,) = [c for c in server.calls if c[0] == "agent"]
    assert agent_call[2]["function"] is None


def test_local_run_config_and_metric_come_from_the_wandb_run_itself(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    backend = backend_for_new_sweep("local")
    sweep_id = backend.create(CONFIG)
    backend.agent(sweep_id, function=FUNCTION, count=1)
    (run,) = backend.sweep(sweep_id).runs
    from tests.helpers.wandb_disk import run_summary

    summary = run_summary(run.location)
    assert (
        summary["config"]["x"] == run.config["x"] == 0.0
    )  # WANDB_SWEEP_PARAM_PATH reached wandb.init
    assert summary["run_id"] == run.id
    assert run.metric == pytest.approx(summary["summary"]["loss"])


def test_local_agent_gives_the_caller_its_signal_handlers_back(tmp_path, monkeypatch):
    import signal

    monkeypatch.chdir(tmp_path)
    mine = signal.getsignal(signal.SIGINT)
    backend = backend_for_new_sweep("local")
    backend.agent(backend.create(CONFIG), function=FUNCTION, count=1)
    assert signal.getsignal(signal.SIGINT) is mine
