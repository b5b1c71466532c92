from pathlib import Path

import pytest

from sweepkit.config import (
    Findings,
    _one_line,
    _with_parameter_path,
    check,
    load_sweep_config,
    read_yaml,
    summarize,
    violations,
)
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


# Each message exactly as the user reads it: the path, the alternative meant, nothing repeated.

KNOWN_DISTRIBUTIONS = (
    "beta, categorical, categorical_w_probabilities, constant, int_uniform, inv_log_uniform, "
    "inv_log_uniform_values, log_normal, log_uniform, log_uniform_values, normal, q_beta, "
    "q_log_normal, q_log_uniform, q_log_uniform_values, q_normal, q_uniform, uniform"
)


@pytest.mark.parametrize(
    ("parameters", "errors"),
    [
        ({"img": {"values": 256}}, ["parameters.img.values: must be a list (values: [256]), not 256"]),
        (
            {"lr": {"distribution": "unifrom", "min": 0, "max": 1}},
            [f"parameters.lr.distribution: 'unifrom' is not a distribution the engine knows ({KNOWN_DISTRIBUTIONS}) (did you mean 'uniform'?)"],
        ),
        ({"lr": {"distribution": "uniform", "min": 0}}, ["parameters.lr: 'max' is a required property"]),
        ({"lr": {"min": 0.1, "max": 0.01}}, ["parameters.lr: min 0.1 is not less than max 0.01"]),
        ({"lr": {"min": 1, "max": "high"}}, ["parameters.lr.max: 'high' is not of type 'number'"]),
        (
            {"a": {"values": [1], "extra": 2}},
            ["parameters.a: Additional properties are not allowed ('extra' was unexpected)"],
        ),
        (
            {"w": {"distribution": "normal", "mu": 0, "sigma": "x"}},
            ["parameters.w.sigma: 'x' is not of type 'number'"],
        ),
        ({"a": {"distribution": "int_uniform", "min": 0.5, "max": 3}}, ["parameters.a.min: 0.5 is not of type 'integer'"]),
        (
            {"opt": {"parameters": {"lr": {"values": []}}}},
            ["parameters.opt.parameters.lr.values: is empty; give at least one value"],
        ),
        (
            {"lr": {"distribution": "uniform", "min": 0, "max": 1, "extra": 1}},
            ["parameters.lr: Additional properties are not allowed ('extra' was unexpected)"],
        ),
        # A sibling indented one level too deep: the categorical the author wrote, with a key too many.
        (
            {"s": {"distribution": "categorical", "values": [1, 2], "n": {"min": 1, "max": 5}}},
            ["parameters.s: Additional properties are not allowed ('n' was unexpected)"],
        ),
        (
            {"lr": {"distribution": "uniform", "min": 0, "max": "x", "extra": 1}},
            ["parameters.lr: Additional properties are not allowed ('extra' was unexpected)",
             "parameters.lr.max: 'x' is not of type 'number'"],
        ),
        (
            {"lr": {"distribution": 5, "min": 0, "max": 1}},
            [f"parameters.lr.distribution: 5 is not a distribution the engine knows ({KNOWN_DISTRIBUTIONS})"],
        ),
        (
            {"opt": {"parameters": {"lr": {"min": 1, "max": "x"}}}},
            ["parameters.opt.parameters.lr.max: 'x' is not of type 'number'"],
        ),
        # `ab` is not `a`: an empty `a` hides only the schema's vaguer message about `a` itself.
        (
            {"a": {"values": []}, "ab": {"min": 1, "max": "x"}},
            ["parameters.ab.max: 'x' is not of type 'number'", "parameters.a.values: is empty; give at least one value"],
        ),
        # The engine's "invalid hyperparameter configuration: a: b" repeats what is said of `a: b`.
        (
            {"a: b": {"min": 1, "max": "high"}},
            ["parameters: 'a: b' does not match '^^[A-Za-z_][A-Za-z0-9_.-]*$'", "parameters.a: b.max: 'high' is not of type 'number'"],
        ),
        (
            {"a": 5, "b": {"values": []}},
            [
                "parameters.a: 5 is not of type 'object'",
                "parameters.b.values: is empty; give at least one value",
                "the sweeps engine cannot run this config: Sweep config values must be dicts, "
                "found 5 of type <class 'int'>",
            ],
        ),
        (
            {"a": 5},
            [
                "parameters.a: 5 is not of type 'object'",
                "the sweeps engine cannot run this config: Sweep config values must be dicts, "
                "found 5 of type <class 'int'>",
            ],
        ),
    ],
)  # fmt: skip
def test_each_refusal_is_said_once_exactly_where_it_is(parameters, errors):
    assert check({"method": "random", "parameters": parameters}) == Findings(errors, [])


def test_a_config_with_no_method_is_refused_at_the_top_level():
    assert check({"parameters": {"a": {"values": [1]}}}).errors == [
        "(top level): 'method' is a required property",
        "the sweeps engine cannot run this config: Sweep config must contain method section",
    ]


@pytest.mark.parametrize(
    ("change", "errors"),
    [
        (
            {"method": "bayes"},
            ["metric: bayes search needs a metric to optimise (metric: {name: ..., goal: ...})"],
        ),
        (
            {"early_terminate": {"type": "hyperband", "min_iter": 2}},
            ["metric: early_terminate stops runs by a metric: add metric: {name: ..., goal: ...}"],
        ),
        (  # the engine runs its first suggestion, but could never stop a run
            {"metric": {"name": "loss"}, "early_terminate": {"type": "hyperbnd", "min_iter": 2}},
            [
                "early_terminate.type: 'hyperbnd' is not one of ['hyperband'] (did you mean 'hyperband'?)",
                "the sweeps engine cannot run this config: Invalid early stopping type hyperbnd, "
                'must be one of ["hyperband"]',
            ],
        ),
    ],
)
def test_what_needs_a_metric_or_cannot_stop_runs_is_refused(change, errors):
    config = {"method": "random", "parameters": {"a": {"values": [1]}}, **change}
    assert check(config) == Findings(errors, [])


def test_sweepkits_own_promises_are_refused_though_the_engine_runs_them():
    config = {"method": "random", "parameters": {"a": {"values": [1, 2]}}}
    assert check({**config, "run_cap": 0}) == Findings(
        ["run_cap: 0 is less than or equal to the minimum of 0"], []
    )
    assert check({**config, "job": "me/proj/job:v0"}).errors == [
        "job: the sweep runs a W&B Launch job; sweepkit runs its program: or command:, or a --function"
    ]
    assert check({**config, "image_uri": "me/train:v1"}).errors == [
        "image_uri: the sweep runs a W&B Launch job; sweepkit runs its program: or command:, "
        "or a --function"
    ]
    no_program = (
        "command: the sweep's command uses ${program}, but the sweep names no program: add "
        "program: (e.g. program: train.py) or drop ${program} from command:"
    )
    assert check({**config, "command": ["python", "${program}"]}).errors == [no_program]
    assert check({**config, "job": "me/p/j:v0", "command": ["python", "${program}"]}).errors == [
        "job: the sweep runs a W&B Launch job; sweepkit runs its program: or command:, "
        "or a --function",
        no_program,
    ]


def test_warnings_name_the_parameter_and_unknown_macros():
    config = {
        "method": "random",
        "command": ["${env}", "python", "train.py", "${argz}", "${args}"],
        "parameters": {
            "lr": {"distribution": "log_uniform", "min": -9.2, "max": -4.6},
            "a": {"values": [1, 2], "probabilities": [0.5, 0.6]},
        },
    }
    assert check(config) == Findings(
        [],
        [
            "parameters.lr: uses log_uniform, where min/max specify base-e exponents. Use "
            "log_uniform_values to specify limit values.",
            "Parameter a: Probabilities [0.5, 0.6] do not sum to 1",
            "command: ${argz} is not a macro `wandb agent` knows: it expands to nothing",
        ],
    )


def test_load_says_every_problem_under_the_files_name_and_passes_each_warning_on(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("method: random\nparameters:\n  a: {values: []}\n  b: {min: 3, max: 1}\n")
    with pytest.raises(ConfigError) as refused:
        load_sweep_config(bad, on_warning=pytest.fail)
    assert str(refused.value) == (
        f"{bad}: parameters.a.values: is empty; give at least one value\n"
        f"{bad}: parameters.b: min 3 is not less than max 1"
    )
    odd = tmp_path / "odd.yaml"
    odd.write_text("method: random\nfoo: 1\nparameters:\n  a: {values: [1]}\n")
    said: list[str] = []
    assert load_sweep_config(odd, on_warning=said.append)["foo"] == 1
    assert said == [
        f"{odd}: (top level): Additional properties are not allowed ('foo' was unexpected)"
    ]
    assert load_sweep_config(odd)["foo"] == 1  # no one to tell: still loaded


@pytest.mark.parametrize(
    ("text", "error"),
    [
        # "]" is the 22nd character of line 3 (the file's own numbers, from 1)
        ("method: grid\nparameters:\n  lr: {values: [1, 2]]}\n", "is not valid YAML at line 3, column 22: did not find expected ',' or '}'"),
        ("method: grid\n  parameters: {}\n", "is not valid YAML at line 2, column 13: mapping values are not allowed in this context"),
        ("method: \x07\n", "is not valid YAML at line 1, column 9: unacceptable character #x0007: control characters are not allowed"),
        ("- 1\n- 2\n", "must hold a mapping with method and parameters, not list"),
    ],
)  # fmt: skip
def test_what_is_not_a_yaml_mapping_says_where_and_why(tmp_path, text, error):
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    with pytest.raises(ConfigError) as refused:
        read_yaml(bad)
    assert str(refused.value) == f"{bad} {error}"


def test_a_missing_file_is_one_line(tmp_path):
    with pytest.raises(
        ConfigError, match=r"^cannot read .*nosuch\.yaml: No such file or directory$"
    ):
        load_sweep_config(tmp_path / "nosuch.yaml")


def test_an_engine_exception_is_one_line_or_its_type():
    assert _one_line(ValueError("bad\n   value\tthere ")) == "bad value there"
    assert _one_line(KeyError()) == "KeyError"


def test_an_engine_that_raises_is_said_only_where_the_schema_found_nothing(monkeypatch):
    # 0.2 raises TypeError on a string `max` the schema has already refused; a release
    # that raised on a config its schema accepts would be news, and is said.
    from sweepkit import engine

    def raises(config):
        raise TypeError("'<' not supported\n  between str and int")

    monkeypatch.setattr(engine, "engine_violations", raises)
    bad = {"method": "random", "parameters": {"x": {"min": 0, "max": "1"}}}
    assert violations(bad) == ["parameters.x.max: '1' is not of type 'number'"]
    fine = {"method": "random", "parameters": {"x": {"min": 0, "max": 1}}}
    assert violations(fine) == ["'<' not supported between str and int"]


@pytest.mark.parametrize(
    "parameters",
    [
        {"a": {"values": [1, 2, 3]}, "b": {"value": "x"}},
        {"n": {"distribution": "int_uniform", "min": 2, "max": 5}},
        {"q": {"distribution": "q_uniform", "min": 0, "max": 1, "q": 0.25}},
        {"q": {"distribution": "q_uniform", "min": 0, "max": 1, "q": 0.3}},
        {"q": {"distribution": "q_uniform", "min": 1, "max": 2, "q": 0.25}},
        {"opt": {"parameters": {"lr": {"values": [0.1, 0.2]}, "m": {"value": 0.9}}}},
    ],
)
def test_the_grid_size_is_what_the_engine_hands_out(parameters):
    from sweepkit import engine

    config = {"method": "grid", "parameters": parameters}
    runs = []
    while (suggestion := engine.next_run(config, runs)) is not None and len(runs) < 50:
        # As the store hands runs back: by their flattened names (0.2 needs them).
        names = engine.parameter_names(config)
        run = engine.sweep_run(
            f"r{len(runs)}", state="finished", config=suggestion.config, parameter_names=names
        )
        runs.append(run)
    assert summarize(config).grid_size == len(runs)


def test_a_summary_without_a_grid_size_says_no_grid_points():
    config = {"method": "random", "parameters": {"lr": {"min": 0.0, "max": 1.0}}}
    assert str(summarize(config)) == "random sweep, 1 parameters"


def test_an_engine_message_about_a_parameter_gets_its_path_and_keeps_its_words():
    config = {"parameters": {"lr": {}}}
    assert (
        _with_parameter_path("lr: Xavier needs a max", config)
        == "parameters.lr: Xavier needs a max"
    )
    assert _with_parameter_path("lr uses log_uniform", config) == "parameters.lr: uses log_uniform"
    assert _with_parameter_path("wd: no such parameter", config) == "wd: no such parameter"
