"""``ds.diffraction`` / ``da.diffraction``: azimuthal integration, pixel maps, calibrant rings.

Each method picks the signal (``attrs["signal"]``, or `var`) and the geometry
(``geometry=``, by default the data's ``attrs["poni"]`` and
``attrs["poni_flip"]``, as catalog entries opened with ``poni=`` carry them) and
calls one function of `beamcat.analyses.azimuthal`, `beamcat.analyses.geometry`
or `beamcat.analyses.calibrant`. Nothing computes here: integrations stay lazy
on dask-backed frames, maps and rings need only the image shape. `calibrate`
is a fit: it reads the image (the analysis computes it).
"""

from __future__ import annotations

import xarray as xr

from beamcat.accessors._signal import pick
from beamcat.analyses._frames import PIXEL_DIMS, check_pixel_dims
from beamcat.analyses.azimuthal import integrate1d, integrate2d, median1d, sigma_clip1d
from beamcat.analyses.calibrant import Calibration, calibrate, rings
from beamcat.analyses.geometry import as_geometry, pixel_maps


class DiffractionAccessor:
    """Powder diffraction on the signal (``attrs["signal"]``) or on `var`, with the data's PONI.

    Examples
    --------
    On the demo catalog's CeO2 calibrant image (its entry carries ``poni=``):

    >>> import beamcat
    >>> ceo2 = beamcat.open_catalog()["diffraction_ceo2"].read()
    >>> gap = ceo2.counts.values[0] < 0  # the Pilatus module gap reads -2
    >>> pattern = ceo2.diffraction.integrate1d(npt=1000, mask=gap)
    >>> pattern["intensity"].dims
    ('frame', 'tth')
    >>> ceo2.diffraction.rings("CeO2")["hkl"].values[:2].tolist()
    ['(1 1 1)', '(0 0 2)']
    """

    def __init__(self, obj: xr.Dataset | xr.DataArray):
        self._obj = obj

    def _data(self, var: str | None) -> xr.DataArray:
        data = pick(self._obj, var)
        check_pixel_dims(data)
        return data

    def geometry(self, *, var: str | None = None):
        """The data's geometry: `beamcat.analyses.geometry.as_geometry` of its ``attrs["poni"]``."""
        return as_geometry(self._data(var))

    def _geometry(self, geometry, var: str | None):
        return self.geometry(var=var) if geometry is None else as_geometry(geometry)

    def integrate1d(
        self, *, npt: int, geometry=None, var: str | None = None, **options
    ) -> xr.Dataset:
        """`beamcat.analyses.azimuthal.integrate1d`: Dataset (..., tth|q|r), lazy.

        `options` are its own (``unit``, ``radial_range``, ``mask``, ``method``,
        ``polarization_factor``, ``error_model`` ...).
        """
        return integrate1d(self._data(var), geometry, npt=npt, **options)

    def integrate2d(
        self, *, npt_rad: int, geometry=None, var: str | None = None, **options
    ) -> xr.Dataset:
        """`beamcat.analyses.azimuthal.integrate2d` (caking): Dataset (..., chi, tth|q|r), lazy."""
        return integrate2d(self._data(var), geometry, npt_rad=npt_rad, **options)

    def median1d(self, *, npt: int, geometry=None, var: str | None = None, **options) -> xr.Dataset:
        """`beamcat.analyses.azimuthal.median1d`: per-bin median (``percentile=``), lazy."""
        return median1d(self._data(var), geometry, npt=npt, **options)

    def sigma_clip1d(
        self, *, npt: int, geometry=None, var: str | None = None, **options
    ) -> xr.Dataset:
        """`beamcat.analyses.azimuthal.sigma_clip1d`: sigma-clipped mean per bin, lazy."""
        return sigma_clip1d(self._data(var), geometry, npt=npt, **options)

    def maps(
        self, *, geometry=None, polarization_factor: float = 0.99, var: str | None = None
    ) -> xr.Dataset:
        """`beamcat.analyses.geometry.pixel_maps` for the data's (y, x): 2θ, χ, q, r, Ω, P."""
        geo = self._geometry(geometry, var)
        shape = check_pixel_dims(self._data(var))
        return pixel_maps(geo, shape, polarization_factor=polarization_factor)

    def rings(
        self,
        calibrant,
        energy: float | None = None,
        *,
        geometry=None,
        var: str | None = None,
        **options,
    ) -> xr.Dataset:
        """`beamcat.analyses.calibrant.rings` on the data's detector: d, 2θ, q, hkl and contours.

        `energy` (eV) defaults to the geometry's wavelength; `options` are
        ``tth_max`` and ``n_rings``.
        """
        geo = self._geometry(geometry, var)
        shape = check_pixel_dims(self._data(var))
        return rings(calibrant, energy, geometry=geo, shape=shape, **options)

    def calibrate(
        self,
        calibrant,
        *,
        start=None,
        energy: float | None = None,
        var: str | None = None,
        **options,
    ) -> Calibration:
        """`beamcat.analyses.calibrant.calibrate` of the image (frames averaged): a fit, eager.

        `start` defaults to the data's own geometry (``attrs["poni"]``, its
        flip included); `options` are ``mask``, ``max_rings``, ``flip``, ``pixel_size``.
        """
        data = self._data(var)
        leading = [d for d in data.dims if d not in PIXEL_DIMS]
        image = data.mean(leading, keep_attrs=True) if leading else data
        start = self.geometry(var=var) if start is None else start
        return calibrate(image, calibrant, energy=energy, start=start, **options)


xr.register_dataset_accessor("diffraction")(DiffractionAccessor)
xr.register_dataarray_accessor("diffraction")(DiffractionAccessor)
