"""What the pages of one app share: the catalog, opened entries, the selected entry.

`CatalogContext` is made once per server (the catalog is opened and its trust
checked once; opened Datasets are cached for every session). `AppState` is made
per browser session and carries the selected entry, so that pages added later
(ROI analysis, live photon view) follow the catalog page's selection.
"""

from __future__ import annotations

import math
import os
import threading
from pathlib import Path
from typing import Any

import param
import xarray as xr

from beamcat.apps._banners import error_message
from beamcat.apps.quicklook import signal_name
from beamcat.catalog.build import METADATA_KEYS, describe_entries
from beamcat.catalog.catalogs import open_catalog
from beamcat.errors import CatalogError
from beamcat.workflows.calibration_entries import EntryInfo, entry_info

__all__ = ["AppState", "CatalogContext", "app_state", "catalog_label", "error_message"]


class CatalogContext:
    """A catalog opened once, with a cache of its lazily opened Datasets.

    Parameters
    ----------
    catalog : path, intake Catalog or None
        None opens the embedded demo catalog.
    trusted : bool
        Passed to `beamcat.catalog.catalogs.open_catalog`.
    """

    def __init__(self, catalog: str | os.PathLike | Any | None = None, *, trusted: bool = False):
        if catalog is None or isinstance(catalog, str | os.PathLike):
            self.catalog = open_catalog(catalog, trusted=trusted)
            self.path = str(catalog) if catalog is not None else "demo catalog"
        else:
            self.catalog = catalog
            self.path = "catalog"
        self.rows = {row["name"]: row for row in describe_entries(self.catalog)}
        self._opened: dict[str, xr.Dataset | Exception] = {}
        self._lock = threading.Lock()

    @property
    def names(self) -> list[str]:
        """Entry names, sorted."""
        return list(self.rows)

    def open(self, name: str) -> xr.Dataset:
        """The entry's Dataset (lazy), opened once; re-raises the same error on later calls."""
        with self._lock:
            cached = self._opened.get(name)
        if cached is None:
            if name not in self.rows:
                raise CatalogError(f"{self.path}: no entry {name!r}")
            try:
                cached = self.catalog[name].read()
            except Exception as err:  # any reader failure is shown in the app, never raised
                cached = err
            with self._lock:
                self._opened[name] = cached
        if isinstance(cached, Exception):
            raise cached
        return cached

    def entry_info(self, name: str) -> EntryInfo:
        """Format, metadata, and the signal's dims and shape (empty if it cannot be opened)."""
        return entry_info(self.rows[name], lambda: self.open(name))

    def entry_infos(self) -> dict[str, EntryInfo]:
        """`entry_info` of every entry (opens headers only; cached after the first call)."""
        return {name: self.entry_info(name) for name in self.names}

    def summary(self, name: str) -> dict[str, Any]:
        """One table row: name, format, dims, shape, size (bytes) and metadata, or the error.

        Opening reads headers only, so this is cheap after the first call.
        """
        row = self.rows[name]
        meta = row["metadata"]
        out: dict[str, Any] = {"name": name, "format": row["format"]}
        try:
            ds = self.open(name)
            sig = ds[signal_name(ds)]
            out |= {
                "dims": ", ".join(map(str, sig.dims)),
                "shape": " x ".join(map(str, sig.shape)),
                "size": float(sig.nbytes),
                "error": "",
            }
        except Exception as err:
            out |= {"dims": "", "shape": "", "size": math.nan, "error": error_message(err)}
        out |= {key: str(meta.get(key, "")) for key in METADATA_KEYS}
        out["source"] = str(row["source"])
        return out


class AppState(param.Parameterized):
    """Per-session state shared by the pages."""

    entry = param.String(default=None, allow_None=True, doc="Selected catalog entry")

    def __init__(self, context: CatalogContext, **params):
        super().__init__(**params)
        self.context = context


def app_state(catalog=None, **options) -> AppState:
    """The state a page is made with, from whatever a user or `beamcat serve` has at hand.

    Parameters
    ----------
    catalog : AppState, CatalogContext, path, intake Catalog or None
        An `AppState` is used as it is (the served app's pages share one); a
        `CatalogContext` gets a state of its own; anything else is opened as a
        catalog (None: the embedded demo catalog).
    **options
        Passed to `CatalogContext` (``trusted=``) when a catalog is opened.
    """
    if isinstance(catalog, AppState):
        return catalog
    if not isinstance(catalog, CatalogContext):
        catalog = CatalogContext(catalog, **options)
    return AppState(catalog)


def catalog_label(context: CatalogContext) -> str:
    """Short name of the catalog for titles."""
    return Path(context.path).name if context.path != "demo catalog" else context.path
