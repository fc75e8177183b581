"""Helpers the page tests share: an array that records its reads, a wait for a page's jobs."""

from __future__ import annotations

import asyncio


class Recorder:
    """An array-like that records every region read from it (what dask asks for)."""

    def __init__(self, values):
        self.values, self.reads = values, []
        self.shape, self.dtype, self.ndim = values.shape, values.dtype, values.ndim

    def __getitem__(self, key):
        self.reads.append(key)
        return self.values[key]


def settled(action) -> None:
    """Do `action()` (a stream event, a widget set) on an event loop and await what it started.

    The page schedules its jobs with ``pn.state.execute``, which makes tasks on the
    running loop; waiting for them is waiting for the page's state, not for a time.
    """

    async def run():
        action()
        while pending := [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]:
            await asyncio.gather(*pending)

    asyncio.run(run())
