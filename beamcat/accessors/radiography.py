"""``ds.radiography`` / ``da.radiography``: calibration, ROI means, outliers, difference images.

Each method picks the variable (``var``, default ``ds.attrs["signal"]``) and
calls its twin in `beamcat.analyses.calibration` (or `.calibrated_means`); nothing
is computed.

`calibrated_means` returns a dict of Datasets (``"rois"``, ``"grid"``), as its
function twin does: the two result sets have different dims.

Examples
--------
On the demo catalog's IMAT run, darks and flats:

>>> import beamcat
>>> cat = beamcat.open_catalog()
>>> run, dark, flat = (cat[n].read() for n in ("imat_run", "imat_dark", "imat_flat"))
>>> t = run.radiography.calibrate(dark, flat, air_roi=(10, 10, 60, 60))
>>> t.attrs["signal"], t["transmission"].dims
('transmission', ('time', 'y', 'x'))
>>> out = run.radiography.calibrated_means(
...     dark, flat, rois={"bed": (134, 75, 52, 30)}, grid=(8, 8), air_roi=(10, 10, 60, 60)
... )
>>> sorted(out), out["rois"]["mean"].dims
(['grid', 'rois'], ('roi', 'time'))
>>> t.radiography.difference(reference=slice(0, 5))["display"].dims
('time', 'y', 'x')
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
import xarray as xr

from beamcat.accessors._signal import as_dataset, pick
from beamcat.analyses.calibrated_means import calibrated_means
from beamcat.analyses.calibration import calibrate
from beamcat.analyses.difference import difference
from beamcat.analyses.outliers import remove_outliers
from beamcat.errors import OptionError
from beamcat.rois import Roi


def _frames(obj: xr.Dataset | xr.DataArray, name: str) -> xr.DataArray:
    """A dark/flat argument as a DataArray: a Dataset gives its signal variable."""
    if isinstance(obj, xr.Dataset):
        return pick(obj, None)
    if isinstance(obj, xr.DataArray):
        return obj
    raise OptionError(f"{name}: expected an xarray Dataset or DataArray, got {type(obj).__name__}")


class _Radiography:
    """Methods shared by the Dataset and DataArray accessors."""

    def __init__(self, obj: xr.Dataset | xr.DataArray):
        self._obj = obj

    def _data(self, var: str | None) -> xr.DataArray:
        raise NotImplementedError

    def _wrap(self, result):
        raise NotImplementedError

    def calibrate(
        self,
        dark: xr.Dataset | xr.DataArray,
        flat: xr.Dataset | xr.DataArray,
        *,
        air_roi: Sequence[int] | None = None,
        outliers: Mapping | None = None,
        eps: float = 1e-6,
        invalid: Literal["nan", "clip"] = "nan",
        var: str | None = None,
    ):
        """Transmission ``(I - D) / (F - D)``: see `beamcat.analyses.calibration.calibrate`.

        `dark` and `flat` are masters (y, x) (`flat` dark-subtracted, as made by
        `flat_master`) or frames (frame, y, x), as DataArrays or Datasets (their
        signal variable), e.g. catalog entries read with ``.read()``.
        """
        return self._wrap(
            calibrate(
                self._data(var),
                _frames(dark, "dark"),
                _frames(flat, "flat"),
                air_roi=air_roi,
                outliers=outliers,
                eps=eps,
                invalid=invalid,
            )
        )

    def calibrated_means(
        self,
        dark: xr.Dataset | xr.DataArray,
        flat: xr.Dataset | xr.DataArray,
        *,
        rois: Mapping[str, Roi] | Sequence[Roi] | None = None,
        grid: tuple[int, int] | None = None,
        grid_region: Roi | None = None,
        grid_edges: Literal["even", "original"] = "even",
        air_roi: Sequence[int] | None = None,
        outliers: Mapping | None = None,
        eps: float = 1e-6,
        invalid: Literal["nan", "clip"] = "nan",
        var: str | None = None,
    ) -> dict[str, xr.Dataset]:
        """ROI and grid means of the calibrated frames in one pass over the raw ones.

        ``{"rois": Dataset, "grid": Dataset}`` (those asked for): the numbers of
        ``.calibrate(...)`` then ``.roi.means(rois)`` / ``.roi.grid(*grid)``,
        without the transmission images; see
        `beamcat.analyses.calibrated_means.calibrated_means`.
        """
        return calibrated_means(
            self._data(var),
            _frames(dark, "dark"),
            _frames(flat, "flat"),
            rois=rois,
            grid=grid,
            grid_region=grid_region,
            grid_edges=grid_edges,
            air_roi=air_roi,
            outliers=outliers,
            eps=eps,
            invalid=invalid,
        )

    def remove_outliers(
        self,
        *,
        radius: int = 3,
        bright: float = 1000.0,
        dark: float = 1000.0,
        var: str | None = None,
    ):
        """Outliers replaced by their local median: see `analyses.outliers.remove_outliers`."""
        return self._wrap(remove_outliers(self._data(var), radius=radius, bright=bright, dark=dark))

    def difference(
        self,
        *,
        reference: int | np.datetime64 | str | slice | xr.DataArray = 0,
        stretch: tuple[float, float] = (2.0, 95.0),
        var: str | None = None,
    ) -> xr.Dataset:
        """Difference to a reference (frame, window or image) + display stretch.

        See `beamcat.analyses.difference.difference`.
        """
        return self._wrap(difference(self._data(var), reference=reference, stretch=stretch))


@xr.register_dataset_accessor("radiography")
class RadiographyDatasetAccessor(_Radiography):
    """``ds.radiography``: methods act on ``var`` (default ``ds.attrs["signal"]``).

    Results are Datasets that keep ``ds``'s attrs, with ``signal`` naming the result.
    """

    def _data(self, var):
        return pick(self._obj, var)

    def _wrap(self, result):
        return as_dataset(self._obj, result)


@xr.register_dataarray_accessor("radiography")
class RadiographyDataArrayAccessor(_Radiography):
    """``da.radiography``: methods return DataArrays (`difference` a Dataset)."""

    def _data(self, var):
        if var is not None:
            raise OptionError("var= selects a variable of a Dataset; this is a DataArray")
        return self._obj

    def _wrap(self, result):
        return result
