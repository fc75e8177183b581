"""Pieces shared by the demo generators: catalog entries and ground-truth files."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: name of the human-readable truth (scalars, small lists) written next to each sample
TRUTH_JSON = "truth.json"
#: name of the array truth (maps, masks, per-frame tables) written next to each sample
TRUTH_NPZ = "truth.npz"


@dataclass(frozen=True)
class Entry:
    """One catalog entry a generator asks for.

    Attributes
    ----------
    name : str
        Catalog entry name.
    source : Path or list of Path
        Files or folder the entry opens (inside the demo folder).
    format : str
        beamcat format name.
    metadata : dict
        ``instrument``, ``sample``, ``run``, ``description``.
    options : dict
        Reader options.
    """

    name: str
    source: Path | list[Path]
    format: str
    metadata: dict[str, str]
    options: dict[str, Any] = field(default_factory=dict)


def _plain(value: Any) -> Any:
    """JSON-friendly version of numpy scalars, arrays and datetimes."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item() if not isinstance(value, np.datetime64) else str(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def write_truth(folder: Path, scalars: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    """Write ``truth.json`` (scalars and small lists) and ``truth.npz`` (arrays) into `folder`."""
    with open(folder / TRUTH_JSON, "w", encoding="utf-8") as f:
        json.dump(_plain(scalars), f, indent=1)
    np.savez_compressed(folder / TRUTH_NPZ, **arrays)


def read_truth(folder: str | Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read back what `write_truth` wrote: ``(scalars, arrays)``."""
    folder = Path(folder)
    with open(folder / TRUTH_JSON, encoding="utf-8") as f:
        scalars = json.load(f)
    with np.load(folder / TRUTH_NPZ) as npz:
        arrays = {k: npz[k] for k in npz.files}
    return scalars, arrays


def write_pyfai_poni(path: Path, config: dict[str, Any]):
    """Write a PONI file with pyFAI's own writer (version 2 text) and return its integrator.

    Parameters
    ----------
    path : Path
        A new file (pyFAI appends to an existing one).
    config : dict
        pyFAI's configuration keys: ``detector`` (a pyFAI detector name) or
        ``detector_config``, ``dist``, ``poni1``, ``poni2`` (m), ``rot1-3`` (rad),
        ``wavelength`` (m).

    Returns
    -------
    pyFAI.integrator.azimuthal.AzimuthalIntegrator
    """
    from pyFAI.integrator.azimuthal import AzimuthalIntegrator

    ai = AzimuthalIntegrator()
    ai.set_config(dict(config))
    ai.write(str(path))
    return ai
