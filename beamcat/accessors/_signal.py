"""Pick the variable an accessor method works on."""

from __future__ import annotations

import xarray as xr

from beamcat.errors import OptionError


def pick(obj: xr.Dataset | xr.DataArray, var: str | None = None) -> xr.DataArray:
    """The variable `var` of a Dataset (default ``attrs["signal"]``, or its only variable).

    The Dataset's attrs (source, pixel size, history ...) are carried onto the
    DataArray under its own, so analyses can name the source in messages and
    append to its history. A DataArray is returned as it is.
    """
    if isinstance(obj, xr.DataArray):
        if var is not None:
            raise OptionError(f"var={var!r}: a DataArray has no variables to pick")
        return obj
    names = sorted(map(str, obj.data_vars))
    name = var if var is not None else obj.attrs.get("signal")
    if name is None and len(names) == 1:
        name = names[0]
    where = obj.attrs.get("source", "dataset")
    if name is None:
        raise OptionError(f"{where}: no attrs['signal']; pass var= one of {names}")
    if name not in obj.data_vars:
        raise OptionError(f"{where}: no variable {name!r}; variables are {names}")
    return obj[name].assign_attrs({**obj.attrs, **obj[name].attrs})
