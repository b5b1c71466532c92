"""`sweepkit dashboard`: the sweeps of a local store, live in the browser.

`app` is the web app (Starlette), `data` what its pages show (read from the store and the
runs' logs, never written), `serve` starts it (uvicorn). Starlette and uvicorn are the
`dashboard` extra: `pip install 'sweepkit[dashboard]'`.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING

from sweepkit.errors import SweepkitError

if TYPE_CHECKING:
    from sweepkit.dashboard.data import Store

LOOPBACK = ("127.0.0.1", "localhost", "::1")
# A page asks again every 2 s: a PostgreSQL server that is away is waited for this long
# (not an agent's minutes), then the page says so and asks again.
PATIENCE_S = 2.0


class DashboardUnavailableError(SweepkitError):
    """The dashboard's server is not installed, or cannot listen where it was asked to."""


def serve(
    open_store: Callable[[], Store], *, host: str, port: int, sweep_id: str | None = None
) -> None:
    """Serve the dashboard of the store that `open_store` opens until Ctrl-C; print its URL
    first (with its token, off loopback).

    Raises:
        DashboardUnavailableError: starlette or uvicorn is missing, or the port is taken.
    """
    try:
        import uvicorn

        from sweepkit.dashboard.app import make_app
    except ImportError as exc:
        raise DashboardUnavailableError(
            f"the dashboard needs {exc.name}: pip install 'sweepkit[dashboard]'"
        ) from None
    _check_free(host, port)
    os.environ.setdefault("SWEEPKIT_STORE_PATIENCE", f"{PATIENCE_S:g}")
    token = None if host in LOOPBACK else secrets.token_urlsafe(16)
    query = f"?token={token}" if token else ""
    where = f"#/sweep/{sweep_id}" if sweep_id else "#/"
    print(f"http://{host}:{port}/{query}{where}", flush=True)
    uvicorn.run(make_app(open_store, token=token), host=host, port=port, log_level="warning")


def _check_free(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise DashboardUnavailableError(
                f"cannot listen on {host}:{port}: {exc.strerror}; choose another --port"
            ) from None
