"""What `sweepkit dashboard` costs its server: a sweep of 1,000 runs, refreshed as its pages are.

1. A SQLite store with a random sweep of --runs runs: all but --running finished
   (config, metric, summary), --running claimed and still running. One of those
   is a real offline wandb run (bench/steps_run.py in its own process) logging
   `loss` --rate times a second, its folder recorded by a heartbeat as the agent
   records it; the others have not called wandb.init yet.
2. `sweepkit dashboard` over that store, in its own process (uvicorn), asked
   over loopback HTTP as a page asks it (the times are what a page waits, so the
   server's time and a little more): the first load of the sweep page (the page,
   /api/sweeps, /api/sweeps/ID), then
   the two refreshes an open page makes every 2 s while the run logs: the sweep
   (all its runs, with its parallel coordinates, and the new points of the metric
   curves it draws) and the logging run (`since`: its new points only). Median and
   slowest ms, beside the store's own read of the sweep (`LocalBackend.sweep`,
   what `sweepkit status` reads) and a fresh read of the whole run log: the
   ratios are what the dashboard adds, and what reading only what is new saves.
   The run page's refreshes in the last third of the run against the first:
   a refresh costs what is new, not what the run logged before (about 1x).
   Parameter importance (a random forest over the finished runs): its first fit,
   and what it costs when asked again with no run finished since (the cache).
3. Memory: once the run has ended, --refreshes more pairs of refreshes (1,800 is
   an hour of an open page); the server's resident memory after a tenth of them,
   half and all.
Targets: a refresh under 100 ms, the first load under 1 s, memory flat (within 1.1x).

The machine may be shared and noisy: compare the figures of one run with each other.

    python bench/dashboard.py                      # 1,000 runs, 10 running, 60 s of logging
    python bench/dashboard.py --runs 5000 --steps 100000 --rate 1000
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

SWEEP = {
    "method": "random",
    "metric": {"name": "loss", "goal": "minimize"},
    "parameters": {
        "lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1e-1},
        "layers": {"values": [1, 2, 3, 4]},
        "optimizer": {"values": ["adam", "sgd"]},
    },
}


def offline_workdir() -> Path:
    """A fresh folder for the benchmark, with wandb offline and all its folders inside it."""
    workdir = Path(tempfile.mkdtemp(prefix="sweepkit-bench-"))
    for name in ("DIR", "DATA_DIR", "CACHE_DIR", "CONFIG_DIR"):
        os.environ[f"WANDB_{name}"] = str(workdir / f"wandb-{name.lower().replace('_', '-')}")
    os.environ.update(WANDB_MODE="offline", WANDB_SILENT="true")
    return workdir


def fill_store(path: Path, runs: int, running: int) -> tuple[str, list[str]]:
    """A sweep of `runs` runs, the last `running` of them running; its id and theirs."""
    from bench.agent_overhead import claim_and_finish
    from sweepkit.backends.store import open_store

    store = open_store(path)
    sweep_id = store.create_sweep(SWEEP)
    for _ in range(runs - running):
        claim_and_finish(store, sweep_id, lambda config: config["lr"] * config["layers"])
    still_running = [store.claim_run(sweep_id).id for _ in range(running)]
    store.close()
    return sweep_id, still_running


def start_logging_run(workdir: Path, steps: int, rate: float) -> tuple[subprocess.Popen, Path]:
    """bench/steps_run.py logging `steps` points, `rate` a second, in its own process; and its
    run folder."""
    runs = workdir / "wandb-dir" / "wandb"
    script = str(REPO / "bench" / "steps_run.py")
    process = subprocess.Popen([sys.executable, script, str(steps), str(rate)], cwd=REPO)
    while not (found := list(runs.glob("offline-run-*/run-*.wandb"))):
        if process.poll() is not None:
            raise SystemExit(f"the logging run ended before wandb.init (exit {process.returncode})")
        time.sleep(0.05)
    return process, found[0].parent


def ms(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return 1000 * (time.perf_counter() - start)


def resident_mib(pid: int) -> float:
    pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def start_dashboard(store: Path) -> tuple[subprocess.Popen, str]:
    """`sweepkit dashboard` on a free loopback port, once it answers; and its URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "sweepkit", "dashboard", "--store", str(store)]
    server = subprocess.Popen([*command, "--port", str(port)], stdout=subprocess.PIPE, text=True)
    atexit.register(server.terminate)
    printed = server.stdout.readline()  # the URL, printed just before it listens
    if not printed.startswith("http://"):
        raise SystemExit(f"sweepkit dashboard did not start: {printed!r}")
    base_url = f"http://127.0.0.1:{port}"
    while True:
        try:
            urllib.request.urlopen(base_url + "/api/sweeps", timeout=5).close()
            return server, base_url
        except OSError:
            if server.poll() is not None:
                raise SystemExit(f"sweepkit dashboard exited ({server.returncode})") from None
            time.sleep(0.05)


def line(name: str, times: list[float], base: float | None = None) -> str:
    median = statistics.median(times)
    ratio = f"{median / base:6.2f}x" if base else ""
    return f"  {name:44s} {median:8.1f} {max(times):8.1f}  {ratio}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000, help="runs of the sweep")
    parser.add_argument("--running", type=int, default=10, help="of which still running")
    parser.add_argument("--steps", type=int, default=30_000, help="points the logging run logs")
    parser.add_argument("--rate", type=float, default=500, help="points it logs a second")
    parser.add_argument("--refreshes", type=int, default=1800, help="refresh pairs for memory")
    args = parser.parse_args()

    workdir = offline_workdir()

    import httpx

    from sweepkit.backends.local import LocalBackend
    from sweepkit.backends.store import open_store
    from sweepkit.views.logged import RunReader

    store_path = workdir / "sweeps.db"
    print(f"workdir {workdir}; {os.cpu_count()} CPUs")
    sweep_id, running = fill_store(store_path, args.runs, args.running)
    process, run_folder = start_logging_run(workdir, args.steps, args.rate)
    store = open_store(store_path)
    store.heartbeat(sweep_id, running[0], run_dir=str(run_folder))
    store.close()
    run_url = f"/api/sweeps/{sweep_id}/runs/{running[0]}"

    server, base_url = start_dashboard(store_path)
    client = httpx.Client(base_url=base_url)
    first_load = [
        ms(lambda: client.get("/").raise_for_status()),
        ms(lambda: client.get("/api/sweeps").raise_for_status()),
        ms(lambda: client.get(f"/api/sweeps/{sweep_id}").raise_for_status()),
    ]

    importance_url = f"/api/sweeps/{sweep_id}/importance"
    first_fit = ms(lambda: client.get(importance_url).raise_for_status())
    backend = LocalBackend(store_path)
    have: dict[str, int] = {}
    sweep_ms, run_ms, store_ms, importance_ms, points = [], [], [], [], []
    curves_have: dict[str, int] = {}

    def refresh_sweep() -> None:
        """What an open sweep page asks every 2 s: the sweep, and its runs' curves' new points."""
        since = {"since": json.dumps(curves_have)}
        answer = client.get(f"/api/sweeps/{sweep_id}", params=since).raise_for_status().json()
        for run in answer["curves"]["runs"]:
            curves_have[run["id"]] = curves_have.get(run["id"], 0) + len(run["points"])

    def refresh_run() -> None:
        answer = client.get(run_url, params={"since": json.dumps(have)}).raise_for_status().json()
        new = answer["logged"]["scalars"] if answer["logged"] else {}
        for key, pts in new.items():
            have[key] = have.get(key, 0) + len(pts)
        points.append(sum(len(p) for p in new.values()))

    def read_whole_log() -> None:
        reader = RunReader(next(run_folder.glob("run-*.wandb")))
        while reader.update():
            pass

    while process.poll() is None:
        sweep_ms.append(ms(refresh_sweep))
        run_ms.append(ms(refresh_run))
        store_ms.append(ms(lambda: backend.sweep(sweep_id)))
        importance_ms.append(ms(lambda: client.get(importance_url).raise_for_status()))
        time.sleep(0.2)  # a page asks every 2 s; this asks more often, to sample the run more
    if process.returncode != 0:
        raise SystemExit(f"the logging run failed (exit {process.returncode})")
    refresh_run()
    assert have.get("loss") == args.steps, have  # every point reached the page, once
    whole_ms = [ms(read_whole_log) for _ in range(3)]

    print(f"\n{args.runs} runs ({args.running} running), one logging {args.steps:,} points:")
    print(f"  {'':44s} {'median':>8s} {'slowest':>8s}  (ms)")
    print(f"  {'first load (page, sweeps, the sweep)':44s} {sum(first_load):8.1f}")
    print(line("the store's own read of the sweep", store_ms))
    print(line("refresh: the sweep page (its runs, curves)", sweep_ms, statistics.median(store_ms)))
    print(f"  {'importance: the first fit':44s} {first_fit:8.1f}")
    print(line("importance asked again, nothing new finished", importance_ms))
    print(line("a fresh read of the whole run log (at its end)", whole_ms))
    print(line("refresh: the run page (new points only)", run_ms[1:], statistics.median(whole_ms)))
    third = max(1, len(run_ms) // 3)
    early, late = statistics.median(run_ms[1 : third + 1]), statistics.median(run_ms[-third:])
    print(f"  {'the run page, last third of the run vs first':44s} {late:8.1f} {early:8.1f}"
          f"  {late / early:6.2f}x")  # fmt: skip
    print(f"  {len(run_ms)} refreshes while it logged, the first reading all there was; median "
          f"{statistics.median(points[1:]):.0f} new points each")  # fmt: skip

    marks = {max(1, args.refreshes * part // 10): None for part in (1, 5, 10)}
    for index in range(1, args.refreshes + 1):
        refresh_sweep()
        refresh_run()
        if index in marks:
            marks[index] = resident_mib(server.pid)
    first_mark, *_, last_mark = marks
    print(
        f"\nthe server's resident memory over {args.refreshes:,} more refresh pairs (the run ended):"
    )
    print("  " + "; ".join(f"after {n:,}: {mib:.1f} MiB" for n, mib in marks.items())
          + f" ({marks[last_mark] / marks[first_mark]:.3f}x)")  # fmt: skip


if __name__ == "__main__":
    main()
