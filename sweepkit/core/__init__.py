"""The floor every other part of sweepkit stands on: what a sweep and a run are
(`records`), the states of their lives and the moves between them (`lifecycle`), and what a
sweep hands out next (`scheduling`).

No I/O and no wandb here: a store keeps these records, the runner moves runs through these
states, and both import this package, never the other way round (the import contract in
pyproject.toml, checked in CI). Of sweepkit, only `sweepkit.engine` (W&B's `sweeps`) and
`sweepkit.errors` are below it.
"""
