"""The ``.timeseries`` accessor on Datasets and DataArrays: `beamcat.analyses.timeseries`.

Importing this module registers it::

    means.timeseries.normalise().timeseries.savgol(window=21, order=3)
    means.timeseries.beer_lambert(thickness_cm=1.3, cross_section_barn=2 * 82.574)

On a Dataset each method works on ``var`` (default ``attrs["signal"]``, e.g.
the ``mean`` of ROI means) and returns a Dataset holding the result, with
``attrs["signal"]`` naming it and the Dataset's attrs kept, so calls chain; on a
DataArray it returns a DataArray.
"""

from __future__ import annotations

import xarray as xr

from beamcat.accessors._signal import as_dataset, pick
from beamcat.analyses import timeseries


class TimeseriesAccessor:
    """Smoothing, normalisation and Beer-Lambert along a time dim."""

    def __init__(self, obj: xr.Dataset | xr.DataArray):
        self._obj = obj

    def _wrap(self, result: xr.DataArray) -> xr.Dataset | xr.DataArray:
        """A Dataset's result as a Dataset (`as_dataset`), a DataArray's as it is."""
        return as_dataset(self._obj, result) if isinstance(self._obj, xr.Dataset) else result

    def savgol(
        self, *, window: int = 21, order: int = 3, dim: str = "time", var: str | None = None
    ) -> xr.Dataset | xr.DataArray:
        """Savitzky-Golay smoothing along `dim`; see `beamcat.analyses.timeseries.savgol`."""
        return self._wrap(
            timeseries.savgol(pick(self._obj, var), window=window, order=order, dim=dim)
        )

    def normalise(
        self, *, dim: str = "time", reference=0, var: str | None = None
    ) -> xr.Dataset | xr.DataArray:
        """Divide by a reference sample or window; see `beamcat.analyses.timeseries.normalise`."""
        return self._wrap(timeseries.normalise(pick(self._obj, var), dim=dim, reference=reference))

    def reduced_transmission(self, *, var: str | None = None) -> xr.Dataset | xr.DataArray:
        """``(1 - T) * 100`` in %; see `beamcat.analyses.timeseries.reduced_transmission`."""
        return self._wrap(timeseries.reduced_transmission(pick(self._obj, var)))

    def beer_lambert(
        self,
        *,
        thickness_cm: float,
        cross_section_barn: float,
        avogadro: float = timeseries.AVOGADRO,
        var: str | None = None,
    ) -> xr.Dataset | xr.DataArray:
        """Concentration in mmol/cm3; see `beamcat.analyses.timeseries.beer_lambert`."""
        return self._wrap(
            timeseries.beer_lambert(
                pick(self._obj, var),
                thickness_cm=thickness_cm,
                cross_section_barn=cross_section_barn,
                avogadro=avogadro,
            )
        )


xr.register_dataset_accessor("timeseries")(TimeseriesAccessor)
xr.register_dataarray_accessor("timeseries")(TimeseriesAccessor)
