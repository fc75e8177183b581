"""beamcat: one catalog for facility detector data and the analyses that run on it."""

import beamcat.accessors  # noqa: F401  (registers ds.radiography, ds.roi, ...)
from beamcat._util import __version__
from beamcat.catalog.formats import open_dataset
from beamcat.errors import BeamcatError, BeamcatWarning

__all__ = ["BeamcatError", "BeamcatWarning", "__version__", "open_catalog", "open_dataset"]


def __getattr__(name):
    # intake is imported only when a catalog is asked for: `import beamcat` stays fast
    if name == "open_catalog":
        from beamcat.catalog.catalogs import open_catalog

        return open_catalog
    raise AttributeError(f"module 'beamcat' has no attribute {name!r}")
