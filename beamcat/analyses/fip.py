"""FIP bias maps by the linear combination ratio (LCR) method, after ``fiplcr``.

A line's radiance is ``R_i = A_i * integral C_i(T, n) DEM(T) dT``, with ``C_i``
its contribution function without the abundance and ``A_i`` the element's
coronal abundance. The LCR method (Zambrana Prado & Buchlin 2019; PyPI
``fiplcr``, used by SAFFRON's post-processing at log n = 8.3 with sulphur
counted as low-FIP) finds coefficients ``x_i`` so that the combination of the
low-FIP lines' ``C_i`` and that of the high-FIP lines' match, for the emission
measures of several reference regions (quiet Sun, active region, coronal hole),
whatever the DEM then. The FIP bias of a pixel is the ratio of the two
combinations of its radiances over photospheric abundances::

    FIP = sum_LF(x_i R_i / Aph_i) / sum_HF(x_i R_i / Aph_i)

Contribution functions come from CHIANTI, which cannot be computed here: they
are an input (`load_contribution_functions`: beamcat's JSON layout, or the
``.npz`` files ``fiplcr``'s ``SpecLine.save`` writes, which ChiantiPy users
already have), as an `xarray.Dataset` over ``(line, log_density,
log_temperature)``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import scipy.optimize as op
import xarray as xr

from beamcat._util import atomic_open
from beamcat.analyses._history import carried, history
from beamcat.errors import FormatError, OptionError

#: fiplcr's FIP thresholds (eV): S (10.36 eV) is low-FIP with ``using_s_as_low_fip``
FIP_THRESHOLD_WITH_S = 10.5
FIP_THRESHOLD = 10.0
#: SAFFRON's density for the coefficients (log10 cm^-3)
LOG_DENSITY = 8.3
#: lines of a fit result are matched to contribution functions by wavelength within this (A)
MATCH_ANGSTROM = 0.1
_LINE_KEYS = ("wavelength", "fip", "photospheric_abundance", "cofnt")


def contribution_functions(
    log_temperature: Sequence[float],
    log_density: Sequence[float],
    lines: Mapping[str, Mapping],
    emission_measure: Mapping[str, Sequence[float]],
) -> xr.Dataset:
    """Contribution functions and reference emission measures as one Dataset.

    Parameters
    ----------
    log_temperature : sequence of float
        log10 T (K), the grid of `cofnt` and `emission_measure`, ``(n_T,)``.
    log_density : sequence of float
        log10 n (cm^-3), ``(n_n,)``.
    lines : mapping
        Line name -> ``{"wavelength": A, "fip": eV, "photospheric_abundance":
        relative to H, "cofnt": (n_n, n_T) erg cm3 s-1 sr-1, "ion": optional}``.
    emission_measure : mapping
        Region name -> EM per temperature bin ``(n_T,)`` (cm^-5): the DEMs the
        coefficients are optimised on (fiplcr: CHIANTI's quiet Sun, active
        region and coronal hole).

    Returns
    -------
    xarray.Dataset
        ``cofnt (line, log_density, log_temperature)``, ``emission_measure
        (region, log_temperature)``; coords ``wavelength``, ``fip``,
        ``photospheric_abundance``, ``ion`` over ``line``.

    Raises
    ------
    OptionError
        A line lacks a key or its ``cofnt`` has the wrong shape; no region.
    """
    logt = np.asarray(log_temperature, float)
    logn = np.atleast_1d(np.asarray(log_density, float))
    shape = (len(logn), len(logt))
    names = list(lines)
    for name in names:
        missing = [k for k in _LINE_KEYS if k not in lines[name]]
        if missing:
            raise OptionError(f"contribution function of line {name!r}: missing {missing}")
        got = np.shape(lines[name]["cofnt"])
        if got not in (shape, shape[1:]):
            raise OptionError(
                f"contribution function of line {name!r}: shape {got}; expected {shape} "
                "(log_density, log_temperature)"
            )
    if not emission_measure:
        raise OptionError("contribution functions: no reference emission measure (region)")
    for region, em in emission_measure.items():
        if np.shape(em) != (len(logt),):
            raise OptionError(
                f"emission measure {region!r}: shape {np.shape(em)}; expected ({len(logt)},)"
            )

    def per_line(key):
        return ("line", [lines[n][key] for n in names])

    return xr.Dataset(
        {
            "cofnt": (
                ("line", "log_density", "log_temperature"),
                np.array([np.broadcast_to(lines[n]["cofnt"], shape) for n in names], float),
                {"units": "erg cm3 / (s sr)", "long_name": "contribution function"},
            ),
            "emission_measure": (
                ("region", "log_temperature"),
                np.array([emission_measure[r] for r in emission_measure], float),
                {"units": "cm-5", "long_name": "emission measure per temperature bin"},
            ),
        },
        coords={
            "line": names,
            "region": list(emission_measure),
            "log_temperature": logt,
            "log_density": logn,
            "wavelength": (*per_line("wavelength"), {"units": "Angstrom"}),
            "fip": (*per_line("fip"), {"units": "eV"}),
            "photospheric_abundance": per_line("photospheric_abundance"),
            "ion": ("line", [str(lines[n].get("ion", n)) for n in names]),
        },
    )


def load_contribution_functions(
    source: str | os.PathLike | Iterable[str | os.PathLike],
    *,
    emission_measure: Mapping[str, Sequence[float]] | None = None,
) -> xr.Dataset:
    """Read contribution functions: beamcat's JSON, or fiplcr's per-line ``.npz`` files.

    Parameters
    ----------
    source : path or list of paths
        A JSON file as `save_contribution_functions` writes it (keys
        ``log_temperature``, ``log_density``, ``emission_measure`` {region:
        EM}, ``lines`` {name: {wavelength, fip, photospheric_abundance,
        cofnt, ion}}), or ``.npz`` files of fiplcr's ``SpecLine.save`` (keys
        ``temperature`` K, ``density`` cm^-3, ``cofnt``, ``wvl``, ``FIP``,
        ``ph_abund``, ``element``, ``iondeg``), one per line.
    emission_measure : mapping, optional
        Region -> EM on the files' temperature grid; required with ``.npz``
        files (fiplcr reads them from the CHIANTI database, not from its files).

    Raises
    ------
    FormatError
        A file lacks a key or is not JSON/NPZ.
    OptionError
        ``.npz`` files without `emission_measure`, or on different grids.
    """
    paths = [Path(source)] if isinstance(source, str | os.PathLike) else [Path(p) for p in source]
    if len(paths) == 1 and paths[0].suffix.lower() == ".json":
        try:
            doc = json.loads(paths[0].read_text())
            lines = {
                name: {**line, "cofnt": np.asarray(line["cofnt"], float)}
                for name, line in doc["lines"].items()
            }
            return contribution_functions(
                doc["log_temperature"], doc["log_density"], lines, doc["emission_measure"]
            )
        except (KeyError, TypeError, json.JSONDecodeError) as err:
            raise FormatError(
                f"{paths[0]}: not a contribution-function JSON ({err!r}); expected keys "
                "log_temperature, log_density, emission_measure, lines"
            ) from None
    if emission_measure is None:
        raise OptionError(
            f"{paths[0]}: fiplcr's .npz files hold no emission measures: pass "
            "emission_measure={region: EM per temperature bin}"
        )
    lines, grids = {}, set()
    for path in paths:
        try:
            with np.load(path, allow_pickle=False) as f:
                ion = f"{str(f['element']).lower()}_{int(f['iondeg'])}"
                wavelength = float(f["wvl"])
                lines[f"{ion}_{wavelength:.2f}"] = {
                    "wavelength": wavelength,
                    "fip": float(f["FIP"]),
                    "photospheric_abundance": float(f["ph_abund"]),
                    "cofnt": np.asarray(f["cofnt"], float),
                    "ion": ion,
                }
                grids.add((tuple(np.log10(f["temperature"])), tuple(np.log10(f["density"]))))
        except (KeyError, ValueError, OSError) as err:
            raise FormatError(f"{path}: not a fiplcr contribution-function file ({err})") from None
    if len(grids) != 1:
        raise OptionError(f"{paths[0]}...: the .npz files use different T or n grids")
    logt, logn = grids.pop()
    return contribution_functions(logt, logn, lines, emission_measure)


def save_contribution_functions(contribution: xr.Dataset, path: str | os.PathLike) -> Path:
    """Write contribution functions as JSON (atomically), as `load_contribution_functions` reads."""
    lines = {
        str(name): {
            "wavelength": float(one.wavelength),
            "fip": float(one.fip),
            "photospheric_abundance": float(one.photospheric_abundance),
            "ion": str(one.ion.values),
            "cofnt": one.cofnt.values.tolist(),
        }
        for name, one in ((n, contribution.sel(line=n)) for n in contribution.line.values)
    }
    doc = {
        "log_temperature": contribution.log_temperature.values.tolist(),
        "log_density": contribution.log_density.values.tolist(),
        "emission_measure": {
            str(r): contribution.emission_measure.sel(region=r).values.tolist()
            for r in contribution.region.values
        },
        "lines": lines,
    }
    with atomic_open(path, "w") as f:
        json.dump(doc, f)
    return Path(path)


def lcr_coefficients(
    contribution: xr.Dataset,
    *,
    log_density: float = LOG_DENSITY,
    using_s_as_low_fip: bool = True,
) -> xr.Dataset:
    """Optimise the linear-combination coefficients at one density, as fiplcr does.

    The contribution functions at the grid density nearest `log_density` are
    divided by the median over lines of their maxima; starting from ``median /
    max_i``, Nelder-Mead (fiplcr's options) minimises the distance of the
    per-region ratios ``sum_LF x_i C_i.EM_r / sum_HF x_i C_i.EM_r`` to 1, the
    first high-FIP coefficient fixed at 1.

    Returns
    -------
    xarray.Dataset
        ``coefficient (line)`` (on the normalised C), ``low_fip (line)`` bool,
        ``ratio (region)`` the combinations' ratio reached per region (1 is
        perfect: a pixel's FIP bias is exact to within the spread of these
        for any DEM mixing the regions'); attrs ``log_density`` used,
        ``objective``, ``success``.

    Raises
    ------
    OptionError
        No low-FIP or no high-FIP line.

    Examples
    --------
    >>> import numpy as np
    >>> from beamcat.analyses.fip import contribution_functions, lcr_coefficients
    >>> logt = np.arange(5.0, 6.6, 0.05)
    >>> def c(peak):
    ...     return np.exp(-0.5 * ((logt - peak) / 0.1) ** 2)
    >>> lines = {"fe": {"wavelength": 1.0, "fip": 7.9, "photospheric_abundance": 3e-5,
    ...                 "cofnt": c(5.9)},
    ...          "ne": {"wavelength": 2.0, "fip": 21.6, "photospheric_abundance": 8e-5,
    ...                 "cofnt": c(5.9)}}
    >>> cf = contribution_functions(logt, [8.3], lines, {"qs": c(6.0)})
    >>> float(lcr_coefficients(cf).ratio[0]) == 1.0  # identical C(T): ratio 1 at once
    True
    """
    index = int(np.argmin(np.abs(contribution.log_density.values - log_density)))
    c = contribution.cofnt.values[:, index, :]
    em = contribution.emission_measure.values
    threshold = FIP_THRESHOLD_WITH_S if using_s_as_low_fip else FIP_THRESHOLD
    low = contribution.fip.values < threshold
    if low.all() or not low.any():
        kind = "high" if low.all() else "low"
        raise OptionError(
            f"FIP bias: no {kind}-FIP line among {list(contribution.line.values)} "
            f"(threshold {threshold} eV); the LCR method needs both"
        )
    maxima = c.max(axis=1)
    normed = c / np.median(maxima)
    projected = normed @ em.T  # (line, region): C_i . EM_r
    high_idx, low_idx = np.flatnonzero(~low), np.flatnonzero(low)
    order = np.concatenate([high_idx, low_idx])  # fiplcr: HF first, its first coefficient 1
    start = (np.median(maxima) / maxima)[order]

    def ratios(free: np.ndarray) -> np.ndarray:
        x = np.concatenate([[1.0], free])
        high = x[: len(high_idx)] @ projected[high_idx]
        return (x[len(high_idx) :] @ projected[low_idx]) / high

    def objective(free: np.ndarray) -> float:
        return float(np.sqrt(np.sum((ratios(free) - 1.0) ** 2)))

    found = op.minimize(
        objective,
        start[1:] / start[0],
        tol=1e-3,
        method="Nelder-Mead",
        options={"maxiter": 10000, "maxfev": 10000, "fatol": 0.001},
    )
    coefficient = np.empty(len(order))
    coefficient[order] = np.concatenate([[1.0], found.x])
    return xr.Dataset(
        {
            "coefficient": ("line", coefficient),
            "low_fip": ("line", low),
            "ratio": ("region", ratios(found.x)),
        },
        coords={"line": contribution.line.values, "region": contribution.region.values},
        attrs={
            "log_density": float(contribution.log_density.values[index]),
            "objective": objective(found.x),
            "success": bool(found.success),
        },
    )


def fip_bias(
    radiance: xr.DataArray | xr.Dataset,
    contribution: xr.Dataset | str | os.PathLike,
    *,
    error: xr.DataArray | None = None,
    log_density: float = LOG_DENSITY,
    using_s_as_low_fip: bool = True,
) -> xr.Dataset:
    """FIP bias and its 1-sigma error, per pixel, from line radiances (lazy).

    Parameters
    ----------
    radiance : DataArray or Dataset
        Line radiances (integrated over the line) with a ``line`` dim, or a
        `fit_lines` result (its ``radiance`` and ``radiance_error`` are used).
        Lines are matched to the contribution functions by name, else by
        ``rest_wavelength`` within 0.1 A (SAFFRON's match); lines without a
        contribution function are left out, so are contribution functions of
        lines not observed.
    contribution : Dataset or path
        `contribution_functions` / `load_contribution_functions` output, or a
        path for the latter.
    error : DataArray, optional
        1-sigma radiance errors like `radiance` (default the result's
        ``radiance_error``; without one, no ``fip_error``).
    log_density : float
        log10 n (cm^-3) of the coefficients (SAFFRON's 8.3).
    using_s_as_low_fip : bool
        Count sulphur (10.36 eV) as low-FIP (fiplcr's threshold 10.5 eV instead
        of 10 eV), as SAFFRON does.

    Returns
    -------
    xarray.Dataset
        ``fip`` and ``fip_error`` over the radiance's dims without ``line``,
        lazy when the radiance is; ``lc_low``, ``lc_high`` (the two
        combinations of radiance / photospheric abundance); the coefficients
        (`lcr_coefficients`) as ``coefficient (fip_line)``, ``low_fip
        (fip_line)``, ``ratio (region)``. The error propagates independent
        radiance errors in quadrature: ``fip * sqrt((s_low/lc_low)^2 +
        (s_high/lc_high)^2)`` (SAFFRON adds the two relative errors linearly
        and divides by the FIP bias, a slip).

    Raises
    ------
    OptionError
        No ``line`` dim, or fewer than one low- and one high-FIP line matched.
    """
    if isinstance(radiance, xr.Dataset):
        error = radiance.get("radiance_error") if error is None else error
        radiance = radiance["radiance"]
    if "line" not in radiance.dims:
        raise OptionError(f"fip_bias: radiance dims {radiance.dims}: expected a 'line' dim")
    if not isinstance(contribution, xr.Dataset):
        contribution = load_contribution_functions(contribution)
    observed, known = _match_lines(radiance, contribution)
    coefficients = lcr_coefficients(
        contribution.sel(line=known), log_density=log_density, using_s_as_low_fip=using_s_as_low_fip
    )
    weights = coefficients.coefficient / contribution.photospheric_abundance.sel(line=known)
    low = coefficients.low_fip.values
    fields = {}
    for name, mask in (("lc_low", low), ("lc_high", ~low)):
        w = xr.DataArray(weights.values[mask], dims="line")
        r = radiance.sel(line=[observed[i] for i in np.flatnonzero(mask)])
        fields[name] = r.drop_vars(list(r.coords), errors="ignore").dot(w, dim="line")
        if error is not None:
            e = error.sel(line=r.line.values).drop_vars(list(r.coords), errors="ignore")
            fields[f"{name}_var"] = (e**2).dot(w**2, dim="line")
    fip = fields["lc_low"] / fields["lc_high"]
    variables = {
        "fip": fip.assign_attrs(long_name="FIP bias (LCR)", units=""),
        "lc_low": fields["lc_low"].assign_attrs(long_name="low-FIP combination"),
        "lc_high": fields["lc_high"].assign_attrs(long_name="high-FIP combination"),
    }
    if error is not None:
        relative = fields["lc_low_var"] / fields["lc_low"] ** 2
        relative = relative + fields["lc_high_var"] / fields["lc_high"] ** 2
        variables["fip_error"] = (abs(fip) * np.sqrt(relative)).assign_attrs(
            long_name="FIP bias 1-sigma error", units=""
        )
    out = xr.Dataset(variables)
    out = out.assign_coords({k: c for k, c in radiance.coords.items() if "line" not in c.dims})
    table = coefficients.rename(line="fip_line").assign_coords(fip_line=observed)
    out = out.assign(coefficient=table.coefficient, low_fip=table.low_fip, ratio=table.ratio)
    line = (
        f"fip_bias(lines={[str(n) for n in observed]}, log_density="
        f"{coefficients.attrs['log_density']:.2f}, using_s_as_low_fip={using_s_as_low_fip})"
    )
    out.attrs.update(carried(radiance.attrs), **coefficients.attrs)
    out.attrs["history"] = history(radiance.attrs, line)
    return out


def _match_lines(radiance: xr.DataArray, contribution: xr.Dataset) -> tuple[list, list]:
    """Pairs (observed line, contribution line): by name, else by rest wavelength."""
    names = [str(n) for n in contribution.line.values]
    waves = contribution.wavelength.values
    rest = radiance["rest_wavelength"].values if "rest_wavelength" in radiance.coords else None
    observed, known = [], []
    for i, line in enumerate(radiance.line.values):
        if str(line) in names:
            match = str(line)
        elif rest is not None and np.min(np.abs(waves - rest[i])) <= MATCH_ANGSTROM:
            match = names[int(np.argmin(np.abs(waves - rest[i])))]
        else:
            continue
        if match not in known:
            observed.append(line)
            known.append(match)
    if len(known) < 2:
        raise OptionError(
            f"fip_bias: lines {list(radiance.line.values)} match {known} of the contribution "
            f"functions' {names} (by name or within {MATCH_ANGSTROM} A); need low- and high-FIP"
        )
    return observed, known
