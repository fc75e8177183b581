"""Adaptive binning per pixel: fit at growing box sizes until the errors are small enough.

SAFFRON (``fit_functions/fit_raster.py:1562-1690``, slimguat/SAFFRON @90de426,
MIT) fits each pixel at convolution level 0, 1, 2, ... of
``convolution_extent_list`` and stops when every parameter's relative error
``sqrt(var)/value`` is under its threshold (``conv_errors``: I 0.01, x 1e-4,
s 0.01, B 100; x is the centre in Angstrom, so 1e-4 is ~0.07 A at 700 A).
Level ``n`` is a box of ``1 + n`` pixels along the finer spatial axis
(`beamcat.analyses.spectral_prep.box_size`).

`adaptive_fit` does that lazily: every level is box-averaged
(`beamcat.analyses.spectral_prep.convolve`, with the error of the mean) and
fitted (`beamcat.analyses.linefit.fit_lines`) for every pixel, and each pixel
takes the first level whose fit meets the thresholds; where none does, the
level with the smallest sum of relative error / threshold over the parameters
(SAFFRON's fallback). One level serves all lines of a pixel (SAFFRON may mix
levels between the lines of a pixel, with the background of the last).

Examples
--------
>>> from beamcat.analyses.adaptive_binning import THRESHOLDS
>>> THRESHOLDS["center"]
0.0001
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import xarray as xr

from beamcat.analyses._history import history
from beamcat.analyses.linefit import FitStatus, fit_lines, line_model
from beamcat.analyses.spectral_prep import box_size, convolve
from beamcat.errors import OptionError

#: SAFFRON's ``conv_errors``: largest relative error sqrt(var)/|value| per parameter kind
THRESHOLDS = {
    "intensity": 0.01,
    "center": 1e-4,
    "width": 0.01,
    "background": 100.0,
    "slope": np.inf,
}
_USABLE = (FitStatus.CONVERGED, FitStatus.AT_BOUND, FitStatus.MAX_ITERATIONS)


def adaptive_fit(
    radiance: xr.DataArray,
    sigma: xr.DataArray,
    model=None,
    *,
    lines: Mapping[str, float] | None = None,
    levels: Sequence[int] = (0, 1, 2, 3, 4),
    pixel_size: tuple[float, float] = (1.0, 1.0),
    thresholds: Mapping[str, float] | None = None,
    error: str = "mean",
    spatial: tuple[str, str] = ("y", "x"),
    **fit_options,
) -> xr.Dataset:
    """Fit each pixel at the smallest box level whose relative errors meet `thresholds`.

    Parameters
    ----------
    radiance, sigma : DataArray (..., wavelength, y, x)
        Spectra and their 1σ errors (`beamcat.analyses.spectral_prep.prepare`).
    model : LineModel, optional
        Else built from `lines` (name -> rest wavelength, Angstrom) by `line_model`.
    levels : sequence of int
        Convolution levels tried in order (0 = the pixel itself).
    pixel_size : (float, float)
        Pixel size along (y, x), e.g. ``(CDELT2, CDELT1)`` in arcsec: sets the box
        shape of each level (`box_size`).
    thresholds : mapping, optional
        Per parameter kind (intensity, center, width, background, slope), updating
        `THRESHOLDS`.
    error : {"mean", "saffron"}
        Error of the box average (`convolve`).
    **fit_options
        Passed to `fit_lines` (``max_iterations``, ``radiance_convention`` ...).

    Returns
    -------
    Dataset
        `fit_lines`'s result, each pixel from its level, plus ``level (<spatial
        dims>)`` (the level used) and coords ``level_box (level, box_dim)`` of the
        boxes tried; one ``history`` line.
    """
    if model is None:
        if lines is None:
            raise OptionError("adaptive_fit: give model= or lines= (name -> rest wavelength)")
        model = line_model(lines)
    limits = {**THRESHOLDS, **(thresholds or {})}
    unknown = set(limits) - set(THRESHOLDS)
    if unknown:
        raise OptionError(
            f"adaptive_fit: thresholds for {sorted(unknown)}; kinds: {list(THRESHOLDS)}"
        )
    levels = [int(level) for level in levels]
    if not levels or min(levels) < 0:
        raise OptionError(f"adaptive_fit: levels {levels}: expected non-negative integers")
    boxes = [box_size(level, pixel_size) for level in levels]
    fits = []
    for box in boxes:
        values, errors = (
            (radiance, sigma)
            if box == (1, 1)
            else convolve(radiance, sigma, box, error=error, spatial=spatial)
        )
        fits.append(fit_lines(values, errors, model, **fit_options))
    relative, usable = [], []
    for fit in fits:
        limit = xr.DataArray(
            [limits[model.kind(i)] for i in range(fit.sizes["param"])], dims="param"
        )
        relative.append(np.abs(fit.parameter_errors / fit.parameters) / limit)
        usable.append(fit.status.isin([int(s) for s in _USABLE]))
    relative, usable = xr.concat(relative, "level"), xr.concat(usable, "level")
    met = usable & (relative < 1).all("param")
    score = relative.where(usable).sum("param", min_count=1).fillna(np.inf)
    # the first level that meets every threshold, else SAFFRON's fallback: the smallest score
    choice = xr.where(met.any("level"), met.argmax("level"), score.argmin("level"))
    out = fits[0]
    for index in range(1, len(fits)):
        out = out.where(choice != index, fits[index])
    out["level"] = sum(xr.where(choice == i, level, 0) for i, level in enumerate(levels))
    out = out.assign_coords(level_box=(("level_index", "box_dim"), np.asarray(boxes)))
    line = (
        f"adaptive_fit: levels {levels} (boxes {[list(b) for b in boxes]}), thresholds "
        f"{ {k: limits[k] for k in THRESHOLDS} }, error {error!r} (SAFFRON's adaptive convolution)"
    )
    out.attrs = {**fits[0].attrs, "history": history(fits[0].attrs, line)}
    return out
