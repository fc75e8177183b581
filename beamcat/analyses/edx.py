"""EDX element maps from energy windows of named X-ray lines; their correlation with NMF loadings.

`element_maps` sums each position's spectrum over a window around each line,
minus the background estimated from two windows of the same width on either
side (one lazy pass over the spectrum image for all lines: a dot product with
a window-weights matrix). `correlate` gives Pearson's r between every
NMF loading map (`beamcat.analyses.decomposition.nmf`) and every element map,
position by position, after checking that both come from the same scan.

Line energies (keV, `LINES`) are the X-ray Data Booklet's (A. C. Thompson et
al., LBNL, 3rd ed. 2009, Table 1-2: Ka1, La1, Lb1, Ma1 emission energies).
The default window is twice the detector FWHM at the line, HyperSpy's rule
(``get_lines_intensity(integration_windows=2)``), with the FWHM scaled from
its value at Mn Ka as HyperSpy's ``get_FWHM_at_Energy`` does:
``FWHM(E)^2 = FWHM(Mn Ka)^2 + 2.5 (E - E(Mn Ka))`` (eV).

Examples
--------
>>> energy = np.arange(0.0, 12.0, 0.01)
>>> peak = np.exp(-0.5 * ((energy - LINES["Au_La"]) / 0.07) ** 2)
>>> counts = np.multiply.outer(np.array([[0.0, 1.0], [2.0, 3.0]]), 100 * peak)
>>> dims = ("scan_y", "scan_x", "energy")
>>> edx = xr.Dataset({"counts": (dims, counts)}, coords={"energy": energy})
>>> maps = element_maps(edx, ["Au_La", "Cu_Ka"])
>>> (maps / maps[0, 0, 1]).values.round(3).tolist()[0]  # Au La follows the weights
[[0.0, 1.0], [2.0, 3.0]]
>>> float(abs(maps.sel(element="Cu_Ka")).max()) < 1e-9  # and no Cu
True
>>> float(correlate(maps.sel(element=["Au_La"]).rename(element="component"), maps)[0, 0])
1.0
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import xarray as xr

from beamcat.analyses._frames import describe, pick
from beamcat.analyses._history import carried, history
from beamcat.errors import OptionError

__all__ = ["LINES", "correlate", "element_maps", "fwhm_kev"]

#: X-ray emission energies (keV), X-ray Data Booklet (LBNL 2009) Table 1-2
LINES: dict[str, float] = {
    "C_Ka": 0.277,
    "N_Ka": 0.3924,
    "O_Ka": 0.5249,
    "Al_Ka": 1.4867,
    "Si_Ka": 1.7400,
    "Ti_Ka": 4.5108,
    "Cr_Ka": 5.4147,
    "Mn_Ka": 5.8988,
    "Fe_Ka": 6.4038,
    "Ni_Ka": 7.4782,
    "Cu_La": 0.9297,
    "Cu_Ka": 8.0478,
    "Ga_Ka": 9.2517,
    "Pd_La": 2.8386,
    "Ag_La": 2.9843,
    "Pt_Ma": 2.0505,
    "Pt_La": 9.4423,
    "Au_Ma": 2.1229,
    "Au_La": 9.7133,
    "Au_Lb": 11.4423,
}
#: detector FWHM at Mn Ka (eV) when the data do not say (``energy_resolution_mnka_ev``)
DEFAULT_RESOLUTION_EV = 130.0


def fwhm_kev(energy_kev: float, resolution_mnka_ev: float = DEFAULT_RESOLUTION_EV) -> float:
    """Detector FWHM (keV) at `energy_kev`, scaled from its FWHM at Mn Ka (HyperSpy's rule).

    Examples
    --------
    >>> round(fwhm_kev(LINES["Mn_Ka"]), 3), round(fwhm_kev(LINES["Au_La"]), 3)
    (0.13, 0.163)
    """
    squared = resolution_mnka_ev**2 + 2.5 * (energy_kev - LINES["Mn_Ka"]) * 1e3
    return float(np.sqrt(max(squared, 1.0))) * 1e-3


def _line_energies(lines, name: str) -> dict[str, float]:
    if isinstance(lines, str):
        lines = [lines]
    if isinstance(lines, Mapping):
        return {str(k): float(v) for k, v in lines.items()}
    unknown = [line for line in lines if line not in LINES]
    if unknown:
        raise OptionError(
            f"{name}: unknown X-ray lines {unknown}; expected names from {sorted(LINES)} "
            "or a {name: energy_keV} mapping"
        )
    return {line: LINES[line] for line in lines}


def _windows(energy: np.ndarray, centres, widths, background: bool, name: str) -> np.ndarray:
    """(energy, line) weights: 1 in each line's window, minus its share of the side windows."""
    weights = np.zeros((energy.size, len(centres)))
    for k, (line, e, w) in enumerate(zip(centres, centres.values(), widths, strict=True)):
        inside = np.abs(energy - e) <= w / 2
        if not inside.any():
            raise OptionError(
                f"{name}: no channel in the {line} window {e - w / 2:.3f}-{e + w / 2:.3f} keV; "
                f"the spectra cover {energy.min():.3f}-{energy.max():.3f} keV"
            )
        weights[inside, k] = 1.0
        if background:
            side = (np.abs(energy - e) > w / 2) & (np.abs(energy - e) <= 1.5 * w)
            if not side.any():
                raise OptionError(f"{name}: no channel beside the {line} window for background")
            weights[side, k] = -inside.sum() / side.sum()
    return weights


def element_maps(
    edx: xr.Dataset | xr.DataArray,
    lines: Sequence[str] | Mapping[str, float] = ("Au_La", "Cu_Ka", "C_Ka"),
    *,
    width_kev: float | None = None,
    background: bool = True,
    var: str | None = None,
) -> xr.DataArray:
    """Counts in an energy window around each X-ray line, per scan position (lazy).

    Parameters
    ----------
    edx : Dataset or DataArray (..., energy)
        A spectrum image (`beamcat.catalog.edx.open_edx`); ``energy`` in keV.
    lines : sequence of names from `LINES`, or {name: energy_keV}
    width_kev : float, optional
        Window width (keV); default twice the detector FWHM at each line
        (from ``attrs["energy_resolution_mnka_ev"]``, else 130 eV).
    background : bool
        Subtract the counts of two windows of the same width beside the line
        window, scaled to its number of channels (a linear background under
        the line: without it a heavy element's continuum shows in every map).
    var : str, optional
        The Dataset variable (default ``attrs["signal"]``).

    Returns
    -------
    DataArray (element, ...) of float64
        Dask backed when `edx` is; coordinates ``element`` (line names),
        ``line_energy`` and ``window_kev`` (keV).

    Raises
    ------
    OptionError
        No ``energy`` dim, unknown line names, a window with no channel.
    """
    counts = pick(edx, var, default="counts", what="EDX spectra")
    name = describe(counts, "EDX spectra")
    if "energy" not in counts.dims:
        raise OptionError(f"{name}: expected an 'energy' dim (keV), got {counts.dims}")
    centres = _line_energies(lines, name)
    resolution = float(counts.attrs.get("energy_resolution_mnka_ev", DEFAULT_RESOLUTION_EV))
    widths = [width_kev or 2 * fwhm_kev(e, resolution) for e in centres.values()]
    energy = np.asarray(counts["energy"].values, float)
    weights = xr.DataArray(
        _windows(energy, centres, widths, background, name),
        dims=("energy", "element"),
        coords={"element": list(centres)},
    )
    maps = xr.dot(counts.astype(np.float64), weights, dim="energy").transpose("element", ...)
    return maps.assign_coords(
        line_energy=("element", list(centres.values()), {"units": "keV"}),
        window_kev=("element", widths, {"units": "keV"}),
    ).assign_attrs(
        {
            **carried(counts.attrs),
            "long_name": "X-ray line counts" + (" above background" if background else ""),
            "units": "counts",
            "history": history(
                counts.attrs,
                f"element_maps(lines={list(centres)}, width_kev={width_kev}, "
                f"background={background})",
            ),
        }
    )


def correlate(loadings: xr.Dataset | xr.DataArray, maps: xr.DataArray) -> xr.DataArray:
    """Pearson's r between every loading map and every element map, position by position (computes).

    Parameters
    ----------
    loadings : DataArray (component, <scan dims>), or `nmf`'s Dataset
    maps : DataArray (element, <scan dims>)
        `element_maps` output for the same scan.

    Returns
    -------
    DataArray (component, element)
        r over the positions where both maps are finite; attrs ``positions``.

    Raises
    ------
    OptionError
        Missing ``component``/``element`` dims, or scan dims that differ in
        names or sizes (an EDX map not matched to the 4D-STEM scan: see
        `beamcat.catalog.edx.match_scan`).
    """
    if isinstance(loadings, xr.Dataset):
        loadings = pick(loadings, "loadings")
    if "component" not in loadings.dims or "element" not in maps.dims:
        raise OptionError(
            f"correlate: expected loadings (component, ...) and maps (element, ...), "
            f"got {loadings.dims} and {maps.dims}"
        )
    scan_l = {d: loadings.sizes[d] for d in loadings.dims if d != "component"}
    scan_m = {d: maps.sizes[d] for d in maps.dims if d != "element"}
    if scan_l != scan_m:
        raise OptionError(
            f"{describe(maps, 'element maps')}: scan {scan_m} does not match the loadings' "
            f"{scan_l} ({describe(loadings, 'loadings')}); expected the same scan dims and "
            "sizes: open the EDX map with scan_shape= the 4D-STEM scan (match_scan)"
        )
    scan = list(scan_l)
    a = np.asarray(loadings.transpose("component", *scan).values, float).reshape(
        loadings.sizes["component"], -1
    )
    b = np.asarray(maps.transpose("element", *scan).values, float).reshape(
        maps.sizes["element"], -1
    )
    r = np.full((a.shape[0], b.shape[0]), np.nan)
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            ok = np.isfinite(x) & np.isfinite(y)
            if ok.sum() > 1 and np.ptp(x[ok]) > 0 and np.ptp(y[ok]) > 0:
                r[i, j] = np.corrcoef(x[ok], y[ok])[0, 1]
    return xr.DataArray(
        r,
        dims=("component", "element"),
        coords={"component": loadings["component"].values, "element": maps["element"].values},
        name="pearson_r",
        attrs={"long_name": "Pearson r", "units": "1", "positions": int(a.shape[1])},
    )
