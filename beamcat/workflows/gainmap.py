"""The gain-map job: amorphous-scatterer entries in, maps, figures and a summary out.

`run_gainmap` (``beamcat gainmap``) chains what the seed's two notebooks and the
GSAS-II GUI did by hand:

1. the geometry of each position: its PONI, or refined from a calibrant image
   taken there (`beamcat.analyses.calibrant.calibrate`, started from the PONI;
   the refined PONIs are written next to the maps);
2. the gain map (`beamcat.analyses.gainmap.gain_map`), one dask pass over the
   frames with a progress bar;
3. the check: the positions' 1D patterns before and after the correction
   (`position_spread`, the same beam-stop shadows for both);
4. files (`beamcat.catalog.gain_files`, dated as the seed named them): the gain
   (float32 TIFF, ``form=gain``: divide images by it; pyFAI's and Dioptas' flat
   field), the correction (``form=correction``: multiply), the unfiltered gain,
   the GSAS-II integer map, NeXus with the masks and provenance;
5. figures (the map and histogram, the profiles, before/after) and a JSON
   summary, every file written atomically.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from beamcat._util import __version__, atomic_open
from beamcat.analyses._frames import pick
from beamcat.analyses.calibrant import calibrate
from beamcat.analyses.gainmap import gain_map, position_spread
from beamcat.analyses.geometry import as_geometry, write_poni
from beamcat.catalog.gain_files import (
    gain_file_name,
    write_gain_nexus,
    write_gain_tiff,
    write_gsas2_map,
)
from beamcat.errors import CatalogError, OptionError
from beamcat.figures import gainmap as figures
from beamcat.figures import save_figure
from beamcat.workflows import _report

__all__ = ["SUMMARY_NAME", "calibrated_geometries", "run_gainmap"]

#: the JSON summary in the output folder
SUMMARY_NAME = "gain_map_summary.json"


def _open(items, catalog, what: str) -> list[xr.Dataset | xr.DataArray]:
    """Datasets of catalog entry names, paths (`beamcat.open_dataset`) or Datasets as they are."""
    opened = []
    for item in items:
        if isinstance(item, xr.Dataset | xr.DataArray):
            opened.append(item)
            continue
        if catalog is not None and str(item) in catalog:
            opened.append(catalog[str(item)].read())
        elif Path(item).exists():
            from beamcat.catalog.formats import open_dataset

            opened.append(open_dataset(item))
        else:
            known = f"; entries: {', '.join(catalog)}" if catalog is not None else ""
            raise CatalogError(f"{what} {item!r}: no such catalog entry or file{known}")
    return opened


def calibrated_geometries(images, calibrant: str, starts: Sequence, *, progress: bool = False):
    """One refined geometry per calibrant image (`calibrate`, started from `starts`).

    Parameters
    ----------
    images : sequence of Dataset/DataArray ([frame,] y, x)
        A calibrant image per position (frames are averaged, negatives masked).
    calibrant : str
        A calibrant pyFAI knows (``"CeO2"``, ``"LaB6"`` ...).
    starts : sequence
        The start of each refinement: PONI paths or geometries (the position's
        nominal PONI), as `calibrate` takes them.

    Returns
    -------
    list of `beamcat.analyses.calibrant.Calibration`
    """
    if len(images) != len(starts):
        raise OptionError(
            f"{len(images)} calibrant images but {len(starts)} PONIs to start from; "
            "give one PONI (--poni) per calibrant image"
        )
    out = []
    for k, (image, start) in enumerate(zip(images, starts, strict=True)):
        frames = pick(image, what="calibrant image")
        frames = frames.where(frames >= 0)
        lead = [d for d in frames.dims if d not in ("y", "x")]
        mean = frames.mean(lead) if lead else frames
        _report.say(progress, f"calibrating position {k + 1} on {calibrant} ...")
        out.append(calibrate(mean.compute(), calibrant, start=start))
    return out


def run_gainmap(
    entries: Sequence,
    ponis: Sequence | None = None,
    *,
    out: str | os.PathLike,
    catalog=None,
    calibrant_images: Sequence | None = None,
    calibrant: str = "CeO2",
    name: str = "gain_map",
    formats: Sequence[str] = ("png",),
    dpi: float = 150,
    progress: bool = True,
    **options,
) -> dict:
    """Compute a gain map from entries at several positions and write everything into `out`.

    Parameters
    ----------
    entries : sequence of str, path or Dataset
        The amorphous-scatterer images, one per position: catalog entry names
        (of `catalog`), files/folders (`beamcat.open_dataset`) or Datasets.
    ponis : sequence, optional
        One geometry per position (PONI paths, geometries); default each
        entry's ``attrs["poni"]`` (catalog entries with ``poni=``). With
        `calibrant_images`, the starts of the refinements.
    out : path
        Output folder (created; files of the same names are replaced).
    catalog : path or intake Catalog, optional
        Where entry names are looked up (default: the demo catalog when a name
        is given).
    calibrant_images : sequence, optional
        A calibrant image per position (entry names, files or Datasets): each
        position's geometry is refined on it (`calibrated_geometries`) and
        written as ``<name>_pos<k>.poni``.
    calibrant : str
        The calibrant of `calibrant_images`.
    name : str
        Stem of the map files (``<name>_YYYY-MM-DD.tif`` ...).
    formats : sequence of {"png", "pdf", "svg"}
        Figure formats.
    dpi : float
    progress : bool
        A progress bar and step messages on stderr.
    **options
        `beamcat.analyses.gainmap.gain_map` options (``polarization_factor``,
        ``median_window``, ``flat_range``, ``bins``, ``damaged_nsigma`` ...).

    Returns
    -------
    dict
        The summary also written as ``SUMMARY_NAME``: positions, geometries,
        options, flat and common 2θ ranges, pixel counts (valid, damaged, the
        damaged pixels' ``[y, x]``), the position spread before and after and
        their ratio, and ``files``: kind -> list of paths.

    Raises
    ------
    BeamcatError
        Unknown entries, bad PONIs, positions that do not fit together, bad
        options (the message says which).

    Examples
    --------
    >>> run_gainmap([f"gainmap_pos{k}" for k in range(1, 6)], out="gain",
    ...             polarization_factor=0.99)  # doctest: +SKIP
    """
    if isinstance(catalog, str | os.PathLike) or (
        catalog is None and any(isinstance(e, str) and not Path(e).exists() for e in entries)
    ):
        from beamcat.catalog.catalogs import open_catalog

        catalog = open_catalog(catalog)
    images = _open(entries, catalog, "entry")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, list[str]] = {}

    def add(kind: str, paths) -> None:
        paths = [paths] if isinstance(paths, Path) else paths
        files.setdefault(kind, []).extend(str(p) for p in paths)

    geometries = list(ponis) if ponis is not None else None
    if calibrant_images is not None:
        starts = geometries if geometries is not None else [as_geometry(i) for i in images]
        found = calibrated_geometries(
            _open(calibrant_images, catalog, "calibrant image"),
            calibrant,
            starts,
            progress=progress,
        )
        geometries = [c.geometry for c in found]
        for k, geometry in enumerate(geometries, start=1):
            add("ponis", write_poni(geometry, out / f"{name}_pos{k}.poni"))
    _report.say(progress, f"gain map of {len(images)} positions ...")
    with _report.progress(progress):
        gm = gain_map(images, geometries, **options)
    _report.say(progress, "position spread before and after ...")
    spread_options = {k: options[k] for k in ("polarization_factor", "solid_angle") if k in options}
    before = position_spread(images, geometries, beamstop=gm.beamstop, **spread_options)
    after = position_spread(images, geometries, gain=gm, **spread_options)

    date = dt.date.today()
    add("gain_tiff", write_gain_tiff(gm, out, name=name, form="gain", date=date))
    add(
        "correction_tiff",
        write_gain_tiff(gm, out, name=f"{name}_correction", form="correction", date=date),
    )
    unfiltered = gm.gain_unfiltered.assign_attrs(gm.attrs)
    add("unfiltered_tiff", write_gain_tiff(unfiltered, out, name=f"{name}_unfiltered", date=date))
    add("gsas2_map", write_gsas2_map(gm, out, name=f"{name}_gsas2", date=date))
    add("nexus", write_gain_nexus(gm, out / gain_file_name(name, date, ".nxs")))
    for kind, figure in (
        ("gain_map_figure", figures.gain_map_figure(gm, title=name)),
        ("profiles_figure", figures.profiles_figure(gm)),
        ("spread_figure", figures.position_spread_figure(before, after)),
    ):
        add(
            kind,
            save_figure(
                figure, out / f"{name}_{kind.removesuffix('_figure')}", formats=formats, dpi=dpi
            ),
        )

    path = out / SUMMARY_NAME
    add("summary", path)
    summary = _summary(gm, before, after, geometries, images, options, files)
    with atomic_open(path, "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2)
    return summary


def _summary(gm, before, after, geometries, images, options, files) -> dict:
    damaged = np.argwhere(gm.damaged.values)
    sources = [str(s) for s in gm["source"].values]
    if geometries is None:
        geometries = [as_geometry(i) for i in images]
    rms_before, rms_after = float(before.rms_spread), float(after.rms_spread)
    return {
        "beamcat_version": __version__,
        "written": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "positions": sources,
        "geometries": [as_geometry(g).name for g in geometries],
        "options": {k: v for k, v in options.items() if isinstance(v, str | int | float | list)},
        "flat_range_deg": gm.attrs["flat_range"],
        "common_range_deg": gm.attrs["common_range"],
        "bins": gm.attrs["bins"],
        "pixels": int(gm.gain.size),
        "valid": int(gm.valid.sum()),
        "damaged": int(len(damaged)),
        "damaged_threshold": float(gm.attrs["damaged_threshold"]),
        "damaged_pixels_yx": damaged.tolist(),
        "position_spread_before": rms_before,
        "position_spread_after": rms_after,
        "spread_ratio": rms_before / rms_after if rms_after > 0 else None,
        "files": files,
    }
