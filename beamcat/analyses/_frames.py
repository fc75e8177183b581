"""One home for what every analysis checks or picks: the signal, the pixel dims, a reference.

- `pick`: the variable an analysis works on (``attrs["signal"]``, NeXus habit),
  with the Dataset's attrs carried onto it;
- `check_pixel_dims`, `frame_dim`, `check_shape`, `as_image`, `whole_frames`:
  detector pixels are dims ``(y, x)``, last; scan or time dims come first;
- `map_frames`: a per-chunk reduction of whole frames, lazily, without copies;
- `reference_frame`: a reference along a dim given as a position, a window or a
  coordinate label (time), as `difference` and `normalise` take it.
"""

from __future__ import annotations

import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr

from beamcat.errors import OptionError

__all__ = [
    "PIXEL_DIMS",
    "as_image",
    "check_pixel_dims",
    "check_shape",
    "describe",
    "frame_dim",
    "map_frames",
    "pick",
    "reference_frame",
    "whole_frames",
]

PIXEL_DIMS = ("y", "x")


def describe(obj, name: str) -> str:
    """`name`, with the file it came from when known (for messages and history)."""
    source = getattr(obj, "attrs", {}).get("source")
    return f"{name} ({source})" if source else name


def pick(
    obj: xr.Dataset | xr.DataArray,
    var: str | None = None,
    *,
    default: str | None = None,
    what: str = "",
) -> xr.DataArray:
    """The variable `var` of a Dataset (default ``attrs["signal"]``, or its only variable).

    The Dataset's attrs (source, pixel size, history ...) are carried onto the
    DataArray under its own, so analyses can name the source in messages and
    append to its history. A DataArray is returned as it is.

    Parameters
    ----------
    obj : Dataset or DataArray
    var : str, optional
        The variable; by default ``attrs["signal"]``, else `default`, else the
        Dataset's only variable.
    default : str, optional
        The name to try when there is no ``attrs["signal"]`` (``"mean"`` for
        ROI means).
    what : str
        What the variable should hold, for messages (``"per-frame means"``).

    Raises
    ------
    OptionError
        No such variable, no signal to default to, or `var` given with a DataArray.

    Examples
    --------
    >>> ds = xr.Dataset({"counts": ("x", [1, 2])}, attrs={"signal": "counts"})
    >>> pick(ds).values.tolist()
    [1, 2]
    """
    if isinstance(obj, xr.DataArray):
        if var is not None:
            raise OptionError(f"var={var!r}: a DataArray has no variables to pick")
        return obj
    if not isinstance(obj, xr.Dataset):
        raise OptionError(f"expected an xarray Dataset or DataArray, got {type(obj).__name__}")
    names = sorted(map(str, obj.data_vars))
    name = var if var is not None else obj.attrs.get("signal", default)
    if name is None and len(names) == 1:
        name = names[0]
    where = obj.attrs.get("source", "dataset")
    if name is None:
        raise OptionError(f"{where}: no attrs['signal']; pass var= one of {names}")
    if name not in obj.data_vars:
        holds = f" of {what}" if what else ""
        raise OptionError(f"{where}: no variable {name!r}{holds}; variables are {names}")
    return obj[name].assign_attrs({**obj.attrs, **obj[name].attrs})


def check_pixel_dims(obj, name: str = "frames") -> tuple[int, int]:
    """The frame shape ``(ny, nx)``; OptionError unless `obj` is a DataArray ``(..., y, x)``."""
    if not isinstance(obj, xr.DataArray):
        raise OptionError(
            f"{name}: expected an xarray.DataArray with dims (..., 'y', 'x'), "
            f"got {type(obj).__name__}"
        )
    if tuple(obj.dims[-2:]) != PIXEL_DIMS:
        raise OptionError(
            f"{describe(obj, name)}: expected detector dims (..., 'y', 'x') last, got {obj.dims}"
        )
    return obj.sizes["y"], obj.sizes["x"]


def frame_dim(frames: xr.DataArray, name: str = "frames") -> str:
    """The one dim of `frames` besides ``(y, x)``: ``frame`` or ``time``."""
    check_pixel_dims(frames, name)
    others = [d for d in frames.dims if d not in PIXEL_DIMS]
    if len(others) != 1:
        raise OptionError(
            f"{describe(frames, name)}: expected dims (frame, y, x), got {frames.dims}"
        )
    return others[0]


def check_shape(obj: xr.DataArray, name: str, shape: tuple[int, int], against: str) -> None:
    """OptionError unless `obj`'s pixel dims have the `shape` of `against` (both named)."""
    check_pixel_dims(obj, name)
    if obj.shape[-2:] != tuple(shape):
        ny, nx = obj.shape[-2:]
        raise OptionError(
            f"{describe(obj, name)}: shape (y: {ny}, x: {nx}) does not match {against} "
            f"(y: {shape[0]}, x: {shape[1]})"
        )


def as_image(obj: xr.DataArray, name: str, shape: tuple[int, int], against: str) -> xr.DataArray:
    """A (y, x) image stripped of coordinates, checked against the frames' `shape`.

    Coordinates are dropped so that an image (a master, a reference) never aligns
    (and silently crops) against the frames' pixel coordinates: images are
    matched pixel by pixel.
    """
    check_shape(obj, name, shape, against)
    if obj.dims != PIXEL_DIMS:
        raise OptionError(f"{describe(obj, name)}: expected dims (y, x), got {obj.dims}")
    return xr.DataArray(obj.data, dims=PIXEL_DIMS)


def whole_frames(frames: xr.DataArray) -> xr.DataArray:
    """`frames` with each (y, x) frame in one dask chunk (per-frame kernels need it)."""
    if frames.chunks is None:
        return frames
    # rechunk the data only: DataArray.chunk would make coordinates (time) dask-backed too
    whole = {frames.get_axis_num(d): -1 for d in PIXEL_DIMS}
    return frames.copy(data=frames.data.rechunk(whole))


def map_frames(
    func, frames: xr.DataArray, *more: xr.DataArray, dims: tuple[str, ...], sizes: dict, **kwargs
) -> xr.DataArray:
    """``func(block, *more_blocks, **kwargs)``: frames ``(..., y, x)`` -> ``(..., *dims)``.

    One call per chunk of whole frames (lazy for dask-backed `frames`, one call
    for NumPy), each block as dask holds it: ``xr.apply_ufunc(dask="parallelized")``
    contracts the pixel dims with ``blockwise(concatenate=True)``, which copies
    every chunk before the kernel sees it (a 16 MiB chunk: ~5 ms, as long as a
    radial-profile kernel takes on it); here ``da.blockwise(concatenate=False)``.
    `more` are arrays of the frames' shape (per-pixel variances) or broadcast to
    it. The result keeps the frames' leading dims and their coordinates,
    float64, `dims` of `sizes`.
    """
    frames = whole_frames(frames)
    more = [m.broadcast_like(frames).transpose(*frames.dims) for m in more]
    lead = frames.dims[:-2]
    if frames.chunks is None:
        values = func(frames.values, *(m.values for m in more), **kwargs)
    else:
        lead_index = "".join(chr(ord("a") + k) for k in range(len(lead)))
        out_index = "".join(chr(ord("A") + k) for k in range(len(dims)))
        args = [frames.data, lead_index + "yx"]
        for m in more:
            args += [da.asarray(m.data).rechunk(frames.data.chunks), lead_index + "yx"]
        values = da.blockwise(
            _unwrapped,
            lead_index + out_index,
            *args,
            new_axes={i: sizes[d] for i, d in zip(out_index, dims, strict=True)},
            concatenate=False,
            dtype=np.float64,
            meta=np.empty((0,) * (len(lead) + len(dims))),
            map_frames_func=func,
            **kwargs,
        )
    coords = {k: c for k, c in frames.coords.items() if set(c.dims) <= set(lead)}
    return xr.DataArray(values, dims=(*lead, *dims), coords=coords)


def _unwrapped(*blocks, map_frames_func, **kwargs):
    """`map_frames` task: the blocks arrive in one-item lists per contracted (pixel) dim."""
    unwrapped = []
    for block in blocks:
        while isinstance(block, list):
            (block,) = block
        unwrapped.append(block)
    return map_frames_func(*unwrapped, **kwargs)


# --------------------------------------------------------------------------- reference


def reference_frame(
    data: xr.DataArray, dim: str, reference, *, what: str, coord: str | None = None
) -> xr.DataArray:
    """The reference along `dim`: one sample, or the window of samples to average.

    Parameters
    ----------
    data : DataArray
        Frames or a series with `dim`.
    dim : str
        The dim the reference is taken along (``frame``, ``time``).
    reference : int, slice or label
        A position (negative counts from the end); a slice of positions, or of
        labels of `coord` (both ends included, as in ``.sel``); or a label of
        `coord`, meaning the nearest sample. Times may be strings, naive (UTC)
        or time-zone aware.
    what : str
        The caller's name, for messages.
    coord : str, optional
        The 1-d coordinate along `dim` labels are looked up in (default `dim`).

    Returns
    -------
    DataArray
        One sample (without `dim`), or the window (with `dim`) for the caller to
        reduce in its own way.

    Raises
    ------
    OptionError
        A position out of range, an empty window, a label outside the
        coordinate, or no coordinate to look a label up in.
    """
    n = data.sizes[dim]
    if isinstance(reference, int | np.integer) and not isinstance(reference, bool):
        if not -n <= reference < n:
            raise OptionError(
                f"{what}: reference={reference} out of range: outside 0 .. {n - 1} along {dim!r}"
            )
        return data.isel({dim: int(reference)}, drop=True)
    coord = coord or dim
    if isinstance(reference, slice):
        ends = (reference.start, reference.stop)
        if all(v is None or isinstance(v, int | np.integer) for v in (*ends, reference.step)):
            window = data.isel({dim: reference})
        else:
            if reference.step is not None:
                raise OptionError(f"{what}: a window of labels takes no step, got {reference}")
            values = _labels(data, coord, reference, what)
            lo, hi = (
                default if e is None else _label(e, values, what)
                for e, default in zip(ends, (values.min(), values.max()), strict=True)
            )
            window = data.isel({dim: np.flatnonzero((values >= lo) & (values <= hi))})
        if window.sizes[dim] == 0:
            raise OptionError(
                f"{what}: reference={reference!r} selects no sample of {dim!r}: "
                f"the window holds no frame ({_extent(data, dim, coord)})"
            )
        return window
    values = _labels(data, coord, reference, what)
    at = _label(reference, values, what)
    if not values.min() <= at <= values.max():
        kind = "time" if values.dtype.kind == "M" else coord
        raise OptionError(
            f"{what}: reference={reference!r} lies outside {coord!r} (outside the frames' "
            f"{kind} range {values.min()} .. {values.max()})"
        )
    distance = np.abs(values - at)
    return data.isel({dim: int(np.argmin(distance))}, drop=True)


def _labels(data: xr.DataArray, coord: str, reference, what: str) -> np.ndarray:
    if coord not in data.coords or data[coord].ndim != 1:
        raise OptionError(
            f"{what}: reference={reference!r} is a label, but there is no {coord!r} coordinate "
            "to look a label up in; pass a position (int) or a slice of positions"
        )
    return data[coord].values


def _label(value, values: np.ndarray, what: str):
    """`value` as a label comparable with `values` (times: naive UTC ``datetime64``)."""
    if values.dtype.kind != "M":
        return np.asarray(value, dtype=values.dtype)
    try:
        at = pd.Timestamp(value)
    except (TypeError, ValueError):
        raise OptionError(
            f"{what}: reference must be an index, a time or a slice, got {value!r}"
        ) from None
    if at.tzinfo is not None:  # frame times are naive UTC
        at = at.tz_convert("UTC").tz_localize(None)
    return at.to_datetime64()


def _extent(data: xr.DataArray, dim: str, coord: str) -> str:
    if coord in data.coords and data[coord].ndim == 1:
        values = data[coord].values
        return f"{coord} {values.min()} .. {values.max()}"
    return f"frames 0 .. {data.sizes[dim] - 1}"
