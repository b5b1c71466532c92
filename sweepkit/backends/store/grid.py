"""A grid sweep's windows in the store: the newest one kept for every agent of the sweep, and
the runs claimed since one was worked out (`sweepkit.core.scheduling.GridAhead`; which
window to use is `scheduling.GridWindows`' policy)."""

from __future__ import annotations

import abc
import json
from collections.abc import Callable
from typing import Any, TypeVar

from sweepkit.backends.store import schema
from sweepkit.backends.store.schema import Cursor
from sweepkit.core import scheduling
from sweepkit.core.records import ScheduledRun

T = TypeVar("T")


class GridWindowStorage(abc.ABC):
    """The grid windows' reads and writes of a SQL store (a part of `SQLStore`)."""

    _windows: scheduling.GridWindows

    @abc.abstractmethod
    def _transact(self, work: Callable[[Cursor], T], *, write: bool = True) -> T:
        """Run `work` on a cursor in one transaction (the store kind's)."""

    @abc.abstractmethod
    def _config(self, cursor: Cursor, sweep_id: str) -> dict[str, Any] | None:
        """The sweep's config, read once per store."""

    def prepare_claim(self, sweep_id: str) -> None:
        config = self._transact(lambda cursor: self._config(cursor, sweep_id), write=False)
        if config is not None and config["method"] == "grid":
            self._windows.keep(
                sweep_id,
                self._grid_window(
                    sweep_id, config, scheduling.GRID_PREPARED, self._windows.prepare_below
                ),
            )

    def _grid_window(
        self, sweep_id: str, config: dict[str, Any], ahead: int, below: int
    ) -> scheduling.GridAhead:
        """A grid sweep's next points past its runs, worked out before a claim holds the
        sweep (`scheduling.GridWindows.usable`); where none will do, `ahead` new ones from
        every run, kept in `grid_windows` for the sweep's other agents."""

        def work(cursor: Cursor) -> tuple[scheduling.GridAhead | None, list[ScheduledRun]]:
            window = self._windows.usable(
                sweep_id, below=below,
                kept=lambda: self._kept_window(cursor, sweep_id),
                since=lambda seen: self._runs_since(cursor, sweep_id, seen),
            )  # fmt: skip
            if window is not None:
                return window, []
            cursor.execute(
                f"SELECT {schema.SCHEDULED_COLUMNS} FROM runs WHERE sweep_id = ? ORDER BY seq",
                (sweep_id,),
            )
            return None, [ScheduledRun(*row) for row in cursor.fetchall()]

        window, every = self._transact(work, write=False)
        if window is not None:
            return window
        window = scheduling.grid_ahead(config, every, ahead)
        self._transact(  # for every agent of the sweep, unless one kept a newer window meanwhile
            lambda cursor: cursor.execute(
                "INSERT INTO grid_windows (sweep_id, seen, last, points) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (sweep_id) DO UPDATE SET seen = excluded.seen,"
                " last = excluded.last, points = excluded.points"
                " WHERE grid_windows.seen < excluded.seen",
                (sweep_id, window.seen, int(window.last), json.dumps(window.points)),
            )
        )
        return window

    def _kept_window(self, cursor: Cursor, sweep_id: str) -> scheduling.GridAhead | None:
        """The sweep's newest window, as whichever agent worked it out kept it."""
        cursor.execute(
            "SELECT seen, last, points FROM grid_windows WHERE sweep_id = ?", (sweep_id,)
        )
        kept = cursor.fetchone()
        if kept is None:
            return None
        seen, last, points = kept
        return scheduling.GridAhead(seen, tuple(json.loads(points)), bool(last))

    def _runs_since(self, cursor: Cursor, sweep_id: str, seen: int) -> list[ScheduledRun]:
        """The runs claimed after the sweep's first `seen`."""
        cursor.execute(
            f"SELECT {schema.SCHEDULED_COLUMNS} FROM runs WHERE sweep_id = ? AND seq > ? ORDER BY seq",
            (sweep_id, seen),
        )
        return [ScheduledRun(*row) for row in cursor.fetchall()]
