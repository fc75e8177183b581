"""Opening catalogs: a catalog file, or the demo catalog generated on first use.

Above both `beamcat.catalog.build` (catalog files) and `beamcat.catalog.demo`
(which writes its catalog with `build.add_source`), so neither imports the other
the wrong way round.
"""

from __future__ import annotations

import os

from beamcat.catalog.build import load_catalog
from beamcat.catalog.demo import ensure_demo

__all__ = ["open_catalog"]


def open_catalog(path: str | os.PathLike | None = None, *, trusted: bool = False):
    """Open a beamcat catalog; ``None`` opens the embedded demo catalog.

    Parameters
    ----------
    path : path, optional
        A catalog YAML file. When None, the demo data set is generated on first
        use into the user cache folder and its catalog is opened.
    trusted : bool
        Allow Intake templates that import or run code (``{func(...)}``,
        ``{import(...)}``, ``{pickle64(...)}``, ``{env(...)}``) and reader
        classes outside beamcat. Only for catalogs you wrote yourself.

    Returns
    -------
    intake.readers.entry.Catalog
        ``cat[name].read()`` (or ``cat[name].to_reader().read()``) gives the
        entry's Dataset.

    Examples
    --------
    >>> import beamcat
    >>> cat = beamcat.open_catalog()  # doctest: +SKIP
    >>> list(cat)  # doctest: +SKIP
    >>> ds = cat["stem4d_scan"].read()  # doctest: +SKIP
    """
    if path is None:
        path = ensure_demo()
    return load_catalog(path, trusted=trusted)
