"""Detector gain map from amorphous scattering at several detector positions (Weng et al. 2023).

An amorphous scatterer (glass slides) gives smooth rings. Measured with the
detector (or beam stop) at N >= 3 positions, each pixel sees several 2θ and
each ring falls on many pixels, so the ring's intensity and the pixel's
response can be told apart: the pixel's gain is what it measured over what its
ring should give. `gain_map` is the seed notebook's method
(jmsweng/X-ray-detector-gain-map, "Gain map calculation"), with its bugs fixed:

1. frames are averaged per position; negative (flagged) and masked pixels are
   NaN, not 0;
2. the beam stop and its arm are found per position (pixels below half their
   ring's median, and the rings inside a sharp rise of the profile at low 2θ,
   which a disc on the beam shadows whole; grown by 2 pixels), or given;
3. polarisation and, by default, solid angle are divided out before the radial
   statistics. The seed divided by polarisation only; that is enough for a
   detector square to the beam at its centre, but a translated or tilted
   detector sees the same 2θ at different distances and obliquities, so one
   ring gets solid angles differing by percents across the detector and
   between positions, which would be read as gain;
4. per position the radial **median** profile (`beamcat.analyses.azimuthal.median1d`)
   on one 2θ grid for all positions; an empty bin is NaN with a warning (the
   seed stopped with a shape-mismatch ValueError);
5. each profile is continued over the 2θ of all positions from a flat window
   at high 2θ, found where the profiles are flattest or given as
   ``flat_range`` (it must lie in the range every position measured): the
   window sets each position's level, the other positions give the shape
   (``extrapolation="profiles"``), or a straight line through the window
   continues it (``"linear"``, the seed's way; the seed also replaced its own
   data above the window by that line);
6. the expected image of position i is the mean of all positions' profiles at
   position i's 2θ, times polarisation and solid angle; ``gain_i = measured_i /
   expected_i`` normalised by its median;
7. the gain is the NaN-aware median over positions (the seed's ``np.median``
   turned a NaN at any position into 0);
8. damaged pixels: gain above ``median + damaged_nsigma * 1.4826 * MAD``
   (one-sided, as the seed);
9. a median filter of width ``median_window`` (the detector's point-spread
   width) over the non-damaged pixels: damaged pixels are left out of their
   neighbours' windows and keep their own measured gain; NaN where no position
   saw the pixel.

The result follows pyFAI's ``flat=`` convention: ``corrected = raw / gain``
(`beamcat.analyses.detector.flatfield`); ``correction = 1 / gain`` multiplies.
`position_spread` is the check users care about: the 1D patterns of the
positions disagree before correction and agree after.

Computing. A gain map is a whole job on ``(position, y, x)`` means, so these
functions compute: the frame means of all positions in one dask computation
(memory bounded by a chunk), the rest in NumPy on ``(y, x)`` maps.
"""

from __future__ import annotations

import dask
import numpy as np
import xarray as xr

from beamcat.analyses import _gainmap_steps as steps
from beamcat.analyses._azimuthal_tables import normalisation
from beamcat.analyses._frames import PIXEL_DIMS, check_pixel_dims, pick
from beamcat.analyses._history import carried, history
from beamcat.analyses.azimuthal import integrate1d
from beamcat.analyses.detector import as_gain
from beamcat.analyses.geometry import Geometry, as_geometry, check_shape, pixel_array
from beamcat.errors import FormatError, OptionError

__all__ = ["gain_map", "position_means", "position_spread"]


def _frames_of(images) -> tuple[list[xr.DataArray], list[str]]:
    """One DataArray (..., y, x) per position, and a name for each (its source)."""
    if isinstance(images, xr.Dataset | xr.DataArray):
        data = pick(images, what="images")
        if "position" not in data.dims:
            raise OptionError(
                f"{data.attrs.get('source', 'images')}: expected a 'position' dim "
                f"(position, [frame,] y, x), got {data.dims}; or pass a list, one per position"
            )
        frames = [data.isel(position=k) for k in range(data.sizes["position"])]
        labels = data["position"].values if "position" in data.coords else range(len(frames))
        return frames, [f"position {label}" for label in labels]
    if isinstance(images, str | bytes) or not hasattr(images, "__iter__"):
        raise OptionError(
            f"images: expected a list of Datasets (one per position) or a Dataset with a "
            f"'position' dim, got {type(images).__name__}"
        )
    frames, names = [], []
    for k, item in enumerate(images):
        data = pick(item, what="images")
        frames.append(data)
        names.append(str(data.attrs.get("source") or f"position {k}"))
    return frames, names


def _geometries(geometries, images, frames, names) -> list[Geometry]:
    if geometries is None:
        if isinstance(images, xr.Dataset | xr.DataArray):
            raise OptionError("geometries: give one per position (PONI paths or geometries)")
        geometries = list(images)  # each entry's attrs["poni"]
    elif isinstance(geometries, str | bytes | dict) or not hasattr(geometries, "__iter__"):
        raise OptionError(f"geometries: expected one per position, got {type(geometries).__name__}")
    geometries = list(geometries)
    if len(geometries) != len(frames):
        raise OptionError(
            f"{len(frames)} positions but {len(geometries)} geometries; give one per position"
        )
    return [as_geometry(g) for g in geometries]


def position_means(images, geometries=None, *, mask=None) -> tuple[xr.DataArray, list[Geometry]]:
    """The frame mean of each position, lazily: ``(position, y, x)``, NaN where invalid.

    Negative pixels (Pilatus gaps and flagged pixels: -1, -2) and `mask` are
    NaN; a pixel flagged in some frames is the mean of the others.

    Parameters
    ----------
    images : list of Dataset/DataArray (one per position), or Dataset/DataArray (position, ...)
        Each position ``([frame,] y, x)`` (catalog entries opened: their signal).
    geometries : list, optional
        One per position, anything `as_geometry` takes; default each entry's
        ``attrs["poni"]`` (catalog entries with ``poni=``).
    mask : array (y, x) bool, optional
        True = masked (pyFAI's convention): the detector's bad pixels, a user mask.

    Returns
    -------
    means : DataArray (position, y, x) float64
        Dask-backed when the images are; coordinate ``source`` (position).
    geometries : list of Geometry

    Raises
    ------
    FormatError
        Positions of different shapes; a PONI whose detector shape differs from
        the images (the message names both).
    OptionError
        Not one geometry per position, no ``(y, x)`` dims, a mask of another shape.
    """
    frames, names = _frames_of(images)
    if len(frames) < 2:
        raise OptionError(f"a gain map needs images at 2 or more positions, got {len(frames)}")
    geos = _geometries(geometries, images, frames, names)
    shape = check_pixel_dims(frames[0], names[0])
    means = []
    for data, geo, name in zip(frames, geos, names, strict=True):
        if check_pixel_dims(data, name) != shape:
            raise FormatError(
                f"{name}: images of {check_pixel_dims(data, name)} pixels, but {names[0]} has "
                f"{shape}; every position must be the same detector"
            )
        check_shape(geo, shape, name)
        data = data.astype(np.float64)
        data = data.where(data >= 0)
        lead = [d for d in data.dims if d not in PIXEL_DIMS]
        means.append(data.mean(lead, skipna=True) if lead else data)
    stack = xr.concat([m.reset_coords(drop=True) for m in means], dim="position", join="override")
    stack = stack.assign_coords(position=np.arange(len(means)), source=("position", names))
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != shape:
            raise OptionError(f"mask: shape {mask.shape}, expected the images' (y, x) = {shape}")
        stack = stack.where(~xr.DataArray(mask, dims=PIXEL_DIMS))
    return stack.assign_attrs(carried(frames[0].attrs)), geos


def _prepare(images, geometries, mask, polarization_factor, solid_angle) -> steps.Positions:
    stack, geos = position_means(images, geometries, mask=mask)
    (values,) = dask.compute(stack.data)
    shape = values.shape[1:]
    tth = np.stack([pixel_array(g, shape, "2th_deg") for g in geos])
    norm = np.ones_like(tth)
    for k, geo in enumerate(geos):  # the radial statistics' own normalisation (pyFAI's)
        found = normalisation(
            geo, shape, correct_solid_angle=solid_angle, polarization_factor=polarization_factor
        )
        if found is not None:
            norm[k] = found
    return steps.Positions(
        np.asarray(values, dtype=np.float64),
        geos,
        list(stack["source"].values),
        dict(stack.attrs),
        tth,
        norm,
    )


def gain_map(
    images,
    geometries=None,
    *,
    bins: int | None = None,
    flat_range: tuple[float, float] | None = None,
    polarization_factor: float | None = None,
    solid_angle: bool = True,
    median_window: int | None = 3,
    damaged_nsigma: float = 4.0,
    beamstop=None,
    mask=None,
    extrapolation: str = "profiles",
    iterations: int = 2,
) -> xr.Dataset:
    """The detector's pixel gain from amorphous-scatterer images at several positions.

    See the module docstring for the steps. Computes (a whole job on the
    positions' frame means).

    Parameters
    ----------
    images : list of Dataset/DataArray, or Dataset/DataArray (position, [frame,] y, x)
        One entry per detector/beam-stop position (3 or more advised, 2 at least).
    geometries : list, optional
        One per position: PONI paths, `Geometry`, pyFAI integrators (e.g. refined
        from a calibrant image with `beamcat.analyses.calibrant.calibrate`);
        default each entry's ``attrs["poni"]``.
    bins : int, optional
        2θ bins of the radial profiles over the range of all positions; default
        about the detector's smaller side per position's range (the seed's advice).
    flat_range : (lo, hi), optional
        Degrees: the flat window at high 2θ; default where the profiles are
        flattest in the upper half of the range all positions measured.
    polarization_factor : float, optional
        pyFAI's polarisation factor (0.99: a horizontally polarised synchrotron
        beam); None: no polarisation correction (pyFAI's convention).
    solid_angle : bool
        Divide by the solid angle before the radial statistics (see the module
        docstring for why).
    median_window : int or None
        Width in pixels of the final median filter (the point-spread width: 3
        for a Pilatus CdTe, 9 for an a-Si flat panel); None or 1: no filter.
    damaged_nsigma : float
        Damaged pixels: gain above ``median + damaged_nsigma * 1.4826 * MAD``.
    beamstop : None, False, or bool array (y, x) / (position, y, x)
        None: found in each position; False: no beam stop; an array: the given
        shadow (True = shadowed).
    mask : bool array (y, x), optional
        True = masked at every position (the detector's bad-pixel mask).
    extrapolation : {"profiles", "linear"}
        How a position's profile continues beyond its own 2θ range: with the
        shape of the other positions' profiles, or the seed's straight line
        through the flat window.
    iterations : int
        Estimates of the gain: each after the first re-measures the profiles on
        the images corrected by the last one. A ring's median carries the mean
        gain of the pixels it crosses, which differ between positions (other
        chips): the seed's one pass leaves that in the map, a second removes
        most of it (on the demo: position spread 4.5x -> 6.4x lower).

    Returns
    -------
    Dataset
        On ``(y, x)``: ``gain`` (measured / expected, median 1; NaN where
        invalid), ``correction`` (``1 / gain``), ``gain_unfiltered`` (before the
        median filter), ``damaged`` and ``valid`` (bool), ``seen`` (number of
        positions that measured the pixel); ``positions_gain`` and ``beamstop``
        ``(position, y, x)``; ``profile`` (the measured radial median, NaN
        outside the position's range), ``extrapolated`` (continued over all
        positions' range) and ``count`` ``(position, tth)``; ``expected_profile``
        ``(tth)`` (their mean); ``scale`` ``(position)`` (level in the flat
        window). Attrs: ``flat_range``, ``common_range`` (deg), ``bins``,
        ``damaged_threshold``, the options, ``history``.

    Raises
    ------
    FormatError
        Positions of different shapes, a PONI whose detector differs from the images.
    OptionError
        Fewer than 2 positions, a flat range outside the range every position
        measured, no pixel seen by 2 positions, bad options.

    Examples
    --------
    >>> import beamcat
    >>> cat = beamcat.open_catalog()
    >>> entries = [cat[f"gainmap_pos{k}"].read() for k in range(1, 6)]
    >>> ponis = [beamcat.catalog.demo.ensure_demo().parent / f"gainmap/pos{k}.poni"
    ...          for k in range(1, 6)]  # doctest: +SKIP
    >>> gm = gain_map(entries, ponis, polarization_factor=0.99)  # doctest: +SKIP
    >>> corrected = entries[0].detector.flatfield(gm)  # doctest: +SKIP
    """
    if not isinstance(iterations, int | np.integer) or iterations < 1:
        raise OptionError(f"iterations={iterations!r}: expected an integer >= 1")
    options = {"solid_angle": solid_angle, "polarization_factor": polarization_factor}
    pos = _prepare(images, geometries, mask, polarization_factor, solid_angle)
    valid = np.isfinite(pos.images)
    npt, radial_range = steps.binning(pos, valid, bins)
    stop = steps.beamstops(pos, beamstop, valid, npt, radial_range, **options)
    seen = valid & ~stop
    if not np.any(seen.sum(axis=0) >= 2):
        raise OptionError(
            f"no pixel is seen by 2 or more of the {len(pos.names)} positions (beam stop, "
            "masks); nothing would be measured: move the detector less, or check the masks"
        )
    profiles, counts, centres = steps.radial_profiles(pos, seen, npt, radial_range, **options)
    steps.empty_bins_warning(profiles, pos.names)
    ranges = steps.measured_range(profiles, centres)
    if np.isnan(ranges).any():
        empty = [n for n, r in zip(pos.names, ranges, strict=True) if np.isnan(r[0])]
        raise OptionError(f"{', '.join(empty)}: no pixel left to measure a radial profile")
    common = steps.common_range(ranges)
    if common[0] >= common[1]:
        raise OptionError(
            "the positions share no 2θ range (each position's range in deg: "
            + ", ".join(
                f"{n} {r[0]:.2f}-{r[1]:.2f}" for n, r in zip(pos.names, ranges, strict=True)
            )
            + "); a gain map needs overlapping positions"
        )
    window = steps.chosen_window(flat_range, profiles, centres, common)
    combined = None
    for _ in range(iterations):
        if combined is not None:  # re-measure the profiles on images corrected by the last estimate
            profiles, counts, _ = steps.radial_profiles(
                pos, seen & np.isfinite(combined), npt, radial_range, divide=combined, **options
            )
        extended, scale = steps.extend_profiles(
            profiles, centres, window, extrapolation=extrapolation
        )
        expected_profile = extended.mean(axis=0)
        expected = pos.norm * steps.ring_reference(pos.tth, centres, expected_profile)
        per_position = steps.position_gains(pos.images, expected, seen)
        combined = steps.quiet_nanmedian(per_position, axis=0)
        combined /= np.nanmedian(combined)
    n_seen = np.isfinite(per_position).sum(axis=0)
    good = np.isfinite(combined) & (combined > 0)
    combined[~good] = np.nan
    damaged, threshold = steps.damaged_pixels(combined, damaged_nsigma)
    filtered = steps.filtered_gain(combined, damaged, median_window)
    scale_to_one = np.nanmedian(filtered)
    gain, combined = filtered / scale_to_one, combined / scale_to_one

    yx, ptth = PIXEL_DIMS, ("position", "tth")
    unit = {"units": "1"}
    line = (
        f"gain_map({len(pos.names)} positions, bins={npt}, flat_range=({window[0]:.4g}, "
        f"{window[1]:.4g}), polarization_factor={polarization_factor}, solid_angle={solid_angle}, "
        f"median_window={median_window}, damaged_nsigma={damaged_nsigma}, "
        f"extrapolation={extrapolation!r}, iterations={iterations})"
    )
    attrs = {
        **pos.attrs,
        "signal": "gain",
        "flat_range": [float(window[0]), float(window[1])],
        "common_range": [float(common[0]), float(common[1])],
        "bins": npt,
        "polarization_factor": "none" if polarization_factor is None else polarization_factor,
        "solid_angle": int(solid_angle),
        "median_window": 1 if median_window is None else int(median_window),
        "damaged_nsigma": float(damaged_nsigma),
        "damaged_threshold": threshold / scale_to_one,
        "extrapolation": extrapolation,
        "iterations": int(iterations),
        "history": history(pos.attrs, line),
    }
    with np.errstate(divide="ignore", invalid="ignore"):
        correction = 1.0 / gain
    return xr.Dataset(
        {
            "gain": (yx, gain, {**unit, "long_name": "relative pixel gain (raw / gain)"}),
            "correction": (yx, correction, {**unit, "long_name": "gain correction (raw x it)"}),
            "gain_unfiltered": (yx, combined, {**unit, "long_name": "gain before median filter"}),
            "damaged": (yx, damaged, {"long_name": "damaged pixel (gain far above median)"}),
            "valid": (yx, np.isfinite(gain), {"long_name": "pixel gain measured"}),
            "seen": (yx, n_seen.astype(np.int16), {"long_name": "positions measuring the pixel"}),
            "positions_gain": (("position", *yx), per_position, unit),
            "beamstop": (("position", *yx), stop, {"long_name": "beam-stop shadow"}),
            "profile": (ptth, profiles, {"long_name": "radial median", "units": "counts"}),
            "extrapolated": (ptth, extended, {"long_name": "continued profile", "units": "counts"}),
            "count": (ptth, counts, {"long_name": "pixels per bin"}),
            "expected_profile": ("tth", expected_profile, {"units": "counts"}),
            "scale": ("position", scale, {"long_name": "level in the flat window", **unit}),
        },
        coords={
            "position": np.arange(len(pos.names)),
            "source": ("position", pos.names),
            "tth": ("tth", centres, {"units": "deg", "long_name": "scattering angle 2θ"}),
        },
        attrs=attrs,
    )


def position_spread(
    images,
    geometries=None,
    gain=None,
    *,
    bins: int | None = None,
    polarization_factor: float | None = None,
    solid_angle: bool = True,
    beamstop=None,
    mask=None,
) -> xr.Dataset:
    """How much the positions' 1D patterns disagree: before (``gain=None``) and after correction.

    Each position is integrated (`beamcat.analyses.azimuthal.integrate1d`, with
    ``flat=gain``) over the 2θ range every position measured, scaled to its
    median there (the positions may have had different flux), and the spread is
    the standard deviation over positions relative to their mean, per bin.

    Parameters
    ----------
    images, geometries, polarization_factor, solid_angle, mask
        As `gain_map`.
    gain : Dataset, DataArray or array (y, x), optional
        A `gain_map` result (its invalid pixels are left out, and its beam-stop
        shadows used unless `beamstop` is given) or a map; None: uncorrected.
    bins : int, optional
        2θ bins over the common range; default the detector's smaller side.
    beamstop : None, False or bool array
        As `gain_map`; pass the same shadows before and after to compare alike.

    Returns
    -------
    Dataset
        ``intensity`` and ``relative`` ``(position, tth)``, ``spread`` ``(tth)``
        (relative standard deviation over positions) and ``rms_spread`` (its RMS
        over the bins, a number).

    Examples
    --------
    >>> before = position_spread(entries, ponis)  # doctest: +SKIP
    >>> after = position_spread(entries, ponis, gain=gain_map(entries, ponis))  # doctest: +SKIP
    >>> float(before.rms_spread / after.rms_spread)  # doctest: +SKIP
    9.3
    """
    options = {"solid_angle": solid_angle, "polarization_factor": polarization_factor}
    pos = _prepare(images, geometries, mask, polarization_factor, solid_angle)
    valid = np.isfinite(pos.images)
    if beamstop is None and isinstance(gain, xr.Dataset) and "beamstop" in gain:
        beamstop = np.asarray(gain["beamstop"].values, dtype=bool)
    npt, radial_range = steps.binning(pos, valid, None)
    stop = steps.beamstops(pos, beamstop, valid, npt, radial_range, **options)
    seen = valid & ~stop
    lows = [pos.tth[k][seen[k]].min() for k in range(len(pos.images))]
    highs = [pos.tth[k][seen[k]].max() for k in range(len(pos.images))]
    common = (max(lows), min(highs))
    if common[0] >= common[1]:
        raise OptionError("the positions share no 2θ range: nothing to compare")
    npt = min(pos.shape) if bins is None else bins
    flat = None
    if gain is not None:
        flat = as_gain(gain, pos.shape)
        seen &= np.isfinite(flat.values)
        flat = flat.fillna(1.0)
    patterns = [
        out["intensity"]
        for out in steps.each_position(
            integrate1d, pos.images, pos, seen, npt=npt, radial_range=common, flat=flat, **options
        )
    ]
    intensity = xr.concat(patterns, dim="position", join="override").assign_coords(
        position=np.arange(len(patterns)), source=("position", pos.names)
    )
    relative = intensity / intensity.median("tth", skipna=True)
    spread = relative.std("position") / relative.mean("position")
    rms = float(np.sqrt(np.nanmean(spread.values**2)))
    line = (
        f"position_spread({len(patterns)} positions, gain={'given' if gain is not None else None})"
    )
    return xr.Dataset(
        {
            "intensity": intensity.assign_attrs(units="counts"),
            "relative": relative.assign_attrs(long_name="pattern / its median", units="1"),
            "spread": spread.assign_attrs(long_name="relative spread over positions", units="1"),
            "rms_spread": ((), rms, {"long_name": "RMS relative spread", "units": "1"}),
        },
        attrs={**pos.attrs, "common_range": list(common), "history": history(pos.attrs, line)},
    )
