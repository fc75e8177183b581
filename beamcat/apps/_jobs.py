"""A page's work in worker threads: a spinner while it runs, the latest request wins.

A page asks for the same kind of result (the loaded entry, the patterns...)
again before the last request is done when a user clicks fast; the older result
must then be dropped, even when it comes last (threads finish in any order).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import panel as pn

from beamcat.apps._banners import error_message

#: reports a message (None clears it) of one part of the page
Report = Callable[[str, str | None], None]


class Jobs:
    """Run a page's computations off the event loop, one latest request per kind.

    Parameters
    ----------
    report : callable (what, message or None)
        Where a failed job's error goes (the page's red banner), under its kind;
        a success clears it.
    """

    def __init__(self, report: Report):
        self._report = report
        self._latest: dict[str, int] = {}

    def supersede(self, what: str) -> None:
        """Drop the result of the job of kind `what` now running (the page moved on)."""
        self._latest[what] = self.latest(what) + 1

    def latest(self, what: str) -> int:
        """The number of the latest request of kind `what` (0: none yet)."""
        return self._latest.get(what, 0)

    async def run(
        self, what: str, func: Callable[[], Any], busy: pn.viewable.Viewable | None = None
    ) -> tuple[bool | None, Any]:
        """``func()`` in a worker thread, `busy` showing a spinner meanwhile.

        Returns
        -------
        (True, result)
            It ran and no later request of the same kind was made.
        (False, None)
            It raised (the error is reported) and is still the latest.
        (None, None)
            A later request of the same kind superseded it: leave the page as it is.
        """
        number = self._latest[what] = self.latest(what) + 1
        if busy is not None:
            busy.loading = True
        try:
            result = await asyncio.to_thread(func)
            failed = None
        except Exception as err:  # shown, never raised: a bad choice must not break the page
            result, failed = None, err
        finally:
            if busy is not None and self.latest(what) == number:
                busy.loading = False
        if self.latest(what) != number:
            return None, None
        self._report(what, None if failed is None else error_message(failed))
        return (False, None) if failed is not None else (True, result)

    async def entry_infos(self, context, busy: pn.viewable.Viewable | None = None) -> dict | None:
        """Every entry's `EntryInfo` (opening headers, in a worker thread); None when it failed."""
        ok, infos = await self.run("entries", context.entry_infos, busy)
        return infos if ok else None
