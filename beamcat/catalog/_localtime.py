"""Naive local times to UTC, and saying so when no time zone was given.

Logs, TIFF DateTime tags and old Merlin frame headers hold the wall clock of
the PC that wrote them, without a zone. Readers take a ``timezone`` option
(an IANA name such as ``"Europe/London"``); when it is not given, the times are
read as UTC -- the zone of no experiment in particular -- with a
`BeamcatWarning` and ``attrs["timezone_assumed"]`` saying so, never silently.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable

import numpy as np
import pandas as pd

from beamcat._util import to_utc
from beamcat.errors import BeamcatWarning

#: attrs of a Dataset whose naive times were read as UTC for want of a zone
ASSUMED = {
    "timezone": "UTC",
    "timezone_assumed": "UTC: the times carry no zone and no timezone= was given",
}


def warn_assumed(where: str | os.PathLike) -> dict:
    """Warn that `where`'s naive times are read as UTC; the attrs that record it."""
    warnings.warn(
        f"{os.fspath(where)}: its times are local wall-clock times without a zone and no "
        "timezone= was given: they are read as UTC; pass timezone= (the IANA zone of the "
        "clock that wrote them, e.g. 'Europe/London'). attrs['timezone_assumed'] says so",
        BeamcatWarning,
        stacklevel=4,
    )
    return dict(ASSUMED)


def local_to_utc(
    times: Iterable | pd.Series | pd.DatetimeIndex, timezone: str | None, where
) -> tuple[np.ndarray, dict]:
    """UTC ``datetime64[ns]`` of `times`, and the attrs saying which zone was used.

    Parameters
    ----------
    times : datetimes
        Naive times are local times of `timezone`; aware ones are converted.
    timezone : str or None
        IANA zone of naive times; None reads them as UTC and warns (`warn_assumed`).
    where : path or str
        Named in the warning.

    Returns
    -------
    (ndarray, dict)
        The times, and ``{"timezone": ...}`` (plus ``timezone_assumed`` when
        assumed; nothing for times that carry their zone and no `timezone`).
    """
    index = pd.DatetimeIndex(pd.to_datetime(times))
    if timezone is not None:
        return to_utc(index, timezone), {"timezone": timezone}
    if index.tz is not None or not len(index):
        return to_utc(index, "UTC"), {}
    return to_utc(index, "UTC"), warn_assumed(where)
