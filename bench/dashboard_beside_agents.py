"""Whether an open `sweepkit dashboard` slows the agents working the sweep it shows.

Rounds alternate without and with the dashboard (A B A B ...). Each round is a fresh
random sweep of --runs runs of bench/trivial_run.py (wandb.init, one log, finish; offline)
in a SQLite store of its own, worked by --agents `sweepkit agent` processes started at once,
timed until the last one exits. In the rounds with it, `sweepkit dashboard` serves that
store and a client asks what an open page asks, every --every seconds: the sweep page (its
runs and their curves' new points) and the page of a running run (its new points). The
figure is seconds per run (the round's wall time / runs); each side's median and spread,
and the ratio of the medians. The spread is the noise the ratio is to be read against.

The machine may be shared and noisy: compare the figures of one run with each other.

    python bench/dashboard_beside_agents.py                 # 4 agents, 40 runs, 3 rounds each
    python bench/dashboard_beside_agents.py --rounds 5 --every 0.5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.agent_overhead import FUNCTION, RANDOM_SWEEP  # noqa: E402
from bench.dashboard import offline_workdir, start_dashboard  # noqa: E402


class Page:
    """An open dashboard page, in a thread: the sweep and one running run, every `every` s."""

    def __init__(self, base_url: str, sweep_id: str, every: float) -> None:
        import httpx

        self.client, self.sweep_id, self.every = httpx.Client(base_url=base_url), sweep_id, every
        self.asked, self._done = 0, threading.Event()
        self._curves: dict[str, int] = {}
        self._thread = threading.Thread(target=self._refresh, daemon=True)
        self._thread.start()

    def _refresh(self) -> None:
        have: dict[str, dict[str, int]] = {}
        while not self._done.wait(self.every):
            since = {"since": json.dumps(self._curves)}
            sweep = self.client.get(f"/api/sweeps/{self.sweep_id}", params=since).json()
            for run in sweep["curves"]["runs"]:
                self._curves[run["id"]] = self._curves.get(run["id"], 0) + len(run["points"])
            running = [r["id"] for r in sweep["runs"] if r["state"] == "running"]
            if running:
                got = have.setdefault(running[-1], {})
                url = f"/api/sweeps/{self.sweep_id}/runs/{running[-1]}"
                answer = self.client.get(url, params={"since": json.dumps(got)}).json()
                for key, points in ((answer.get("logged") or {}).get("scalars") or {}).items():
                    got[key] = got.get(key, 0) + len(points)
            self.asked += 1

    def close(self) -> None:
        self._done.set()
        self._thread.join()
        self.client.close()


def one_round(workdir: Path, runs: int, agents: int, every: float | None) -> tuple[float, int]:
    """Seconds per run of a fresh sweep worked by `agents` agents (with a dashboard open when
    `every` is given); and how many refreshes the page made."""
    from sweepkit.backends.local import LocalBackend

    workdir.mkdir()
    store = workdir / "sweeps.db"
    sweep_id = LocalBackend(store).create(RANDOM_SWEEP)
    server = page = None
    if every is not None:
        server, base_url = start_dashboard(store)
        page = Page(base_url, sweep_id, every)
    command = [sys.executable, "-m", "sweepkit", "agent", sweep_id, "--store", str(store),
               "-f", FUNCTION, "--count", str(runs // agents)]  # fmt: skip
    started = time.perf_counter()
    working = [
        subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for _ in range(agents)
    ]
    failed = [p.stderr.read().decode()[-500:] for p in working if p.wait() != 0]
    seconds = time.perf_counter() - started
    asked = 0
    if page is not None and server is not None:
        page.close()
        asked = page.asked
        server.terminate()
        server.wait()
    if failed:
        raise SystemExit(f"an agent failed: {failed[0]}")
    finished = [r for r in LocalBackend(store).sweep(sweep_id).runs if r.state == "finished"]
    assert len(finished) == runs // agents * agents, len(finished)
    return seconds / len(finished), asked


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=4)
    parser.add_argument("--runs", type=int, default=40, help="runs per round, across agents")
    parser.add_argument("--rounds", type=int, default=3, help="rounds on each side")
    parser.add_argument("--every", type=float, default=2.0, help="seconds between refreshes")
    args = parser.parse_args()

    workdir = offline_workdir()
    print(
        f"workdir {workdir}; {os.cpu_count()} CPUs; {args.agents} agents, {args.runs} runs a round"
    )

    without, beside, refreshes = [], [], []
    for index in range(args.rounds):
        per_run, _ = one_round(workdir / f"without-{index}", args.runs, args.agents, None)
        without.append(per_run)
        per_run, asked = one_round(workdir / f"with-{index}", args.runs, args.agents, args.every)
        beside.append(per_run)
        refreshes.append(asked)
        print(f"  round {index + 1}: without {without[-1]:.3f} s/run, "
              f"with the dashboard {beside[-1]:.3f} s/run ({asked} page refreshes)")  # fmt: skip

    def spread(values: list[float]) -> str:
        return f"{statistics.median(values):.3f} s/run ({min(values):.3f}-{max(values):.3f})"

    print(f"\nwithout the dashboard: {spread(without)}")
    print(f"with it open, refreshing every {args.every:g} s: {spread(beside)}")
    print(f"ratio of the medians: {statistics.median(beside) / statistics.median(without):.3f}x")


if __name__ == "__main__":
    main()
