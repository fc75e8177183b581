"""``ds.accumulate`` / ``da.accumulate``: summed frames (see `beamcat.analyses.accumulate`)."""

from __future__ import annotations

import xarray as xr

from beamcat.accessors._signal import pick
from beamcat.analyses.accumulate import accumulate, running_sum


class AccumulateAccessor:
    """The accumulated image of the signal (``attrs["signal"]``) or of `var`.

    Examples
    --------
    >>> ds = beamcat.open_dataset("drp_femtomax/")  # doctest: +SKIP
    >>> total = ds.accumulate.total()  # sum (y, x), count  # doctest: +SKIP
    >>> ds.accumulate.running()["sum"].isel(frame=-1)  # the same image  # doctest: +SKIP
    """

    def __init__(self, obj: xr.Dataset | xr.DataArray):
        self._obj = obj

    def total(
        self, *, dim: str = "frame", mask_negative: bool = False, var: str | None = None
    ) -> xr.Dataset:
        """`beamcat.analyses.accumulate.accumulate`: Dataset(sum (y, x), count)."""
        return accumulate(pick(self._obj, var), dim=dim, mask_negative=mask_negative)

    def running(
        self, *, dim: str = "frame", mask_negative: bool = False, var: str | None = None
    ) -> xr.Dataset:
        """`beamcat.analyses.accumulate.running_sum`: Dataset(sum (frame, y, x), count (frame))."""
        return running_sum(pick(self._obj, var), dim=dim, mask_negative=mask_negative)


xr.register_dataset_accessor("accumulate")(AccumulateAccessor)
xr.register_dataarray_accessor("accumulate")(AccumulateAccessor)
