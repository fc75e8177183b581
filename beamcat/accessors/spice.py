"""``ds.spice``: EUV line fitting of a spectral window (SPICE L2, Hinode EIS, any cube).

The accessor is named after the mission of the example (``ds.spice.fit()``) and
works on any Dataset whose signal has a ``wavelength`` dim in Angstrom. Each
method calls `beamcat.analyses.spectral_prep` (`prepare`) and
`beamcat.analyses.linefit` (`fit_lines`, `evaluate`); nothing computes here,
except `write_l3`, which writes.

EIS windows carry the per-pixel wavelength correction ``wave_corr (y, x)``
(slit tilt and orbital drift; eispac's corrected wavelength is ``wavelength -
wave_corr``): the fit runs on the window's wavelength table and the fitted
centres (and velocities) are corrected after it, which is the same fit since a
shifted Gaussian is a Gaussian.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import xarray as xr

from beamcat.accessors._signal import pick
from beamcat.analyses import linefit, spectral_prep
from beamcat.catalog import spice_l3
from beamcat.errors import OptionError

#: preparation when ``fit(prepare=True)``: SAFFRON's order for SPICE (its preclean limits
#: are in SPICE's W/m2/sr/nm); other instruments (EIS: its own sigma) skip the preclean
STEPS = {"spice": ("preclean", "sigma", "despike")}
OTHER_STEPS = ("sigma", "despike")
#: EIS lines are narrow (instrumental σ ~0.03 Angstrom): SPICE's default width bounds
#: (0.28-0.8 Angstrom) would pin every fit at its lower bound
EIS_BOUNDS = {"width": (0.01, 0.2)}


@xr.register_dataset_accessor("spice")
class SpiceAccessor:
    """Line fitting of one spectral window (or several fused ones).

    Examples
    --------
    >>> import beamcat
    >>> window = beamcat.open_catalog()["spice_window1"].read()  # Ne VIII 770
    >>> maps = window.spice.fit()  # the catalog lines in the window; lazy
    >>> maps["velocity"].dims
    ('line', 'time', 'y', 'x')
    """

    def __init__(self, obj: xr.Dataset):
        self._obj = obj

    def default_steps(self) -> tuple[str, ...]:
        """The preparation `fit` runs by default for this window's instrument."""
        return STEPS.get(self._obj.attrs.get("format"), OTHER_STEPS)

    def prepare(self, steps: Sequence[str] | None = None, **options) -> xr.Dataset:
        """`beamcat.analyses.spectral_prep.prepare` (default steps: `default_steps`), lazy."""
        steps = self.default_steps() if steps is None else tuple(steps)
        return spectral_prep.prepare(self._obj, steps, **options)

    # one step each (`spectral_prep.prepare_step`): they chain, sigma and spikes carried along

    def preclean(self, **options) -> xr.Dataset:
        """SAFFRON's preclean (`spectral_prep.preclean`: `high`, `low`), lazy."""
        return spectral_prep.prepare_step(self._obj, "preclean", **options)

    def noise(self, **options) -> xr.Dataset:
        """Adds ``sigma``: the window's own, else sospice's (`spectral_prep.spice_sigma`)."""
        return spectral_prep.prepare_step(self._obj, "sigma", **options)

    def despike(self, **options) -> xr.Dataset:
        """SAFFRON's despike (`clip`, `size`, `iterations`), the spikes flagged in ``spikes``."""
        return spectral_prep.prepare_step(self._obj, "despike", **options)

    def convolve(self, box, **options) -> xr.Dataset:
        """Box mean over (y, x) with the error of the mean (`spectral_prep.convolve`)."""
        return spectral_prep.prepare_step(self._obj, "convolve", box=box, **options)

    def bin(self, factors, **options) -> xr.Dataset:
        """Pixels binned over (y, x), sigma in quadrature (`spectral_prep.bin_pixels`)."""
        return spectral_prep.prepare_step(self._obj, "bin", factors=factors, **options)

    def denoise(self, **options) -> xr.Dataset:
        """Wavelet denoising with watroo (`spectral_prep.denoise`; ``beamcat[spice]``)."""
        return spectral_prep.prepare_step(self._obj, "denoise", **options)

    def fit(
        self,
        lines: Mapping[str, float] | Sequence[str] | None = None,
        *,
        background: str = "constant",
        wavelength_range=None,
        locks=None,
        tied_widths=None,
        ratios=None,
        bounds: Mapping | None = None,
        model: linefit.LineModel | None = None,
        fuse: Sequence[xr.Dataset] = (),
        prepare: bool = True,
        steps: Sequence[str] | None = None,
        radiance_convention: str = "gaussian",
        max_iterations: int = linefit.MAX_ITERATIONS,
        var: str | None = None,
        **prepare_options,
    ) -> xr.Dataset:
        """Prepare, then fit Gaussian lines to every spectrum: line maps, lazy.

        Parameters
        ----------
        lines, background, locks, tied_widths, ratios, bounds, model, wavelength_range
            As `beamcat.analyses.linefit.fit_lines` (None `lines`: the bundled
            catalog's lines inside the window).
        fuse : sequence of Dataset
            Other windows of the same raster fitted with this one as one
            spectrum (each with its own background): locks may then join lines
            of different windows (SAFFRON's ``fuse_windows``).
        prepare : bool
            Run `prepare` first (default steps per instrument, `default_steps`;
            or `steps` and `prepare_options`) and fit with its ``sigma``; False
            fits the signal as it is, with the Dataset's ``sigma`` if it has one.
        radiance_convention, max_iterations
            As `fit_lines`.
        var : str, optional
            The spectral variable (default the signal).

        Returns
        -------
        Dataset
            `fit_lines`' maps over ``(line, <spatial dims>)`` with the
            preparation's steps in ``history``; EIS centres and velocities
            corrected by ``wave_corr``.

        Raises
        ------
        OptionError
            The signal has no ``wavelength`` dim, or `fit_lines`' own.
        """
        windows = [self._obj, *fuse]
        if self._obj.attrs.get("format") == "eis" and model is None:
            lines = eis_line(self._obj) if lines is None else lines
            bounds = EIS_BOUNDS if bounds is None else bounds
        radiance, sigma = [], []
        for window in windows:
            values, noise = _fit_inputs(window, prepare, steps, var, prepare_options)
            radiance.append(values)
            sigma.append(noise)
        if any(s is None for s in sigma):
            sigma = None
        options = {"background": background, "locks": locks, "tied_widths": tied_widths}
        options.update(ratios=ratios, bounds=bounds, wavelength_range=wavelength_range)
        options.update(radiance_convention=radiance_convention, max_iterations=max_iterations)
        one = len(windows) == 1
        result = linefit.fit_lines(
            radiance[0] if one else radiance,
            (sigma[0] if one else sigma) if sigma is not None else None,
            model,
            lines=lines,
            **options,
        )
        if "wave_corr" in self._obj.coords and one:
            result = _corrected(result, self._obj["wave_corr"])
        return result

    def model(self, result: xr.Dataset, *, var: str | None = None) -> xr.Dataset:
        """The fitted spectra of `result` on this window's wavelengths, lazy.

        Returns
        -------
        Dataset
            ``model (..., wavelength)`` the total, ``components (..., component,
            wavelength)`` each line's Gaussian then the background, and
            ``residual`` (the signal minus the model), over the result's
            spatial dims.
        """
        values = pick(self._obj, var)
        if "wavelength" not in values.dims:
            raise OptionError(f"spice.model: {values.name!r} has no 'wavelength' dim")
        window = str(self._obj.attrs.get("window", 0))
        names = [str(w) for w in result["window"].values]  # an index coordinate: no compute
        segment = names.index(window) if window in names else 0
        # `parameters` stay in the fit's frame, the window's own wavelength table
        wavelength = values["wavelength"]
        total, components = linefit.evaluate(
            _result_model(result),
            result["parameters"],
            wavelength,
            segment=np.full(wavelength.size, segment),
        )
        out = xr.Dataset({"model": total, "components": components})
        out["residual"] = values - total
        return out.assign_attrs(result.attrs)

    def write_l3(self, result: xr.Dataset, folder) -> list:
        """`beamcat.catalog.spice_l3.write_l3` with this window's header (WCS, DATE-OBS ...)."""
        return spice_l3.write_l3(result, folder, source_header=self._obj.attrs)


def eis_line(window: xr.Dataset) -> dict[str, float]:
    """An EIS window's own line, from its line ID: ``{"Fe XII 192.394": 192.394}``."""
    name = str(window.attrs.get("window", ""))
    try:
        return {name: float(name.split()[-1])}
    except (IndexError, ValueError):
        raise OptionError(
            f"{window.attrs.get('source', 'EIS window')}: window ID {name!r} names no line "
            "wavelength; pass lines={name: rest wavelength in Angstrom}"
        ) from None


def _fit_inputs(window: xr.Dataset, prepare: bool, steps, var, options):
    """The spectra and their sigma (or None) a window is fitted with."""
    name = var or window.attrs.get("signal")
    if prepare:
        steps = window.spice.default_steps() if steps is None else tuple(steps)
        prepared = spectral_prep.prepare(window, steps, variable=name, **options)
        values = prepared[prepared.attrs["signal"]]
        attrs = {**window.attrs, **values.attrs, "history": prepared.attrs.get("history", "")}
        return values.assign_attrs(attrs), prepared["sigma"]
    values = pick(window, var)
    values = values.assign_attrs({**window.attrs, **values.attrs})
    sigma = window["sigma"] if "sigma" in window.data_vars and values.name != "sigma" else None
    return values, sigma


def _corrected(result: xr.Dataset, wave_corr: xr.DataArray) -> xr.Dataset:
    """Centres in eispac's corrected wavelength (``wavelength - wave_corr``), velocities too."""
    center = result["center"] - wave_corr
    rest = result["rest_wavelength"]
    velocity = linefit.SPEED_OF_LIGHT * (center - rest) / rest
    return result.assign(
        center=center.assign_attrs(result["center"].attrs),
        velocity=velocity.assign_attrs(result["velocity"].attrs),
    ).assign_coords(wave_corr=wave_corr)


def _result_model(result: xr.Dataset) -> linefit.LineModel:
    """The model of a `fit_lines` result: enough to evaluate its parameters, not its constraints.

    It reads only coordinates (``line``, ``rest_wavelength``, ``line_window``), held in
    memory: nothing computes.
    """
    names, rest = result["line"].values.tolist(), result["rest_wavelength"].values.tolist()
    lines = dict(zip(names, rest, strict=True))
    segments = result.sizes.get("window", 1)
    owner = result.coords.get("line_window")
    line_segments = None if owner is None else dict(zip(lines, owner.values.tolist(), strict=True))
    background = "linear" if "slope" in result else "constant"
    return linefit.line_model(
        lines, background=background, segments=segments, line_segments=line_segments
    )
