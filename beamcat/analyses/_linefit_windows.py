"""The windows `beamcat.analyses.linefit.fit_lines` fits: checked, restricted, joined, their model.

- `windows_of`: the radiance (and σ) windows, checked (DataArrays with a
  ``wavelength`` dim, σ shaped alike, one raster) and cut to the wavelength range;
- `model_of`: the `LineModel` of the given lines, or of the catalog's lines in
  the windows, each line in the window its rest wavelength falls in;
- `joined`: the windows as one spectrum per pixel, one chunk along wavelength;
- `checked_correction`: a per-spectrum wavelength correction, checked.
"""

from __future__ import annotations

from collections.abc import Mapping

import dask.array as da
import numpy as np
import xarray as xr

from beamcat.analyses._frames import describe
from beamcat.analyses._linefit_model import LineModel, line_model
from beamcat.errors import OptionError

__all__ = ["checked_correction", "joined", "model_of", "windows_of"]


def windows_of(radiance, sigma, wavelength_range) -> tuple[list, list]:
    """The windows and their σ (None), checked and restricted to the wavelength range."""
    windows = [radiance] if isinstance(radiance, xr.DataArray) else list(radiance)
    if not windows:
        raise OptionError("fit_lines: no radiance window given")
    for k, w in enumerate(windows):
        if not isinstance(w, xr.DataArray) or "wavelength" not in w.coords:
            raise OptionError(
                f"radiance window {k}: expected an xarray.DataArray with a 'wavelength' dim "
                f"and coordinate (Angstrom), got {type(w).__name__} {getattr(w, 'dims', '')}"
            )
    if sigma is None:
        sigmas = [None] * len(windows)
    else:
        sigmas = [sigma] if isinstance(sigma, xr.DataArray) else list(sigma)
        if len(sigmas) != len(windows):
            raise OptionError(f"sigma: {len(sigmas)} arrays for {len(windows)} windows")
        for k, (w, s) in enumerate(zip(windows, sigmas, strict=True)):
            if not isinstance(s, xr.DataArray) or dict(s.sizes) != dict(w.sizes):
                raise OptionError(
                    f"sigma of {window_name(w, k)}: expected a DataArray of sizes "
                    f"{dict(w.sizes)}, got {dict(getattr(s, 'sizes', {})) or type(s).__name__}"
                )
    ranges = wavelength_ranges(wavelength_range, len(windows))
    for k, (w, r) in enumerate(zip(windows, ranges, strict=True)):
        if r is None:
            continue
        wave = w["wavelength"].values
        keep = (wave >= r[0]) & (wave <= r[1])
        if not keep.any():
            raise OptionError(
                f"wavelength_range={tuple(r)}: no sample of {window_name(w, k)} "
                f"({np.nanmin(wave):.3f}-{np.nanmax(wave):.3f} Angstrom) inside it"
            )
        windows[k] = w.isel(wavelength=keep)
        if sigmas[k] is not None:
            sigmas[k] = sigmas[k].isel(wavelength=keep)
    check_same_raster(windows)
    return windows, sigmas


def checked_correction(correction, spatial) -> xr.DataArray:
    """The per-spectrum wavelength correction, checked: a DataArray over spatial dims only."""
    if not isinstance(correction, xr.DataArray) or not set(correction.dims) <= set(spatial):
        raise OptionError(
            f"wavelength_correction: expected a DataArray over the spatial dims {spatial}, "
            f"got {type(correction).__name__} {getattr(correction, 'dims', '')}"
        )
    return correction.astype(np.float64)


def window_name(window: xr.DataArray, k: int) -> str:
    """A window for messages: its ``window`` attr (EXTNAME) or index, and its source."""
    label = window.attrs.get("window")
    return describe(window, f"window {label!r}" if label is not None else f"window {k}")


def wavelength_ranges(wavelength_range, n: int) -> list:
    """One ``(lo, hi)`` or None per window."""
    if wavelength_range is None:
        return [None] * n
    items = list(wavelength_range)
    if len(items) == 2 and all(np.isscalar(v) for v in items):
        items = [items] * n
    if len(items) != n or any(len(r) != 2 or not r[0] < r[1] for r in items):
        raise OptionError(
            f"wavelength_range={wavelength_range!r}: expected (lo, hi) with lo < hi, "
            f"or one such range per window ({n})"
        )
    return [tuple(map(float, r)) for r in items]


def check_same_raster(windows) -> None:
    """OptionError unless the windows share their spatial dims, sizes, coordinates and source."""
    first = windows[0]
    spatial = {d: n for d, n in first.sizes.items() if d != "wavelength"}
    for k, w in enumerate(windows[1:], 1):
        other = {d: n for d, n in w.sizes.items() if d != "wavelength"}
        same = other == spatial and first.attrs.get("source") == w.attrs.get("source")
        for d in spatial:
            if same and d in first.indexes and d in w.indexes:
                same = first.indexes[d].equals(w.indexes[d])
        if not same:
            raise OptionError(
                f"fusing windows of different rasters: {window_name(w, k)} "
                f"{other} vs {window_name(first, 0)} {spatial}"
            )


def model_of(windows, waves, lines, background, locks, tied_widths, ratios, bounds) -> LineModel:
    """The `LineModel` of `lines` (or the catalog's lines in the windows), a segment per window."""
    spans = [(float(np.nanmin(w)), float(np.nanmax(w))) for w in waves]
    if lines is None or not isinstance(lines, Mapping):
        from beamcat.analyses.lines import LineCatalog

        catalog = LineCatalog.default()
        if lines is None:
            found = {}
            for k, (lo, hi) in enumerate(spans):
                inside = catalog.lines_in(lo, hi)
                if not inside:
                    raise OptionError(
                        f"{window_name(windows[k], k)}: no catalog line in "
                        f"{lo:.3f}-{hi:.3f} Angstrom; pass lines={{name: rest wavelength}}"
                    )
                found.update(inside)
            lines = found
        else:
            lines = {str(name): catalog.rest_wavelength(name) for name in lines}
    segments = {}
    for name, rest in lines.items():
        inside = [k for k, (lo, hi) in enumerate(spans) if lo <= rest <= hi]
        if not inside:
            ranges = ", ".join(f"{lo:.3f}-{hi:.3f}" for lo, hi in spans)
            raise OptionError(
                f"line {name!r} ({rest} Angstrom) is outside every window fitted ({ranges} "
                "Angstrom); a line of another window (a lock across windows) needs the "
                "windows fused: pass them together"
            )
        segments[name] = inside[0]
    return line_model(
        lines,
        background=background,
        locks=locks,
        tied_widths=tied_widths,
        ratios=ratios,
        bounds=bounds,
        segments=len(windows),
        line_segments=segments,
    )


def joined(windows, spatial) -> xr.DataArray:
    """The windows joined along ``wavelength`` (one chunk), dims ``(*spatial, wavelength)``."""
    arrays = [w.transpose(*spatial, "wavelength").data for w in windows]
    if all(isinstance(a, np.ndarray) for a in arrays):
        data = np.concatenate(arrays, axis=-1)
    else:
        first = da.asarray(arrays[0])
        chunks = (*first.chunks[:-1], -1)
        data = da.concatenate([da.asarray(a).rechunk(chunks) for a in arrays], axis=-1)
        data = data.rechunk({-1: -1})  # the fused spectrum: one chunk along wavelength
    return xr.DataArray(data, dims=(*spatial, "wavelength"))
