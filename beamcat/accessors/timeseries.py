"""The ``.timeseries`` accessor on Datasets and DataArrays: `beamcat.analyses.timeseries`.

Importing this module registers it::

    means.timeseries.normalise().timeseries.savgol(window=21, order=3)
    means.timeseries.beer_lambert(thickness_cm=1.3, cross_section_barn=2 * 82.574)

On a Dataset each method works on ``var`` (default ``attrs["signal"]``, e.g.
the ``mean`` of ROI means) and returns a DataArray.
"""

from __future__ import annotations

import xarray as xr

from beamcat.analyses import timeseries
from beamcat.errors import OptionError


class TimeseriesAccessor:
    """Smoothing, normalisation and Beer-Lambert along a time dim."""

    def __init__(self, obj: xr.Dataset | xr.DataArray):
        self._obj = obj

    def _data(self, var: str | None) -> xr.DataArray:
        obj = self._obj
        if isinstance(obj, xr.DataArray):
            if var is not None:
                raise OptionError(f"var={var!r}: a DataArray has no variables to pick")
            return obj
        var = var or obj.attrs.get("signal")
        if var is None and len(obj.data_vars) == 1:
            var = next(iter(obj.data_vars))
        if var not in obj.data_vars:
            raise OptionError(
                f"var={var!r}: expected one of {list(obj.data_vars)} (no attrs['signal'])"
            )
        return obj[var].assign_attrs({**obj.attrs, **obj[var].attrs})

    def savgol(
        self, *, window: int = 21, order: int = 3, dim: str = "time", var: str | None = None
    ) -> xr.DataArray:
        """Savitzky-Golay smoothing along `dim`; see `beamcat.analyses.timeseries.savgol`."""
        return timeseries.savgol(self._data(var), window=window, order=order, dim=dim)

    def normalise(self, *, dim: str = "time", reference=0, var: str | None = None) -> xr.DataArray:
        """Divide by a reference sample or window; see `beamcat.analyses.timeseries.normalise`."""
        return timeseries.normalise(self._data(var), dim=dim, reference=reference)

    def reduced_transmission(self, *, var: str | None = None) -> xr.DataArray:
        """``(1 - T) * 100`` in %; see `beamcat.analyses.timeseries.reduced_transmission`."""
        return timeseries.reduced_transmission(self._data(var))

    def beer_lambert(
        self,
        *,
        thickness_cm: float,
        cross_section_barn: float,
        avogadro: float = timeseries.AVOGADRO,
        var: str | None = None,
    ) -> xr.DataArray:
        """Concentration in mmol/cm3; see `beamcat.analyses.timeseries.beer_lambert`."""
        return timeseries.beer_lambert(
            self._data(var),
            thickness_cm=thickness_cm,
            cross_section_barn=cross_section_barn,
            avogadro=avogadro,
        )


xr.register_dataset_accessor("timeseries")(TimeseriesAccessor)
xr.register_dataarray_accessor("timeseries")(TimeseriesAccessor)
