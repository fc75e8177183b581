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
    the weights never sum to 0. Hot pixels -- single bright pixels, no charge
    sharing -- are rejected by shape: an event whose hottest pixel holds more than
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

Density check: the single-photon hypothesis fails when hits overlap. The event
list warns (`BeamcatWarning`, with the numbers) when more than
`MAX_OVER_THRESHOLD` (5 %) of the analysed pixels are above threshold (at ~8
pixels per photon that is one photon in ~160 pixels, and one photon in ~7 has
another within 2 px, where their 3 x 3 boxes touch) or when more than
`MAX_PILEUP` (2 %) of the events have ``energy > energy_max``.

Forms of the result (`beamcat.analyses.photon_events`): for in-memory frames the
event list, a Dataset along ``event``; for dask-backed frames nothing is computed:
`detect` gives a `PhotonEvents` and `detect_tables` (what ``ds.photon.detect``
gives) the per-frame event tables, a lazy Dataset along the frames' dim: one task
per frame chunk (``da.blockwise``, not ``apply_ufunc``, whose contraction of the
pixel dims copies every chunk; see `_lazy_tables`). `histogram` and `clean_image`
take every form and stay lazy (one per frame chunk, summed). Memory is one frame
chunk plus its events.

Speed: the numba kernel `detect_frame` (`beamcat.analyses.photon_kernel`, one
frame, ``nogil``, so dask's threads run it in parallel) reads each frame once in
its own dtype (uint16, float32 ...: never converted or copied; a uniform dark
level is one number, not a frame) and then works on the above-threshold pixels
only; its NumPy/scipy twin `detect_frame_reference` is built differently
(shifted stacks, pointer jumping, ``scipy.ndimage.correlate``); `KERNELS` pairs
them for the tests and the benchmark (``benchmarks/photon.py``).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Literal

import dask.array as da
import numpy as np
import xarray as xr

from beamcat.analyses._frames import check_pixel_dims
from beamcat.analyses._history import add_history
from beamcat.analyses.detector import as_background, as_frames
from beamcat.analyses.photon_events import (
    EVENT_DTYPE,
    HIT_DTYPE,
    MAX_OVER_THRESHOLD,
    MAX_PILEUP,
    PhotonEvents,
    clean_image,
    event_list,
    histogram,
    is_event_tables,
    roi_bounds,
)
from beamcat.analyses.photon_kernel import KERNELS, detect_frame, detect_frame_reference
from beamcat.errors import OptionError

__all__ = [
    "EVENT_DTYPE",
    "HIT_DTYPE",
    "KERNELS",
    "MAX_OVER_THRESHOLD",
    "MAX_PILEUP",
    "PhotonEvents",
    "clean_image",
    "detect",
    "detect_frame",
    "detect_frame_reference",
    "detect_tables",
    "event_list",
    "histogram",
    "is_event_tables",
]

Method = Literal["maxima", "original"]
METHODS = ("maxima", "original")
# what a frame kernel returns: hottest pixel (row, col), energy, centre (y, x), peak, pixels
_HIT_FIELDS = ("row", "col", "energy", "y", "x", "peak", "pixels")


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


def _detect_block(
    block: np.ndarray,
    background: np.ndarray | float,
    *,
    offset: tuple[int, int],
    options: dict,
) -> tuple[np.ndarray, np.ndarray]:
    """Per frame of a ``(n, ny, nx)`` block: its `HIT_DTYPE` table and pixels over threshold.

    `block` is the (ROI-cropped) frames, read as they are: the kernel takes any
    real dtype, and a uniform `background` goes in as a broadcast view.
    """
    dark = np.broadcast_to(np.asarray(background, np.float64), block.shape[-2:])
    tables = np.empty(block.shape[:-2], object)
    over = np.zeros(block.shape[:-2], np.int64)
    original = options["method"] == "original"
    cut = options["hot_pixel_fraction"] if not original else None
    for i in np.ndindex(tables.shape):
        *values, over[i] = detect_frame(
            block[i], dark, float(options["threshold"]), float(options["energy_min"]), original
        )
        hit = dict(zip(_HIT_FIELDS, values, strict=True))
        keep = slice(None) if cut is None else hit["peak"] <= cut * hit["energy"]
        table = np.zeros(hit["energy"][keep].size, HIT_DTYPE)
        table["y"], table["x"] = hit["y"][keep] + offset[0], hit["x"][keep] + offset[1]
        for name in ("energy", "peak", "pixels"):
            table[name] = hit[name][keep]
        if options["energy_max"] is not None:
            table["pileup"] = table["energy"] > options["energy_max"]
        tables[i] = table
    return tables, over


def _detect_chunk(blocks, dark=None, *, background=None, offset, options) -> np.ndarray:
    """`_detect_block` of one frame chunk as an ``(n, 2)`` object array: tables, pixels over.

    The pixel dims arrive as nested one-item lists (`_lazy_tables`: no concatenation).
    """
    while isinstance(blocks, list):
        (blocks,) = blocks
    while isinstance(dark, list):
        (dark,) = dark
    background = background if dark is None else dark
    tables, over = _detect_block(blocks, background, offset=offset, options=options)
    out = np.empty((tables.size, 2), object)
    out[:, 0], out[:, 1] = tables, over
    return out


def _lazy_tables(data: da.Array, dark, **kwargs) -> tuple[da.Array, da.Array]:
    """Per frame tables (object) and pixels over threshold (int64) of dask-backed frames.

    One task per frame chunk (whole frames). ``da.blockwise(concatenate=False)``,
    not ``apply_ufunc``: its core (pixel) dims are contracted with
    ``concatenate=True``, which copies every frame chunk before the kernel sees it
    (measured: ~10 ms per chunk of two 2048 x 2048 float32 frames, as long as the
    kernel). Here the frames reach the kernel as dask holds them.
    """
    data = data.rechunk({1: -1, 2: -1})
    args = [data, "fyx"]
    if np.ndim(dark) == 0:
        kwargs["background"] = float(dark)
    else:  # one key for the dark frame, not a copy in every task
        args += [da.asarray(dark).rechunk(-1), "yx"]
    out = da.blockwise(
        _detect_chunk,
        "fv",
        *args,
        new_axes={"v": 2},
        concatenate=False,
        dtype=object,
        meta=np.empty((0, 0), object),
        **kwargs,
    )
    return out[:, 0], out[:, 1].astype(np.int64)


def detect_tables(frames: xr.DataArray, **options) -> xr.Dataset:
    """Photon hits per frame: the event tables (lazy for dask-backed frames).

    Same options (`detect`'s keywords, same defaults), checks and events as
    `detect`; the events are kept per frame (`beamcat.analyses.photon_events`), so
    the result is a Dataset even before the number of events is known.

    Returns
    -------
    Dataset (frame)
        ``events`` (object): per frame a `HIT_DTYPE` table; ``over_threshold``
        (int64): its above-threshold pixels; the frames' coordinates along their
        leading dim; attrs as `detect`'s (without the density numbers, which
        `event_list` adds). Dask-backed, chunked like the frames, for dask-backed
        frames: one kernel call per frame in a task per frame chunk.

    Examples
    --------
    >>> import numpy as np
    >>> frames = np.full((2, 8, 8), 100, np.uint16)
    >>> frames[1, 2:5, 2:5] += np.array([[50, 150, 50], [150, 600, 150], [50, 150, 50]], np.uint16)
    >>> tables = detect_tables(frames)
    >>> [t.size for t in tables.events.values], tables.over_threshold.values.tolist()
    ([0, 1], [0, 9])
    """
    try:
        bound = inspect.signature(detect).bind(frames, **options)
    except TypeError as error:
        names = list(inspect.signature(detect).parameters)[1:]
        raise OptionError(f"photon.detect_tables: {error}; the options are {names}") from None
    bound.apply_defaults()
    return _tables(**bound.arguments)


def _tables(
    frames, *, threshold, energy_min, energy_max, roi, background, method, hot_pixel_fraction
):
    """`detect_tables` with every option given."""
    frames = as_frames(frames)
    shape = check_pixel_dims(frames)
    if frames.ndim not in (2, 3):
        raise OptionError(f"frames: expected dims (frame, y, x) or (y, x), got {frames.dims}")
    _check_options(threshold, energy_min, energy_max, method, hot_pixel_fraction)
    y0, y1, x0, x1 = roi_bounds(roi, shape)
    dark = as_background(background, shape)
    options = {
        "threshold": threshold,
        "energy_min": energy_min,
        "energy_max": energy_max,
        "method": method,
        "hot_pixel_fraction": hot_pixel_fraction,
    }
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
    if frames.ndim == 2:
        frames = frames.expand_dims("frame")
    dim = frames.dims[0]
    data = frames.data[:, y0:y1, x0:x1]
    if np.ndim(dark) != 0:  # the dark frame's crop, float64 once (not per task)
        dark = dark.data[y0:y1, x0:x1].astype(np.float64)
    if isinstance(data, da.Array):
        tables, over = _lazy_tables(data, dark, offset=(y0, x0), options=options)
    else:
        tables, over = _detect_block(data, dark, offset=(y0, x0), options=options)
    coords = {k: v for k, v in frames.coords.items() if set(v.dims) <= {dim}}
    return xr.Dataset(
        {
            "events": (dim, tables, {"long_name": "events of the frame (HIT_DTYPE)"}),
            "over_threshold": (dim, over, {"long_name": "pixels above threshold"}),
        },
        coords=coords,
        attrs=attrs,
    )


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
    tables = _tables(**locals())  # frames and every option, as given
    if isinstance(tables["events"].data, da.Array):
        return PhotonEvents(tables)
    return event_list(tables)
