"""The ground floor: atomic writes, provenance attrs, UTC times, the version.

Every layer may import this module; it imports no other beamcat module.
Readers set `provenance` attrs and convert times with `to_utc`; writers write
through `atomic_path` / `atomic_open` / `atomic_directory`; `__version__` is the
installed version.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterable, Iterator
from importlib import metadata
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd

__all__ = [
    "__version__",
    "atomic_directory",
    "atomic_open",
    "atomic_path",
    "provenance",
    "temp_beside",
    "to_utc",
]

try:
    __version__ = metadata.version("beamcat")
except metadata.PackageNotFoundError:  # pragma: no cover - a source tree that is not installed
    __version__ = "0+unknown"


# --------------------------------------------------------------------------- atomic writes


def temp_beside(path: Path) -> Path:
    """A hidden name beside `path`, unique per process and call."""
    return path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` when the block succeeds.

    The temporary name is unique per process and call, so concurrent writers never
    share it; it is created with the usual umask permissions (unlike mkstemp's 0600).
    """
    path = Path(path)
    tmp = temp_beside(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb", **kwargs) -> Iterator[IO]:
    """``open(path, mode)`` that writes a temporary file and renames it on success."""
    with atomic_path(path) as tmp, open(tmp, mode, **kwargs) as f:
        yield f


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside `path`; rename it onto `path` when the block succeeds.

    `path` must not exist when the block ends (a folder cannot be renamed over
    a non-empty one); on failure the temporary folder is removed.
    """
    tmp = temp_beside(Path(path))
    try:
        yield tmp
        os.rename(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------- attrs


def provenance(source, format: str, **extra) -> dict:
    """The attrs every reader sets: where the data came from and in which format."""
    if isinstance(source, str | os.PathLike):
        text = os.fspath(source)
    else:
        text = ";".join(os.fspath(s) for s in source)
    return {"source": text, "format": format, **extra}


def to_utc(times: Iterable | pd.Series | pd.DatetimeIndex, timezone: str = "UTC") -> np.ndarray:
    """Convert times to UTC ``datetime64[ns]``.

    Naive times are read as local times of `timezone` (an IANA name such as
    ``"Europe/London"``); aware times are converted. Every reader uses this, so
    logs and frames of one experiment align when given the same `timezone`.
    """
    index = pd.DatetimeIndex(pd.to_datetime(times))
    if index.tz is None:
        try:  # a log running through the autumn clock change repeats an hour
            index = index.tz_localize(timezone, ambiguous="infer", nonexistent="shift_forward")
        except ValueError:
            ambiguous = np.zeros(len(index), dtype=bool)  # read repeated times as standard time
            index = index.tz_localize(timezone, ambiguous=ambiguous, nonexistent="shift_forward")
    return index.tz_convert("UTC").tz_localize(None).to_numpy(dtype="datetime64[ns]")
