"""Write detector (+ sardana motor) stream files in the layout of a dranspose recording.

The files are laid out like the FemtoMAX ingester recordings that
`beamcat.catalog.cbor_stream.open_cbor_stream` reads (see its module docstring):
``<name><detector>-ingester-<uuid>.cbors[.gz]`` with a series header at event 0,
images at events 1..n and a series end at n+1, and ``<name>sardana-ingester-<uuid>.cbors``
with a DataDescription at event 0, each point's RecordData at the event of the
point's last frame and a RecordEnd at n+1.
"""

from __future__ import annotations

import contextlib
import gzip as gzip_module
import json
import math
import os
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cbor2
import numpy as np
import pandas as pd

from beamcat._util import atomic_open
from beamcat.catalog._cbor_items import MESSAGE_TAG, SELF_DESCRIBED_TAG, STREAM_TAG, encode_frame
from beamcat.errors import OptionError


def write_recording(
    directory: str | os.PathLike,
    name: str,
    frames,
    *,
    motor: Mapping[str, Sequence[float]] | None = None,
    energy: float,
    exposure: float,
    start_time: datetime | np.datetime64 | str,
    frames_per_point: int | None = None,
    detector: str = "balor",
    gzip: bool = True,
    compression: str = "none",
    threshold: float = 0,
    save_raw: bool = True,
    period: float | None = None,
) -> list[Path]:
    """Write frames (and motor positions) as a recorded dranspose stream.

    Parameters
    ----------
    directory : path
        Where to write (created if missing).
    name : str
        Prefix of the file names and of the series ``filename``.
    frames : array-like (frame, y, x)
        Detector images, float32 or (u)int; read one frame at a time, so a
        dask array is written without loading it whole.
    motor : mapping of str to sequence of float, optional
        Reference motor positions per scan point (all of one length); writes a
        sardana stream file. Needs `frames_per_point`.
    energy : float
        Photon energy in eV (series header ``energy``).
    exposure : float
        Exposure time in s (series header ``exptime``, images' ``exposure_time``).
    start_time : datetime, datetime64 or str
        When the series header was received (naive: UTC).
    frames_per_point : int, optional
        Frames of each scan point; the last point may hold fewer.
    detector : str
        The stream name (``"balor"``, ``"pilatus"``, ``"andor3_zyla10"``).
    gzip : bool
        Gzip the detector file (``.cbors.gz``); the sardana file stays plain as
        in the FemtoMAX recordings.
    compression : str
        Image payload encoding: ``"none"`` (as recorded at FemtoMAX), ``"bslz4"``
        or ``"lz4"``.
    threshold : float
        Detector threshold for the series header.
    save_raw : bool
        The series header's ``save_raw`` flag.
    period : float, optional
        Seconds between frames; `exposure` when not given.

    Returns
    -------
    list of Path
        The detector file, then the sardana file when `motor` is given.

    Examples
    --------
    >>> frames = np.zeros((12, 64, 64), np.float32)
    >>> paths = write_recording(  # doctest: +SKIP
    ...     "out", "scan_1", frames, motor={"dummy_mot_01": [1.0, 1.5]},
    ...     energy=8048, exposure=0.05, start_time="2024-11-21T11:21:03",
    ...     frames_per_point=6)
    """
    if np.ndim(frames) != 3:
        raise OptionError(f"frames of shape {np.shape(frames)}: expected (frame, y, x)")
    n = len(frames)
    start = pd.Timestamp(start_time)
    start = start.tz_localize("UTC") if start.tz is None else start.tz_convert("UTC")
    start = start.to_pydatetime()
    step = timedelta(seconds=exposure if period is None else period)
    times = [start + (i + 1) * step for i in range(n)]
    points = _points(motor, frames_per_point, n)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid5(uuid.NAMESPACE_URL, f"beamcat:{name}:{start.isoformat()}")
    filename = f"{name}_{detector}.h5"
    suffix = ".cbors.gz" if gzip else ".cbors"
    det_path = directory / f"{name}{detector}-ingester-{tag}{suffix}"
    detail = {"energy": energy, "threshold": threshold, "save_raw": save_raw, "exptime": exposure}
    with _atomic(det_path, gzip) as f:
        header = {"htype": "header", "msg_number": 0, "filename": filename}
        f.write(_item(0, detector, "STINS", [_json(header, ", "), _json(detail, ", ")], start))
        for i in range(n):
            frame = np.asarray(frames[i])
            image = {
                "htype": "image",
                "msg_number": i + 1,
                "frame": i,
                "shape": list(frame.shape),
                "type": frame.dtype.name,
                "compression": compression,
                "exposure_time": exposure,
            }
            parts = [_json(image, ", "), encode_frame(frame, compression)]
            f.write(_item(i + 1, detector, "STINS", parts, times[i]))
        end = {"htype": "series_end", "msg_number": n + 1}
        f.write(_item(n + 1, detector, "STINS", [_json(end, ", ")], times[-1] if n else start))
    if motor is None:
        return [det_path]
    sardana_path = directory / f"{name}sardana-ingester-{tag}.cbors"
    with _atomic(sardana_path, False) as f:
        for event, packet, when in _sardana(motor, points, frames_per_point, name, start, times):
            f.write(_item(event, "sardana", "sardana", [_json(packet)], when))
    return [det_path, sardana_path]


def _points(motor, frames_per_point, n) -> int:
    if motor is None:
        return 0
    if not isinstance(frames_per_point, int) or frames_per_point < 1:
        raise OptionError(f"frames_per_point={frames_per_point!r}: a motor needs frames per point")
    points = math.ceil(n / frames_per_point)
    for key, values in motor.items():
        if len(values) != points:
            raise OptionError(
                f"motor {key!r} has {len(values)} positions; {n} frames at "
                f"{frames_per_point} per point make {points} points"
            )
    return points


def _sardana(motor, points, per_point, name, start, times):
    """(event, packet, time) of a sardana burstscan: description, records, end."""
    names = list(motor)
    first = names[0]
    columns = [{"name": "point_nb", "label": "#Pt No", "dtype": "int64", "shape": []}]
    columns += [
        {
            "min_value": float(min(motor[m])),
            "max_value": float(max(motor[m])),
            "name": m,
            "label": m,
            "dtype": "float64",
            "shape": [],
            "is_reference": True,
        }
        for m in names
    ]
    columns.append({"name": "timestamp", "label": "dt", "dtype": "float64", "shape": []})
    lo, hi = motor[first][0], motor[first][-1]
    description = {
        "type": "DataDescription",
        "serialno": 1,
        "scandir": ".",
        "title": f"burstscan {first} {lo} {hi} {points - 1} {per_point}",
        "column_desc": columns,
        "ref_moveables": names,
        "total_scan_intervals": points - 1,
        "starttime": start.strftime("%a %b %d %H:%M:%S %Y"),
        "scanfile": [f"{name}.h5"],
    }
    yield 0, description, start
    n = len(times)
    for p in range(points):
        last = min((p + 1) * per_point, n)  # event number of the point's last frame
        when = times[last - 1]
        record = {"type": "RecordData", "timestamp": (when - start).total_seconds(), "point_nb": p}
        record.update({m: float(motor[m][p]) for m in names})
        yield last, record, when
    yield n + 1, {"type": "RecordEnd"}, times[-1] if n else start


def _json(value: dict, separator: str = ",") -> bytes:
    return json.dumps(value, separators=(separator, ": " if separator == ", " else ":")).encode()


def _item(event: int, stream: str, typ: str, parts: list[bytes], when: datetime) -> bytes:
    """One recorded message, tagged as the ingesters tag it."""
    data = cbor2.CBORTag(STREAM_TAG, [typ, parts])
    message = cbor2.CBORTag(MESSAGE_TAG, [event, {stream: data}, when.astimezone(UTC)])
    return cbor2.dumps(cbor2.CBORTag(SELF_DESCRIBED_TAG, message))


@contextlib.contextmanager
def _atomic(path: Path, compress: bool):
    """A stream file written atomically, gzipped (reproducibly: mtime 0) when asked."""
    with atomic_open(path, "wb") as raw:
        if not compress:
            yield raw
            return
        with gzip_module.GzipFile(
            filename="", fileobj=raw, mode="wb", compresslevel=6, mtime=0
        ) as f:
            yield f
