"""The spectral line-fitting job: SPICE L2 / EIS windows in; line maps, L3 files, figures out.

`run_spice` (``beamcat spice``) does for every window of every source what
SAFFRON's ``RasterFit`` does, in one lazy pass per window:

1. the windows: all of a file's (SPICE L2: its spectral windows; EIS: its
   line windows), or those `windows` selects; a catalog entry is one window;
2. preparation in SAFFRON's order (`beamcat.analyses.spectral_prep.prepare`,
   through ``ds.spice.fit``) and the fit of the catalog lines in the window
   (EIS: the window's own line), windows named together in `fuse` fitted as one
   spectrum, `locks` fixing centre offsets between lines;
3. per window (or fused group): the result as a Zarr v3 store, SPICE L3 FITS
   files (one per line, SAFFRON's layout), a figure of the maps, and a line of
   the JSON summary (status counts, median reduced χ²).

Every file is written atomically; a store already in the output folder is
refused before any work.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from beamcat._util import __version__, atomic_open
from beamcat.analyses.linefit import FitStatus
from beamcat.analyses.lines import LineCatalog
from beamcat.catalog._windows import match_window
from beamcat.catalog.zarr_store import to_zarr
from beamcat.errors import OptionError, SourceNotFoundError
from beamcat.figures import save_figure
from beamcat.figures.spice import line_maps_figure
from beamcat.workflows import _report

__all__ = ["SUMMARY_NAME", "parse_lock", "run_spice"]

#: the JSON summary in the output folder
SUMMARY_NAME = "spice_summary.json"


def parse_lock(text: str) -> tuple[str, str, float | None]:
    """``"B:A[:OFFSET]"`` -> ``(B, A, offset)``: centre of B = centre of A + offset (Angstrom).

    Without an offset, the difference of the rest wavelengths.

    Examples
    --------
    >>> parse_lock("o_iii_2:o_iii_1"), parse_lock("mg_ix_1:o_iii_1:3.32")
    (('o_iii_2', 'o_iii_1', None), ('mg_ix_1', 'o_iii_1', 3.32))
    """
    parts = text.split(":")
    try:
        if len(parts) in (2, 3) and all(parts[:2]):
            return parts[0], parts[1], float(parts[2]) if len(parts) == 3 else None
    except ValueError:
        pass
    raise OptionError(f"lock {text!r}: expected LINE_B:LINE_A[:OFFSET_ANGSTROM]")


def _windows_of(source, catalog) -> tuple[str, list[tuple[str, xr.Dataset]]]:
    """A source's name and its windows ``(name, Dataset)``: a file's all, an entry's one."""
    text = os.fspath(source)
    path = Path(text).expanduser()
    if path.exists():
        from beamcat.catalog.formats import sniff_format

        fmt = sniff_format(path)
        if fmt == "spice":
            from beamcat.catalog.spice import open_spice_tree

            tree = open_spice_tree(path)
            names = tree.attrs["windows"]
            nodes = [tree[n.replace("/", "_")].to_dataset() for n in names]
            return path.stem, list(zip(names, nodes, strict=True))
        if fmt == "eis":
            from beamcat.catalog.eis import eis_windows, open_eis

            names = eis_windows(path)
            return path.name.split(".")[0], [(n, open_eis(path, window=n)) for n in names]
        raise OptionError(f"{path}: a {fmt} file; expected a SPICE L2 FITS or an EIS HDF5 file")
    from beamcat.catalog.catalogs import open_catalog

    given = catalog is not None and not isinstance(catalog, str | os.PathLike)
    cat = catalog if given else open_catalog(catalog)
    if text not in cat:
        raise SourceNotFoundError(
            f"{text!r}: no such file, nor an entry of the catalog; its entries are: "
            f"{', '.join(sorted(cat)) or 'none'}"
        )
    ds = cat[text].read()
    return text, [(str(ds.attrs.get("window", text)), ds)]


def _groups(names: list[str], windows, fuse, where: str) -> list[list[int]]:
    """Window indices fitted together: each `fuse` group, then every other selected window."""
    chosen = (
        range(len(names))
        if windows is None
        else [match_window(_selector(w), names, where=where) for w in windows]
    )
    groups = [[match_window(_selector(w), names, where=where) for w in group] for group in fuse]
    fused = {i for group in groups for i in group}
    return groups + [[i] for i in dict.fromkeys(chosen) if i not in fused]


def _selector(window):
    text = str(window)
    return int(text) if text.lstrip("-").isdigit() else text


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "_", text).strip("_")


def _lines(window: xr.Dataset, catalog: LineCatalog) -> dict[str, float]:
    """The lines fitted in a window: the catalog's in its range, or an EIS window's own."""
    from beamcat.accessors.spice import eis_line

    wave = window["wavelength"].values
    found = dict(catalog.lines_in(float(wave.min()), float(wave.max())))
    if window.attrs.get("format") == "eis" and not found:
        return eis_line(window)
    return found


def _status_counts(status: xr.DataArray) -> dict[str, int]:
    values, counts = np.unique(np.asarray(status.values), return_counts=True)
    return {FitStatus(int(v)).name.lower(): int(n) for v, n in zip(values, counts, strict=True)}


def run_spice(
    sources: Sequence,
    *,
    out: str | os.PathLike,
    catalog=None,
    windows: Sequence | None = None,
    fuse: Sequence[Sequence] = (),
    locks: Sequence = (),
    lines: Mapping[str, float] | None = None,
    background: str = "constant",
    steps: Sequence[str] | None = None,
    l3: bool = True,
    formats: Sequence[str] = ("png",),
    dpi: float = 150,
    progress: bool = True,
) -> dict:
    """Prepare and fit every selected window of every source, writing maps, L3 files and figures.

    Parameters
    ----------
    sources : sequence of str or path
        SPICE L2 FITS files, EIS ``.data.h5``/``.head.h5`` files, or entries of
        `catalog` (each one window).
    out : path
        Output folder (created).
    catalog : path or intake Catalog, optional
        Where entry names are looked up (default: the demo catalog).
    windows : sequence of int or str, optional
        Windows to fit (index or name, as `open_spice`'s ``window=``); default all.
    fuse : sequence of sequences of int or str
        Groups of windows of one source fitted as one spectrum, each window with
        its own background (SAFFRON's ``fuse_windows``).
    locks : sequence of (line_b, line_a, offset) or "B:A[:OFFSET]" strings
        Centre of B = centre of A + offset (Angstrom; None: rest wavelengths).
        Each applies to the window or fused group holding both lines.
    lines : mapping name -> rest wavelength (Angstrom), optional
        Lines added to the bundled catalog for this job (lines it lacks, EIS
        lines other than a window's own); each window fits the lines in its range.
    background : {"constant", "linear"}
    steps : sequence of str, optional
        Preparation steps (default per instrument: ``ds.spice.default_steps()``).
    l3 : bool
        Write SAFFRON L3 FITS files for SPICE windows.
    formats, dpi
        Figure formats and resolution.
    progress : bool
        Progress bars and step lines on stderr.

    Returns
    -------
    dict
        The summary also written as `SUMMARY_NAME`: per fitted window (or fused
        group) its source, windows, lines, spatial shape, status counts, median
        reduced χ² of the converged fits; ``skipped``: windows with no catalog
        line (when `windows` is not given); ``files``: kind -> list of paths.

    Raises
    ------
    BeamcatError
        An unknown source or window, a bad lock, a lock whose lines are not in
        one fitted window, a store that exists, or the fitter's own.

    Examples
    --------
    >>> run_spice(["spice_window0"], out="spice_out", locks=["o_iii_2:o_iii_1"])  # doctest: +SKIP
    """
    locks = [parse_lock(lock) if isinstance(lock, str) else tuple(lock) for lock in locks]
    line_catalog = LineCatalog.default()
    for name, wavelength in (lines or {}).items():
        line_catalog.add_line(name, float(wavelength))
    out = Path(out)
    plans, skipped = [], []
    for source in sources:
        stem, found = _windows_of(source, catalog)
        names = [name for name, _ in found]
        for group in _groups(names, windows, fuse, where=str(source)):
            members = [found[i][1] for i in group]
            lines = {k: v for ds in members for k, v in _lines(ds, line_catalog).items()}
            if not lines and windows is None and len(group) == 1:  # nothing to fit: said, not fatal
                why = {"why": "no catalog line"}
                skipped.append({"source": stem, "window": names[group[0]], **why})
                continue
            label = "+".join(_slug(names[i]) for i in group)
            store = out / f"{stem}_{label}_fit.zarr"
            if store.exists():
                raise OptionError(f"{store}: already exists; remove it or choose another --out")
            chosen = [lock for lock in locks if lock[0] in lines and lock[1] in lines]
            plans.append((stem, [names[i] for i in group], members, lines, chosen, store, label))
    used = {lock for *_, chosen, _, _ in plans for lock in chosen}
    unused = [lock for lock in locks if lock not in used]
    if unused:
        raise OptionError(
            f"lock(s) {unused}: their two lines are not in one fitted window "
            "(fuse the windows holding them with --fuse)"
        )
    out.mkdir(parents=True, exist_ok=True)
    fits, files = [], {}

    def add(kind: str, paths) -> list[str]:
        paths = [str(p) for p in ([paths] if isinstance(paths, Path) else paths)]
        files.setdefault(kind, []).extend(paths)
        return paths

    for stem, names, members, lines, chosen, store, label in plans:
        _report.say(progress, f"{stem}: fitting {' + '.join(names)}: {', '.join(lines)} ...")
        first, rest = members[0], members[1:]
        options = {"locks": chosen or None, "background": background, "steps": steps}
        result = first.spice.fit(lines, fuse=rest, **options)
        with _report.progress(progress):
            result = result.compute()
        written = {"zarr": add("fit_zarr", to_zarr(result, store))}
        if l3 and first.attrs.get("format") == "spice":
            written["l3"] = add("l3_fits", first.spice.write_l3(result, out / "l3"))
        figure = line_maps_figure(result)
        maps = save_figure(figure, out / f"{stem}_{label}_maps", formats=formats, dpi=dpi)
        written["figure"] = add("maps_figure", maps)
        converged = result["reduced_chi2"].where(result["status"] == FitStatus.CONVERGED)
        median = float(converged.median()) if bool(converged.notnull().any()) else None
        fits.append(
            {
                "source": stem,
                "windows": names,
                "lines": [str(v) for v in result["line"].values],
                "locks": [list(lock) for lock in chosen],
                "shape": {d: int(n) for d, n in result["status"].sizes.items()},
                "status": _status_counts(result["status"]),
                "median_reduced_chi2": median,
                "files": written,
            }
        )
    path = out / SUMMARY_NAME
    add("summary", path)
    summary = {
        "beamcat_version": __version__,
        "written": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "background": background,
        "fits": fits,
        "skipped": skipped,
        "files": files,
    }
    with atomic_open(path, "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2)
    return summary
