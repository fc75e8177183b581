"""What the live page replays: recorded streams of a catalog, played in a background thread.

`stream_entries` lists a catalog's recorded streams (format cbor-stream) and
`entry_recording` gives one's stream files and frame shape (headers only),
`entry_poni` the PONI it carries;
`Replay` plays a recording into a `beamcat.live.pipeline.LivePipeline` in a
thread, for the page to draw the pipeline's snapshots on the event loop.
"""

from __future__ import annotations

import threading

from beamcat.apps.quicklook import signal_name
from beamcat.apps.state import CatalogContext
from beamcat.catalog.cbor_stream import replay
from beamcat.errors import OptionError
from beamcat.live.pipeline import LivePipeline

STREAM_FORMAT = "cbor-stream"


def stream_entries(context: CatalogContext) -> list[str]:
    """Catalog entries that are recorded streams (format cbor-stream)."""
    return [n for n in context.names if context.rows[n]["format"] == STREAM_FORMAT]


def entry_recording(context: CatalogContext, name: str) -> tuple[list[str], tuple[int, int]]:
    """The stream files of a cbor-stream entry and its frame shape (opens headers only).

    Raises
    ------
    OptionError
        The entry is not a recorded stream.
    BeamcatError
        The entry cannot be opened (its reader's error).
    """
    row = context.rows.get(name)
    if row is None or row["format"] != STREAM_FORMAT:
        kind = "no such entry" if row is None else f"format {row['format']!r}"
        raise OptionError(f"entry {name!r}: {kind}; expected a recorded stream ({STREAM_FORMAT})")
    ds = context.open(name)
    return ds.attrs["source"].split(";"), tuple(ds[signal_name(ds)].shape[-2:])


def entry_poni(context: CatalogContext, name: str) -> tuple[str, bool] | None:
    """The PONI file a recorded-stream entry carries (``poni=``) and its flip, or None."""
    attrs = context.open(name).attrs
    poni = attrs.get("poni")
    return None if poni is None else (str(poni), bool(attrs.get("poni_flip", 0)))


class Replay:
    """A recording played into a pipeline in a background thread.

    Parameters
    ----------
    source : path, glob, folder or list of paths
        The recording's stream files.
    pipeline : LivePipeline
    realtime, speed : bool, float
        As for `beamcat.catalog.cbor_stream.replay`.

    Attributes
    ----------
    events : int
        Events processed so far.
    error : Exception or None
        What stopped the replay early (a bad recording, a ROI outside the frame...).
    """

    def __init__(self, source, pipeline: LivePipeline, *, realtime: bool, speed: float = 1.0):
        self.source, self.pipeline = source, pipeline
        self.realtime, self.speed = realtime, speed
        self.events = 0
        self.error: Exception | None = None
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="beamcat-live-replay", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for event in replay(self.source, realtime=self.realtime, speed=self.speed):
                if self._stop.is_set():
                    return
                self.pipeline.process(event)
                self.events += 1
        except Exception as err:  # shown by the page, never raised in the thread
            self.error = err

    def stop(self) -> None:
        """Stop after the event being processed."""
        self._stop.set()

    @property
    def done(self) -> bool:
        """Whether the thread has ended (finished, stopped or failed)."""
        return not self.thread.is_alive()

    @property
    def stopped(self) -> bool:
        """Whether `stop` was called."""
        return self._stop.is_set()
