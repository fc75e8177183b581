"""Single-photon detection on sparse CMOS frames: events, energy histogram, clean image.

A photon absorbed in a CMOS sensor (FemtoMAX Balor/Zyla) spreads its charge over a
few pixels. `detect` turns frames into an event list along ``event``: ``frame``,
``y``, ``x`` (centre of gravity, full-frame pixel coordinates), ``energy`` (ADU),
``peak`` (the hottest pixel), ``pixels`` (above-threshold pixels of the hit) and
``pileup``.

The signal is ``s = frame - background``. The threshold only decides which pixels
belong to hits (``s > threshold``, the original's ``f > 0``); two methods decide
which hits there are:

``method="maxima"`` (default)
    A hit is an above-threshold pixel that is the maximum of its own 3 x 3
    neighbourhood, ties broken in raster order (a pixel equal to an earlier
    neighbour -- up-left, up, up-right, left -- is not a maximum; equal to a later
    one, it is). Every above-threshold pixel joins exactly one hit: it climbs
    from pixel to the hottest pixel of its 3 x 3 window (same tie rule) until it
    reaches a maximum. The energy is the sum of ``s`` (not threshold-clipped;
    negative noise included, so it is unbiased) over the 3 x 3 box around the
    maximum, and the position its centre of gravity with weights ``max(s, 0)``:
    clipped so that negative pixels (read noise, a Pilatus' -1/-2 gap markers)
    cannot pull it out of the box; the hottest pixel is above threshold >= 0, so
    the weights never sum to 0. Hot pixels -- single bright pixels, no charge sharing -- are
    rejected by shape: an event whose hottest pixel holds more than
    `hot_pixel_fraction` of the box energy is dropped (a charge-shared photon
    puts at most ~55 % into one pixel; a hot pixel ~100 %). Weak hot pixels fall
    below ``energy_min`` anyway. NaN pixels carry no signal (0).
``method="original"``
    FemtoMAX's ``photonize`` (maxiv-science/drp-femtomax, src/worker.py:163-188)
    exactly: ``f = clip(s, threshold) - threshold``; every pixel with ``f > 0``
    adds the argmax of ``f`` over its 3 x 3 window to a set; per hit ``E`` = sum
    of ``f`` over the box, position = ``center_of_mass`` of the box + offset;
    kept when ``E > energy_min``. No hot-pixel test. Its edge rule comes from
    numpy slicing: a window starting at row or column -1 is empty, so pixels of
    the first row/column never seed a hit and hits there get ``E = 0`` (dropped),
    while windows at the last row/column are clipped to the frame. On
    charge-shared hits it counts one photon twice whenever a pixel two steps
    from the peak sees a neighbour of the peak as its maximum, and the clipped
    energy sits ~``threshold`` x (pixels) low.

Edges (maxima): the 3 x 3 box and neighbourhood are clipped to the frame (or the
`roi`), so a photon at the border is found with the part of its charge that
landed inside; nothing is dropped silently. ``roi=(x, y, w, h)`` detects in
``frame[y:y+h, x:x+w]`` as if it were the whole frame (the original crops the
same way); positions are in full-frame coordinates.

Density check: the single-photon hypothesis fails when hits overlap. Each frame
chunk warns (`BeamcatWarning`, with the numbers) when more than
`MAX_OVER_THRESHOLD` (5 %) of the analysed pixels are above threshold (at ~8
pixels per photon that is one photon in ~160 pixels, and one photon in ~7 has
another within 2 px, where their 3 x 3 boxes touch) or when more than
`MAX_PILEUP` (2 %) of the events have ``energy > energy_max``.

Laziness: on dask-backed frames `detect` returns a `PhotonEvents` (nothing
computed): one kernel call per frame chunk gives a structured event table of
unknown length, concatenated into a dask array with ``nan`` chunks. xarray does
not accept such arrays for more than one variable of a Dataset (it compares the
``nan`` lengths, which are never equal), so ``PhotonEvents.compute()`` gives the
event Dataset; `histogram` and `clean_image` take it and stay lazy. Memory is one
frame chunk plus the events.

The numba kernel `detect_frame` (one frame, ``nogil``) has a NumPy/scipy twin
`detect_frame_reference` built differently (shifted stacks, pointer jumping,
``scipy.ndimage.correlate``); `KERNELS` pairs them for the tests and benchmark.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Literal

import dask
import dask.array as da
import numba
import numpy as np
import xarray as xr
from scipy.ndimage import correlate

from beamcat.analyses._history import add_history
from beamcat.analyses.detector import _check_pixels, as_background, as_frames
from beamcat.errors import BeamcatWarning, OptionError
from beamcat.rois import check_rect

__all__ = [
    "EVENT_DTYPE",
    "KERNELS",
    "MAX_OVER_THRESHOLD",
    "MAX_PILEUP",
    "PhotonEvents",
    "clean_image",
    "detect",
    "detect_frame",
    "detect_frame_reference",
    "histogram",
]

Method = Literal["maxima", "original"]
METHODS = ("maxima", "original")
#: the density limits of the warning (fractions, see the module docstring)
MAX_OVER_THRESHOLD = 0.05
MAX_PILEUP = 0.02

EVENT_DTYPE = np.dtype(
    [
        ("frame", np.int64),
        ("y", np.float64),
        ("x", np.float64),
        ("energy", np.float64),
        ("peak", np.float64),
        ("pixels", np.int32),
        ("pileup", np.bool_),
    ]
)
# what a frame kernel returns: hottest pixel (row, col), energy, centre (y, x), peak, pixels
_HIT_FIELDS = ("row", "col", "energy", "y", "x", "peak", "pixels")


# --------------------------------------------------------------------------- numba kernel


@numba.njit(nogil=True, cache=True, inline="always")
def _signal(frame, background, y, x, original):  # pragma: no cover - numba
    """``frame - background`` at (y, x); NaN becomes 0 for the maxima method."""
    v = np.float64(frame[y, x]) - background[y, x]
    if v != v and not original:
        return 0.0
    return v


@numba.njit(nogil=True, cache=True)
def _window_argmax(frame, background, y, x, original):  # pragma: no cover - numba
    """Hottest pixel of the 3 x 3 window of (y, x) clipped to the frame, first in raster order.

    A NaN wins for the original method (numpy's argmax returns the first NaN).
    """
    ny, nx = frame.shape
    best, by, bx = -np.inf, y, x
    for yy in range(max(y - 1, 0), min(y + 2, ny)):
        for xx in range(max(x - 1, 0), min(x + 2, nx)):
            v = _signal(frame, background, yy, xx, original)
            if v != v:
                return yy, xx
            if v > best:
                best, by, bx = v, yy, xx
    return by, bx


@numba.njit(nogil=True, cache=True)
def _grow(a, size):  # pragma: no cover - numba
    """`a`, or a copy with room for `size` items (at least doubled)."""
    if size <= a.size:
        return a
    b = np.empty(max(size, 2 * a.size), a.dtype)
    b[: a.size] = a
    return b


@numba.njit(nogil=True, cache=True)
def _scan_row(row, background, threshold, start, seeds, n):  # pragma: no cover - numba
    """Append ``start + x`` to ``seeds[n:]`` for each above-threshold pixel x of `row`."""
    for x in range(row.size):
        if np.float64(row[x]) - background[x] > threshold:
            seeds[n] = start + x
            n += 1
    return n


@numba.njit(nogil=True, cache=True)
def detect_frame(frame, background, threshold, energy_min, original):  # pragma: no cover
    """Hits of one frame (numba kernel, ``nogil``); see the module docstring for the methods.

    Parameters
    ----------
    frame : ndarray (ny, nx)
        Raw frame, any real dtype.
    background : ndarray (ny, nx) float64
        Dark level per pixel (a broadcast view for a uniform level).
    threshold, energy_min : float
        Pixels with ``frame - background > threshold`` belong to hits; hits with
        energy ``> energy_min`` are returned.
    original : bool
        The original's set-of-argmaxes rule instead of 3 x 3 maxima.

    Returns
    -------
    row, col : ndarray (n,) int64
        Hottest pixel of each hit, raster order.
    energy, y, x, peak : ndarray (n,) float64
        Box energy, centre of gravity, signal of the hottest pixel.
    pixels : ndarray (n,) int64
        Above-threshold pixels that joined the hit.
    n_over : int
        Above-threshold pixels in the frame.
    """
    ny, nx = frame.shape
    seeds = np.empty(max(ny * nx // 256, 64), np.int64)
    n = 0
    for y in range(ny):
        seeds = _grow(seeds, n + nx)  # outside the pixel loop, which then only stores
        n = _scan_row(frame[y], background[y], threshold, y * nx, seeds, n)
    seeds, n_over = seeds[:n], n
    if original:  # the original's window frame[-1:2] is empty: first row/column never seed
        seeds = seeds[(seeds >= nx) & (seeds % nx != 0)]
        n = seeds.size
    roots = np.empty(n, np.int64)
    for i in range(n):
        y, x = seeds[i] // nx, seeds[i] % nx
        while True:
            py, px = _window_argmax(frame, background, y, x, original)
            if original or (py == y and px == x):
                break
            y, x = py, px
        roots[i] = py * nx + px
    # the maxima's roots are seeds already in raster order; the original's argmaxes are not
    hits = np.unique(roots) if original else seeds[roots == seeds]
    pixels = np.bincount(np.searchsorted(hits, roots), minlength=hits.size)
    keep = np.zeros(hits.size, np.bool_)
    out = np.zeros((4, hits.size))  # energy, y, x, peak
    for h in range(hits.size):
        r, c = hits[h] // nx, hits[h] % nx
        if original and (r == 0 or c == 0):
            continue  # empty window: E = 0, never above energy_min (> 0)
        peak = _signal(frame, background, r, c, original)
        if not original and 9.0 * peak <= energy_min:
            continue  # a maximum's box holds nothing above it: cannot pass (noise hits)
        e = sw = sy = sx = 0.0
        for yy in range(max(r - 1, 0), min(r + 2, ny)):
            for xx in range(max(c - 1, 0), min(c + 2, nx)):
                v = _signal(frame, background, yy, xx, original)
                if original:
                    v = v - threshold if v > threshold else (v if v != v else 0.0)
                w = v if original or v > 0 else 0.0
                e += v
                sw += w
                sy += w * yy
                sx += w * xx
        if e > energy_min:
            keep[h] = True
            out[0, h], out[1, h], out[2, h] = e, sy / sw, sx / sw
            out[3, h] = peak
    hits, out = hits[keep], out[:, keep]
    return hits // nx, hits % nx, out[0], out[1], out[2], out[3], pixels[keep], n_over


# --------------------------------------------------------------------------- NumPy twin

_OFFSETS = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]  # raster order


def _window_argmax_map(s: np.ndarray) -> np.ndarray:
    """Linear index of the hottest pixel of every pixel's 3 x 3 window (first in raster order)."""
    ny, nx = s.shape
    padded = np.pad(s, 1, constant_values=-np.inf)
    stack = np.stack([padded[1 + dy : 1 + dy + ny, 1 + dx : 1 + dx + nx] for dy, dx in _OFFSETS])
    k = np.argmax(stack, axis=0)  # numpy: first maximum, or first NaN
    dy, dx = np.array(_OFFSETS).T
    rows, cols = np.indices(s.shape)
    return (rows + dy[k]) * nx + cols + dx[k]


def detect_frame_reference(
    frame: np.ndarray,
    background: np.ndarray,
    threshold: float,
    energy_min: float,
    original: bool,
) -> tuple:
    """NumPy/scipy twin of `detect_frame`: same arguments, same return values.

    Window argmaxes of all pixels from a stack of nine shifted frames; the maxima
    method climbs by pointer jumping; box sums by ``scipy.ndimage.correlate`` with
    a zero border (the box clipped to the frame).
    """
    ny, nx = frame.shape
    s = frame.astype(np.float64) - background
    over = s > threshold
    seeds = over.copy()
    if original:
        values = weights = np.where(over, s - threshold, np.where(np.isnan(s), s, 0.0))
        seeds[0, :] = seeds[:, 0] = False
        roots = _window_argmax_map(s)
    else:
        values = s = np.nan_to_num(s, nan=0.0, posinf=np.inf, neginf=-np.inf)
        weights = s.clip(min=0)
        roots = _window_argmax_map(s).ravel()
        while not np.array_equal(roots[roots], roots):
            roots = roots[roots]
    hits, pixels = np.unique(roots.ravel()[seeds.ravel()], return_counts=True)
    box = np.ones((3, 3))
    rows, cols = np.indices(s.shape)
    energy = correlate(values, box, mode="constant")
    sw = correlate(weights, box, mode="constant")
    sy = correlate(weights * rows, box, mode="constant")
    sx = correlate(weights * cols, box, mode="constant")
    r, c = hits // nx, hits % nx
    e = energy[r, c]
    if original:
        e = np.where((r == 0) | (c == 0), 0.0, e)
    keep = e > energy_min
    r, c, e = r[keep], c[keep], e[keep]
    return r, c, e, sy[r, c] / sw[r, c], sx[r, c] / sw[r, c], s[r, c], pixels[keep], int(over.sum())


#: kernel -> reference twin, for the tests and the benchmark
KERNELS = {detect_frame: detect_frame_reference}


# --------------------------------------------------------------------------- frames -> events


def _check_options(threshold, energy_min, energy_max, method, hot_pixel_fraction) -> None:
    if method not in METHODS:
        raise OptionError(f"method={method!r}: expected one of {METHODS}")
    if not (np.isfinite(threshold) and threshold >= 0):
        raise OptionError(f"threshold={threshold!r}: expected a finite number >= 0")
    if not threshold < energy_min:
        raise OptionError(
            f"threshold={threshold} >= energy_min={energy_min}: the threshold selects the "
            "pixels of a hit and must be below the hit energy cut"
        )
    if energy_max is not None and not energy_max > energy_min:
        raise OptionError(f"energy_max={energy_max} must be above energy_min={energy_min}")
    if hot_pixel_fraction is not None and not 0 < hot_pixel_fraction <= 1:
        raise OptionError(f"hot_pixel_fraction={hot_pixel_fraction!r}: expected 0 < f <= 1")


def _roi_bounds(roi, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """``(y0, y1, x0, x1)`` of ``roi=(x, y, w, h)`` (whole frame for None), checked in `shape`."""
    if roi is None:
        return 0, shape[0], 0, shape[1]
    return check_rect(roi, shape, "roi").bounds()


def _detect_block(
    block: np.ndarray,
    frame_ids: np.ndarray,
    background: float | np.ndarray,
    bounds: tuple[int, int, int, int],
    options: dict,
) -> tuple[np.ndarray, np.ndarray]:
    """Events of a ``(n, ny, nx)`` block as an `EVENT_DTYPE` table, and its density counts.

    The counts are ``(pixels above threshold, pixels analysed)``; the pile-up count
    follows from the table.
    """
    y0, y1, x0, x1 = bounds
    dark = np.broadcast_to(np.asarray(background, np.float64), block.shape[1:])[y0:y1, x0:x1]
    tables, n_over = [], 0
    for frame, frame_id in zip(block, frame_ids, strict=True):
        *values, over = detect_frame(
            frame[y0:y1, x0:x1],
            dark,
            float(options["threshold"]),
            float(options["energy_min"]),
            options["method"] == "original",
        )
        hit = dict(zip(_HIT_FIELDS, values, strict=True))
        n_over += over
        keep = np.ones(hit["energy"].size, bool)
        if options["method"] == "maxima" and options["hot_pixel_fraction"] is not None:
            keep = hit["peak"] <= options["hot_pixel_fraction"] * hit["energy"]
        table = np.zeros(int(keep.sum()), EVENT_DTYPE)
        table["frame"] = frame_id
        table["y"], table["x"] = hit["y"][keep] + y0, hit["x"][keep] + x0
        for name in ("energy", "peak", "pixels"):
            table[name] = hit[name][keep]
        if options["energy_max"] is not None:
            table["pileup"] = table["energy"] > options["energy_max"]
        tables.append(table)
    events = np.concatenate(tables) if tables else np.zeros(0, EVENT_DTYPE)
    return events, np.array([n_over, block.shape[0] * (y1 - y0) * (x1 - x0)], np.int64)


def _to_dataset(table: np.ndarray, counts: np.ndarray, attrs: dict) -> xr.Dataset:
    """The event Dataset of a computed table; warns when the frames were too dense."""
    over = counts[0] / max(counts[1], 1)
    pileup = table["pileup"].sum() / max(table.size, 1)
    attrs = {**attrs, "over_threshold_fraction": float(over), "pileup_fraction": float(pileup)}
    if over > MAX_OVER_THRESHOLD or pileup > MAX_PILEUP:
        warnings.warn(
            f"{attrs.get('source', 'frames')}: {over:.2%} of the analysed pixels are above "
            f"threshold {attrs['threshold']} (limit {MAX_OVER_THRESHOLD:.0%}) and "
            f"{pileup:.2%} of {table.size} events are pile-ups above energy_max "
            f"{attrs.get('energy_max')} (limit {MAX_PILEUP:.0%}): too dense for single-photon "
            "counting, hits overlap",
            BeamcatWarning,
            stacklevel=3,
        )
    units = attrs.get("units", "counts")
    variables = {
        "frame": ("event", table["frame"], {"long_name": "frame index"}),
        "y": ("event", table["y"], {"units": "pixel", "long_name": "centre of gravity, row"}),
        "x": ("event", table["x"], {"units": "pixel", "long_name": "centre of gravity, column"}),
        "energy": ("event", table["energy"], {"units": units, "long_name": "3 x 3 box sum"}),
        "peak": ("event", table["peak"], {"units": units, "long_name": "hottest pixel"}),
        "pixels": ("event", table["pixels"], {"long_name": "above-threshold pixels of the hit"}),
        "pileup": ("event", table["pileup"], {"long_name": "energy above energy_max"}),
    }
    return xr.Dataset(variables, attrs={k: v for k, v in attrs.items() if k != "units"})


class PhotonEvents:
    """The events of dask-backed frames, not yet computed (see `detect`).

    Attributes
    ----------
    table : dask.array.Array (event,) of `EVENT_DTYPE`
        Chunks of unknown (``nan``) length, one per frame chunk.
    counts : dask.array.Array (2,)
        Pixels above threshold and pixels analysed, for the density check.
    attrs : dict
        The attrs the event Dataset gets.
    """

    def __init__(self, table: da.Array, counts: da.Array, attrs: dict):
        self.table, self.counts, self.attrs = table, counts, attrs

    def compute(self, **kwargs) -> xr.Dataset:
        """Run the detection (``dask.compute`` with `kwargs`): the event Dataset; may warn."""
        table, counts = dask.compute(self.table, self.counts, **kwargs)
        return _to_dataset(table, counts, self.attrs)

    def __repr__(self) -> str:
        return (
            f"<PhotonEvents (lazy): {self.table.npartitions} frame chunks of "
            f"{self.attrs.get('source', 'frames')}, method={self.attrs['method']!r}>"
        )


def _frame_ids(frames: xr.DataArray) -> np.ndarray:
    """The frame number of each frame: the leading dim's integer coordinate, else its index."""
    if frames.ndim == 2:
        return np.zeros(1, np.int64)
    dim = frames.dims[0]
    if dim in frames.coords and np.issubdtype(frames[dim].dtype, np.integer):
        return np.asarray(frames[dim].values, np.int64)
    return np.arange(frames.shape[0], dtype=np.int64)


def detect(
    frames: xr.DataArray,
    *,
    threshold: float = 8.0,
    energy_min: float = 1100.0,
    energy_max: float | None = None,
    roi: Sequence[float] | None = None,
    background: float | np.ndarray | xr.DataArray = 100.0,
    method: Method = "maxima",
    hot_pixel_fraction: float | None = 0.9,
) -> xr.Dataset | PhotonEvents:
    """Photon hits in sparse CMOS frames: position, energy and pile-up flag per event.

    The defaults are FemtoMAX's Balor settings: dark level 100 ADU,
    ``threshold_counting`` 108 (8 ADU above the dark level) and ``pre_threshold``
    1100; the document's 1400 is a sensible `energy_max`. The methods, edge rule,
    hot-pixel test and density limits are described in the module docstring.

    Parameters
    ----------
    frames : DataArray (frame, y, x) or (y, x)
        Raw frames (ADU); a NumPy array gets these dims. The frame number of an
        event is the leading dim's integer coordinate (e.g. ``frame``) or the
        frame's index.
    threshold : float
        A pixel with ``frame - background > threshold`` belongs to a hit (ADU).
    energy_min : float
        Events with a 3 x 3 energy ``> energy_min`` are kept; must be above `threshold`.
    energy_max : float, optional
        Events above it are flagged ``pileup`` (two photons in one box).
    roi : (x, y, w, h), optional
        Detect in ``frame[y:y+h, x:x+w]`` only; positions stay full-frame.
    background : float or array (y, x)
        Dark level: one number or a dark frame.
    method : {"maxima", "original"}
        3 x 3 maxima (default) or the original's set of window argmaxes.
    hot_pixel_fraction : float or None
        ``"maxima"`` only: drop events whose hottest pixel holds more than this
        fraction of the energy (hot pixels); None keeps them (e.g. for a photon
        counting Pilatus, whose photons do not share charge).

    Returns
    -------
    Dataset (event) or PhotonEvents
        For in-memory frames a Dataset of ``frame`` (int64), ``y``, ``x``
        (float64, pixel), ``energy``, ``peak`` (float64, units of `frames`),
        ``pixels`` (int32), ``pileup`` (bool), events ordered by frame and then by
        the raster position of the hottest pixel; attrs hold the options,
        ``roi`` ``[x, y, w, h]``, ``frame_shape`` ``[ny, nx]``, the source, the
        history and the density numbers ``over_threshold_fraction`` and
        ``pileup_fraction``. For dask-backed frames a `PhotonEvents` whose
        ``compute()`` gives that Dataset; nothing is computed here.

    Raises
    ------
    OptionError
        For ``threshold >= energy_min``, ``energy_max <= energy_min``, a negative
        threshold, a ROI outside the frame, an unknown method, a dark frame of
        another shape, or frames whose last dims are not ``("y", "x")``.

    Warns
    -----
    BeamcatWarning
        When the Dataset is made (at compute time for dask input) and more than
        `MAX_OVER_THRESHOLD` of the pixels are above threshold or more than
        `MAX_PILEUP` of the events are pile-ups.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> frame = np.full((1, 32, 32), 100, np.uint16)
    >>> frame[0, 3:6, 4:7] += np.array([[50, 150, 50], [150, 600, 150], [50, 150, 50]], np.uint16)
    >>> events = detect(xr.DataArray(frame, dims=("frame", "y", "x")), energy_max=1400)
    >>> events[["y", "x", "energy"]].to_dataframe().values.tolist()
    [[4.0, 5.0, 1400.0]]
    """
    frames = as_frames(frames)
    shape = _check_pixels(frames)
    if frames.ndim not in (2, 3):
        raise OptionError(f"frames: expected dims (frame, y, x) or (y, x), got {frames.dims}")
    _check_options(threshold, energy_min, energy_max, method, hot_pixel_fraction)
    bounds = _roi_bounds(roi, shape)
    dark = as_background(background, shape)
    options = {
        "threshold": threshold,
        "energy_min": energy_min,
        "energy_max": energy_max,
        "method": method,
        "hot_pixel_fraction": hot_pixel_fraction,
    }
    y0, y1, x0, x1 = bounds
    settings = {k: v for k, v in options.items() if v is not None}
    if method == "original":
        settings.pop("hot_pixel_fraction", None)
    settings["background"] = dark if np.ndim(dark) == 0 else "dark frame"
    attrs = add_history(
        {**frames.attrs, **settings},
        f"photon.detect({', '.join(f'{k}={v!r}' for k, v in settings.items())}, "
        f"roi={list(roi) if roi is not None else None})",
    )
    attrs.update(roi=[x0, y0, x1 - x0, y1 - y0], frame_shape=list(shape))
    ids = _frame_ids(frames)
    data = frames.data if frames.ndim == 3 else frames.data[None]
    dark_data = dark if np.ndim(dark) == 0 else dark.data
    if not isinstance(data, da.Array):
        table, counts = _detect_block(np.asarray(data), ids, np.asarray(dark_data), bounds, options)
        return _to_dataset(table, counts, attrs)
    data = data.rechunk({1: -1, 2: -1})
    starts = np.cumsum((0, *data.chunks[0]))
    tables, counts = [], []
    for i, block in enumerate(data.to_delayed().ravel()):
        result = dask.delayed(_detect_block, nout=2, pure=True)(
            block, ids[starts[i] : starts[i + 1]], dark_data, bounds, options
        )
        tables.append(da.from_delayed(result[0], shape=(np.nan,), dtype=EVENT_DTYPE))
        counts.append(da.from_delayed(result[1], shape=(2,), dtype=np.int64))
    return PhotonEvents(da.concatenate(tables), da.stack(counts).sum(axis=0), attrs)


# --------------------------------------------------------------------------- events -> results


def _table(events: xr.Dataset | PhotonEvents, fields: Sequence[str]) -> dict:
    """The event `fields` as numpy (Dataset) or dask (PhotonEvents) arrays."""
    if isinstance(events, PhotonEvents):
        return {f: events.table[f] for f in fields}
    missing = [f for f in fields if f not in events.variables]
    if missing:
        raise OptionError(f"events: no variable {missing}; expected an event Dataset of detect")
    return {f: events[f].data for f in fields}


def histogram(
    events: xr.Dataset | PhotonEvents,
    bins: int | Sequence[float] | np.ndarray = 100,
    *,
    range: tuple[float, float] | None = None,  # noqa: A002 - numpy's name
) -> xr.DataArray:
    """Energy histogram of the events: the photon peak, its tails and pile-ups.

    Parameters
    ----------
    events : Dataset (event) or PhotonEvents
        The result of `detect`.
    bins : int or array of edges
        Number of bins over `range`, or the bin edges.
    range : (low, high), optional
        For an int `bins`; default ``(energy_min, 3 * energy_min)`` from the
        events' attrs (photons and two-photon pile-ups).

    Returns
    -------
    DataArray (energy)
        Event counts per bin (dask-backed for `PhotonEvents`), coordinate ``energy``
        the bin centres, ``energy_low``/``energy_high`` the edges; attrs keep the
        thresholds so a plot can mark them.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> ev = xr.Dataset({"energy": ("event", [1200.0, 1250.0, 2500.0])})
    >>> histogram(ev, [1000, 2000, 3000]).values.tolist()
    [2, 1]
    """
    if np.ndim(bins) == 0:
        if range is None:
            e = events.attrs.get("energy_min")
            if e is None:
                raise OptionError("histogram: pass range=(low, high) or bin edges")
            range = (e, 3 * e)
        edges = np.linspace(range[0], range[1], int(bins) + 1)
    else:
        edges = np.asarray(bins, np.float64)
    if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0):
        raise OptionError(f"histogram: bins={bins!r} must be increasing edges or a count >= 1")
    energy = _table(events, ["energy"])["energy"]
    if isinstance(energy, da.Array):
        counts, _ = da.histogram(energy, bins=edges)
    else:
        counts, _ = np.histogram(energy, bins=edges)
    lazy = isinstance(events, PhotonEvents)
    units = {"units": (events.attrs if lazy else events["energy"].attrs).get("units", "counts")}
    return xr.DataArray(
        counts,
        dims="energy",
        coords={
            "energy": ("energy", (edges[:-1] + edges[1:]) / 2, units),
            "energy_low": ("energy", edges[:-1], units),
            "energy_high": ("energy", edges[1:], units),
        },
        name="events",
        attrs={
            k: events.attrs[k]
            for k in ("threshold", "energy_min", "energy_max", "source")
            if k in events.attrs
        },
    )


def _clean_block(y, x, energy, shape, bounds, energy_min) -> np.ndarray:
    """Counts per pixel of the events in `bounds` with ``energy > energy_min``."""
    y0, y1, x0, x1 = bounds
    iy, ix = np.floor(y).astype(np.int64), np.floor(x).astype(np.int64)
    inside = (energy > energy_min) & (iy >= y0) & (iy < y1) & (ix >= x0) & (ix < x1)
    flat = np.bincount(iy[inside] * shape[1] + ix[inside], minlength=shape[0] * shape[1])
    return flat.reshape(shape)


def clean_image(
    events: xr.Dataset | PhotonEvents,
    shape: tuple[int, int] | None = None,
    *,
    energy_min: float | None = None,
    roi: Sequence[float] | None = None,
) -> xr.DataArray:
    """Photon counts per pixel: +1 at ``(floor(y), floor(x))`` of every event (the original's).

    Parameters
    ----------
    events : Dataset (event) or PhotonEvents
        The result of `detect`.
    shape : (ny, nx), optional
        The frame shape; default the events' ``frame_shape`` attr.
    energy_min : float, optional
        The view threshold (e.g. 1100): events with energy above it count; default
        the detection's ``energy_min`` (every event). A pile-up counts once.
    roi : (x, y, w, h), optional
        Counts outside are 0; default the detection's ``roi``.

    Returns
    -------
    DataArray (y, x) int64
        Same shape as the frames, summed over all frames (dask-backed for
        `PhotonEvents`).

    Examples
    --------
    >>> import xarray as xr
    >>> ev = xr.Dataset({"y": ("event", [1.2, 1.7]), "x": ("event", [0.5, 2.1]),
    ...                  "energy": ("event", [1200.0, 1250.0])})
    >>> clean_image(ev, (2, 3)).values.tolist()
    [[0, 0, 0], [1, 0, 1]]
    """
    shape = tuple(shape if shape is not None else events.attrs.get("frame_shape", ()))
    if len(shape) != 2:
        raise OptionError("clean_image: pass shape=(ny, nx); the events have no frame_shape")
    roi = roi if roi is not None else events.attrs.get("roi")
    bounds = _roi_bounds(roi, shape)
    cut = energy_min if energy_min is not None else events.attrs.get("energy_min", -np.inf)
    fields = _table(events, ["y", "x", "energy"])
    if isinstance(events, PhotonEvents):
        parts = [
            da.from_delayed(
                dask.delayed(_clean_block, pure=True)(
                    block["y"], block["x"], block["energy"], shape, bounds, cut
                ),
                shape=shape,
                dtype=np.int64,
            )
            for block in events.table.to_delayed().ravel()
        ]
        image = da.stack(parts).sum(axis=0)
    else:
        image = _clean_block(*fields.values(), shape, bounds, cut)
    attrs = {k: v for k, v in events.attrs.items() if k in ("source", "pixel_size", "energy")}
    attrs.update(units="photons", energy_min=cut, roi=list(roi) if roi is not None else None)
    return xr.DataArray(image, dims=("y", "x"), name="photons", attrs=attrs)
