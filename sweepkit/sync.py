"""`sweepkit sync`: take a local sweep to W&B once a network is back.

Two steps, both W&B's own tools: `wandb sync` uploads the offline run folders,
then `wandb.sweep(config, prior_runs=[...])` creates a W&B sweep from the same
YAML with those runs as its prior runs, so the W&B app shows them as one sweep
and a bayes search can go on from them online.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

from sweepkit.backends.local import LocalBackend
from sweepkit.backends.wandb import WandbBackend, WandbUnavailableError
from sweepkit.credentials import wandb_offline_requested
from sweepkit.errors import SweepkitError


@dataclasses.dataclass(frozen=True)
class SyncPlan:
    """What a sync would do: the run folders to upload and the sweep config to register."""

    sweep_id: str
    runs: list[tuple[str, str]]  # (run id, run folder) not uploaded yet
    already_synced: list[str]
    config: dict
    elsewhere: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (run id, host)

    def describe(self) -> str:
        lines = [
            f"sweep {self.sweep_id}: {len(self.runs)} run(s) to upload, {len(self.already_synced)} already synced"
        ]
        for run_id, folder in self.runs:
            size = (
                sum(f.stat().st_size for f in Path(folder).rglob("*") if f.is_file())
                if Path(folder).exists()
                else 0
            )
            lines.append(f"  {run_id}  {folder}  ({size / 1e6:.1f} MB)")
        if self.runs:
            total = len(self.runs) + len(self.already_synced)
            lines.append(
                f"then: wandb.sweep(<{self.config.get('method')} sweep config>, prior_runs=<{total} run ids>)"
            )
        if self.elsewhere:
            hosts = sorted({host for _, host in self.elsewhere})
            lines.append(
                f"{len(self.elsewhere)} run(s) not uploaded: their folders are on "
                f"{', '.join(hosts)}, not here; run `sweepkit sync {self.sweep_id}` there"
            )
        return "\n".join(lines)


def plan_sync(backend: LocalBackend, sweep_id: str) -> SyncPlan:
    info = backend.sweep(sweep_id)  # an unknown id fails here
    store = backend.store
    hosts = {r.id: r.host or "another machine" for r in info.runs}
    unsynced = store.unsynced_runs(sweep_id)
    here = [(run_id, folder) for run_id, folder in unsynced if Path(folder).is_dir()]
    away = [(run_id, hosts[run_id]) for run_id, folder in unsynced if not Path(folder).is_dir()]
    return SyncPlan(sweep_id, here, store.synced_run_ids(sweep_id), info.config, away)


def sync(
    backend: LocalBackend,
    plan: SyncPlan,
    *,
    project: str | None,
    entity: str | None,
    create_sweep: bool = True,
) -> str | None:
    """Upload the planned runs, then register the W&B sweep; return its id (None if nothing to do).

    Raises:
        WandbUnavailableError: no credentials, offline mode, or `wandb sync` failed;
            no run is marked synced then.
    """
    if wandb_offline_requested():
        raise WandbUnavailableError("WANDB_MODE asks for offline: unset it to sync")
    try:
        wandb_backend = WandbBackend()
    except WandbUnavailableError:
        raise WandbUnavailableError(
            "cannot sync without W&B credentials: run `wandb login` (or set WANDB_API_KEY), then sync again"
        ) from None
    if not plan.runs:
        return None
    folders = [folder for _, folder in plan.runs]
    command = [sys.executable, "-m", "wandb", "sync", *_scope(project, entity), *folders]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        tail = (result.stderr.strip() or result.stdout.strip()).splitlines()[-1:] or ["no output"]
        raise WandbUnavailableError(
            f"`wandb sync` failed ({tail[0]}); nothing was marked synced, run again later"
        )
    uploaded = [run_id for run_id, _ in plan.runs]
    wandb_sweep = None
    if create_sweep:
        prior = plan.already_synced + uploaded
        wandb_sweep = wandb_backend.create(
            plan.config, project=project, entity=entity, prior_runs=prior
        )
    backend.store.mark_synced(plan.sweep_id, uploaded, wandb_sweep)
    return wandb_sweep


def _scope(project: str | None, entity: str | None) -> list[str]:
    return [*(["--project", project] if project else []), *(["--entity", entity] if entity else [])]


def require_local(sweep_id: str) -> None:
    if not sweep_id.startswith("local-"):
        raise SweepkitError(
            f"{sweep_id} is a W&B sweep already: sync uploads local sweeps (local-...)"
        )
