"""The navigation layout of a Merlin MIB acquisition: scan shape and fly-back frames.

`scan_index` decides, from the frames' exposure times, the caller's
``scan_shape``, the ``.hdr`` sidecar or ePSIC's frame-count table, which frame
lies at each scan position; `beamcat.catalog.mib.open_mib` uses it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from beamcat.errors import OptionError

#: a frame is a fly-back frame when its exposure exceeds this many frame exposures
_FLYBACK_FACTOR = 5
#: ePSIC's frame-count table (MIB_convert_submit.py auto_reshape):
#: frames -> (lines, frames per line, first frame of each line is a fly-back frame)
FRAME_COUNT_SHAPES: dict[int, tuple[int, int, bool]] = {
    262144: (512, 512, True),
    261632: (511, 512, False),
    65536: (256, 256, True),
    65280: (255, 256, False),
    16384: (128, 128, True),
    16256: (127, 128, False),
    1024: (32, 32, True),
    256: (16, 16, True),
}


def detect_flyback(exposure: np.ndarray) -> tuple[int, int] | None:
    """Find fly-back frames from per-frame exposure times (ePSIC ``STEM_flag_dict``).

    The most common exposure is the frame exposure; a frame whose exposure is
    more than 5x that starts a scan line (the beam's fly-back, recorded as the
    first frame of the line). The line length is the distance between starts;
    when the first lines are irregular (the scan generator settling), the
    regular run after the last irregular line is used.

    Parameters
    ----------
    exposure : ndarray (frame,) float
        Shutter time of each frame in s.

    Returns
    -------
    (skip, line_length) or None
        Frames before the first regular line start, and frames per line
        including the fly-back frame; None when there are fewer than two line
        starts or lines are shorter than 2 frames.

    Examples
    --------
    >>> t = np.full(3 + 4 * 5, 0.001); t[3::5] = 0.05
    >>> detect_flyback(t)
    (3, 5)
    """
    exposure = np.asarray(exposure, dtype=float)
    if exposure.size < 3:
        return None
    values, counts = np.unique(exposure, return_counts=True)
    frame_exposure = values[np.argmax(counts)]
    if frame_exposure <= 0:
        return None
    starts = np.flatnonzero(exposure > _FLYBACK_FACTOR * frame_exposure)
    if len(starts) < 2:
        return None
    lines = np.diff(starts)
    length = int(lines[-1])
    irregular = np.flatnonzero(lines != length)
    skip = int(starts[irregular[-1] + 1] if len(irregular) else starts[0])
    if length < 2 or (exposure.size - skip) // length < 1:
        return None
    return skip, length


def _grid(first: int, lines: int, per_line: int, drop_first: bool) -> np.ndarray:
    grid = first + np.arange(lines * per_line).reshape(lines, per_line)
    return grid[:, 1:] if drop_first else grid


def scan_index(
    exposure: np.ndarray,
    *,
    scan_shape: Sequence[int] | None = None,
    flyback: bool | str = "auto",
    hdr: dict | None = None,
    name: str = "MIB",
) -> tuple[np.ndarray, dict]:
    """Decide the navigation layout of a MIB acquisition.

    Parameters
    ----------
    exposure : ndarray (frame,) float
        Shutter time of every frame in s.
    scan_shape : (ny, nx), optional
        Frames recorded per scan: `ny` lines of `nx` frames; must account for
        every frame.
    flyback : "auto", True or False
        Whether the first frame of each line is a fly-back frame to drop.
    hdr : dict, optional
        `hdr_attrs` of the ``.hdr`` sidecar (``scanx``/``scany``,
        ``frames_per_trigger``).
    name : str
        File name for messages.

    Returns
    -------
    index : ndarray (frame,) or (scan_y, scan_x) int
        Frame number at each navigation position.
    attrs : dict
        ``scan_shape_from`` (``scan_shape``, ``flyback``, ``hdr``,
        ``frame_count`` or ``none``), ``flyback_dropped`` and, after fly-back
        detection, ``flyback_line_length`` and ``frames_skipped``.

    Notes
    -----
    In order:

    1. `scan_shape` given: frames reshaped to it; the first column is dropped
       when ``flyback=True``, or with ``"auto"`` when exposures show a fly-back
       frame starting every line of that shape.
    2. Fly-back detection (`detect_flyback`, unless ``flyback=False``): frames
       before the first regular line start are skipped, as is a trailing
       incomplete line; the fly-back column is dropped, giving
       ``(lines, line_length - 1)``.
    3. The ``.hdr`` sidecar: ``ScanY`` x ``ScanX`` (Merlin >= 1.5), else lines of
       ``Frames per Trigger`` frames when that divides the frame count.
    4. ePSIC's frame-count table `FRAME_COUNT_SHAPES`. Its fly-back entries
       (262144, 65536, 16384, 1024, 256 frames) are square grids whose first
       column was recorded while the beam flew back: that column is not a scan
       position, so it is dropped (262144 -> 512 x 511), as ePSIC's converter
       does when it reshapes with fly-back, unless ``flyback=False``.
       261632 -> 511 lines of 512 (ePSIC's ``Scan_Y=511, Scan_X=512``).
    5. Otherwise a plain stack ``(frame,)``. ``flyback=True`` raises instead.
    """
    n = len(exposure)
    if flyback not in ("auto", True, False):
        raise OptionError(f"{name}: flyback={flyback!r}: expected 'auto', True or False")
    if scan_shape is not None:
        shape = tuple(int(s) for s in scan_shape)
        if len(shape) != 2 or min(shape) < 1 or shape[0] * shape[1] != n:
            raise OptionError(
                f"{name}: scan_shape={tuple(scan_shape)} does not fit the {n} frames: "
                "expected (ny, nx) with ny * nx == number of frames"
            )
        drop = flyback is True or (flyback == "auto" and detect_flyback(exposure) == (0, shape[1]))
        return _grid(0, *shape, drop), {"scan_shape_from": "scan_shape", "flyback_dropped": drop}
    if flyback is not False:
        found = detect_flyback(exposure)
        if found:
            skip, length = found
            attrs = {
                "scan_shape_from": "flyback",
                "flyback_dropped": True,
                "flyback_line_length": length,
                "frames_skipped": skip,
            }
            return _grid(skip, (n - skip) // length, length, True), attrs
    hdr = hdr or {}
    per_trigger = hdr.get("frames_per_trigger", 1)
    if hdr.get("scany", 0) * hdr.get("scanx", 0) == n:
        shape, fly = (hdr["scany"], hdr["scanx"]), False
        source = "hdr"
    elif 1 < per_trigger < n and n % per_trigger == 0:
        shape, fly = (n // per_trigger, per_trigger), False
        source = "hdr"
    elif n in FRAME_COUNT_SHAPES:
        *shape, fly = FRAME_COUNT_SHAPES[n]
        source = "frame_count"
    elif flyback is True:
        raise OptionError(
            f"{name}: flyback=True but no fly-back frames were found in the exposure "
            "times and the frame count gives no scan shape: pass scan_shape=(ny, nx)"
        )
    else:
        return np.arange(n), {"scan_shape_from": "none", "flyback_dropped": False}
    drop = flyback is True or (fly and flyback == "auto")
    return _grid(0, *shape, drop), {"scan_shape_from": source, "flyback_dropped": drop}
