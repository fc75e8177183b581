"""Shared pieces of the data model: provenance attrs and time conversion."""

from __future__ import annotations

import os
from collections.abc import Iterable

import numpy as np
import pandas as pd


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
