from pathlib import Path

import pytest

from sweepkit.config import load_sweep_config, summarize, violations
from sweepkit.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", ["lr_layers.yaml", "quick_grid.yaml"])
def test_shipped_sweeps_are_valid(name):
    config = load_sweep_config(REPO / "sweeps" / name)
    assert violations(config) == []


def test_lr_layers_is_the_users_example():
    config = load_sweep_config(REPO / "sweeps" / "lr_layers.yaml")
    assert config["parameters"]["lr"]["distribution"] == "log_uniform_values"
    assert (
        "values" in config["parameters"]["l1_size"] and "values" in config["parameters"]["l2_size"]
    )
    assert config["metric"] == {"name": "acc", "goal": "maximize"}
    assert config["early_terminate"]["type"] == "hyperband"


def test_every_violation_is_reported_with_its_path():
    problems = violations(
        {
            "method": "grid",
            "metric": {"name": "acc", "goal": "up"},
            "parameters": {"a": {"values": []}, "b": {"min": 3, "max": 1}},
        }
    )
    assert any(p.startswith("metric.goal:") for p in problems)
    assert any(p.startswith("parameters.a.values:") and "empty" in p for p in problems)
    assert any(p.startswith("parameters.b:") and "min 3" in p for p in problems)


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        ({"method": "grd", "parameters": {"a": {"values": [1]}}}, "method:"),
        ({"method": "bayes", "parameters": {"a": {"values": [1, 2]}}}, "metric:"),
        (
            {
                "method": "grid",
                "parameters": {"lr": {"distribution": "uniform", "min": 0, "max": 1}},
            },
            "cannot run",
        ),
        (
            {
                "method": "random",
                "parameters": {"lr": {"distribution": "log_uniform", "min": -5, "max": -1}},
            },
            "log_uniform_values",
        ),
        ({"method": "grid"}, "parameters"),
    ],
)
def test_configs_the_engine_cannot_run_are_refused(config, fragment):
    assert any(fragment in p for p in violations(config))


def test_summary_counts_grid_points_including_int_ranges_and_nesting():
    config = {
        "method": "grid",
        "parameters": {
            "a": {"values": [1, 2]},
            "b": {"distribution": "int_uniform", "min": 1, "max": 3},
            "opt": {"parameters": {"lr": {"values": [0.1, 0.2]}, "m": {"value": 0.9}}},
        },
    }
    summary = summarize(config)
    assert (summary.method, summary.parameters, summary.grid_size) == ("grid", 4, 12)
    assert str(summary) == "grid sweep, 4 parameters, 12 grid points"


def test_continuous_space_has_no_grid_size():
    config = {
        "method": "random",
        "parameters": {"lr": {"distribution": "uniform", "min": 0, "max": 1}},
    }
    assert summarize(config).grid_size is None


def test_malformed_yaml_names_the_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("method: grid\nparameters:\n  lr: {values: [1, 2\n")
    with pytest.raises(ConfigError, match="line"):
        load_sweep_config(bad)


def test_yaml_that_is_not_a_mapping_is_refused(tmp_path):
    bad = tmp_path / "list.yaml"
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_sweep_config(bad)
