"""What watching a run costs the agent, as the run logs more: 10k, 100k, 1M steps; and the claim.

1. For each N (--steps): one run of `bench/steps_run.py` (logs `loss` every
   step) alone, in its own process with its own wandb-core (the CPU of both,
   measured by the kernel), then the same run under `sweepkit agent` on a
   fresh store. While it goes, every 0.2 s: the agent process's own CPU and
   peak memory (/proc), and the age of the run's heartbeat in the store. The
   agent's side is its CPU above what it spends on a 10-step run (start-up,
   imports), as a fraction of the run's own CPU. Targets: < 5% at 1M steps, no
   heartbeat older than 4 s, the agent's peak memory at 1M within 1.2x of 10k.
2. The claim: a bayes sweep with --claim-runs finished runs of --claim-steps
   logged steps each. The time of a claim (store + engine, in its write
   transaction) against the engine's own `next_run` on the runs the store hands
   it (target: within 1.5x), and against `next_run` on runs carrying their
   whole histories, as the store handed them before; and the store's size with
   runs of 100 and of --claim-steps steps (it grows with runs, not steps).

The machine may be shared and noisy: compare figures of one run with each other.

    python bench/agent_watch.py                        # 10k, 100k, 1M steps; 1,000 runs x 10,000 steps
    python bench/agent_watch.py --steps 10000,100000 --claim-runs 200
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sweepkit import engine  # noqa: E402
from sweepkit.backends.store import Store, open_store  # noqa: E402
from sweepkit.core import scheduling  # noqa: E402
from sweepkit.core.records import MetricTally  # noqa: E402

BASELINE_STEPS = 10
BAYES = {
    "method": "bayes",
    "metric": {"name": "loss", "goal": "minimize"},
    "parameters": {
        "x": {"distribution": "uniform", "min": -3.0, "max": 3.0},
        "y": {"distribution": "uniform", "min": -1.0, "max": 1.0},
        "lr": {"distribution": "log_uniform_values", "min": 1e-5, "max": 1e-1},
    },
}
TICKS = os.sysconf("SC_CLK_TCK")


def environment(workdir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "WANDB_DIR": str(workdir),
        "SWEEPKIT_STORE": str(workdir / "sweeps.db"),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }


def run_alone(steps: int, workdir: Path) -> float:
    """CPU seconds of the run alone: its process and its wandb-core, as the kernel counts them."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(
        [sys.executable, str(REPO / "bench" / "steps_run.py"), str(steps)],
        env=environment(workdir), check=True,
    )  # fmt: skip
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def proc_cpu_and_peak(pid: int) -> tuple[float, int] | None:
    """A process's own CPU seconds (children not included) and peak resident memory (kB)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    peaks = [int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM")]
    if not peaks:  # exited, not yet reaped: its last sample stands
        return None
    return (int(fields[11]) + int(fields[12])) / TICKS, peaks[0]  # utime + stime, VmHWM


def under_agent(steps: int, workdir: Path) -> tuple[float, int, float]:
    """The agent's CPU seconds and peak memory (kB), and the oldest heartbeat seen (s)."""
    env = environment(workdir)
    sweep = workdir / "sweep.yaml"
    sweep.write_text(json.dumps({
        "method": "grid", "metric": {"name": "loss", "goal": "minimize"},
        "parameters": {"steps": {"value": steps}},
    }))  # fmt: skip
    sweepkit = [sys.executable, "-m", "sweepkit"]
    sweep_id = subprocess.run(
        [*sweepkit, "create", str(sweep), "--backend", "local"],
        env=env, check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    agent = subprocess.Popen(
        [*sweepkit, "agent", sweep_id, "--function", "bench.steps_run:train"],
        env=env, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    db = sqlite3.connect(workdir / "sweeps.db", timeout=60)
    cpu, peak, oldest = 0.0, 0, 0.0
    while agent.poll() is None:
        sample = proc_cpu_and_peak(agent.pid)
        if sample is not None:
            cpu, peak = sample
        row = db.execute("SELECT heartbeat_at FROM runs WHERE state = 'running'").fetchone()
        if row is not None:
            oldest = max(oldest, time.time() - row[0])
        time.sleep(0.2)
    assert agent.returncode == 0, f"the agent failed ({agent.returncode})"
    (state,) = db.execute("SELECT state FROM runs").fetchone()
    assert state == "finished", state
    return cpu, peak, oldest


def watch_costs(step_counts: list[int]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base_cpu, _, _ = under_agent(BASELINE_STEPS, Path(tmp))
    print(f"agent CPU for a {BASELINE_STEPS}-step run (start-up, imports): {base_cpu:.2f} s")
    print(f"{'steps':>10} {'run alone':>11} {'agent side':>11} {'fraction':>9} "
          f"{'oldest beat':>12} {'agent peak':>11}")  # fmt: skip
    peaks = {}
    for steps in step_counts:
        with tempfile.TemporaryDirectory() as tmp:
            alone = run_alone(steps, Path(tmp))
        with tempfile.TemporaryDirectory() as tmp:
            cpu, peak, oldest = under_agent(steps, Path(tmp))
        peaks[steps] = peak
        side = max(0.0, cpu - base_cpu)
        print(f"{steps:>10,} {alone:>9.1f} s {side:>9.2f} s {side / alone:>8.1%} "
              f"{oldest:>10.1f} s {peak / 1024:>8.0f} MB")  # fmt: skip
    low, high = min(peaks), max(peaks)
    print(f"agent peak memory at {high:,} steps / at {low:,}: {peaks[high] / peaks[low]:.2f}x "
          "(target <= 1.2x); targets: fraction < 5% at 1M, oldest beat <= 4 s")  # fmt: skip


def fill(store: Store, runs: int, steps: int) -> str:
    """A bayes sweep with `runs` finished runs of `steps` logged steps each.

    The runs are drawn by random search over the same parameters (a bayes claim
    per run would take minutes), then the sweep is made bayes.
    """
    sweep_id = store.create_sweep({**BAYES, "method": "random"})
    for _ in range(runs):
        run = store.claim_run(sweep_id)
        x = run.config["x"]["value"]
        curve = [(x - 1) ** 2 + 1 / (i + 1) for i in range(steps)]
        progress = MetricTally("loss").replay(curve, {"loss": curve[-1]})
        store.finish_run(
            sweep_id, run.id, state="finished", progress=progress,
            summary={"loss": curve[-1]}, run_dir=None,
        )  # fmt: skip
    store._transact(  # the bench's own shortcut past the store's API
        lambda cursor: cursor.execute(
            "UPDATE sweeps SET config = ? WHERE id = ?", (json.dumps(BAYES), sweep_id)
        )
    )
    return sweep_id


def claim_costs(runs: int, steps: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        small = open_store(Path(tmp) / "small.db")
        fill(small, runs, 100)
        store = open_store(Path(tmp) / "big.db")
        sweep_id = fill(store, runs, steps)
        sizes = [store_bytes(Path(tmp) / f"{n}.db") for n in ("small", "big")]

        claims = []
        for _ in range(5):
            started = time.perf_counter()
            store.claim_run(sweep_id)
            claims.append(time.perf_counter() - started)
        handed = scheduling.engine_runs(BAYES, store.runs(sweep_id))
        engine_s = median_time(lambda: engine.next_run(BAYES, handed))
        whole = [
            engine.sweep_run(
                r.name, state=r.state, config=r.config, summary=r.summary_metrics,
                history=[{"loss": (r.config["x"]["value"] - 1) ** 2 + 1 / (i + 1)} for i in range(steps)],
            )
            for r in handed
        ]  # fmt: skip
        whole_s = median_time(lambda: engine.next_run(BAYES, whole))
    claim_s = statistics.median(claims)
    print(f"\nbayes claim, {runs:,} finished runs of {steps:,} logged steps each (median of 5)")
    print(f"claim (store + engine)          {claim_s * 1000:8.1f} ms")
    print(f"engine next_run on those runs   {engine_s * 1000:8.1f} ms   "
          f"ratio {claim_s / engine_s:.2f}x (target <= 1.5x)")  # fmt: skip
    print(
        f"engine next_run, whole histories {whole_s * 1000:7.1f} ms   (what the store handed before)"
    )
    print(f"store size: {sizes[0] / 1e3:,.0f} kB with 100 steps a run, {sizes[1] / 1e3:,.0f} kB with "
          f"{steps:,}: {sizes[1] / sizes[0]:.2f}x")  # fmt: skip


def store_bytes(path: Path) -> int:
    """The store's file and its write-ahead log."""
    wal = path.with_name(path.name + "-wal")
    return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


def median_time(call, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", default="10000,100000,1000000")
    parser.add_argument("--claim-runs", type=int, default=1000)
    parser.add_argument("--claim-steps", type=int, default=10_000)
    args = parser.parse_args()
    watch_costs([int(n) for n in args.steps.split(",")])
    claim_costs(args.claim_runs, args.claim_steps)


if __name__ == "__main__":
    main()
