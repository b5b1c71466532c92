"""Soak: agents SIGKILLed at random for minutes; afterwards every grid point is accounted for.

    python scripts/soak.py                     # 4 agents, 40 points, 5 minutes of kills
    python scripts/soak.py --agents 6 --minutes 10 --points 80

Starts `--agents` real `sweepkit agent` processes on one local grid sweep
(wandb offline, in a temporary folder); every 2-8 s one of them, at random,
is SIGKILLed and a new one started in its place. A run takes 0.5-3 s and
logs its point as the metric, so kills land everywhere: mid-run, mid-claim,
between a run's exit and its record. When the time is up, agents run on
without kills until the sweep ends. Then it checks, from the store:

- every grid point has exactly one finished run, with the metric its run logged;
- no point finished twice; the sweep is `finished`;
- no process of the soak is left (each carries a tag in its environment).

It prints the figures (kills, runs by state, time) and exits 1 if a check fails.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

from sweepkit.proctree import carrying

FUNCTION = textwrap.dedent("""
    import random, time, wandb

    def train():
        with wandb.init() as run:
            time.sleep(random.uniform(0.5, 3.0))
            run.log({"loss": float(run.config["x"])})
""")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=4)
    parser.add_argument("--points", type=int, default=40)
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)

    work = Path(tempfile.mkdtemp(prefix="sweepkit-soak-"))
    (work / "soak_fn.py").write_text(FUNCTION)
    tag = uuid.uuid4().hex
    env = {
        **os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_DIR": str(work),
        "PYTHONPATH": str(work), "SOAK_TAG": tag,
    }  # fmt: skip
    sweepkit = [sys.executable, "-m", "sweepkit"]
    grid = ", ".join(f"{x}.0" for x in range(args.points))
    (work / "grid.yaml").write_text(
        f"method: grid\nmetric: {{name: loss}}\nparameters:\n  x: {{values: [{grid}]}}\n"
    )
    sweep_id = subprocess.run(
        [*sweepkit, "create", "grid.yaml"], cwd=work, env=env, capture_output=True, text=True,
        check=True,
    ).stdout.strip()  # fmt: skip
    agent = [*sweepkit, "agent", sweep_id, "-f", "soak_fn:train", "--crash-grace", "10"]
    agent += ["--retries", "10"]

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            agent, cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    print(f"soak: {args.agents} agents on {args.points} points, kills for {args.minutes:g} min")
    print(f"soak: {work}, sweep {sweep_id}")
    started = time.monotonic()
    agents = [start() for _ in range(args.agents)]
    kills = 0
    while time.monotonic() - started < args.minutes * 60:
        time.sleep(rng.uniform(2.0, 8.0))
        victim = rng.randrange(len(agents))
        if agents[victim].poll() is None:
            agents[victim].send_signal(signal.SIGKILL)
            agents[victim].wait()
            kills += 1
        agents[victim] = start()
        agents = [a if a.poll() is None else start() for a in agents]
    print(f"soak: {kills} kills in {time.monotonic() - started:.0f} s; now running to the end")
    for process in agents:
        process.wait()
    ended = time.monotonic() - started

    info = json.loads(
        subprocess.run(
            [*sweepkit, "status", sweep_id, "--json"],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    runs = info["runs"]
    finished = collections.Counter(r["config"]["x"] for r in runs if r["state"] == "finished")
    wrong_metric = [
        r["id"] for r in runs if r["state"] == "finished" and r["metric"] != r["config"]["x"]
    ]
    twice = sorted(x for x, n in finished.items() if n > 1)
    missing = sorted(set(float(x) for x in range(args.points)) - set(finished))
    left = sorted(carrying("SOAK_TAG", tag))
    print(f"soak: ended after {ended:.0f} s; runs by state: {dict(info['counts'])}")
    print(f"soak: sweep {info['state']}; points finished once: {len(finished) - len(twice)}")
    checks = {
        "every point finished": not missing,
        "no point finished twice": not twice,
        "each finished run has its own metric": not wrong_metric,
        "the sweep is finished": info["state"] == "finished",
        "no process left": not left,
    }
    for name, ok in checks.items():
        print(f"soak: {'ok  ' if ok else 'FAIL'} {name}")
    if missing or twice or wrong_metric or left:
        print(f"soak: missing {missing}, twice {twice}, wrong {wrong_metric}, left {left}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
