"""``ds.detector`` / ``da.detector``: dark level, threshold, flat field (analyses.detector)."""

from __future__ import annotations

import numpy as np
import xarray as xr

from beamcat.accessors._signal import pick
from beamcat.analyses.detector import flatfield, subtract_background, threshold


class DetectorAccessor:
    """Frame corrections of the signal (``attrs["signal"]``) or of `var`.

    On a Dataset each method returns the Dataset with that variable replaced, so
    calls chain; on a DataArray, the DataArray.

    Examples
    --------
    On the demo catalog's FemtoMAX scan:

    >>> import beamcat
    >>> scan = beamcat.open_catalog()["femtomax_scan"].read()
    >>> clean = scan.detector.subtract_background(100).detector.threshold(12)
    >>> clean.attrs["history"].splitlines()[-2:]
    ['subtract_background(100.0, clip=True)', 'threshold(12)']
    """

    def __init__(self, obj: xr.Dataset | xr.DataArray):
        self._obj = obj

    def _apply(self, func, var: str | None, *args, **kwargs) -> xr.Dataset | xr.DataArray:
        """`func` on the picked variable; a Dataset gets it back in place, history appended."""
        data = pick(self._obj, var)
        result = func(data, *args, **kwargs)
        if isinstance(self._obj, xr.DataArray):
            return result
        replaced = result.assign_attrs(self._obj[data.name].attrs)
        return self._obj.assign({data.name: replaced}).assign_attrs(history=result.attrs["history"])

    def subtract_background(
        self,
        background: float | np.ndarray | xr.DataArray = 100,
        *,
        clip: bool = True,
        var: str | None = None,
    ) -> xr.Dataset | xr.DataArray:
        """`beamcat.analyses.detector.subtract_background` of the signal."""
        return self._apply(subtract_background, var, background, clip=clip)

    def threshold(self, value: float = 12, *, var: str | None = None) -> xr.Dataset | xr.DataArray:
        """`beamcat.analyses.detector.threshold` of the signal: zero below `value`."""
        return self._apply(threshold, var, value)

    def flatfield(self, gain, *, var: str | None = None) -> xr.Dataset | xr.DataArray:
        """`beamcat.analyses.detector.flatfield` of the signal: divide by a gain map.

        `gain` is a `beamcat.analyses.gainmap.gain_map` result, a gain file opened
        with `beamcat.open_dataset`, or a ``(y, x)`` map; NaN where it is invalid.
        """
        return self._apply(flatfield, var, gain)


xr.register_dataset_accessor("detector")(DetectorAccessor)
xr.register_dataarray_accessor("detector")(DetectorAccessor)
