"""Recorded dranspose streams (MAX IV FemtoMAX) -> ``counts (frame, y, x)`` with motor positions.

dranspose ingesters record what they receive as a CBOR sequence, one item per
event and stream (``dranspose.replay.get_internals`` reads them back)::

    tag 55799 (self-described CBOR)
      tag 42877 InternalWorkerMessage (event_number, {stream: StreamData}, created_at)
        StreamData = tag 42878 (typ, [part, ...])

Detector streams have ``typ == "STINS"`` (dranspose "Stream1", the Dectris-like
zmq protocol): part 0 is a JSON header whose ``htype`` is ``"header"`` (series
start: ``filename``; part 1 more JSON: ``energy`` eV, ``threshold``, ``exptime``
s, ``save_raw``), ``"image"`` (``frame``, ``shape`` [y, x], ``type``,
``compression``, ``exposure_time``; part 1 the pixels) or ``"series_end"``.
The motor stream has ``typ == "sardana"``: one JSON part, a ``DataDescription``
(``ref_moveables``, ``title``, ``serialno``), then one ``RecordData`` per scan
point (``point_nb`` and each motor's position), then ``RecordEnd``.

Which frames belong to which motor point: sardana sends a point's RecordData
once the point has been counted, and the ingesters give it the event number of
the point's last detector frame. In the FemtoMAX recording (``burstscan
dummy_mot_01 1.0 2.0 4 6``) the images are events 1..30 and the records events
6, 12, ..., 30. So a frame belongs to the first record at or after its event
number: events (previous record, record] share that record's position. This is
what drp-femtomax's reducer does for its step means (it averages the ROI means
of frames ``last:pos + 1`` for the record received at frame ``pos``). Frames
after the last record get NaN positions and ``step`` -1.

Opening scans every file once (gzip files are decompressed, see `_cbor_items`),
keeping only the location of each payload; dask tasks read the frames later.
"""

from __future__ import annotations

import os
import time as _time
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

import dask
import dask.array as da
import numpy as np
import xarray as xr
from dask.base import tokenize

from beamcat._util import provenance
from beamcat.catalog import _cbor_items as items
from beamcat.catalog._cbor_frames import FrameStore, Reader
from beamcat.catalog._cbor_index import SARDANA, STINS, Message, Recording, index
from beamcat.catalog._localtime import local_to_utc
from beamcat.catalog._paths import expand_source
from beamcat.catalog.cbor_stream_write import write_recording
from beamcat.errors import BeamcatWarning, FormatError, OptionError

__all__ = ["StreamEvent", "open_cbor_stream", "replay", "write_recording"]

SUFFIXES = (".cbors", ".cbors.gz", ".cbor", ".cbor.gz")
#: detector name (a part of the stream name) -> pixel pitch in m (drp-femtomax worker)
PIXEL_SIZES = {"pilatus": 172e-6, "balor": 12e-6, "zyla": 6.5e-6}
_HTYPES = ("header", "image", "series_end")
_PACKETS = ("DataDescription", "RecordData", "RecordEnd")


@dataclass(frozen=True)
class _Detector:
    """The frames of one STINS stream, in event order."""

    stream: str
    start: Message
    frames: tuple[Message, ...]
    shape: tuple[int, int]
    dtype: np.dtype


@dataclass(frozen=True)
class _Motors:
    """The sardana scan: its description and, for every frame, the point it belongs to."""

    description: dict
    names: tuple[str, ...]
    step: np.ndarray  # (frame,) point_nb, -1 where no record follows
    positions: dict[str, np.ndarray] = field(default_factory=dict)  # name -> (frame,)


@dataclass(frozen=True)
class StreamEvent:
    """One event of a replayed recording.

    Attributes
    ----------
    event_number : int
        dranspose's event number; every stream's message of one event shares it.
    time : numpy.datetime64
        When the ingester received the detector message (UTC; the motor's when
        the event holds no detector message). NaT when not recorded.
    kind : str
        The detector message: ``"header"``, ``"image"`` or ``"series_end"``;
        ``"motor"`` for an event with only motor records.
    frame : ndarray (y, x) or None
        The image of ``kind == "image"`` events.
    frame_number : int or None
        The detector's frame counter of that image.
    step : int
        The scan point the image belongs to (-1 when none); known from the whole
        recording, where a live reducer learns it only at the end of the point.
    motors : dict of str to float
        Motor positions of that point (NaN when none).
    header : dict
        The series header: ``filename``, ``energy`` (eV), ``exposure`` (s), ...
    """

    event_number: int
    time: np.datetime64
    kind: str
    frame: np.ndarray | None = None
    frame_number: int | None = None
    step: int = -1
    motors: dict[str, float] = field(default_factory=dict)
    header: dict = field(default_factory=dict)


def open_cbor_stream(
    source: str | os.PathLike | Iterable[str | os.PathLike],
    *,
    stream: str | None = None,
    timezone: str | None = None,
    chunks: int | None = None,
) -> xr.Dataset:
    """Open a recorded dranspose detector stream (plus its sardana motor stream).

    Parameters
    ----------
    source : path, glob, folder or list of paths
        The ``.cbors`` / ``.cbors.gz`` files of one recording: a detector
        stream (possibly split over several files, joined by event number) and
        optionally the sardana stream.
    stream : str, optional
        The detector stream to open (``"pilatus"``, ``"andor3_balor"``); needed
        only when the files hold several.
    timezone : str, optional
        How to read recorded times that carry no time zone (dranspose writes UTC);
        None (default) reads such times as UTC with a `BeamcatWarning`, and
        ``attrs["timezone_assumed"]`` says so.
    chunks : int, optional
        Frames per dask chunk; by default chunks of about dask's
        ``array.chunk-size``.

    Returns
    -------
    xarray.Dataset
        ``counts (frame, y, x)`` dask-backed in the recorded dtype; coordinates
        ``frame`` (the detector's frame number), ``event_number``, ``time``
        (UTC), ``step`` (scan point of each frame, -1 when none) and one per
        sardana reference motor (position of each frame's point, NaN when
        none; a point's frames are those up to its RecordData's event, see the
        module docstring). attrs: ``energy`` (eV), ``exposure`` (s), ``threshold``,
        ``filename``, ``detector``, ``pixel_size`` (m, from the detector name),
        ``scan_title``, ``scan_number``, ``motors``.

    Raises
    ------
    FormatError
        A file that is not a dranspose recording, a truncated one (naming the
        file and item), no series header, frames of differing shape or type.
    OptionError
        `stream` not among the recorded detector streams.

    Examples
    --------
    >>> ds = open_cbor_stream("drp_femtomax/pilatus_lab6*.cbors*")  # doctest: +SKIP
    >>> ds.counts.groupby("step").mean(...)  # doctest: +SKIP
    """
    files = expand_source(source, suffixes=SUFFIXES)
    recording = index(files)
    detector = _detector(recording, stream)
    motors = _motors(recording, detector)
    store = FrameStore(recording, detector.frames, detector.shape, detector.dtype)
    if chunks is None:
        limit = dask.utils.parse_bytes(dask.config.get("array.chunk-size"))
        chunks = max(1, limit // max(1, store.frame_nbytes))
    if not isinstance(chunks, int) or chunks < 1:
        raise OptionError(f"chunks={chunks!r}: expected a positive number of frames per chunk")
    stats = [(str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in files]
    token = tokenize(stats, stream, chunks)
    counts = da.from_array(
        store,
        chunks=(chunks, -1, -1),
        name=f"cbor-stream-{token}",
        fancy=False,
        meta=np.empty((0, 0, 0), detector.dtype),
    )
    frames = detector.frames
    times, zone = _utc([m.time for m in frames], timezone, files[0])
    coords = {
        "frame": ("frame", np.array([m.header.get("frame", i) for i, m in enumerate(frames)])),
        "event_number": ("frame", np.array([m.event for m in frames], dtype=np.int64)),
        "time": ("frame", times),
        "step": ("frame", motors.step, {"long_name": "scan point number"}),
    }
    for name in motors.names:
        coords[name] = ("frame", motors.positions[name], {"long_name": name})
    attrs = provenance(files, "cbor-stream", signal="counts", **_header_attrs(detector))
    attrs.update(_scan_attrs(motors), **_missing(recording, detector, motors), **zone)
    return xr.Dataset(
        {"counts": (("frame", "y", "x"), counts, {"units": "counts"})},
        coords=coords,
        attrs=attrs,
    )


def replay(
    source: str | os.PathLike | Iterable[str | os.PathLike],
    *,
    realtime: bool = False,
    speed: float = 1.0,
    stream: str | None = None,
    timezone: str | None = None,
) -> Iterator[StreamEvent]:
    """Yield a recording's events in event order, like ``dranspose replay`` feeds a worker.

    Parameters
    ----------
    source : path, glob, folder or list of paths
        The stream files of one recording, as for `open_cbor_stream`.
    realtime : bool
        Sleep so that events come at the recorded pace (divided by `speed`);
        otherwise as fast as they can be read.
    speed : float
        Replay speed factor with `realtime` (2.0: twice as fast as recorded).
    stream, timezone
        As for `open_cbor_stream`.

    Yields
    ------
    StreamEvent
        One per event number; images decoded one at a time, so memory stays
        at one frame.

    Examples
    --------
    >>> for ev in replay("drp_femtomax/*.cbors*"):  # doctest: +SKIP
    ...     if ev.kind == "image":
    ...         print(ev.event_number, ev.motors, ev.frame.mean())
    """
    if not speed > 0:
        raise OptionError(f"speed={speed!r}: expected a positive replay speed factor")
    recording = index(expand_source(source, suffixes=SUFFIXES))
    detector = _detector(recording, stream)
    motors = _motors(recording, detector)
    _missing(recording, detector, motors)
    header = _header_attrs(detector)
    frame_of = {(m.file, m.item): i for i, m in enumerate(detector.frames)}
    events: dict[int, list[Message]] = {}
    for m in recording.messages:
        if m.stream == detector.stream or m.typ == SARDANA:
            events.setdefault(m.event, []).append(m)
    when = [_event_time(ms, detector.stream) for ms in events.values()]
    times, _ = _utc(when, timezone, recording.files[0])
    start_wall, start_time = _time.monotonic(), None
    with Reader(recording) as reader:
        for (number, messages), when in zip(events.items(), times, strict=True):
            if realtime and not np.isnat(when):
                start_time = when if start_time is None else start_time
                lag = (when - start_time) / np.timedelta64(1, "s") / speed
                _time.sleep(max(0.0, lag - (_time.monotonic() - start_wall)))
            det = next((m for m in messages if m.stream == detector.stream), None)
            if det is None:
                yield StreamEvent(number, when, "motor", header=header)
                continue
            kind = det.header.get("htype", "")
            if kind != "image":
                yield StreamEvent(number, when, kind, header=header)
                continue
            i = frame_of[det.file, det.item]
            yield StreamEvent(
                number,
                when,
                kind,
                frame=reader.frame(det),
                frame_number=det.header.get("frame", i),
                step=int(motors.step[i]),
                motors={n: float(motors.positions[n][i]) for n in motors.names},
                header=header,
            )


def _detector(recording: Recording, stream: str | None) -> _Detector:
    names = sorted({m.stream for m in recording.messages if m.typ == STINS})
    files = "; ".join(map(str, recording.files))
    if not names:
        raise FormatError(f"{files}: no detector stream (typ STINS) in the recording")
    if stream is None:
        if len(names) > 1:
            raise OptionError(f"{files}: several detector streams {names}; pass stream=")
        stream = names[0]
    elif stream not in names:
        raise OptionError(f"stream={stream!r}: {files} holds detector streams {names}")
    messages = [m for m in recording.messages if m.stream == stream]
    _check_unique(recording, messages)
    for m in messages:  # an image under another htype would be lost without a word
        if m.header.get("htype") not in _HTYPES:
            raise FormatError(
                f"{recording.where(m)}: htype {m.header.get('htype')!r}: expected one of "
                f"{', '.join(map(repr, _HTYPES))}"
            )
    starts = [m for m in messages if m.header.get("htype") == "header"]
    if not starts:
        raise FormatError(
            f"{files}: stream {stream!r} has no series header (htype 'header'); "
            "expected one before its first image"
        )
    if len(starts) > 1:  # ingesters record one file per scan; frame numbers would repeat
        raise FormatError(
            f"{files}: stream {stream!r} holds {len(starts)} series (headers at "
            f"{', '.join(recording.where(m) for m in starts)}); open each series' files alone"
        )
    frames = [m for m in messages if m.header.get("htype") == "image"]
    if not frames:
        raise FormatError(f"{files}: stream {stream!r} holds no image")
    first = frames[0]
    shape, dtype = _layout(recording, first)
    for m in frames:
        if _layout(recording, m) != (shape, dtype):
            raise FormatError(
                f"{recording.where(m)}: image is {_layout(recording, m)}, "
                f"the first image ({recording.where(first)}) {(shape, dtype)}"
            )
        if not m.parts:
            raise FormatError(f"{recording.where(m)}: image message has no payload")
        if m.header.get("compression", "none") not in items.COMPRESSIONS:
            raise FormatError(
                f"{recording.where(m)}: compression {m.header['compression']!r} not supported "
                f"({', '.join(items.COMPRESSIONS)})"
            )
        if m.header.get("compression", "none") == "none":
            need = int(np.prod(shape)) * dtype.itemsize
            if m.parts[0].length != need:
                raise FormatError(
                    f"{recording.where(m)}: payload has {m.parts[0].length} bytes, "
                    f"{shape} {dtype} needs {need}"
                )
    return _Detector(stream, starts[0], tuple(frames), shape, dtype)


def _layout(recording: Recording, m: Message) -> tuple[tuple[int, int], np.dtype]:
    shape = m.header.get("shape")
    if not (isinstance(shape, list) and len(shape) == 2 and all(isinstance(n, int) for n in shape)):
        raise FormatError(f"{recording.where(m)}: image shape {shape!r}, expected [y, x]")
    try:
        dtype = items.frame_dtype(m.header)
    except FormatError as exc:
        raise FormatError(f"{recording.where(m)}: {exc}") from None
    return tuple(shape), dtype.newbyteorder("=")


def _check_unique(recording: Recording, messages: list[Message]) -> None:
    for a, b in zip(messages, messages[1:], strict=False):
        if a.event == b.event:
            raise FormatError(
                f"event {a.event} of stream {a.stream!r} recorded twice: "
                f"{recording.where(a)} and {recording.where(b)}"
            )


def _motors(recording: Recording, detector: _Detector) -> _Motors:
    n = len(detector.frames)
    messages = [m for m in recording.messages if m.typ == SARDANA]
    if not messages:
        return _Motors({}, (), np.full(n, -1, dtype=np.int64))
    _check_unique(recording, messages)
    for m in messages:  # a record dropped would give its frames the next point's position
        if m.header.get("type") not in _PACKETS:
            raise FormatError(
                f"{recording.where(m)}: sardana packet type {m.header.get('type')!r}: "
                f"expected one of {', '.join(_PACKETS)}"
            )
    descriptions = [m for m in messages if m.header.get("type") == "DataDescription"]
    records = [m for m in messages if m.header.get("type") == "RecordData"]
    if not descriptions:
        raise FormatError(
            f"{recording.files[messages[0].file]}: sardana stream has no DataDescription; "
            "expected one before its first RecordData"
        )
    description = descriptions[-1].header
    names = tuple(description.get("ref_moveables", ()))
    frame_events = np.array([m.event for m in detector.frames])
    record_events = np.array([m.event for m in records], dtype=np.int64)
    # the point of a frame is the first record at or after its event (see module docstring)
    which = np.searchsorted(record_events, frame_events, side="left")
    has = which < len(records)
    step = np.full(n, -1, dtype=np.int64)
    positions = {}
    for name in names:
        values = np.array([_number(recording, r, name) for r in records] + [np.nan])
        positions[name] = np.where(has, values[which], np.nan)
    points = np.array([_number(recording, r, "point_nb") for r in records] + [-1])
    step[has] = points[which[has]].astype(np.int64)
    return _Motors(description, names, step, positions)


def _missing(recording: Recording, detector: _Detector, motors: _Motors) -> dict:
    """Warn of what a cut recording lacks; the attrs that record it (none when whole).

    A detector stream ends with a ``series_end`` message: without it the
    recording was cut or stopped, and frames may be missing. With a sardana
    stream, frames after its last RecordData have no motor position.
    """
    files = "; ".join(map(str, recording.files))
    attrs, notes = {}, []
    ended = any(
        m.stream == detector.stream and m.header.get("htype") == "series_end"
        for m in recording.messages
    )
    if not ended:
        attrs["series_end"] = 0
        notes.append(
            f"stream {detector.stream!r} has no series_end: the recording was cut or "
            f"stopped early, frames may be missing ({len(detector.frames)} opened)"
        )
    unplaced = int(np.count_nonzero(motors.step < 0)) if motors.description else 0
    if unplaced:
        attrs["frames_without_position"] = unplaced
        notes.append(
            f"{unplaced} of {len(detector.frames)} frames come after the sardana stream's "
            "last RecordData: their motor positions are NaN and step -1"
        )
    if notes:
        warnings.warn(
            f"{files}: {'; '.join(notes)}; attrs {', '.join(attrs)} say so",
            BeamcatWarning,
            stacklevel=3,
        )
    return attrs


def _number(recording: Recording, record: Message, key: str) -> float:
    value = record.header.get(key)
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise FormatError(
            f"{recording.where(record)}: RecordData {key!r} is {value!r}, expected a number"
        )
    return float(value)


def _header_attrs(detector: _Detector) -> dict:
    """Attributes from the series header (and the first image where the header is silent)."""
    start = detector.start
    extra = {}
    for part in start.parts:
        if part.data is not None:
            try:
                extra.update(items.parse_json(part.data, "series header detail"))
            except FormatError:
                continue  # a detail part that is not JSON carries nothing we map
    attrs = {"detector": detector.stream}
    if "filename" in start.header:
        attrs["filename"] = str(start.header["filename"])
    if "energy" in extra:
        attrs["energy"] = float(extra.pop("energy"))
    exposure = extra.pop("exptime", detector.frames[0].header.get("exposure_time"))
    if exposure is not None:
        attrs["exposure"] = float(exposure)
    for key, value in extra.items():
        if isinstance(value, bool):  # netCDF attrs take no bools
            attrs[key] = int(value)
        elif isinstance(value, int | float | str):
            attrs[key] = value
    pixel = extra.get("pixel_size") or _pixel_size(detector.stream)
    if pixel is not None:
        attrs["pixel_size"] = float(pixel)
    return attrs


def _pixel_size(stream: str) -> float | None:
    name = stream.lower()
    return next((size for key, size in PIXEL_SIZES.items() if key in name), None)


def _scan_attrs(motors: _Motors) -> dict:
    if not motors.description:
        return {}
    d = motors.description
    attrs = {"motors": list(motors.names)}
    if "title" in d:
        attrs["scan_title"] = str(d["title"])
    if "serialno" in d:
        attrs["scan_number"] = int(d["serialno"])
    return attrs


def _utc(times: list[datetime | None], timezone: str | None, where) -> tuple[np.ndarray, dict]:
    if any(t is None for t in times):
        return np.full(len(times), np.datetime64("NaT", "ns")), {}
    return local_to_utc(times, timezone, where)


def _event_time(messages: list[Message], stream: str) -> datetime | None:
    det = [m for m in messages if m.stream == stream]
    return (det or messages)[0].time
