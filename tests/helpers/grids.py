"""Sweep configs many tests share, each once, by what it is for."""

from __future__ import annotations

# Twelve points of three plain parameters: what a store hands out (tests of the store).
GRID_12 = {
    "method": "grid",
    "parameters": {
        "a": {"values": [1, 2, 3]},
        "b": {"values": ["x", "y"]},
        "c": {"values": [True, False]},
    },
}
# Twelve points with a metric, as YAML a user writes, for `tests.sweep_functions:quadratic`
# (it reads x): sweeps run end to end through the console script.
GRID_12_YAML = """
method: grid
metric: {name: loss, goal: minimize}
parameters:
  x: {values: [0.0, 1.0, 2.0, 3.0]}
  y: {values: [a, b, c]}
"""
# A grid whose runs hyperband may stop: the store keeps their metric's points.
HYPERBAND_GRID = {
    "method": "grid",
    "metric": {"name": "loss", "goal": "minimize"},
    "early_terminate": {"type": "hyperband", "min_iter": 2, "eta": 2},
    "parameters": {"a": {"values": [1, 2]}},
}
# Points of one parameter x with a metric, as YAML, for agents of the console script.
GRID_2_YAML = (
    "method: grid\nmetric: {name: loss, goal: minimize}\nparameters:\n  x: {values: [1.0, 2.0]}\n"
)
GRID_3_YAML = "method: grid\nmetric: {name: loss, goal: minimize}\nparameters:\n  x: {values: [1.0, 2.0, 3.0]}\n"
