"""Photon events: the event list, per-frame event tables, energy histogram, clean image.

`beamcat.analyses.photon.detect` gives events in one of three forms, and every
function here takes each of them:

event list : Dataset (event)
    ``frame``, ``y``, ``x``, ``energy``, ``peak``, ``pixels``, ``pileup`` along
    ``event`` (DESIGN.md's event list), for in-memory frames.
event tables : Dataset (frame)
    ``events`` (object): per frame its events as a structured `HIT_DTYPE` table
    (`EVENT_DTYPE` less ``frame``: the frame is the table's label), and
    ``over_threshold`` (int64): its above-threshold pixels; dask-backed, chunked
    like the frames, for dask-backed frames. An xarray Dataset cannot hold an
    ``event`` dim of unknown length in more than one variable (it compares the
    ``nan`` lengths, which are never equal), so before computing the events are
    kept per frame, labelled by the frames' own coordinates (``frame``, ``step``,
    ``time`` ...). `event_list` flattens computed tables.
`PhotonEvents`
    The same tables behind the interface `detect` has always returned for
    dask-backed frames: ``table``, a structured dask array of unknown length
    (one chunk per frame chunk), and ``compute()``, the event list.

`histogram` and `clean_image` of event tables are lazy: one histogram or image
per frame chunk (the chunk's tables concatenated in the task), summed, so memory
holds a chunk's events and the result, and any chunking gives the same numbers.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from functools import cached_property

import dask
import dask.array as da
import numpy as np
import xarray as xr

from beamcat.errors import BeamcatWarning, OptionError
from beamcat.rois import check_rect

__all__ = [
    "EVENT_DTYPE",
    "HIT_DTYPE",
    "MAX_OVER_THRESHOLD",
    "MAX_PILEUP",
    "PhotonEvents",
    "clean_image",
    "event_list",
    "histogram",
    "is_event_tables",
]

#: the density limits of the warning (fractions, see `beamcat.analyses.photon`)
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


#: the events of one frame in the event tables: `EVENT_DTYPE` without ``frame``
HIT_DTYPE = np.dtype([(name, EVENT_DTYPE[name]) for name in EVENT_DTYPE.names[1:]])


def frame_ids(obj: xr.DataArray | xr.Dataset) -> np.ndarray:
    """The frame number of each frame: the leading dim's integer coordinate, else its index."""
    dim = next(iter(obj.dims))
    if dim in obj.coords and np.issubdtype(obj[dim].dtype, np.integer):
        return np.asarray(obj[dim].values, np.int64)
    return np.arange(obj.sizes[dim], dtype=np.int64)


def roi_bounds(roi, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """``(y0, y1, x0, x1)`` of ``roi=(x, y, w, h)`` (whole frame for None), checked in `shape`."""
    if roi is None:
        return 0, shape[0], 0, shape[1]
    return check_rect(roi, shape, "roi").bounds()


def is_event_tables(obj) -> bool:
    """Whether `obj` is an event tables Dataset (per frame ``events`` of `HIT_DTYPE`)."""
    return (
        isinstance(obj, xr.Dataset)
        and "events" in obj.data_vars
        and obj["events"].dtype == object
        and "over_threshold" in obj.data_vars
    )


def _concat(tables: np.ndarray, ids: np.ndarray | None = None) -> np.ndarray:
    """One `EVENT_DTYPE` table of per-frame `HIT_DTYPE` tables, ``frame`` from `ids` (or 0)."""
    out = np.zeros(sum(t.size for t in tables), EVENT_DTYPE)
    if out.size:
        hits = np.concatenate(list(tables))
        for name in HIT_DTYPE.names:
            out[name] = hits[name]
        if ids is not None:
            out["frame"] = np.repeat(ids, [t.size for t in tables])
    return out


def _concat_block(tables: np.ndarray, ids: np.ndarray, block_info=None) -> np.ndarray:
    """`_concat` of one chunk of dask-backed tables, with its frames' `ids`."""
    start, stop = block_info[0]["array-location"][0]
    return _concat(tables, ids[start:stop])


def _pixels_analysed(tables: xr.Dataset) -> int:
    """Pixels the detection looked at: frames x the ROI's pixels."""
    _, _, w, h = tables.attrs["roi"]
    return int(tables["events"].size * w * h)


def _to_dataset(table: np.ndarray, counts: Sequence[int], attrs: dict) -> xr.Dataset:
    """The event list of a computed table; warns when the frames were too dense."""
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
            stacklevel=4,
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


def event_list(tables: xr.Dataset) -> xr.Dataset:
    """The event list (dim ``event``) of computed event tables; may warn (density).

    Parameters
    ----------
    tables : Dataset (frame)
        Event tables of `beamcat.analyses.photon.detect_tables`, in memory (call
        ``.compute()`` on dask-backed ones first: the list's length is known only then).

    Returns
    -------
    Dataset (event)
        As `beamcat.analyses.photon.detect` gives it for in-memory frames.

    Raises
    ------
    OptionError
        For anything but event tables, or dask-backed ones.

    Examples
    --------
    >>> import numpy as np
    >>> from beamcat.analyses.photon import detect_tables
    >>> frame = np.full((1, 32, 32), 100, np.uint16)
    >>> frame[0, 2:5, 2:5] += np.array([[50, 150, 50], [150, 600, 150], [50, 150, 50]], np.uint16)
    >>> event_list(detect_tables(frame)).energy.values.tolist()
    [1400.0]
    """
    if not is_event_tables(tables):
        raise OptionError(
            f"event_list: expected event tables (variables 'events', 'over_threshold' of "
            f"photon.detect_tables), got {type(tables).__name__}"
        )
    if isinstance(tables["events"].data, da.Array):
        raise OptionError(
            f"{tables.attrs.get('source', 'event tables')}: the event tables are dask-backed; "
            "call .compute() first (the event list's length is known only then)"
        )
    counts = (int(tables["over_threshold"].values.sum()), _pixels_analysed(tables))
    table = _concat(tables["events"].values, frame_ids(tables))
    return _to_dataset(table, counts, tables.attrs)


class PhotonEvents:
    """The events of dask-backed frames, not yet computed (see `beamcat.analyses.photon.detect`).

    Attributes
    ----------
    tables : Dataset (frame)
        The lazy event tables (see the module docstring).
    table : dask.array.Array (event,) of `EVENT_DTYPE`
        Chunks of unknown (``nan``) length, one per frame chunk.
    counts : dask.array.Array (2,)
        Pixels above threshold and pixels analysed, for the density check.
    attrs : dict
        The attrs the event list gets.
    """

    def __init__(self, tables: xr.Dataset):
        self.tables, self.attrs = tables, tables.attrs

    @cached_property
    def table(self) -> da.Array:
        """The events, one chunk of unknown length per frame chunk (built on first use)."""
        events = self.tables["events"].data
        unknown = ((np.nan,) * events.numblocks[0],)
        meta = np.zeros(0, EVENT_DTYPE)
        ids = frame_ids(self.tables)
        return events.map_blocks(_concat_block, ids, dtype=EVENT_DTYPE, chunks=unknown, meta=meta)

    @cached_property
    def counts(self) -> da.Array:
        """Pixels above threshold and pixels analysed (built on first use)."""
        over = self.tables["over_threshold"].data.sum()
        return da.stack([over, da.full((), _pixels_analysed(self.tables), dtype=np.int64)])

    def compute(self, **kwargs) -> xr.Dataset:
        """Run the detection (``dask.compute`` with `kwargs`): the event list; may warn."""
        (tables,) = dask.compute(self.tables, **kwargs)
        return event_list(tables)

    def __repr__(self) -> str:
        return (
            f"<PhotonEvents (lazy): {self.table.npartitions} frame chunks of "
            f"{self.attrs.get('source', 'frames')}, method={self.attrs['method']!r}>"
        )


# --------------------------------------------------------------------------- events -> results


def _per_chunk(tables: xr.Dataset, func: Callable, shape: tuple[int, ...], dtype) -> np.ndarray:
    """``func(table)`` of the concatenated tables: per frame chunk and summed if dask-backed."""
    events = tables["events"].data
    if not isinstance(events, da.Array):
        return func(_concat(events))
    parts = events.map_blocks(
        lambda block: func(_concat(block))[None],
        dtype=dtype,
        chunks=((1,) * events.numblocks[0], *((n,) for n in shape)),
        new_axis=list(range(1, 1 + len(shape))),
        meta=np.zeros((0,) * (1 + len(shape)), dtype),
    )
    return parts.sum(axis=0, dtype=dtype)


def _fields(events, fields: Sequence[str]) -> tuple[xr.Dataset | None, dict]:
    """Event tables (or None) and, for an event list, its `fields` as arrays."""
    if isinstance(events, PhotonEvents):
        return events.tables, {}
    if is_event_tables(events):
        return events, {}
    if not isinstance(events, xr.Dataset):
        raise OptionError(f"events: expected the events of photon.detect, got {type(events)}")
    missing = [f for f in fields if f not in events.variables]
    if missing:
        raise OptionError(f"events: no variable {missing}; expected an event Dataset of detect")
    return None, {f: events[f].data for f in fields}


def histogram(
    events: xr.Dataset | PhotonEvents,
    bins: int | Sequence[float] | np.ndarray = 100,
    *,
    range: tuple[float, float] | None = None,  # noqa: A002 - numpy's name
) -> xr.DataArray:
    """Energy histogram of the events: the photon peak, its tails and pile-ups.

    Parameters
    ----------
    events : Dataset (event), Dataset (frame) of event tables, or PhotonEvents
        The result of `beamcat.analyses.photon.detect` (or `detect_tables`).
    bins : int or array of edges
        Number of bins over `range`, or the bin edges.
    range : (low, high), optional
        For an int `bins`; default ``(energy_min, 3 * energy_min)`` from the
        events' attrs (photons and two-photon pile-ups).

    Returns
    -------
    DataArray (energy)
        Event counts per bin (dask-backed for dask-backed events: per frame chunk,
        summed), coordinate ``energy`` the bin centres, ``energy_low``/``energy_high``
        the edges; attrs keep the thresholds so a plot can mark them.

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
    tables, fields = _fields(events, ["energy"])
    if tables is not None:
        counts = _per_chunk(
            tables, lambda t: np.histogram(t["energy"], edges)[0], (edges.size - 1,), np.int64
        )
        units = tables.attrs.get("units", "counts")
    else:
        energy = fields["energy"]
        histogram_of = da.histogram if isinstance(energy, da.Array) else np.histogram
        counts, _ = histogram_of(energy, bins=edges)
        units = events["energy"].attrs.get("units", "counts")
    units = {"units": units}
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
    events : Dataset (event), Dataset (frame) of event tables, or PhotonEvents
        The result of `beamcat.analyses.photon.detect` (or `detect_tables`).
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
        dask-backed events: per frame chunk, summed).

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
    bounds = roi_bounds(roi, shape)
    cut = energy_min if energy_min is not None else events.attrs.get("energy_min", -np.inf)
    tables, fields = _fields(events, ["y", "x", "energy"])
    if tables is not None:
        image = _per_chunk(
            tables,
            lambda t: _clean_block(t["y"], t["x"], t["energy"], shape, bounds, cut),
            shape,
            np.int64,
        )
    elif any(isinstance(a, da.Array) for a in fields.values()):
        image = da.from_delayed(
            dask.delayed(_clean_block, pure=True)(*fields.values(), shape, bounds, cut),
            shape=shape,
            dtype=np.int64,
        )
    else:
        image = _clean_block(*fields.values(), shape, bounds, cut)
    attrs = {k: v for k, v in events.attrs.items() if k in ("source", "pixel_size", "energy")}
    attrs.update(units="photons", energy_min=cut, roi=list(roi) if roi is not None else None)
    return xr.DataArray(image, dims=("y", "x"), name="photons", attrs=attrs)
