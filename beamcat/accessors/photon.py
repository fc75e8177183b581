"""``ds.photon`` / ``da.photon``: photon events of CMOS frames (`beamcat.analyses.photon`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

from beamcat.accessors._signal import as_dataset, pick
from beamcat.analyses.photon import (
    PhotonEvents,
    clean_image,
    detect,
    event_list,
    histogram,
    is_event_tables,
)


class PhotonAccessor:
    """Photon detection on frames, and histograms and clean images of events.

    On frames (the signal, or `var`), `histogram` and `clean_image` first run
    the detection with the given options; on events (the result of `detect`: an
    event list along ``event``, or lazy event tables along the frames) they use
    them. Calls chain on dask-backed frames without computing: `detect` gives the
    lazy event tables, whose `histogram` and `clean_image` are lazy too. A
    Dataset's methods return Datasets; a DataArray's histogram and clean image
    are DataArrays.

    Examples
    --------
    >>> import beamcat
    >>> scan = beamcat.open_catalog()["femtomax_scan"].read()
    >>> events = scan.photon.detect(threshold=8, energy_min=1100, energy_max=1400)
    >>> hist = events.photon.histogram(100)  # lazy: per frame chunk, summed
    >>> int(hist.events.sum()) == events.compute().photon.events().sizes["event"]
    True
    >>> scan.photon.clean_image(energy_min=1100, roi=(112, 96, 64, 64)).photons.dims
    ('y', 'x')
    """

    def __init__(self, obj: xr.Dataset | xr.DataArray):
        self._obj = obj

    def _is_events(self) -> bool:
        obj = self._obj
        return isinstance(obj, xr.Dataset) and ("event" in obj.dims or is_event_tables(obj))

    def _events(self, var: str | None, options: dict) -> xr.Dataset:
        return self._obj if self._is_events() and not options else self.detect(var=var, **options)

    def _result(self, result: xr.DataArray) -> xr.Dataset | xr.DataArray:
        return as_dataset(self._obj, result) if isinstance(self._obj, xr.Dataset) else result

    def detect(self, *, var: str | None = None, **options) -> xr.Dataset:
        """`beamcat.analyses.photon.detect` of the signal (options: threshold, energy_min ...).

        The event list for in-memory frames; for dask-backed frames the lazy event
        tables (`beamcat.analyses.photon.detect_tables`), nothing computed.
        """
        events = detect(pick(self._obj, var), **options)
        return events.tables if isinstance(events, PhotonEvents) else events

    def events(self) -> xr.Dataset:
        """The event list (dim ``event``) of computed event tables (an event list as it is)."""
        return self._obj if "event" in self._obj.dims else event_list(self._obj)

    def histogram(
        self,
        bins: int | Sequence[float] | np.ndarray = 100,
        *,
        range: tuple[float, float] | None = None,  # noqa: A002 - numpy's name
        var: str | None = None,
        **options,
    ) -> xr.Dataset | xr.DataArray:
        """`beamcat.analyses.photon.histogram` of the events (detected first on frames)."""
        return self._result(histogram(self._events(var, options), bins, range=range))

    def clean_image(
        self,
        shape: tuple[int, int] | None = None,
        *,
        energy_min: float | None = None,
        roi: Sequence[float] | None = None,
        var: str | None = None,
        **options,
    ) -> xr.Dataset | xr.DataArray:
        """`beamcat.analyses.photon.clean_image` of the events (detected first on frames).

        On frames, `roi` is also the detection ROI and `energy_min` the detection cut.
        """
        if not self._is_events():
            options = {**options, "roi": roi}
            if energy_min is not None:
                options["energy_min"] = energy_min
        events = self._events(var, options)
        return self._result(clean_image(events, shape, energy_min=energy_min, roi=roi))


xr.register_dataset_accessor("photon")(PhotonAccessor)
xr.register_dataarray_accessor("photon")(PhotonAccessor)
