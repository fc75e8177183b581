"""What the radiography page computes: masters, the calibrated run, ROI series, concentrations.

No plotting here: every function reads pixels (in the page's worker thread) and
returns NumPy-backed results, or lazy ones that the page computes a bounded part
of (the reference image, one difference frame). The analyses do the arithmetic;
these functions only pick the entries' frames and cache what was computed.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import NamedTuple

import dask
import numpy as np
import xarray as xr

from beamcat.analyses.calibrated_means import calibrated_means
from beamcat.analyses.calibration import calibrate
from beamcat.analyses.difference import difference
from beamcat.analyses.masters import dark_master, flat_master
from beamcat.analyses.timeseries import beer_lambert, normalise
from beamcat.apps._banners import error_message
from beamcat.apps.quicklook import signal_name
from beamcat.apps.state import CatalogContext
from beamcat.errors import BeamcatError, OptionError
from beamcat.rois import Rect, check_rect


def entry_frames(context: CatalogContext, name: str) -> xr.DataArray:
    """The entry's signal as (frame, y, x), with its source for messages."""
    ds = context.open(name)
    frames = ds[signal_name(ds)]
    if frames.ndim != 3 or frames.dims[1:] != ("y", "x"):
        raise OptionError(
            f"entry {name!r} ({ds.attrs.get('source', '')}): expected a stack of frames "
            f"(frame, y, x), got dims {frames.dims}"
        )
    return frames.assign_attrs(source=ds.attrs.get("source", name))


class Calibrated(NamedTuple):
    """A run's lazy transmission, what it was made from and what the page shows of it.

    Attributes
    ----------
    key : tuple
        ``(run, dark, flat, air ROI, reference frames)``: what it was made from.
    transmission : DataArray (time, y, x) or (frame, y, x)
        Lazy `calibrate` output.
    reference : DataArray (y, x)
        Mean transmission of the first frames, NumPy-backed.
    frames, dark, flat : DataArray
        The raw frames and the masters calibrated, for `means`.
    """

    key: tuple
    transmission: xr.DataArray
    reference: xr.DataArray
    frames: xr.DataArray
    dark: xr.DataArray
    flat: xr.DataArray

    def means(self, **regions) -> dict[str, xr.Dataset]:
        """`calibrated_means` of `regions` (``rois=``, ``grid=``...): one pass, lazy."""
        air = self.key[3]
        return calibrated_means(self.frames, self.dark, self.flat, air_roi=air, **regions)

    @property
    def dim(self) -> str:
        """The frame dim: ``time`` when the run has frame times, else ``frame``."""
        return self.transmission.dims[0]

    @property
    def shape(self) -> tuple[int, int]:
        """(ny, nx) of the frames."""
        return self.transmission.shape[-2:]


def compute_masters(
    context: CatalogContext, dark: str, flat: str
) -> tuple[xr.DataArray, xr.DataArray]:
    """Master dark and dark-subtracted master flat of two entries, computed (y, x) float32."""
    dark_frames, flat_frames = entry_frames(context, dark), entry_frames(context, flat)
    d = dark_master(dark_frames)
    d, f = dask.compute(d, flat_master(flat_frames, d))
    return d.assign_attrs(source=dark_frames.attrs["source"]), f.assign_attrs(
        source=flat_frames.attrs["source"]
    )


def calibrate_run(
    context: CatalogContext, key: tuple, masters: dict[tuple[str, str], tuple]
) -> Calibrated:
    """The run of `key` calibrated, and its reference image computed.

    Parameters
    ----------
    context : CatalogContext
    key : tuple
        ``(run, dark, flat, air ROI or None, reference frames)``.
    masters : dict (dark, flat) -> (dark master, flat master)
        Masters already computed; filled in place.
    """
    run, dark, flat, air, n_ref = key
    if None in (run, dark, flat):
        raise OptionError("choose a run, a dark and a flat entry")
    try:
        if (dark, flat) not in masters:
            masters[(dark, flat)] = compute_masters(context, dark, flat)
        d, f = masters[(dark, flat)]
        frames = entry_frames(context, run)
        transmission = calibrate(frames, d, f, air_roi=air)
    except BeamcatError as err:  # name the entries: the message names files or roles
        raise type(err)(f"run {run!r}, dark {dark!r}, flat {flat!r}: {err}") from None
    dim = transmission.dims[0]
    n = max(1, min(int(n_ref or 1), transmission.sizes[dim]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels (dead flat) stay NaN
        reference = transmission.isel({dim: slice(0, n)}).mean(dim).compute()
    reference.attrs["preview"] = f"transmission: mean of frames 0-{n - 1}"
    return Calibrated(key, transmission, reference, frames, d, f)


def roi_series(
    calibrated: Calibrated, rois: Mapping[str, Rect], cache: dict[Rect, np.ndarray]
) -> tuple[xr.DataArray | None, dict[str, str]]:
    """Mean transmission of each ROI over time, computing only ROIs not in `cache`.

    Parameters
    ----------
    calibrated : Calibrated
        The calibrated run (means in one pass over its raw frames).
    rois : mapping name -> Rect
    cache : dict Rect -> ndarray (time,)
        Means already computed for this `transmission`; filled in place.

    Returns
    -------
    DataArray (roi, time) or None
        Means of the valid ROIs (None when there is none), with the frame coordinates.
    dict
        ROI name -> error message, for ROIs that cannot be measured (outside the
        image, empty).
    """
    errors, todo = {}, {}
    for name, rect in rois.items():
        if rect in cache or rect in todo.values():
            continue
        try:
            check_rect(rect, calibrated.shape, f"ROI {name!r}")
        except BeamcatError as err:
            errors[name] = error_message(err)
            continue
        todo[name] = rect
    if todo:
        means = calibrated.means(rois=todo)["rois"]["mean"].compute()
        for name, rect in todo.items():
            cache[rect] = means.sel(roi=name).values
    good = [n for n in rois if n not in errors]
    if not good:
        return None, errors
    dim = calibrated.dim
    series = xr.DataArray(
        np.stack([cache[rois[n]] for n in good]),
        dims=("roi", dim),
        coords={"roi": good, **{k: v for k, v in calibrated.transmission[dim].coords.items()}},
        attrs={"units": "1", "long_name": "transmission"},
    )
    return series, errors


def grid_series(
    calibrated: Calibrated, rows: int, cols: int, region: Rect | None, cache: dict
) -> xr.DataArray:
    """Grid cell means (row, col, time) of a calibrated run, computed once per grid (`cache`)."""
    key = (calibrated.key[:4], rows, cols, region)
    if key not in cache:
        grid = calibrated.means(grid=(rows, cols), grid_region=region)["grid"]
        cache[key] = grid["mean"].compute()
    return cache[key]


def difference_frame(calibrated: Calibrated, index: int, reference: int) -> xr.DataArray:
    """The display image of `difference` at frame `index` (computes that frame only)."""
    shown = difference(calibrated.transmission, reference=reference)["display"]
    return shown.isel({calibrated.dim: index}).compute()


def concentration(
    values: xr.DataArray, dim: str, *, thickness_cm: float, cross_section_barn: float
) -> tuple[xr.DataArray, str | None]:
    """Beer-Lambert concentration of transmissions normalised to the first frame.

    Returns the concentration (mmol/cm3) and a warning text (T <= 0 samples) or None.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = beer_lambert(
            normalise(values, dim=dim, reference=0),
            thickness_cm=thickness_cm,
            cross_section_barn=cross_section_barn,
        )
    return out, "; ".join(str(w.message) for w in caught) or None
