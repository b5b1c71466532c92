"""Pick the backend: for a new sweep by choice (auto|wandb|local), for an existing one by its id."""

from __future__ import annotations

from sweepkit.backends.base import AgentOptions, Backend, UnknownSweepError
from sweepkit.backends.local import LocalBackend
from sweepkit.backends.store import LOCAL_PREFIX
from sweepkit.core.records import RunRecord, SweepInfo
from sweepkit.credentials import use_wandb_server, wandb_offline_requested
from sweepkit.errors import ConfigError
from sweepkit.log import note

BACKEND_CHOICES = ("auto", "wandb", "local")

__all__ = [
    "AgentOptions",
    "Backend",
    "RunRecord",
    "SweepInfo",
    "UnknownSweepError",
    "backend_for_id",
    "backend_for_new_sweep",
]


def backend_for_new_sweep(choice: str, store: str | None = None) -> Backend:
    """`auto` is W&B when credentials are configured and WANDB_MODE is not offline, else local."""
    if choice not in BACKEND_CHOICES:
        raise ConfigError(f"--backend must be one of {', '.join(BACKEND_CHOICES)}, got {choice!r}")
    if choice == "auto":
        choice = "wandb" if use_wandb_server() else "local"
        reason = (
            "W&B credentials found"
            if choice == "wandb"
            else ("WANDB_MODE is offline" if wandb_offline_requested() else "no W&B credentials")
        )
        note(f"backend: {choice} ({reason}; --backend to choose)")
    if choice == "wandb":
        from sweepkit.backends.wandb import WandbBackend

        return WandbBackend()
    return LocalBackend(store)


def backend_for_id(sweep_id: str, store: str | None = None) -> Backend:
    """Local ids start with ``local-``; any other id is a W&B sweep (``ID`` or ``entity/project/ID``)."""
    if sweep_id.startswith(LOCAL_PREFIX):
        return LocalBackend(store)
    from sweepkit.backends.wandb import WandbBackend, WandbUnavailableError

    try:
        return WandbBackend()
    except WandbUnavailableError as exc:
        raise UnknownSweepError(
            f"unknown sweep {sweep_id}: local sweep ids start with {LOCAL_PREFIX}, and a W&B id needs "
            "W&B credentials (`wandb login`)"
        ) from exc
