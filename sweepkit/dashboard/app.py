"""The dashboard's web app: one page (page.html with dashboard.js) and the JSON it polls.

Starlette routes, served by uvicorn (`serve`): both from PyPI, in the `dashboard` extra.
The page draws what `sweepkit.dashboard.data` reads; every 2 s it asks again for what
changed (a run's new points only), so it updates in place while agents work.

Bound to 127.0.0.1 by default. On any other address every request must carry the token
printed when the server starts (`?token=...`, which the page passes on): the store's runs
and the files of their folders are not for everyone on the network. No response holds a
store password: the store is named as `redacted` names it.
"""

from __future__ import annotations

import html
import json
import secrets
import threading
from collections.abc import Callable
from importlib import resources
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from sweepkit.dashboard import data
from sweepkit.errors import SweepkitError
from sweepkit.views import table_script


def make_app(open_store: Callable[[], data.Store], *, token: str | None = None) -> Starlette:
    """The dashboard over the sweeps of the store that `open_store` opens; `token`, if given,
    is asked of every request.

    Requests are answered in a pool of threads (Starlette runs plain functions there): each
    thread opens the store once, for a connection of its own, as SQLite's connections are
    each for one thread.
    """
    files = data.RunFiles()
    importances = data.Importances()
    local = threading.local()

    def backend() -> data.Store:
        if not hasattr(local, "backend"):
            local.backend = open_store()
        return local.backend

    def page(request: Request) -> Response:
        shell = resources.files("sweepkit.dashboard") / "page.html"
        script = (resources.files("sweepkit.dashboard") / "dashboard.js").read_text()
        script = table_script() + "\n" + script.replace("</", "<\\/")
        text = shell.read_text().replace("/*SCRIPT*/", script)
        return HTMLResponse(text.replace("{{store}}", html.escape(backend().store_label)))

    def sweeps(request: Request) -> Response:
        return _answer(lambda: data.sweeps(backend()))

    def sweep(request: Request) -> Response:
        since = _since(request.query_params.get("since"))

        def read() -> dict[str, Any]:  # one read of the store for both
            info = backend().sweep(request.path_params["sweep_id"])
            return {**data.sweep(info), "curves": files.curves(info, since)}

        return _answer(read)

    def importance(request: Request) -> Response:
        return _answer(lambda: importances.of(backend(), request.path_params["sweep_id"]))

    def run(request: Request) -> Response:
        since = _since(request.query_params.get("since"))
        return _answer(
            lambda: files.run(
                backend(), request.path_params["sweep_id"], request.path_params["run_id"], since
            )
        )

    def table(request: Request) -> Response:
        ids = request.path_params
        version = _integer(request.query_params.get("version"), -1)
        return _answer(
            lambda: files.table(backend(), ids["sweep_id"], ids["run_id"], ids["key"], version)
        )

    def file(request: Request) -> Response:
        found = files.file(request.query_params.get("path", ""))
        if found is None:
            return JSONResponse({"error": "no such file of a run"}, status_code=404)
        return FileResponse(found)

    routes = [
        Route("/", page),
        Route("/api/sweeps", sweeps),
        Route("/api/sweeps/{sweep_id}", sweep),
        Route("/api/sweeps/{sweep_id}/importance", importance),
        Route("/api/sweeps/{sweep_id}/runs/{run_id}", run),
        Route("/api/sweeps/{sweep_id}/runs/{run_id}/tables/{key:path}", table),
        Route("/file", file),
    ]
    app = Starlette(routes=routes)
    if token is not None:
        app.add_middleware(_TokenRequired, token=token)
    return app


class _TokenRequired:
    """Refuse every request that does not carry the token (`?token=...`)."""

    def __init__(self, app: Any, token: str) -> None:
        self.app, self.token = app, token

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            given = Request(scope).query_params.get("token", "")
            if not secrets.compare_digest(given, self.token):
                response = JSONResponse(
                    {"error": "this dashboard asks for its token: open the URL it printed"},
                    status_code=403,
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _answer(read: Any) -> Response:
    """The JSON of `read()`, or one line saying what went wrong: the store or a run folder
    changed or vanished under the dashboard, which goes on serving."""
    try:
        return JSONResponse(read())
    except (SweepkitError, KeyError, OSError, ValueError) as exc:
        return JSONResponse({"error": str(exc).strip('"')}, status_code=503)


def _integer(text: str | None, default: int) -> int:
    try:
        return int(text) if text else default
    except ValueError:
        return default


def _since(text: str | None) -> dict[str, int] | None:
    if not text:
        return None
    try:
        given = json.loads(text)
    except ValueError:
        return None
    return {str(k): int(v) for k, v in given.items()} if isinstance(given, dict) else None
