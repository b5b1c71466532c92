"""The local agent's loop: claim a run, start it, watch it, record how it ended.

It reads in the order it runs: `run_agent` sets up (the executor, wandb's service, the
signal handlers, the guard), `_Agent.loop` claims until the sweep, --count or a signal
says stop, `_Agent.perform` runs one claimed run from its folder to its recorded end,
and `_RunWatch.wait` follows it while it goes (its log, heartbeats, early termination,
cancel, timeout, signals). What a run logged reaches the scheduler through its wandb
transaction log (`sweepkit.follow`), read while it runs and once it has ended: the
user's code needs no sweepkit API.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import wandb

from sweepkit import proctree
from sweepkit.backends.base import AgentOptions, AgentResult
from sweepkit.backends.store import Store, StoreError
from sweepkit.core import scheduling
from sweepkit.core.lifecycle import FINISHED, PREEMPTED, Ending, RunState
from sweepkit.core.records import ClaimedRun, StoredSweep, SweepInfo
from sweepkit.follow import RunFollower
from sweepkit.guard import Guard
from sweepkit.log import note
from sweepkit.progress import LiveLines, OutputTail, sweep_line, sweep_total
from sweepkit.runner.process import Executor, RunProcess
from sweepkit.runner.reaper import reap
from sweepkit.runner.target import IN_PROCESS, Function
from sweepkit.runner.workspace import RunFolder, run_environment, run_log_dir

HEARTBEAT_S = 2.0
WAITING = {
    "paused": "is paused: waiting for `sweepkit resume`",
    "running": "has runs still going elsewhere: waiting (a crashed one is retried here)",
}
STOP_GRACE_S = 30.0  # after SIGTERM, how long a stopped run may take to finish its wandb run
LEFTOVER_GRACE_S = 5.0  # after a run ended, how long the processes it left get after SIGTERM
# Slurm signals every process of a task one after another, the agent among the last: a run
# that died of a signal may be seen ended before the agent's own SIGTERM arrives.
SIGTERM_SKEW_S = 2.0


class _Interrupts:
    """Ctrl-C once: finish the current run, then stop. Twice: stop the run now (killed).

    SIGTERM from outside (SLURM preemption, `docker stop`, `timeout`) stops the
    run now too, but as preempted: its config is offered again. So does SIGHUP
    (the agent's terminal went away: a `nohup` agent never sees it).
    """

    def __init__(self, label: str) -> None:
        self.drain = False
        self.kill = False
        self._sigterm = threading.Event()  # set by SIGTERM: preempted, and something to wait on
        self._label = label
        self._previous: list[tuple[int, Any]] = []

    def __enter__(self) -> _Interrupts:
        if threading.current_thread() is threading.main_thread():  # signals go to the main thread
            for signum, handler in (
                (signal.SIGINT, self._on_sigint),
                (signal.SIGTERM, self._on_sigterm),
                (signal.SIGHUP, self._on_sigterm),
            ):
                self._previous.append((signum, signal.signal(signum, handler)))
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous:  # a library caller gets its own handlers back
            signal.signal(signum, handler)

    def _on_sigint(self, signum: int, frame: Any) -> None:
        if self.drain:
            self.kill = True
            return
        self.drain = True
        note(f"{self._label}finishing the current run, then stopping (Ctrl-C again to stop it now)")

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        self.drain = self.kill = True
        self._sigterm.set()

    @property
    def preempted(self) -> bool:
        return self._sigterm.is_set()

    def preempted_within(self, seconds: float) -> bool:
        """Whether SIGTERM reaches this agent within `seconds` (at once if it has)."""
        return self._sigterm.wait(seconds)


class _Screen:
    """What this agent shows besides its own lines.

    Each run's output goes to its log file. Unless the agent was given a run-log
    folder (workers are), the new lines of that file are relayed to the agent's
    stderr as they come; on a terminal, the last line(s) keep the sweep's
    progress (`sweepkit.progress`).
    """

    def __init__(self, relay: bool, progress: Callable[[], list[str]] | None) -> None:
        self._relay = relay
        self._progress = progress
        self._tail: OutputTail | None = None
        self.live = LiveLines()

    def follow(self, log_file: Path) -> None:
        self._tail = OutputTail(log_file) if self._relay else None

    def pump(self, *, ended: bool = False) -> None:
        if self._tail is not None:
            LiveLines.echo(self._tail.rest() if ended else self._tail.lines())

    def refresh(self) -> None:
        if self.live.enabled and self._progress is not None:
            self.live.update(self._progress())


def run_agent(
    store: Store,
    sweep_id: str,
    *,
    function: Function | None = None,
    count: int | None = None,
    options: AgentOptions | None = None,
    sweep_info: Callable[[], SweepInfo] | None = None,
) -> AgentResult:
    """Perform runs of a local sweep until it is done, `count` runs have ended, or Ctrl-C.

    Args:
        store: the sweep's store.
        sweep_id: a local sweep id.
        function: ``module:attr`` or a function to call (`place` says how its runs start),
            None for the sweep's program or sweepkit's train.
        count: the most runs to perform.
        options: its label and run-log folder; failure, timeout and crash limits.
        sweep_info: reads the sweep as `sweepkit status` does, for the live progress line.

    Raises:
        StoreError: the store failed (damaged, full, deleted): the run going then is ended,
            and left `running` in the store for the reaper.
    """
    options = options or AgentOptions()
    sweep = store.sweep(sweep_id)
    assert sweep is not None, "resolved by the backend"
    executor = Executor(sweep.config, function)
    # One wandb-core service for all of this agent's function runs: wandb.setup() starts it and
    # puts its address in WANDB_SERVICE, which each run inherits, so a run's wandb.init
    # connects instead of starting its own service (docs/performance.md). In-process runs tear
    # wandb down before each run, as W&B's agent does, so they cannot share one.
    if executor.mode != IN_PROCESS and not executor.is_program:  # programs start their own
        wandb.setup()
    result = AgentResult()
    total = sweep_total(sweep.config)

    def progress() -> list[str]:
        lines = [sweep_line(sweep_info(), total)] if sweep_info else []
        if count is not None:
            lines.append(f"  this agent: {result.performed}/{count} runs, {result.failed} failed")
        return lines

    # Without a run-log folder, runs log to the sweep's and the agent relays their lines.
    screen = _Screen(relay=options.log_dir is None, progress=progress)
    prefix = f"[{options.label}] " if options.label else ""
    with _Interrupts(prefix) as interrupts, screen.live, Guard() as guard:
        agent = _Agent(store, sweep, executor, options, interrupts, screen, guard)
        # Told to stop now, the agent does not wait out a lost server's patience: the store
        # gives up (StoreError), the run going is ended by `perform`, the reaper offers it again.
        store.stop_waiting = lambda: interrupts.kill  # type: ignore[method-assign]
        try:
            agent.loop(result, count)
        except StoreError as exc:
            if interrupts.kill:  # the exit code says the signal, as after a recorded stop
                exc.exit_code = 143 if interrupts.preempted else 130
            raise
        finally:
            del store.stop_waiting  # a library caller's store waits as before
        result.interrupted = interrupts.drain
        result.preempted = interrupts.preempted
    result.unfinished = scheduling.unfinished_points(store.runs(sweep_id), options.max_retries)
    return result


class _Agent:
    """One agent's run loop over a sweep, and what it holds while it runs."""

    def __init__(
        self,
        store: Store,
        sweep: StoredSweep,
        executor: Executor,
        options: AgentOptions,
        interrupts: _Interrupts,
        screen: _Screen,
        guard: Guard,
    ) -> None:
        self.store, self.sweep, self.executor, self.options = store, sweep, executor, options
        self.interrupts, self.screen, self.guard = interrupts, screen, guard
        self.sweep_id = sweep.id
        self.wandb_dir = Path(os.environ.get("WANDB_DIR") or os.getcwd()).resolve()
        metric = sweep.config.get("metric") or {}
        self.metric, self.goal = metric.get("name"), metric.get("goal", "minimize")
        self.prefix = f"[{options.label}] " if options.label else ""
        self.log_dir = (options.log_dir or run_log_dir(self.sweep_id)).resolve()
        self.log_dir.mkdir(parents=True, exist_ok=True)

    def loop(self, result: AgentResult, count: int | None) -> None:
        """Claim and perform runs until the sweep, `count` or Ctrl-C says stop."""
        store, sweep_id, options = self.store, self.sweep_id, self.options
        # --retry-failed offers again what failed before this agent started, each point once.
        retry_ended_before = time.time() if options.retry_failed else None
        consecutive_failures = 0
        waiting_for: str | None = None  # the sweep state we last said we wait on
        while (count is None or result.performed < count) and not self.interrupts.drain:
            reap(store, sweep_id, options.crash_grace_s)  # runs whose agent died end first
            run = store.claim_run(
                sweep_id,
                max_retries=options.max_retries,
                log_dir=self.log_dir,
                agent=options.label,
                retry_ended_before=retry_ended_before,
                wandb_dir=self.wandb_dir,
            )
            if run is None:
                # Still "running" with nothing to hand out: other agents' runs are going, and one
                # whose agent died is offered again here once its heartbeat is stale.
                state = store.sweep_state(sweep_id)
                if state not in ("paused", "running"):
                    break
                if state == "running" and not store.has_running(sweep_id):
                    break  # nothing left but points lost for good (see unfinished_points)
                if waiting_for != state:
                    note(f"{self.prefix}sweep {sweep_id} {WAITING[state]}")
                    waiting_for = state
                self.screen.refresh()
                time.sleep(HEARTBEAT_S)
                continue
            waiting_for = None
            result.performed += 1
            ending = self.perform(run)
            if ending.state is RunState.PREEMPTED:
                result.preempted_run = run.id
            if ending.state is RunState.FAILED:
                result.failed += 1
                consecutive_failures += 1
                if consecutive_failures >= options.max_failures:
                    last_line = (ending.reason or "").strip().splitlines()[-1:] or ["unknown error"]
                    result.gave_up = (
                        f"{consecutive_failures} runs failed in a row; the last: {last_line[0]}"
                    )
                    break
            else:
                consecutive_failures = 0
            self.screen.refresh()  # this agent's counts now hold this run

    def perform(self, run: ClaimedRun) -> Ending:
        """One claimed run: write its parameters, start it, watch it, record how it ended
        (a failed run's reason is its error: a traceback, an exit code)."""
        sweep_id, prefix = self.sweep_id, self.prefix
        folder = RunFolder.make(self.wandb_dir, sweep_id, run.id)
        folder.write_params(run.config)
        log_file = Path(str(run.log_file))
        params = ", ".join(f"{k}={v['value']}" for k, v in run.config.items())
        where = "" if self.options.log_dir is None else f" (log: {log_file})"
        note(f"{prefix}run {run.id} ({run.display_name}) started: {params}{where}")
        self.screen.follow(log_file)
        token = proctree.new_token(run.id)
        env = run_environment(self.sweep, run, self.wandb_dir, folder.param_file, token)
        try:
            process = self.executor.start(
                run.config, env, folder, log_file, agent_fds=(self.guard.fileno(),)
            )
        except OSError as exc:  # its command does not exist or cannot be executed
            return self._record_not_started(run, f"its command could not start: {exc}")
        assert process.pid is not None
        self.guard.watch(process.pid, token)  # should this agent die, the guard ends the run
        self.screen.refresh()
        follower = RunFollower(self.wandb_dir, run.id, self.metric, self.goal)
        watch = _RunWatch(
            self.store, sweep_id, run.id, follower, self.interrupts, self.options.run_timeout_s,
            self.screen, (process.pid, token), folder.stop_file,
        )  # fmt: skip
        try:
            self.store.prepare_claim(sweep_id)  # while the run trains, not while the sweep is held
            ending = watch.wait(process)
            follower.finish()
        finally:  # also on a store failure: nothing the run started outlives it
            if process.poll() is None:  # the agent is stopping (its own line says why)
                with contextlib.suppress(OSError):
                    folder.stop_file.write_text("stopped: its agent is stopping\n")
            if left := proctree.end_tree(process.pid, token, LEFTOVER_GRACE_S):
                note(f"{prefix}run {run.id} left {len(left)} process(es) running: ended them")
            self.guard.forget(token)
        self.screen.pump(ended=True)

        error = ending.reason
        if error is None and folder.error_file.exists():
            error = folder.error_file.read_text()
        state = ending.state
        if state is RunState.FINISHED and process.poll() != 0:
            state, error = RunState.FAILED, error or f"exited with code {process.poll()}"
        metrics = follower.metrics
        progress = metrics.progress()
        recorded = self.store.finish_run(
            sweep_id,
            run.id,
            state=state,
            progress=progress if self.metric else None,
            summary=metrics.summary(),
            run_dir=str(follower.run_file.parent) if follower.run_file else None,
            error=error,
        )
        if not recorded:
            note(f"{prefix}run {run.id} was reaped meanwhile (no heartbeat): its first end stands")
        value = progress.value
        note(
            f"{prefix}run {run.id} {state}"
            + (f": {self.metric}={value:g}" if value is not None else "")
        )
        if follower.run_file is None and state is RunState.FINISHED:
            note(f"{prefix}run {run.id} never called wandb.init: it logged nothing, so no metric")
        for problem in follower.problems():
            note(f"{prefix}run {run.id}: {problem}")
        return Ending(state, error)

    def _record_not_started(self, run: ClaimedRun, error: str) -> Ending:
        """A run whose process could not start is a failed run, counted as any other."""
        self.store.finish_run(
            self.sweep_id, run.id, state=RunState.FAILED, progress=None, summary={},
            run_dir=None, error=error,
        )  # fmt: skip
        note(f"{self.prefix}run {run.id} failed: {error}")
        return Ending(RunState.FAILED, error)


class _RunWatch:
    """Waits for one run: follows its log, heartbeats, early termination, cancel, timeout,
    Ctrl-C twice.

    Every 0.1 s it reads what the run added to its log (a bounded amount), so
    a beat never waits on a long read: beats go out every HEARTBEAT_S however
    much the run logs, each with only the metric's new points.
    """

    def __init__(
        self,
        store: Store,
        sweep_id: str,
        run_id: str,
        follower: RunFollower,
        interrupts: _Interrupts,
        timeout_s: float | None,
        screen: _Screen,
        tree: tuple[int, str],
        stop_file: Path,
    ) -> None:
        self.store, self.sweep_id, self.run_id = store, sweep_id, run_id
        self.follower, self.interrupts, self.timeout_s = follower, interrupts, timeout_s
        self.screen = screen
        self.tree = tree  # the run's process group and token (`sweepkit.proctree`)
        self.stop_file = stop_file  # why we ended it, for the run's own line (RunStopped)

    def wait(self, process: RunProcess) -> Ending:
        """Block until the run's process ends; how it ended and, if we ended it, why (a run
        that ended on its own is FINISHED here: its exit code decides after)."""
        started = time.monotonic()
        ending: Ending | None = None  # once we have asked it to end
        ended_at = 0.0
        next_beat = started + HEARTBEAT_S
        while process.wait_for(0.1) is None:  # returns as soon as the run ends
            self.follower.poll()
            self.screen.pump()
            now = time.monotonic()
            if now >= next_beat:  # also while a stopped run winds down: it is still alive
                next_beat = now + HEARTBEAT_S
                verdict = self._beat()
                self.screen.refresh()
                if ending is None:
                    ending = verdict
                    if ending is not None:
                        ended_at = now
                        self._stop(process, ending)
                        continue
            if ending is not None:
                if now - ended_at > STOP_GRACE_S:  # it ignores SIGTERM: all of it goes, now
                    proctree.end_tree(*self.tree, 0.0, term_first=False)
                continue
            if self.interrupts.preempted:
                ending = PREEMPTED
            elif self.interrupts.kill:
                ending = Ending(RunState.KILLED, "stopped by Ctrl-C")
            elif self.timeout_s is not None and now - started > self.timeout_s:
                ending = Ending(
                    RunState.FAILED, f"timed out after {self.timeout_s:g} s (--run-timeout)"
                )
            if ending is not None:
                ended_at = now
                self._stop(process, ending)
        if ending is None and self._preempted_with_its_agent(process.poll()):
            ending = PREEMPTED
        return ending or FINISHED

    def _stop(self, process: RunProcess, ending: Ending) -> None:
        """End the run on purpose: say why here, and leave the why for its own line."""
        note(f"run {self.run_id}: {ending.reason}")
        with contextlib.suppress(OSError):
            self.stop_file.write_text(f"{ending.reason}\n")
        process.terminate()

    def _preempted_with_its_agent(self, code: int | None) -> bool:
        """Whether a run that ended unasked died of its agent's preemption: SIGTERM reached
        the run too (Slurm signals every process of a task, the run's first), before this
        loop saw the agent's own."""
        if code == 0:
            return False
        if self.interrupts.preempted:
            return True
        # Killed by a signal (-N), stopped by SIGTERM (128+N), or its fork server gone (255:
        # the code is lost): wait a moment for the agent's own SIGTERM.
        signalled = code is not None and (code < 0 or code >= 128)
        return signalled and self.interrupts.preempted_within(SIGTERM_SKEW_S)

    def _beat(self) -> Ending | None:
        """Heartbeat with the metric's news; say whether the sweep wants the run ended."""
        metrics, run_file = self.follower.metrics, self.follower.run_file
        self.store.heartbeat(
            self.sweep_id,
            self.run_id,
            metrics.progress() if metrics.metric else None,
            run_dir=str(run_file.parent) if run_file else None,
        )
        if self.store.sweep_state(self.sweep_id) == "canceled":
            return Ending(RunState.KILLED, "the sweep was canceled")
        if self.run_id in _runs_to_stop(self.store, self.sweep_id):
            return Ending(RunState.STOPPED, "stopped by early termination")
        return None


def _runs_to_stop(store: Store, sweep_id: str) -> set[str]:
    """Running runs that the sweep's early_terminate rule (hyperband) would stop now."""
    sweep = store.sweep(sweep_id)
    if sweep is None or not scheduling.stops_runs(sweep.config):
        return set()
    return scheduling.runs_to_stop(
        sweep.config, store.runs(sweep_id), store.metric_points(sweep_id)
    )
