"""The local agent: what a run executes (`target`), the process it runs in (`process`), its
folders and environment (`workspace`), the reaper of runs whose agent died (`reaper`), and
the loop that claims, starts, watches and records runs (`loop`).

`sweepkit.runner.loop.run_agent` is what `sweepkit agent` runs on the local backend.
"""
