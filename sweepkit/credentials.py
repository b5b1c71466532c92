"""Whether this machine can talk to a W&B server, decided without touching the network."""

from __future__ import annotations

import netrc
import os
from pathlib import Path
from urllib.parse import urlparse

OFFLINE_MODES = ("offline", "dryrun", "disabled")


def wandb_offline_requested() -> bool:
    """True when WANDB_MODE asks wandb not to reach a server."""
    return os.environ.get("WANDB_MODE", "").lower() in OFFLINE_MODES


def wandb_credentials_configured() -> bool:
    """True when wandb would find credentials: WANDB_API_KEY, an identity token file, or ~/.netrc.

    Mirrors where `wandb login` stores the key (the netrc entry for the W&B host,
    $WANDB_BASE_URL or api.wandb.ai; $NETRC moves the file).
    """
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    path = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    try:
        entry = netrc.netrc(path).authenticators(host or "")
    except (OSError, netrc.NetrcParseError):
        return False
    return bool(entry and entry[2])


def use_wandb_server() -> bool:
    """The `auto` choice: the W&B server when credentials exist and offline mode is not asked for."""
    return wandb_credentials_configured() and not wandb_offline_requested()
