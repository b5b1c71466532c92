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

    Mirrors where `wandb login` stores the key: the netrc entry for the W&B
    server ($WANDB_BASE_URL, else wandb's default) or for the W&B host behind it
    (wandb 0.31's default server is a CoreWeave Forge proxy of api.wandb.ai);
    $NETRC moves the file.
    """
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    path = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    try:
        entries = netrc.netrc(path)
    except (OSError, netrc.NetrcParseError):
        return False
    for host in _server_hosts():
        entry = entries.authenticators(host)
        if entry and entry[2]:
            return True
    return False


def _server_hosts() -> set[str]:
    """The hosts whose netrc entry wandb would use for the configured server."""
    try:
        from wandb.sdk.lib import urls  # wandb's own notion of its default server and its proxies

        base = os.environ.get("WANDB_BASE_URL") or urls.DEFAULT_BASE_URL
        servers = {base, urls.forge_upstream_url(base)}
    except (ImportError, AttributeError):  # a wandb from before Forge
        servers = {os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai"}
    return {host for host in (urlparse(s).hostname for s in servers) if host}


def use_wandb_server() -> bool:
    """The `auto` choice: the W&B server when credentials exist and offline mode is not asked for."""
    return wandb_credentials_configured() and not wandb_offline_requested()
