"""The xarray backend: ``xr.open_dataset(path, engine="beamcat")`` for every registry format.

Registered through the ``xarray.backends`` entry point. The backend calls
`beamcat.open_dataset`, so the Dataset is the same: same variables, coordinates,
attrs and the same dask arrays (nothing is read at open time). xarray wraps
each variable in its lazy-indexing adapters when ``chunks`` is None (its
default); ``ds[name].data`` is still beamcat's dask array. With ``chunks={}``
(and in `xarray.open_mfdataset`) xarray rechunks along each variable's
``encoding["preferred_chunks"]``, which the backend sets to beamcat's chunks.

Examples
--------
>>> import xarray as xr
>>> ds = xr.open_dataset("scan.mib", engine="beamcat")  # doctest: +SKIP
>>> ds = xr.open_dataset("obs.data.h5", engine="beamcat", window="Fe XII 192")  # doctest: +SKIP
>>> ds = xr.open_mfdataset("frames_*.fits", engine="beamcat", combine="nested",
...                        concat_dim="frame")  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import xarray as xr
from xarray.backends import BackendEntrypoint

from beamcat.errors import BeamcatError


class BeamcatBackendEntrypoint(BackendEntrypoint):
    """Open any beamcat format (TIFF, FITS, SPICE, MIB, HDF5/NeXus, EIS, logs ...) with xarray.

    Parameters of `open_dataset`: the source; ``format`` (sniffed when not
    given); ``attrs`` to add; the files every format takes (``poni=``,
    ``poni_flip=``, ``calibration=``); and any option of the format's reader
    (``window=``, ``scan_shape=``, ``path=`` ...), given as keywords or in
    ``backend_kwargs``. An option the format does not take raises
    `beamcat.errors.OptionError` listing those it does.
    """

    description = "Facility detector files (TIFF, FITS, MIB, HDF5/NeXus, SPICE, EIS ...): beamcat"
    open_dataset_parameters = ("filename_or_obj", "drop_variables", "format", "attrs")

    def open_dataset(
        self,
        filename_or_obj: Any,
        *,
        drop_variables: str | Iterable[str] | None = None,
        format: str | None = None,
        attrs: dict | None = None,
        **options,
    ) -> xr.Dataset:
        """Open `filename_or_obj` with `beamcat.open_dataset` (see the class docstring)."""
        from beamcat.catalog.formats import open_dataset

        ds = open_dataset(_source(filename_or_obj), format=format, attrs=attrs, **options)
        if drop_variables is not None:
            names = [drop_variables] if isinstance(drop_variables, str) else list(drop_variables)
            ds = ds.drop_vars(names, errors="ignore")
        for variable in ds.variables.values():
            chunks = getattr(variable.data, "chunks", None)
            if chunks is not None and variable.ndim:
                sizes = {d: max(c) for d, c in zip(variable.dims, chunks, strict=True)}
                variable.encoding.setdefault("preferred_chunks", sizes)
        return ds

    def guess_can_open(self, filename_or_obj: Any) -> bool:
        """Whether beamcat's sniffing recognises the path (name and first bytes)."""
        from beamcat.catalog.formats import sniff_format

        try:
            source = _source(filename_or_obj)
        except TypeError:
            return False
        try:
            sniff_format(source)
        except (BeamcatError, OSError, ValueError):
            return False
        return True


def _source(obj: Any) -> str | os.PathLike | list:
    """A path (or list of paths) from what xarray passes; file objects are not supported."""
    if isinstance(obj, str | os.PathLike):
        return obj
    if isinstance(obj, list | tuple) and all(isinstance(o, str | os.PathLike) for o in obj):
        return list(obj)
    raise TypeError(f"beamcat opens paths, not {type(obj).__name__} objects; pass a file name")
