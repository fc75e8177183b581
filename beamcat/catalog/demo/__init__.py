"""The embedded demo data set: one sample per workflow, in its real file format, with ground truth.

`make_demo` writes, into one folder, a sample for each of the five workflows
(and a CeO2 calibrant image for X-ray diffraction) and an Intake catalog
(``catalog.yaml``) of them; sources are stored relative to the catalog, so the
folder can be moved. Each sample folder holds ``truth.json`` and ``truth.npz``:
what an analysis must find (see the module docstrings of `radiography`,
`photon`, `gainmap`, `stem4d`, `spice` and `diffraction`, and `read_truth`).
`ensure_demo` generates it once into the user cache folder (keyed by a hash of
the generator's sources, `generator_key`); ``beamcat.open_catalog()`` opens
that catalog.

Examples
--------
>>> from beamcat.catalog.demo import make_demo, read_truth
>>> catalog = make_demo("beamcat-demo")  # doctest: +SKIP
>>> scalars, arrays = read_truth("beamcat-demo/radiography")  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from beamcat.catalog.demo import diffraction, gainmap, photon, radiography, spice, stem4d
from beamcat.catalog.demo._common import TRUTH_JSON, TRUTH_NPZ, Entry, read_truth
from beamcat.errors import OptionError

__all__ = ["CATALOG_NAME", "TRUTH_JSON", "TRUTH_NPZ", "ensure_demo", "make_demo", "read_truth"]

CATALOG_NAME = "catalog.yaml"
#: sample folder -> generator; the index is mixed into each sample's random seed
SAMPLES = {
    "radiography": radiography.write,
    "photon": photon.write,
    "gainmap": gainmap.write,
    "stem4d": stem4d.write,
    "spice": spice.write,
    "diffraction": diffraction.write,  # last: the others keep their random streams
}


def make_demo(directory: str | os.PathLike, *, seed: int = 0) -> Path:
    """Write the demo samples and their catalog into `directory`.

    Parameters
    ----------
    directory : path
        Created if missing; must not already hold a sample folder or a catalog.
    seed : int
        Seed of the random numbers; the same seed writes the same data.

    Returns
    -------
    Path
        The catalog file, ``directory/catalog.yaml``.

    Raises
    ------
    OptionError
        When `directory` already holds a sample folder or a catalog.
    """
    from beamcat.catalog.build import add_source

    directory = Path(directory).expanduser().resolve()
    catalog = directory / CATALOG_NAME
    taken = [p.name for p in (catalog, *(directory / s for s in SAMPLES)) if p.exists()]
    if taken:
        raise OptionError(
            f"{directory}: already holds {', '.join(taken)}; "
            "write the demo into an empty or new folder"
        )
    directory.mkdir(parents=True, exist_ok=True)
    entries: list[Entry] = []
    for index, (name, write) in enumerate(SAMPLES.items()):
        # one independent stream per sample: adding a sample does not change the others
        entries += write(directory / name, np.random.default_rng([seed, index]))
    for e in entries:
        add_source(
            catalog, e.name, e.source, format=e.format, options=e.options, metadata=e.metadata
        )
    return catalog


def generator_key(folder: str | os.PathLike | None = None) -> str:
    """A short hash of the demo generator's sources (``beamcat/catalog/demo/*.py``).

    The cached demo is keyed by it, so a changed generator is regenerated even
    when the package version did not change (a version key missed that).

    Parameters
    ----------
    folder : path, optional
        Where the generator sources are; default this package's folder.

    Returns
    -------
    str
        16 hex digits of the SHA-256 of the sources' names and bytes, in name order.

    Examples
    --------
    >>> len(generator_key())
    16
    """
    digest = hashlib.sha256()
    for path in sorted(Path(folder or Path(__file__).parent).glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def cache_folder() -> Path:
    """Where `ensure_demo` keeps the demo: ``<user cache>/beamcat/demo-<generator_key()>``."""
    import platformdirs

    return Path(platformdirs.user_cache_dir("beamcat")) / f"demo-{generator_key()}"


def ensure_demo() -> Path:
    """The demo catalog in the user cache folder, generated on first use.

    The demo is written into a temporary sibling folder and renamed into place
    when complete, so an interrupted run never leaves a half-written demo and
    concurrent first uses do not clash (the loser discards its copy).

    Returns
    -------
    Path
        The catalog file.
    """
    folder = cache_folder()
    catalog = folder / CATALOG_NAME
    if catalog.exists():
        return catalog
    if folder.exists():  # never left by a rename; someone removed its catalog
        shutil.rmtree(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        make_demo(tmp)
        try:
            os.rename(tmp, folder)
        except OSError:
            if not catalog.exists():  # not another process's finished demo: a real failure
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return catalog
