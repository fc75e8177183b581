"""``ds.photon`` / ``da.photon``: photon events of CMOS frames (`beamcat.analyses.photon`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

from beamcat.accessors._signal import pick
from beamcat.analyses.photon import PhotonEvents, clean_image, detect, histogram


class PhotonAccessor:
    """Photon detection on frames, and histograms and clean images of events.

    On frames (the signal, or `var`), `histogram` and `clean_image` first run
    `detect` with the given detection options; on an event Dataset (dim
    ``event``, the result of `detect`) they use its events.

    Examples
    --------
    >>> ds = beamcat.open_dataset("scan_0007andor3_balor-ingester.cbors.gz")  # doctest: +SKIP
    >>> events = ds.photon.detect(threshold=8, energy_min=1100, energy_max=1400)  # doctest: +SKIP
    >>> events.compute().photon.histogram(100)  # doctest: +SKIP
    >>> ds.photon.clean_image(energy_min=1100, roi=(112, 96, 64, 64))  # doctest: +SKIP
    """

    def __init__(self, obj: xr.Dataset | xr.DataArray):
        self._obj = obj

    def _events(self, var: str | None, options: dict) -> xr.Dataset | PhotonEvents:
        if isinstance(self._obj, xr.Dataset) and "event" in self._obj.dims and not options:
            return self._obj
        return self.detect(var=var, **options)

    def detect(self, *, var: str | None = None, **options) -> xr.Dataset | PhotonEvents:
        """`beamcat.analyses.photon.detect` of the signal (options: threshold, energy_min ...)."""
        return detect(pick(self._obj, var), **options)

    def histogram(
        self,
        bins: int | Sequence[float] | np.ndarray = 100,
        *,
        range: tuple[float, float] | None = None,  # noqa: A002 - numpy's name
        var: str | None = None,
        **options,
    ) -> xr.DataArray:
        """`beamcat.analyses.photon.histogram` of the events (detected first on frames)."""
        return histogram(self._events(var, options), bins, range=range)

    def clean_image(
        self,
        shape: tuple[int, int] | None = None,
        *,
        energy_min: float | None = None,
        roi: Sequence[float] | None = None,
        var: str | None = None,
        **options,
    ) -> xr.DataArray:
        """`beamcat.analyses.photon.clean_image` of the events (detected first on frames).

        On frames, `roi` is also the detection ROI and `energy_min` the detection cut.
        """
        if not (isinstance(self._obj, xr.Dataset) and "event" in self._obj.dims):
            options = {**options, "roi": roi}
            if energy_min is not None:
                options["energy_min"] = energy_min
        return clean_image(self._events(var, options), shape, energy_min=energy_min, roi=roi)


xr.register_dataset_accessor("photon")(PhotonAccessor)
xr.register_dataarray_accessor("photon")(PhotonAccessor)
