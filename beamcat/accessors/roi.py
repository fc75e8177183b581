"""``ds.roi`` / ``da.roi``: ROI and grid statistics of image stacks (see `beamcat.analyses.roi`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import xarray as xr

from beamcat.analyses.roi import Roi, grid_means, roi_means
from beamcat.errors import OptionError


class RoiAccessor:
    """ROI means and grid cell means of the signal (``attrs["signal"]``) or of `var`.

    Examples
    --------
    >>> ds = beamcat.open_dataset("run_0042/")  # doctest: +SKIP
    >>> ds.roi.means({"bed": (134, 75, 52, 30)}).mean  # (roi, frame)  # doctest: +SKIP
    >>> ds.roi.grid(8, 8, region=(120, 60, 80, 140)).mean  # (row, col, frame)  # doctest: +SKIP
    """

    def __init__(self, obj: xr.Dataset | xr.DataArray):
        self._obj = obj

    def _frames(self, var: str | None) -> xr.DataArray:
        if isinstance(self._obj, xr.DataArray):
            if var is not None:
                raise OptionError(f"var={var!r}: a DataArray has no variables to pick")
            return self._obj
        name = var or self._obj.attrs.get("signal")
        if name not in self._obj.data_vars:
            raise OptionError(
                f"var={name!r}: expected one of {list(self._obj.data_vars)} "
                "(the Dataset names no signal in attrs['signal'])"
            )
        return self._obj[name].assign_attrs({**self._obj.attrs, **self._obj[name].attrs})

    def means(
        self, rois: Mapping[str, Roi] | Sequence[Roi], *, var: str | None = None
    ) -> xr.Dataset:
        """`beamcat.analyses.roi.roi_means` of the signal: Dataset(mean, std, count) (roi, ...)."""
        return roi_means(self._frames(var), rois)

    def grid(
        self,
        rows: int,
        cols: int,
        *,
        region: Roi | None = None,
        edges: Literal["even", "original"] = "even",
        var: str | None = None,
    ) -> xr.Dataset:
        """`beamcat.analyses.roi.grid_means` of the signal: Dataset over (row, col, ...)."""
        return grid_means(self._frames(var), rows, cols, region=region, edges=edges)


xr.register_dataset_accessor("roi")(RoiAccessor)
xr.register_dataarray_accessor("roi")(RoiAccessor)
