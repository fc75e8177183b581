"""Elliptical radial mean and variance of 4D-STEM patterns (ePSIC's FEM profiles), and their files.

Each detector pixel goes, whole, into the bin of its corrected radius
(`beamcat.analyses.ellipse.elliptical_radius`: no image warping, no
interpolation, so counts are conserved); the per-bin sums Σs, Σs² and the
pixel count of every frame come from the per-pixel-label reduction
(`beamcat.analyses.labels.label_stats`: one numba kernel over a chunk of whole
frames, float64 sums). `radial_bins` is the label map, `radial_profiles` the
profiles, `save_profiles` writes them in the ePSIC notebooks' layout.

Examples
--------
>>> frames = xr.DataArray(np.ones((2, 5, 5)), dims=("frame", "y", "x"))
>>> out = radial_profiles(frames, centre=(2, 2), q_max=2)
>>> out["q"].values.tolist(), out["count"].values[0].tolist()
([0.5, 1.5], [1.0, 8.0])
>>> out["variance"].values[0].tolist()
[0.0, 0.0]
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

import numpy as np
import xarray as xr

from beamcat._util import atomic_directory, atomic_path
from beamcat.analyses._frames import check_pixel_dims, describe, pick
from beamcat.analyses._history import carried, history
from beamcat.analyses.ellipse import elliptical_radius
from beamcat.analyses.labels import label_stats
from beamcat.analyses.stem4d_calibration import as_calibration
from beamcat.errors import OptionError

__all__ = [
    "RadialBins",
    "check_centre",
    "frames_of",
    "radial_bins",
    "radial_profiles",
    "save_profiles",
]

#: the fields of a calibration (AuCalibration's attributes, the attrs["calibration"] keys)
CALIBRATION_KEYS = ("x0", "y0", "a", "b", "theta", "reciprocal_pixel_size")
#: what `radial_profiles` can return besides ``count``
STATISTICS = ("mean", "variance", "normalized_variance", "sum", "sum_sq")
Q_UNIT = "1/Angstrom"


def frames_of(data, name: str) -> xr.DataArray:
    """The frames ``(..., y, x)`` of `data` (a Dataset's signal, its attrs carried)."""
    frames = pick(data)
    check_pixel_dims(frames, name)
    return frames


def check_centre(centre, shape: tuple[int, int], where: str) -> tuple[float, float]:
    """``centre`` = (x, y) as floats, OptionError unless it lies on the frame (pixel edges)."""
    try:
        x0, y0 = (float(v) for v in centre)
    except (TypeError, ValueError):
        raise OptionError(f"{where}: centre={centre!r}, expected (x, y) in px") from None
    ny, nx = shape
    if not (-0.5 <= x0 <= nx - 0.5 and -0.5 <= y0 <= ny - 0.5):
        raise OptionError(
            f"{where}: centre (x, y) = ({x0:g}, {y0:g}) lies outside the frame "
            f"(x: -0.5 .. {nx - 0.5}, y: -0.5 .. {ny - 0.5} px)"
        )
    return x0, y0


class RadialBins(NamedTuple):
    """The label map of `radial_bins` and what it means.

    Attributes
    ----------
    labels : ndarray (y, x) of int64
        Bin of each pixel, ``0 .. n_bins - 1``; -1: beyond ``q_max`` or masked.
    q : ndarray (n_bins,)
        Bin centres, in `unit`; bin k holds ``k * q_step <= q < (k + 1) * q_step``.
    q_step : float
    unit : str
        ``"1/Angstrom"`` (calibrated, s = 1/d) or ``"px"``.
    geometry : dict
        ``x0, y0, a, b, theta`` and ``reciprocal_pixel_size`` (None: circular, in px).
    """

    labels: np.ndarray
    q: np.ndarray
    q_step: float
    unit: str
    geometry: dict


def _geometry(calibration, centre, attrs: Mapping, shape, where: str) -> dict:
    """Ellipse and reciprocal pixel size: the calibration given, else centre=, else attrs."""
    if calibration is not None and centre is not None:
        raise OptionError(f"{where}: pass calibration= or centre= (a circular profile), not both")
    if centre is not None:
        x0, y0 = check_centre(centre, shape, where)
        return {"x0": x0, "y0": y0, "a": 1.0, "b": 1.0, "theta": 0.0, "reciprocal_pixel_size": None}
    if calibration is None:
        calibration = attrs.get("calibration")
        if calibration is None:
            raise OptionError(
                f"{where}: no calibration: pass calibration= (an AuCalibration or a dict of "
                f"{list(CALIBRATION_KEYS)}), open the data with calibration=, or pass "
                "centre=(x, y) for a circular profile in px"
            )
    found = as_calibration(calibration, source=f"{where}: calibration")
    geometry = {**found.ellipse, "reciprocal_pixel_size": found.reciprocal_pixel_size}
    check_centre((geometry["x0"], geometry["y0"]), shape, f"{where}: calibration")
    return geometry


def _used(mask, shape, where: str) -> np.ndarray:
    if mask is None:
        return np.ones(shape, bool)
    values = np.asarray(mask.data if isinstance(mask, xr.DataArray) else mask)
    if values.shape != tuple(shape) or values.dtype.kind not in "biu":
        raise OptionError(
            f"{where}: mask of shape {values.shape} and dtype {values.dtype}; expected booleans "
            f"(True = pixel used) of the frames' (y, x) shape {tuple(shape)}"
        )
    if not values.any():
        raise OptionError(f"{where}: the mask uses no pixel (True = pixel used)")
    return values.astype(bool)


def radial_bins(
    shape: tuple[int, int],
    calibration=None,
    *,
    centre=None,
    q_step: float | None = None,
    n_bins: int | None = None,
    q_max: float | None = None,
    mask=None,
    attrs: Mapping | None = None,
    where: str = "radial_bins",
) -> RadialBins:
    """The label map of `radial_profiles`: each pixel's bin of corrected radius.

    Parameters are those of `radial_profiles` (`attrs`: where to look for
    ``attrs["calibration"]``; `where`: the name messages start with).
    """
    geometry = _geometry(calibration, centre, attrs or {}, shape, where)
    ellipse = {k: geometry[k] for k in ("x0", "y0", "a", "b", "theta")}
    scale = geometry["reciprocal_pixel_size"] or 1.0
    unit = Q_UNIT if geometry["reciprocal_pixel_size"] else "px"
    q = elliptical_radius(shape, **ellipse) * scale
    used = _used(mask, shape, where)
    reach = float(q[used].max())
    if q_max is None:  # the largest ring whole on the detector
        q_max = float(min(q[0].min(), q[-1].min(), q[:, 0].min(), q[:, -1].min()))
    if not 0 < q_max <= reach:
        raise OptionError(
            f"{where}: q_max={q_max!r} {unit}: expected 0 < q_max <= {reach:.6g} {unit}, the "
            "corrected radius of the farthest pixel used (beyond it the detector has no pixel)"
        )
    if n_bins is not None and q_step is not None:
        raise OptionError(f"{where}: pass q_step= or n_bins=, not both")
    if n_bins is not None:
        if isinstance(n_bins, bool) or not isinstance(n_bins, int | np.integer) or n_bins < 1:
            raise OptionError(f"{where}: n_bins={n_bins!r}, expected a positive integer")
        step = q_max / int(n_bins)
    else:
        step = scale if q_step is None else q_step
        if not (isinstance(step, int | float | np.number) and 0 < step <= q_max):
            raise OptionError(f"{where}: q_step={q_step!r} {unit}: expected 0 < q_step <= q_max")
        step = float(step)
        n_bins = max(1, int(np.floor(q_max / step + 1e-9)))
    labels = np.floor(q / step).astype(np.int64)
    labels[(labels >= n_bins) | ~used] = -1
    centres = (np.arange(int(n_bins)) + 0.5) * step
    return RadialBins(labels, centres, step, unit, geometry)


def radial_profiles(
    data,
    calibration=None,
    *,
    centre=None,
    q_step: float | None = None,
    n_bins: int | None = None,
    q_max: float | None = None,
    mask=None,
    statistics=("mean", "variance"),
) -> xr.Dataset:
    """Elliptical radial mean and variance of every pattern (py4DSTEM's local FEM profiles).

    Parameters
    ----------
    data : DataArray (..., y, x) or Dataset
        Frames ``(scan_y, scan_x, y, x)`` or ``(frame, y, x)`` (a Dataset's signal).
    calibration : object or dict, optional
        Anything with ``x0, y0`` (centre, px; x = column), ``a, b`` (semi-axes,
        ``a`` along ``theta``), ``theta`` (rad, +x towards +y) and
        ``reciprocal_pixel_size`` (1/Angstrom per px along ``a``): an
        ``AuCalibration``, a dict of those keys (or ePSIC's JSON with
        ``p_ellipse``). Default ``data.attrs["calibration"]``.
    centre : (x, y), optional
        Instead of a calibration: circular bins around this centre, in px.
    q_step : float, optional
        Bin width (1/Angstrom when calibrated, else px); default one pixel
        along the major axis (ePSIC's ``qstep=1``).
    n_bins : int, optional
        Instead of `q_step`: this many bins from 0 to `q_max`.
    q_max : float, optional
        Outer edge of the last bin; default the largest ring whole on the detector.
    mask : ndarray (y, x) of bool, optional
        Pixels used (True); bad pixels False.
    statistics : sequence of str
        Any of ``"mean"``, ``"variance"`` (brings ``normalized_variance``),
        ``"normalized_variance"``, ``"sum"``, ``"sum_sq"``; ``count`` always.

    Returns
    -------
    Dataset (..., q)
        Per frame and bin, float64 (NaN where a bin has no pixel):

        - ``mean``: Σs / N over the bin's N pixels, s the pixel values;
        - ``variance``: Σs²/N − mean², the population variance (ddof=0),
          py4DSTEM's ``calculate_FEM_local`` definition
          (``np.ma.mean((im - im_mean) ** 2)`` over a ring); clipped at 0;
        - ``normalized_variance``: variance / mean², its FEM quantity
          (``local_radial_var / local_radial_mean**2``); NaN where mean is 0;
        - ``count``: N, the pixels in the bin (finite values only);
        - ``sum``, ``sum_sq``: Σs, Σs² when asked for.

        py4DSTEM averages 180 angular samples per radius that it spreads
        bilinearly from the pixels (a polar transform); here each pixel counts
        once, whole, in the bin of its corrected radius. ``q``: bin centres in
        1/Angstrom (s = 1/d) when calibrated, else px. Lazy: one task per chunk
        of whole frames.

    Raises
    ------
    OptionError
        No calibration and no centre; a calibration missing keys; a centre
        outside the frame; `q_max` beyond the farthest pixel used; a mask of
        the wrong shape; an unknown statistic.
    """
    frames = frames_of(data, "radial_profiles")
    where = describe(frames, "radial_profiles")
    wanted = [statistics] if isinstance(statistics, str) else list(statistics)
    unknown = [s for s in wanted if s not in STATISTICS]
    if unknown or not wanted:
        raise OptionError(f"{where}: statistics={statistics!r}; expected some of {STATISTICS}")
    if "variance" in wanted:
        wanted.append("normalized_variance")
    options = {"centre": centre, "q_step": q_step, "n_bins": n_bins, "q_max": q_max}
    bins = radial_bins(
        frames.shape[-2:], calibration, mask=mask, attrs=frames.attrs, where=where, **options
    )
    stats = label_stats(frames, bins.labels, n_labels=len(bins.q), dim="q")
    mean, variance = stats["mean"], stats["variance"]
    stats["normalized_variance"] = (variance / mean.where(mean != 0) ** 2).assign_attrs(
        long_name="variance / mean**2 per ring (FEM normalised variance)", units="1"
    )
    stats["variance"] = variance.assign_attrs(long_name="population variance (ddof=0) per ring")
    stats["mean"] = mean.assign_attrs(long_name="mean per ring")
    keep = [s for s in STATISTICS if s in wanted] + ["count"]
    for var in keep:  # the variables carry only what they are, the Dataset the provenance
        stats[var].attrs = {
            k: v for k, v in stats[var].attrs.items() if k in ("long_name", "units")
        }
    out = stats[keep].assign_coords(
        q=("q", bins.q, {"units": bins.unit, "long_name": "corrected radius (bin centre)"})
    )
    geometry = {k: v for k, v in bins.geometry.items() if v is not None}
    line = (
        f"radial_profiles: {len(bins.q)} bins of {bins.q_step:.6g} {bins.unit}, "
        f"ellipse {geometry}, mask={'yes' if mask is not None else 'no'}"
    )
    out.attrs = {
        **carried(frames.attrs),
        "signal": "mean",
        "calibration": geometry,
        "q_step": bins.q_step,
        "q_unit": bins.unit,
        "history": history(frames.attrs, line),
    }
    return out


def _profile_name(profiles: xr.Dataset, name: str | None) -> str:
    if name is not None:
        return name
    source = profiles.attrs.get("source")
    return Path(str(source).split(";")[0]).stem if source else "profiles"


def save_profiles(
    profiles: xr.Dataset, path: str | os.PathLike, *, format: str = "zarr", name: str | None = None
) -> Path:
    """Write radial profiles in the ePSIC notebooks' layout, atomically, chunk by chunk.

    Variables ``<name>_azimuthal_mean`` and ``<name>_azimuthal_var`` (and
    ``<name>_azimuthal_count``) ``(..., q)``, the ``q`` axis with its unit, the
    calibration and history in attrs.

    Parameters
    ----------
    profiles : Dataset (..., q)
        `radial_profiles` with ``mean`` and ``variance``.
    path : path
        A Zarr (v3) store folder, or an HDF5 file; must not exist for Zarr.
    format : {"zarr", "hdf5"}
        Zarr opens back with ``beamcat.open_dataset`` (format ``"zarr"``);
        HDF5 has the datasets at its root, read with h5py.
    name : str, optional
        Default the stem of the data's source file (ePSIC's per-file names).

    Returns
    -------
    Path
    """
    missing = [v for v in ("mean", "variance", "count") if v not in profiles.data_vars]
    if missing:
        raise OptionError(f"save_profiles: profiles lack {missing}; expected radial_profiles")
    if format not in ("zarr", "hdf5"):
        raise OptionError(f"save_profiles: format={format!r}, expected 'zarr' or 'hdf5'")
    name = _profile_name(profiles, name)
    path = Path(path)
    renamed = {"mean": "azimuthal_mean", "variance": "azimuthal_var", "count": "azimuthal_count"}
    out = profiles[list(renamed)].rename({k: f"{name}_{v}" for k, v in renamed.items()})
    attrs = {k: json.dumps(v) if isinstance(v, dict) else v for k, v in profiles.attrs.items()}
    out.attrs = {**attrs, "signal": f"{name}_azimuthal_mean"}
    if format == "zarr":
        if path.exists():
            raise OptionError(f"save_profiles: {path} exists; expected a new store folder")
        with atomic_directory(path) as tmp:
            out.to_zarr(tmp, mode="w-", zarr_format=3, consolidated=False)
        return path
    import dask.array as da
    import h5py

    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs.update({k: v for k, v in out.attrs.items() if v is not None})
        for dim in out.dims:
            if dim in out.coords:
                axis = f.create_dataset(dim, data=out[dim].values)
                axis.attrs.update(out[dim].attrs)
        targets, sources = [], []
        for var, values in out.data_vars.items():
            dset = f.create_dataset(var, shape=values.shape, dtype=values.dtype)
            dset.attrs.update({**values.attrs, "dims": list(values.dims)})
            targets.append(dset)
            sources.append(da.asarray(values.data))
        da.store(sources, targets, lock=True)
    return path
