"""The radiography job: catalog entries in, tables and figures out (``beamcat radiography``).

`run_radiography` chains the analyses the original IMAT scripts run one by one
(01 masters, 03 calibration and ROIs, 04 figures, 04b grid heat maps, 04c
difference images) for one or several runs of a catalog:

1. dark and flat masters, calibration (``T = (I - D) / (F - D)``, optionally
   normalised by an open-beam region);
2. ROI means (and grid cell means) of every frame in one pass over the raw
   frames (`calibrated_means`), plus the reference image, computed in ONE dask
   computation (memory is bounded by a chunk of frames);
3. tables: the original's ``<run>_greyvalues.csv`` layout with a column per ROI
   named by the ROI (and ``_grid_greyvalues``, ``_concentration``) and Zarr
   stores of everything;
4. figures: the reference image with the ROIs, the double plot (logs over ROI
   transmission, all runs), grid heat maps and difference frames as image
   sequences with an animation.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import dask
import numpy as np
import xarray as xr

from beamcat.analyses import timeseries
from beamcat.analyses._frames import pick, reference_frame
from beamcat.analyses.calibrated_means import calibrated_means
from beamcat.analyses.calibration import calibrate
from beamcat.analyses.difference import difference
from beamcat.analyses.masters import dark_master, flat_master
from beamcat.catalog.zarr_store import to_zarr
from beamcat.errors import CatalogError, OptionError
from beamcat.figures import radiography as figures
from beamcat.figures import save_figure
from beamcat.rois import load_rois
from beamcat.workflows.original_csv import to_original_csv

__all__ = ["run_radiography"]


# --------------------------------------------------------------------------- the job


def _entry(catalog, name: str, what: str) -> xr.Dataset:
    if name not in catalog:
        raise CatalogError(
            f"{what} {name!r}: no such entry in the catalog; entries: {', '.join(catalog)}"
        )
    return catalog[name].read()


def _reference_image(transmission: xr.DataArray, frames: int | slice, flag: str) -> xr.DataArray:
    """The frame `frames` of `transmission`, or the mean of a range of frames (lazy)."""
    ref = reference_frame(transmission, "time", frames, what=flag)
    return ref.mean("time", skipna=True) if "time" in ref.dims else ref


def _progress(enabled: bool):
    if not enabled:
        return contextlib.nullcontext()
    from dask.diagnostics import ProgressBar

    return ProgressBar(out=sys.stderr)


def _series(means: xr.DataArray, *, reference, smooth, beer_lambert) -> xr.DataArray:
    """ROI or grid means -> what the heat maps show: Beer-Lambert or reduced transmission.

    The original's order: smooth, normalise to the reference, then convert.
    """
    if smooth:
        means = timeseries.savgol(means, window=smooth[0], order=smooth[1])
    relative = timeseries.normalise(means, reference=reference)
    if beer_lambert:
        return timeseries.beer_lambert(
            relative, thickness_cm=beer_lambert[0], cross_section_barn=beer_lambert[1]
        )
    return timeseries.reduced_transmission(relative)


def run_radiography(
    catalog,
    run: str | Sequence[str],
    *,
    dark: str,
    flat: str,
    rois: str | os.PathLike | Mapping,
    out: str | os.PathLike,
    grid: tuple[int, int] | None = None,
    grid_region: tuple[float, float, float, float] | None = None,
    air_roi: tuple[int, int, int, int] | None = None,
    beer_lambert: tuple[float, float] | None = None,
    difference: int | slice | None = None,
    reference: int | slice = 0,
    massspec: str | None = None,
    temperature: str | None = None,
    species: Sequence[str] | None = None,
    smooth: tuple[int, int] | None = None,
    origin=None,
    pixel_size: float | None = None,
    formats: Sequence[str] = ("png",),
    dpi: float = 200,
    animation: Literal["gif", "mp4"] | None = "gif",
    frame_step: int = 1,
    progress: bool = True,
) -> dict[str, list[Path]]:
    """Calibrate runs of a catalog and write their tables and figures into `out`.

    Parameters
    ----------
    catalog : path or intake Catalog
        The catalog (``beamcat.open_catalog(path)``) holding the entries.
    run : str or sequence of str
        Entry name(s) of the run(s): frames ``(frame, y, x)`` with frame times.
        Several runs share one double plot; everything else is per run.
    dark, flat : str
        Entries of the dark and open-beam frames (mean masters are made).
    rois : path or mapping
        ROI file (JSON/CSV, `beamcat.analyses.roi.load_rois`) or mapping name
        -> ``(x, y, w, h)`` / mask.
    out : path
        Output folder (created; existing outputs are replaced).
    grid : (rows, cols), optional
        Grid cell means over `grid_region` (default the whole image) and heat maps.
    air_roi : (x, y, w, h), optional
        Open-beam region each frame is normalised by (source drift).
    beer_lambert : (thickness_cm, cross_section_barn), optional
        Heat maps and ``<run>_concentration.csv`` in mmol/cm3 (relative to
        `reference`); without it the heat maps show reduced transmission (%).
    difference : int or slice, optional
        Reference frame (or range of frames, averaged) of difference images;
        None: no difference images.
    reference : int or slice
        Frame(s) of the "before" state: normalisation of the time series and
        the reference image under the ROIs and the grid (the original: frame 0).
    massspec, temperature : str, optional
        Log entries shown on top of the double plot.
    species : sequence of str, optional
        Mass-spec variables to show (default all).
    smooth : (window, order), optional
        Savitzky-Golay smoothing of the plotted series (not of the tables).
    origin : None, str or time
        Zero of elapsed time in the figures (default the first frame).
    pixel_size : float, optional
        Metres per pixel for scale bars; default the run's ``attrs["pixel_size"]``.
    formats : sequence of {"png", "pdf", "svg"}
    dpi : float
        Resolution of the figures (image sequences: at most 150).
    animation : {"gif", "mp4"} or None
    frame_step : int
        Draw every n-th frame in the image sequences (tables keep every frame).
    progress : bool
        Progress bars on stderr.

    Returns
    -------
    dict of str -> list of Path
        Keys ``tables``, ``zarr``, ``roi_image``, ``double_plot``,
        ``grid_frames``, ``grid_animation``, ``difference_frames``,
        ``difference_animation`` (those produced).

    Raises
    ------
    BeamcatError
        Unknown entries, ROIs outside the image, bad options, logs that do not
        overlap the runs ... (the message says which).

    Examples
    --------
    >>> run_radiography("catalog.yaml", "imat_run", dark="imat_dark", flat="imat_flat",
    ...                 rois="rois.json", out="results", grid=(8, 8))  # doctest: +SKIP
    """
    if isinstance(catalog, str | os.PathLike):
        from beamcat.catalog.catalogs import open_catalog

        catalog = open_catalog(catalog)
    runs = [run] if isinstance(run, str) else list(run)
    if not runs:
        raise OptionError("run: give at least one run entry")
    if not isinstance(frame_step, int) or frame_step < 1:
        raise OptionError(f"frame_step={frame_step!r}: expected a positive integer")
    rois = load_rois(rois) if isinstance(rois, str | os.PathLike) else dict(rois)
    out = Path(out)

    dark_image = dark_master(pick(_entry(catalog, dark, "--dark")))
    flat_image = flat_master(pick(_entry(catalog, flat, "--flat")), dark_image)
    logs = {
        key: _entry(catalog, name, f"--{key}")
        for key, name in (("massspec", massspec), ("temperature", temperature))
        if name is not None
    }
    lazy, sizes = {}, {}
    for name in runs:
        ds = _entry(catalog, name, "run")
        frames = pick(ds)
        if "time" not in frames.coords:
            raise OptionError(f"run {name!r}: frames without times; give the entry a frame_log")
        transmission = calibrate(frames, dark_image, flat_image, air_roi=air_roi)
        means = calibrated_means(
            frames,
            dark_image,
            flat_image,
            rois=rois,
            grid=grid,
            grid_region=grid_region,
            air_roi=air_roi,
        )
        sizes[name] = _pixel_size(ds, pixel_size)
        lazy[name] = {
            "transmission": transmission,
            "means": means["rois"],
            "reference": _reference_image(transmission, reference, "--reference"),
        }
        if grid:
            lazy[name]["grid"] = means["grid"]
        if difference is not None:
            lazy[name]["difference"] = _reference_image(transmission, difference, "--difference")
    out.mkdir(parents=True, exist_ok=True)
    # everything small in one computation: one pass over the raw frames for the means
    wanted = {
        name: {k: v for k, v in parts.items() if k != "transmission"}
        for name, parts in lazy.items()
    }
    with _progress(progress):
        (computed,) = dask.compute(wanted)

    written: dict[str, list[Path]] = {}

    def add(key: str, paths) -> None:
        written.setdefault(key, []).extend([paths] if isinstance(paths, Path) else paths)

    every = slice(None, None, frame_step)
    for name, parts in computed.items():
        style = {
            "formats": formats,
            "dpi": min(dpi, 150),
            "animation": animation,
            "progress": progress,
            "origin": origin,
            "pixel_size": sizes[name],
        }
        sequences = {}
        means, image = parts["means"], parts["reference"]
        add("tables", to_original_csv(means, out / f"{name}_greyvalues.csv", labels="names"))
        series = _series(means["mean"], reference=reference, smooth=None, beer_lambert=beer_lambert)
        roi_store = means.assign(
            {"reference_image": image.reset_coords(drop=True), series.name: series}
        )
        if beer_lambert:
            add(
                "tables", to_original_csv(series, out / f"{name}_concentration.csv", labels="names")
            )
        add("zarr", to_zarr(roi_store, out / f"{name}_rois.zarr", overwrite=True))
        figure = figures.roi_image(image, rois, pixel_size=sizes[name], title=name)
        add("roi_image", save_figure(figure, out / f"{name}_rois", formats=formats, dpi=dpi))
        if grid:
            cells = parts["grid"]
            add("tables", to_original_csv(cells, out / f"{name}_grid_greyvalues.csv"))
            values = _series(
                cells["mean"], reference=reference, smooth=smooth, beer_lambert=beer_lambert
            )
            store = cells.assign({values.name: values})
            add("zarr", to_zarr(store, out / f"{name}_grid.zarr", overwrite=True))
            sequences["grid"] = figures.save_grid_frames(
                values.isel(time=every), image, out, name=f"{name}_grid", **style
            )
        if difference is not None:
            display = _difference_display(lazy[name]["transmission"], parts["difference"])
            sequences["difference"] = figures.save_difference_frames(
                display.isel(time=every), out, name=f"{name}_difference", **style
            )
        for kind, files in sequences.items():
            add(f"{kind}_frames", files["frames"])
            add(f"{kind}_animation", files["animation"])
    figure = figures.double_plot(
        {name: parts["means"] for name, parts in computed.items()},
        massspec=logs.get("massspec"),
        temperature=logs.get("temperature"),
        species=species,
        origin=origin,
        smooth=smooth,
    )
    add("double_plot", save_figure(figure, out / "double_plot", formats=formats, dpi=dpi))
    return written


def _pixel_size(ds: xr.Dataset, pixel_size: float | None) -> float | None:
    return pixel_size if pixel_size is not None else ds.attrs.get("pixel_size")


def _difference_display(transmission: xr.DataArray, reference: xr.DataArray) -> xr.DataArray:
    """Stretched difference frames against an already computed reference image (lazy).

    The image is given to `difference` as it is, so the reference window is not
    recomputed for every chunk of frames rendered.
    """
    image = reference.reset_coords(drop=True).astype(np.float32)
    return difference(transmission.reset_coords(drop=True), reference=image)["display"]
