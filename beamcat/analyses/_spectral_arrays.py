"""xarray plumbing of `beamcat.analyses.spectral_prep`: checks, dim order, overlapped blocks."""

from __future__ import annotations

import functools

import dask.array as da
import numpy as np
import xarray as xr

from beamcat.analyses._history import history
from beamcat.errors import FormatError, OptionError


def is_dask(array: xr.DataArray) -> bool:
    return isinstance(array.data, da.Array)


def rechunked(array: xr.DataArray, chunks: dict) -> xr.DataArray:
    """`array` with its dask data rechunked (dim -> size) along the dims it has.

    Coordinates are left as they are (`DataArray.chunk` would make them dask too).
    """
    if not is_dask(array):
        return array
    axes = {array.get_axis_num(d): n for d, n in chunks.items() if d in array.dims}
    return array.copy(data=array.data.rechunk(axes))


def whole_along(array: xr.DataArray, dims) -> xr.DataArray:
    """`array` with its dask data one chunk along `dims` (coordinates left as they are)."""
    return rechunked(array, dict.fromkeys(dims, -1))


def signal(dataset: xr.Dataset, variable: str | None) -> xr.DataArray:
    name = variable or dataset.attrs.get("signal", "radiance")
    if name not in dataset.data_vars:
        raise FormatError(
            f"{where(dataset)}: no data variable {name!r} (has {list(dataset.data_vars)})"
        )
    array = dataset[name]
    if "wavelength" not in array.dims or array.size == 0:
        raise FormatError(
            f"{where(dataset)}: {name!r} has no spectra (sizes {dict(array.sizes)}): "
            "a header-only window or no 'wavelength' dim"
        )
    return array


def where(dataset: xr.Dataset) -> str:
    source = dataset.attrs.get("source", "<dataset>")
    window = dataset.attrs.get("window")
    return f"{source} window {window!r}" if window else str(source)


def spectral_order(array: xr.DataArray, spatial) -> xr.DataArray:
    missing = [d for d in ("wavelength", *spatial) if d not in array.dims]
    if missing:
        raise OptionError(
            f"{array.name or 'array'} dims {array.dims}: missing {missing}; "
            f"expected 'wavelength' and the spatial dims {tuple(spatial)}"
        )
    return array.transpose(..., "wavelength", *spatial)


def check_size(size, n: int, what: str) -> tuple[int, ...]:
    size = tuple(int(s) for s in np.atleast_1d(size))
    if len(size) != n or min(size) < 1:
        raise OptionError(f"{what} {size}: expected {n} positive integers")
    return size


def map_overlap(func, array: xr.DataArray, depth: dict[str, int], **kwargs) -> xr.DataArray:
    """`func(block, **kwargs)` over dask blocks overlapping by `depth` (dim -> pixels).

    A dim no longer than its depth is taken whole (one chunk, no overlap needed).
    """
    kernel = functools.partial(func, **kwargs)
    data = array.data
    if isinstance(data, da.Array):
        whole = [dim for dim, n in depth.items() if n >= array.sizes[dim]]
        data = _split(whole_along(array, whole), depth).data
        axes = {array.get_axis_num(dim): 0 if dim in whole else n for dim, n in depth.items()}
        data = data.map_overlap(
            kernel, depth=axes, boundary="none", dtype=np.float64, meta=np.array((), np.float64)
        )
    else:
        data = kernel(np.asarray(data))
    return array.copy(data=data)


#: samples per block above which a one-block raster is cut along its first spatial dim: a
#: median filter of 54 samples costs ~1 µs a sample, sospice ~0.1 µs, and one block is one core
BLOCK_SAMPLES = 2**17


def block_rows(array: xr.DataArray, dim: str, least: int = 1) -> int | None:
    """Rows of `dim` per block that share a one-block dask `array` among the cores.

    ~`BLOCK_SAMPLES` samples a block, at least `least` rows; None: leave it as it is.
    """
    if not is_dask(array) or len(array.chunksizes[dim]) > 1 or array.size <= BLOCK_SAMPLES:
        return None
    rows = max(least, -(-array.sizes[dim] // -(-array.size // BLOCK_SAMPLES)))
    return rows if rows < array.sizes[dim] else None


def _split(array: xr.DataArray, depth: dict[str, int]) -> xr.DataArray:
    """A large array in one block along its overlapped dims, cut along the first of them.

    The cores then share the filter; the overlap makes the result the same.
    """
    dims = [d for d, n in depth.items() if 0 < n < array.sizes[d]]
    if not dims or any(len(array.chunksizes[d]) > 1 for d in dims):
        return array
    rows = block_rows(array, dims[0], least=2 * depth[dims[0]])
    return array if rows is None else rechunked(array, {dims[0]: rows})


def finish(radiance, sigma, value, spread, line):
    value = value.astype(radiance.dtype).transpose(*radiance.dims)
    spread = spread.astype(sigma.dtype).transpose(*radiance.dims)
    value.attrs = {**radiance.attrs, "history": history(radiance.attrs, line)}
    spread.attrs = dict(sigma.attrs)
    return value.rename(radiance.name), spread.rename(sigma.name)
