from pathlib import Path

import pytest

from sweepkit.config import check, load_sweep_config, summarize, violations
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
        ({"method": "grid"}, "parameters"),
        (
            {"method": "grid", "parameters": {"img_size": {"values": 256}}},
            "parameters.img_size.values: must be a list (values: [256])",
        ),
        (
            {"method": "random", "parameters": {"lr": {"min": 1, "max": "high"}}},
            "parameters.lr.max: 'high' is not of type 'number'",
        ),
        (
            {
                "method": "random",
                "early_terminate": {"type": "hyperband", "min_iter": 2},
                "parameters": {"a": {"values": [1]}},
            },
            "metric: early_terminate stops runs by a metric",
        ),
    ],
)
def test_configs_the_engine_cannot_run_are_refused(config, fragment):
    findings = check(config)
    assert any(fragment in p for p in findings.errors), findings
    assert findings.warnings == []


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (
            {"parameters": {"lr": {"distribution": "log_uniform", "min": -9.2, "max": -4.6}}},
            "log_uniform_values",
        ),
        ({"metric": {"name": "acc", "goal": "maximise"}}, "metric.goal: 'maximise' is not one of"),
        (
            {"description": "fine", "controller": {"type": "local"}, "foo": 1},
            "'foo' was unexpected",
        ),
    ],
)
def test_what_the_engine_runs_anyway_is_a_warning_as_on_wandb(change, fragment):
    config = {"method": "random", "parameters": {"lr": {"min": 0.001, "max": 0.1}}, **change}
    findings = check(config)
    assert findings.errors == []
    assert [w for w in findings.warnings if fragment in w] == findings.warnings != []


def test_scientific_notation_without_a_dot_is_a_number(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text(
        "method: random\nparameters:\n  lr: {min: 1e-5, max: 1e-2}\n"
        "  wd: {values: [3e-4, 0, 1E+1]}\n  tag: {value: 1e-5x}\n"
    )
    config = load_sweep_config(path)
    assert config["parameters"]["lr"] == {"min": 1e-5, "max": 1e-2}
    assert config["parameters"]["wd"]["values"] == [3e-4, 0, 10.0]
    assert config["parameters"]["tag"]["value"] == "1e-5x"  # not a number: left a string


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
