"""The 4D-STEM job: a scan in, radial profiles, NMF, figures and a summary out.

`run_stem4d` (``beamcat stem4d``) chains what ePSIC's notebooks and SLURM batch
files did one by one:

1. optionally, the scan converted to a sharded, compressed Zarr v3 store
   (`beamcat.catalog.convert.convert`), read back for the passes below;
2. the calibration: an Au calibration JSON (`calibrate_au`'s or ePSIC's), else
   the one the entry carries (catalog option ``calibration=``);
3. one pass for the mean pattern, one for the elliptical radial mean and
   variance of every pattern, written in ePSIC's layout as Zarr and HDF5
   (`beamcat.analyses.stem4d.save_profiles`), with a progress bar;
4. NMF of the profiles (`beamcat.analyses.decomposition.nmf`), leaving out the
   bright-field disc (from twice its radius, `nmf_start`), stored as Zarr;
5. figures (the calibration checks on the scan's mean pattern, the scree plot,
   the NMF components and loading maps) and a JSON summary.

Every file is written atomically: a store under a temporary name renamed when
complete, a file through `beamcat._util.atomic_open`. Stores of the same names
already in the output folder are refused before any work (never replaced).
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from beamcat._util import __version__, atomic_directory, atomic_open
from beamcat.analyses._frames import pick
from beamcat.analyses.decomposition import nmf, scree
from beamcat.analyses.stem4d import mean_pattern, radial_profiles, save_profiles
from beamcat.analyses.stem4d_calibration import as_calibration
from beamcat.errors import OptionError, SourceNotFoundError
from beamcat.figures import save_figure
from beamcat.figures.decomposition import nmf_figure, scree_figure
from beamcat.figures.stem4d import calibration_pattern_figure, calibration_profile_figure
from beamcat.workflows import _report

__all__ = ["SUMMARY_NAME", "nmf_start", "run_stem4d"]

#: ePSIC's variable suffixes (``<name>_azimuthal_mean`` ...) -> `radial_profiles`' names
EPSIC_NAMES = {"mean": "mean", "var": "variance", "count": "count"}
#: the JSON summary in the output folder
SUMMARY_NAME = "stem4d_summary.json"


def _open(entry, catalog) -> tuple[xr.Dataset, str]:
    """The scan and its name: a Dataset, a file/folder, or an entry of `catalog`."""
    if isinstance(entry, xr.Dataset):
        return entry, Path(str(entry.attrs.get("source", "scan")).split(";")[0]).stem
    text = os.fspath(entry)
    if Path(text).expanduser().exists():
        from beamcat.catalog.formats import open_dataset

        return open_dataset(text), Path(text).stem
    from beamcat.catalog.catalogs import open_catalog

    cat = (
        open_catalog(catalog)
        if catalog is None or isinstance(catalog, str | os.PathLike)
        else catalog
    )
    if text not in cat:
        raise SourceNotFoundError(
            f"{text!r}: no such file or folder, nor an entry of the catalog; "
            f"its entries are: {', '.join(sorted(cat)) or 'none'}"
        )
    return cat[text].read(), text


def nmf_start(profiles: xr.Dataset) -> float:
    """Where NMF starts by default: twice the bright-field disc's edge (units of ``q``).

    The edge is the first q where the scan's average radial mean falls below
    half its maximum; the disc's intensity, orders of magnitude above the rings',
    would otherwise make a component of its own (the demo: |r| 0.03 to the Au
    fraction with it, 0.95 without).

    Examples
    --------
    >>> q = np.arange(10.0) + 0.5
    >>> mean = xr.DataArray([[9.0, 9, 8, 1, 1, 1, 1, 1, 1, 1]], dims=("frame", "q"))
    >>> nmf_start(xr.Dataset({"mean": mean}, coords={"q": q}))
    7.0
    """
    average = profiles["mean"].mean([d for d in profiles["mean"].dims if d != "q"])
    values = np.nan_to_num(np.asarray(average.values, dtype=np.float64))
    below = np.flatnonzero(values < values.max() / 2)
    edge = float(profiles["q"].values[below[0]]) if below.size else 0.0
    return 2.0 * edge


def _store_free(path: Path) -> Path:
    if path.exists():
        raise OptionError(f"{path}: already exists; remove it or choose another --out folder")
    return path


def _write_nmf(result: xr.Dataset, path: Path) -> Path:
    """The NMF Dataset as a Zarr v3 store, atomically (attrs that are not JSON as text)."""
    out = result.copy()
    out.attrs = {k: v if isinstance(v, str | int | float) else str(v) for k, v in out.attrs.items()}
    with atomic_directory(path) as tmp:
        out.to_zarr(tmp, mode="w-", zarr_format=3, consolidated=False)
    return path


def run_stem4d(
    entry,
    *,
    out: str | os.PathLike,
    catalog=None,
    calibration=None,
    convert: bool = False,
    n_components: int = 2,
    profile: str = "variance",
    q_from: float | None = None,
    n_bins: int | None = None,
    name: str | None = None,
    formats: Sequence[str] = ("png",),
    dpi: float = 150,
    progress: bool = True,
) -> dict:
    """Radial profiles, NMF and figures of a 4D-STEM scan, written into `out`.

    Parameters
    ----------
    entry : str, path or Dataset
        The scan ``(scan_y, scan_x, y, x)``: an entry of `catalog`, a file or
        folder (`beamcat.open_dataset`), or a Dataset.
    out : path
        Output folder (created).
    catalog : path or intake Catalog, optional
        Where an entry name is looked up (default: the demo catalog).
    calibration : path, AuCalibration or dict, optional
        The Au calibration (ePSIC JSON, e.g. ``calibrate_au(...).save("au.json")``);
        default the entry's ``attrs["calibration"]``.
    convert : bool
        First convert the scan to ``<name>.zarr`` in `out` and read it from there.
    n_components : int
        NMF components (phases).
    profile : {"variance", "mean"}
        Which radial profile NMF factorises.
    q_from : float, optional
        NMF leaves out q below it (1/Angstrom); default `nmf_start`.
    n_bins : int, optional
        Radial bins (default one per pixel along the major axis).
    name : str, optional
        Stem of the files (default the entry's name or file stem).
    formats : sequence of {"png", "pdf", "svg"}
        Figure formats.
    dpi : float
    progress : bool
        Progress bars and step messages on stderr.

    Returns
    -------
    dict
        The summary also written as `SUMMARY_NAME`: scan shape, calibration,
        q bins, NMF settings, iterations and reconstruction error, and
        ``files``: kind -> list of paths.

    Raises
    ------
    BeamcatError
        An unknown entry, a scan that is not 4D, no calibration, a bad
        calibration JSON, output stores that exist, bad NMF options.

    Examples
    --------
    >>> run_stem4d("stem4d_scan", out="stem4d_out", n_components=2)  # doctest: +SKIP
    """
    ds, stem = _open(entry, catalog)
    name = name or stem
    frames = pick(ds, what=f"scan {stem!r}")
    if frames.dims[-2:] != ("y", "x") or frames.ndim != 4:
        raise OptionError(
            f"{stem}: expected a 4D-STEM scan (scan_y, scan_x, y, x), got {frames.dims}"
        )
    if calibration is None and "calibration" not in ds.attrs:
        raise OptionError(
            f"{stem}: no calibration; give an Au calibration JSON (--calibration au.json)"
        )
    cal = as_calibration(
        ds.attrs if calibration is None else calibration, source=f"{stem}: calibration"
    )
    out = Path(out)
    stores = {
        kind: out / f"{name}{suffix}"
        for kind, suffix in (
            ("profiles_zarr", "_profiles.zarr"),
            ("nmf_zarr", "_nmf.zarr"),
            ("converted", ".zarr"),
        )
    }
    for kind, path in stores.items():
        if kind != "converted" or convert:
            _store_free(path)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, list[str]] = {}

    def add(kind: str, paths) -> None:
        paths = [paths] if isinstance(paths, Path) else paths
        files.setdefault(kind, []).extend(str(p) for p in paths)

    if convert:
        from beamcat.catalog.convert import convert as to_zarr
        from beamcat.catalog.formats import open_dataset

        _report.say(progress, f"converting {stem} to {stores['converted']} ...")
        add("converted", to_zarr(ds, stores["converted"], progress=progress))
        ds = open_dataset(stores["converted"], format="zarr")
    ds = ds.assign_attrs(calibration=cal.to_attrs())

    _report.say(progress, "mean pattern ...")
    with _report.progress(progress):
        pattern = mean_pattern(ds).values
    _report.say(progress, "radial mean and variance of every pattern ...")
    profiles = radial_profiles(ds, cal, n_bins=n_bins)
    with _report.progress(progress):
        add("profiles_zarr", save_profiles(profiles, stores["profiles_zarr"], name=name))
    saved = xr.open_zarr(stores["profiles_zarr"], consolidated=False)
    saved = saved.rename({f"{name}_azimuthal_{k}": v for k, v in EPSIC_NAMES.items()})
    add(
        "profiles_hdf5", save_profiles(saved, out / f"{name}_profiles.h5", format="hdf5", name=name)
    )
    profiles = saved[["mean", "variance"]].load()  # (scan_y, scan_x, q): small

    start = nmf_start(profiles) if q_from is None else float(q_from)
    q_range = (start, float(profiles["q"].max())) if start > 0 else None
    _report.say(progress, f"NMF, {n_components} components of the radial {profile} ...")
    result = nmf(profiles, n_components, profile=profile, q_range=q_range)
    add("nmf_zarr", _write_nmf(result, stores["nmf_zarr"]))
    ratio = scree(profiles, profile=profile, q_range=q_range, max_components=10)

    _report.say(progress, "figures ...")
    for kind, figure in (
        ("calibration_profile", calibration_profile_figure(pattern, cal)),
        ("calibration_pattern", calibration_pattern_figure(pattern, cal)),
        ("scree", scree_figure(ratio, chosen=n_components)),
        ("nmf", nmf_figure(result)),
    ):
        add(f"{kind}_figure", save_figure(figure, out / f"{name}_{kind}", formats=formats, dpi=dpi))

    path = out / SUMMARY_NAME
    add("summary", path)
    summary = {
        "beamcat_version": __version__,
        "written": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "entry": stem,
        "source": str(ds.attrs.get("derived_from", ds.attrs.get("source", ""))),
        "scan_shape": [int(n) for n in frames.shape[:2]],
        "pattern_shape": [int(n) for n in frames.shape[2:]],
        "calibration": cal.to_attrs(),
        "q_bins": int(profiles.sizes["q"]),
        "q_step": float(saved.attrs["q_step"]),
        "q_unit": saved.attrs["q_unit"],
        "nmf": {
            "n_components": n_components,
            "profile": profile,
            "q_range": list(q_range) if q_range else None,
            "n_iter": int(result.attrs["n_iter"]),
            "reconstruction_err": result.attrs.get("reconstruction_err"),
            "explained_variance_ratio": [float(v) for v in ratio.values],
        },
        "files": files,
    }
    with atomic_open(path, "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2)
    return summary
