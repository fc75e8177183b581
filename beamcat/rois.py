"""Regions of interest on the ground floor: the `Rect` type, its checks, and ROI files.

A ROI is a rectangle `Rect` ``(x, y, w, h)`` in the original IMAT scripts' convention
(x = column of the left edge, y = row of the top edge, pixels ``im[y:y+h, x:x+w]``;
non-integral numbers are cut as the original's ``roi_to_slice`` does:
``im[int(y):int(y+h), int(x):int(x+w)]``) or a boolean mask ``(y, x)``.

This module imports nothing above `beamcat.errors` and `beamcat._util` (no numba,
no dask), so the CLI, the workflows, the pages and the live pipeline read and
write ROI files without importing the analyses; `beamcat.analyses.roi` computes
the statistics.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from beamcat._util import atomic_open
from beamcat.errors import FormatError, OptionError, SourceNotFoundError

__all__ = [
    "Rect",
    "Roi",
    "bounds",
    "check_rect",
    "check_roi",
    "is_mask",
    "load_rois",
    "named_rois",
    "save_rois",
]

#: the JSON layout `save_rois` writes (`load_rois` also reads the shorter ones)
JSON_LAYOUT = '{"rois": {name: {"x": .., "y": .., "w": .., "h": ..}}}'


class Rect(NamedTuple):
    """A rectangle in pixels: left column `x`, top row `y`, width `w`, height `h`.

    It covers ``im[int(y):int(y+h), int(x):int(x+w)]``, the original scripts' rule.

    Examples
    --------
    >>> Rect(134, 75, 52, 30).bounds()
    (75, 105, 134, 186)
    """

    x: float
    y: float
    w: float
    h: float

    def bounds(self) -> tuple[int, int, int, int]:
        """Pixel bounds ``(y0, y1, x0, x1)``, end-exclusive, as the original cuts them."""
        return int(self.y), int(self.y + self.h), int(self.x), int(self.x + self.w)


Roi = Rect | tuple | np.ndarray


def is_mask(roi) -> bool:
    """Whether `roi` is a boolean mask (NumPy or xarray) rather than a rectangle."""
    return hasattr(roi, "dtype") and np.asarray(roi).dtype == bool


def _whole(rect: Rect) -> Rect:
    """`rect` with integer fields where the numbers are whole."""
    return Rect(*(int(v) if float(v).is_integer() else v for v in rect))


def check_rect(roi, shape: tuple[int, int], label: str = "roi", *, mask_ok: bool = False) -> Rect:
    """A rectangle ``(x, y, w, h)`` checked to cover pixels inside an image of `shape`.

    Every analysis taking a rectangle (ROIs, the air region, a detection ROI)
    checks it here, so the messages name the same things.

    Parameters
    ----------
    roi : (x, y, w, h) numbers
        Pixels ``[int(y):int(y+h), int(x):int(x+w)]``.
    shape : (ny, nx)
        The image shape.
    label : str
        How messages name the rectangle, e.g. ``"air_roi"``.
    mask_ok : bool
        Whether the caller also takes a boolean mask (the message then says so).

    Returns
    -------
    Rect
        With integer fields where the numbers are whole.

    Raises
    ------
    OptionError
        Not four finite numbers, no pixel covered, or outside the image.

    Examples
    --------
    >>> check_rect((1, 2, 3.0, 4), (10, 10))
    Rect(x=1, y=2, w=3, h=4)
    """
    try:
        rect = Rect(*(float(v) for v in roi))
    except (TypeError, ValueError):
        also = f" or a boolean mask {shape}" if mask_ok else ""
        message = f"{label}: expected a rectangle (x, y, w, h){also}, got {roi!r}"
        raise OptionError(message) from None
    if not all(np.isfinite(rect)):
        raise OptionError(f"{label}: {tuple(rect)} has a non-finite number")
    y0, y1, x0, x1 = rect.bounds()
    if y1 <= y0 or x1 <= x0:
        raise OptionError(f"{label}: (x, y, w, h) = {tuple(rect)} is empty: covers no pixel")
    if rect.x < 0 or rect.y < 0 or x1 > shape[1] or y1 > shape[0]:
        raise OptionError(
            f"{label}: (x, y, w, h) = {tuple(rect)} (rows {y0}:{y1}, columns {x0}:{x1}) "
            f"reaches outside the image of shape (y, x) = {shape}"
        )
    return _whole(rect)


def check_roi(name: str, roi, shape: tuple[int, int]) -> Rect | np.ndarray:
    """Check one named ROI against the image `shape` ``(ny, nx)``; a `Rect` or a bool mask."""
    if is_mask(roi):
        mask = np.asarray(roi)
        if mask.shape != tuple(shape):
            raise OptionError(
                f"ROI {name!r}: mask of shape {mask.shape}, expected the image shape {shape}"
            )
        if not mask.any():
            raise OptionError(f"ROI {name!r}: the mask selects no pixel")
        return mask
    return check_rect(roi, shape, f"ROI {name!r}", mask_ok=True)


def bounds(roi: Rect | np.ndarray) -> tuple[int, int, int, int]:
    """``(y0, y1, x0, x1)`` of a rectangle, or of the box around a mask's pixels."""
    if isinstance(roi, Rect):
        return roi.bounds()
    rows, cols = np.nonzero(roi.any(axis=1))[0], np.nonzero(roi.any(axis=0))[0]
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def named_rois(rois) -> list[tuple[str, Roi]]:
    """Mapping name -> ROI, or a sequence of ROIs named "ROI 1", "ROI 2"... (the original's)."""
    if isinstance(rois, Mapping):
        items = [(str(k), v) for k, v in rois.items()]
    elif isinstance(rois, Sequence | np.ndarray) and not isinstance(rois, str):
        if is_mask(rois) and np.ndim(rois) == 2:
            rois = [rois]
        items = [(f"ROI {i + 1}", v) for i, v in enumerate(rois)]
    else:
        raise OptionError(f"rois: expected a mapping name -> (x, y, w, h) or mask, got {rois!r}")
    if not items:
        raise OptionError("rois: no ROI given")
    return items


# --------------------------------------------------------------------------- files


def load_rois(path: str | os.PathLike) -> dict[str, Rect | np.ndarray]:
    """Read a ROI set from JSON or CSV.

    JSON, any of:

    - ``{"rois": {"bed_top": {"x": 134, "y": 75, "w": 52, "h": 30}, ...}}``
      (what `save_rois` writes);
    - ``{"bed_top": [134, 75, 52, 30], ...}`` or
      ``{"bed_top": {"x": 134, "y": 75, "w": 52, "h": 30}, ...}`` (no ``"rois"`` key);
    - the original config's style: a list of ``[x, y, w, h]`` (top level or under
      ``"rois"``), named "ROI 1", "ROI 2"...

    A mask ROI is ``{"mask": "<file>.npz"}`` naming an ``.npz`` beside the JSON
    whose array under the ROI's name is the boolean mask (`save_rois` writes it).
    CSV: a header ``name,x,y,w,h`` and one row per ROI.

    Returns
    -------
    dict
        name -> `Rect` or bool mask ``(y, x)``, in file order.

    Raises
    ------
    SourceNotFoundError
        The file (or the mask file it names) does not exist.
    FormatError
        Not JSON/CSV of these layouts; the message names the file and the key or row.
    """
    path = Path(path)
    if not path.is_file():
        raise SourceNotFoundError(f"{path}: no such ROI file")
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() == ".csv":
        return _rois_from_csv(path, text)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        raise FormatError(f"{path}: not JSON ({err}); expected a ROI set {JSON_LAYOUT}") from None
    body = doc["rois"] if isinstance(doc, dict) and "rois" in doc else doc
    if isinstance(body, list):
        body = {f"ROI {i + 1}": v for i, v in enumerate(body)}
    if not isinstance(body, dict) or not body:
        raise FormatError(
            f"{path}: expected a ROI set {JSON_LAYOUT} or {{name: [x, y, w, h]}}, got {doc!r:.80}"
        )
    return {str(name): _roi_from_json(path, str(name), spec) for name, spec in body.items()}


def _roi_from_json(path: Path, name: str, spec) -> Rect | np.ndarray:
    if isinstance(spec, dict) and "mask" in spec:
        npz = path.parent / spec["mask"]
        if not npz.is_file():
            raise SourceNotFoundError(f"{path}: ROI {name!r} names mask file {npz}, not found")
        with np.load(npz) as masks:
            if name not in masks:
                raise FormatError(f"{npz}: no mask for ROI {name!r} (has {sorted(masks)})")
            return masks[name].astype(bool)
    try:
        values = [spec[k] for k in "xywh"] if isinstance(spec, dict) else list(spec)
        rect = Rect(*(float(v) for v in values))
    except (KeyError, TypeError, ValueError):
        raise FormatError(
            f"{path}: ROI {name!r} is {spec!r}; expected {{'x', 'y', 'w', 'h'}} numbers "
            "or [x, y, w, h]"
        ) from None
    return _whole(rect)


def _rois_from_csv(path: Path, text: str) -> dict[str, Rect]:
    reader = csv.reader(io.StringIO(text))
    header = [h.strip().lower() for h in next(reader, [])]
    if header != ["name", "x", "y", "w", "h"]:
        raise FormatError(f"{path}: header {header}, expected name,x,y,w,h")
    rois = {}
    for row_no, row in enumerate(reader, start=2):
        if not row:
            continue
        try:
            name, *numbers = row
            rect = Rect(*(float(v) for v in numbers))
        except (TypeError, ValueError):
            raise FormatError(f"{path}: row {row_no} is {row}; expected name,x,y,w,h") from None
        rois[name.strip()] = _whole(rect)
    if not rois:
        raise FormatError(f"{path}: no ROI rows")
    return rois


def save_rois(rois: Mapping[str, Roi] | Sequence[Roi], path: str | os.PathLike) -> Path:
    """Write a ROI set as JSON (masks into ``<stem>.masks.npz`` beside it) or CSV.

    The format follows the suffix (``.json`` or ``.csv``; CSV holds rectangles
    only). Writes are atomic: a reader sees the old file or the new one, never a
    part. `load_rois` reads the file back.

    Returns
    -------
    Path
        The file written.
    """
    path = Path(path)
    # no image here to check against: only that each ROI is well formed and not empty
    named = {
        name: check_roi(name, roi, np.shape(roi) if is_mask(roi) else (np.inf, np.inf))
        for name, roi in named_rois(rois)
    }
    suffix = path.suffix.lower()
    if suffix == ".csv":
        if any(not isinstance(r, Rect) for r in named.values()):
            raise OptionError(f"{path}: CSV holds rectangles only; save masks as .json")
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["name", "x", "y", "w", "h"])
        writer.writerows([name, *rect] for name, rect in named.items())
        with atomic_open(path, "w", encoding="utf-8") as f:
            f.write(buffer.getvalue())
        return path
    if suffix != ".json":
        raise OptionError(f"{path}: expected a .json or .csv file name")
    masks = {n: r for n, r in named.items() if not isinstance(r, Rect)}
    npz = path.with_name(f"{path.stem}.masks.npz")
    if masks:
        with atomic_open(npz, "wb") as f:
            np.savez_compressed(f, **masks)
    doc = {
        "rois": {
            name: {"mask": npz.name} if name in masks else dict(zip("xywh", rect, strict=True))
            for name, rect in named.items()
        }
    }
    with atomic_open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    return path
