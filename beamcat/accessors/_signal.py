"""What every accessor does around its analysis: pick the variable, wrap the result.

`pick` is `beamcat.analyses._frames.pick` (one home for the rule: ``var``, else
``attrs["signal"]``, else the only variable); `as_dataset` gives a Dataset
accessor's result as a Dataset, so that a Dataset method returns a Dataset and
calls chain.
"""

from __future__ import annotations

import xarray as xr

from beamcat.analyses._frames import pick

__all__ = ["as_dataset", "pick"]


def as_dataset(ds: xr.Dataset, result: xr.DataArray | xr.Dataset) -> xr.Dataset:
    """`result` as a Dataset keeping `ds`'s attrs (pixel_size, source ...), with its signal.

    A DataArray becomes the one variable of the Dataset and ``attrs["signal"]``
    names it; the result's attrs (history, units of a reduced result) win over `ds`'s.
    """
    if isinstance(result, xr.DataArray):
        history = result.attrs.get("history")
        name = str(result.name) if result.name is not None else "result"
        result = result.to_dataset(name=name).assign_attrs(signal=name)
        if history is not None:
            result.attrs["history"] = history
    return result.assign_attrs({**ds.attrs, **result.attrs})
