"""Whether this machine can talk to a W&B server, decided without touching the network."""

from __future__ import annotations

import netrc
import os
import socket
import threading
from pathlib import Path
from urllib.parse import urlparse

OFFLINE_MODES = ("offline", "dryrun", "disabled")


def wandb_offline_requested() -> bool:
    """True when WANDB_MODE asks wandb not to reach a server."""
    return os.environ.get("WANDB_MODE", "").lower() in OFFLINE_MODES


def wandb_credentials_configured() -> bool:
    """True when wandb would find credentials: WANDB_API_KEY, an identity token file, or ~/.netrc."""
    return bool(os.environ.get("WANDB_IDENTITY_TOKEN_FILE") or api_key())


def api_key() -> str | None:
    """The W&B API key wandb would use: WANDB_API_KEY, else the key `wandb login` wrote.

    Mirrors where `wandb login` stores the key: the netrc entry for the W&B
    server ($WANDB_BASE_URL, else wandb's default) or for the W&B host behind it
    (wandb 0.31's default server is a CoreWeave Forge proxy of api.wandb.ai);
    $NETRC moves the file.
    """
    if os.environ.get("WANDB_API_KEY"):
        return os.environ["WANDB_API_KEY"]
    path = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    try:
        entries = netrc.netrc(path)
    except (OSError, netrc.NetrcParseError):
        return None
    for host in sorted(_server_hosts()):
        entry = entries.authenticators(host)
        if entry and entry[2]:
            return entry[2]
    return None


def server_url() -> str:
    """The W&B server wandb would talk to: $WANDB_BASE_URL, else wandb's default."""
    try:
        from wandb.sdk.lib import urls  # wandb's own notion of its default server

        default = urls.DEFAULT_BASE_URL
    except (ImportError, AttributeError):  # a wandb from before Forge
        default = "https://api.wandb.ai"
    return os.environ.get("WANDB_BASE_URL") or default


def _server_hosts() -> set[str]:
    """The hosts whose netrc entry wandb would use for the configured server."""
    base = server_url()
    servers = {base}
    try:
        from wandb.sdk.lib import urls

        servers.add(urls.forge_upstream_url(base))  # the W&B host behind wandb's default proxy
    except (ImportError, AttributeError):
        pass
    return {host for host in (urlparse(s).hostname for s in servers) if host}


def unreachable_reason(url: str, timeout_s: float = 5.0) -> str | None:
    """Why a TCP connection to the server behind `url` fails within `timeout_s`, or None if it opens.

    wandb itself retries an unreachable server for minutes before it gives up;
    this answers in seconds whether there is a network path at all.
    """
    parsed = urlparse(url)
    host = parsed.hostname or ""
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    outcome: list[str | None] = []

    def connect() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout_s).close()
            outcome.append(None)
        except OSError as exc:  # name lookup, refused, unreachable, timed out
            outcome.append(exc.strerror or str(exc) or type(exc).__name__)

    # A thread, because name lookup ignores the socket timeout.
    probe = threading.Thread(target=connect, daemon=True)
    probe.start()
    probe.join(timeout_s + 1)
    if not outcome:
        return f"no answer from {host}:{port} in {timeout_s:g} s"
    return None if outcome[0] is None else f"{host}:{port}: {outcome[0]}"


def use_wandb_server() -> bool:
    """The `auto` choice: the W&B server when credentials exist and offline mode is not asked for."""
    return wandb_credentials_configured() and not wandb_offline_requested()
