"""``ds.stem4d`` / ``da.stem4d``: 4D-STEM overview, virtual images, centre of mass, radial profiles.

Each method picks the signal (``attrs["signal"]``, or `var`) and calls one
function of `beamcat.analyses.stem4d` (or `beamcat.analyses.stem4d_calibration`
for `calibrate_au`). Nothing computes here: the results stay lazy on
dask-backed frames; `calibrate_au` is a fit (it reads the mean pattern) and
`save_profiles` writes.
"""

from __future__ import annotations

import xarray as xr

from beamcat.accessors._signal import pick
from beamcat.analyses import stem4d
from beamcat.analyses._frames import check_pixel_dims
from beamcat.analyses.stem4d_calibration import AuCalibration, calibrate_au


class Stem4DAccessor:
    """4D-STEM analyses of frames ``(scan_y, scan_x, y, x)`` or ``(frame, y, x)``.

    Examples
    --------
    >>> import beamcat
    >>> scan = beamcat.open_catalog()["stem4d_scan"].read()  # carries its calibration
    >>> bf = scan.stem4d.disc_mask((64.3, 63.1), 6)
    >>> scan.stem4d.virtual_images({"bf": bf}).dims
    ('mask', 'scan_y', 'scan_x')
    >>> scan.stem4d.radial_profiles(n_bins=64)["variance"].dims
    ('scan_y', 'scan_x', 'q')
    """

    def __init__(self, obj: xr.Dataset | xr.DataArray):
        self._obj = obj

    def _data(self, var: str | None) -> xr.DataArray:
        data = pick(self._obj, var)
        check_pixel_dims(data)
        return data

    def mean_pattern(self, *, var: str | None = None) -> xr.DataArray:
        """`beamcat.analyses.stem4d.mean_pattern`: DataArray (y, x), lazy."""
        return stem4d.mean_pattern(self._data(var))

    def max_pattern(self, *, var: str | None = None) -> xr.DataArray:
        """`beamcat.analyses.stem4d.max_pattern`: DataArray (y, x), lazy."""
        return stem4d.max_pattern(self._data(var))

    def sum_pattern(self, *, var: str | None = None) -> xr.DataArray:
        """`beamcat.analyses.stem4d.sum_pattern`: DataArray (y, x), lazy."""
        return stem4d.sum_pattern(self._data(var))

    def sum_image(self, *, var: str | None = None) -> xr.DataArray:
        """`beamcat.analyses.stem4d.sum_image`: the total of every frame, lazy."""
        return stem4d.sum_image(self._data(var))

    def disc_mask(self, centre, radius: float, *, var: str | None = None):
        """`beamcat.analyses.stem4d.disc_mask` on the frames' (y, x) shape."""
        return stem4d.disc_mask(check_pixel_dims(self._data(var)), centre, radius)

    def annulus_mask(self, centre, inner: float, outer: float, *, var: str | None = None):
        """`beamcat.analyses.stem4d.annulus_mask` on the frames' (y, x) shape."""
        return stem4d.annulus_mask(check_pixel_dims(self._data(var)), centre, inner, outer)

    def virtual_images(self, masks, *, var: str | None = None) -> xr.DataArray:
        """`beamcat.analyses.stem4d.virtual_images`: DataArray (mask, ...), lazy."""
        return stem4d.virtual_images(self._data(var), masks)

    def centre_of_mass(self, *, mask=None, threshold=None, var: str | None = None) -> xr.Dataset:
        """`beamcat.analyses.stem4d.centre_of_mass`: com_y, com_x, shift_y, shift_x, lazy."""
        return stem4d.centre_of_mass(self._data(var), mask=mask, threshold=threshold)

    def radial_profiles(self, calibration=None, *, var: str | None = None, **options):
        """`beamcat.analyses.stem4d.radial_profiles`: Dataset (..., q), lazy.

        `calibration` defaults to the data's ``attrs["calibration"]``; `options`
        are its own (``centre``, ``q_step``, ``n_bins``, ``q_max``, ``mask``,
        ``statistics``).
        """
        return stem4d.radial_profiles(self._data(var), calibration, **options)

    def save_profiles(self, path, *, format: str = "zarr", name: str | None = None):
        """`beamcat.analyses.stem4d.save_profiles` of this profiles Dataset (writes)."""
        return stem4d.save_profiles(self._obj, path, format=format, name=name)

    def calibrate_au(self, *, var: str | None = None, **options) -> AuCalibration:
        """`beamcat.analyses.stem4d_calibration.calibrate_au` on this Au reference (a fit).

        `options` are its own (``voltage_kv``, ``camera_length_cm``,
        ``reflection``, ``start_pixel_size``).
        """
        return calibrate_au(self._data(var), **options)


xr.register_dataset_accessor("stem4d")(Stem4DAccessor)
xr.register_dataarray_accessor("stem4d")(Stem4DAccessor)
