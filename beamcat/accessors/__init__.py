"""Thin xarray accessors; importing this package registers them all.

Each module registers one accessor name (``ds.radiography``, ``ds.roi``,
``da.timeseries`` ...) whose methods delegate to `beamcat.analyses`.
"""

from beamcat.accessors import (
    accumulate,
    detector,
    diffraction,
    photon,
    radiography,
    roi,
    spice,
    stem4d,
    timeseries,
)

__all__ = [
    "accumulate",
    "detector",
    "diffraction",
    "photon",
    "radiography",
    "roi",
    "spice",
    "stem4d",
    "timeseries",
]
