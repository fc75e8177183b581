"""``ds.accumulate`` / ``da.accumulate``: summed frames (see `beamcat.analyses.accumulate`)."""

from __future__ import annotations

import xarray as xr

from beamcat.accessors._signal import pick
from beamcat.analyses.accumulate import accumulate, running_sum


class AccumulateAccessor:
    """The accumulated image of the signal (``attrs["signal"]``) or of `var`.

    Examples
    --------
    On the demo catalog's FemtoMAX scan:

    >>> import beamcat
    >>> scan = beamcat.open_catalog()["femtomax_scan"].read()
    >>> total = scan.accumulate.total()  # sum (y, x), count
    >>> list(total.data_vars), int(total["count"])
    (['sum', 'count'], 60)
    >>> last = scan.accumulate.running()["sum"].isel(frame=-1)  # the same image
    >>> bool((last == total["sum"]).all())
    True
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
