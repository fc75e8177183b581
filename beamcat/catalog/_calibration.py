"""The ``calibration=`` option: a 4D-STEM calibration JSON read into ``attrs["calibration"]``.

The JSON is ePSIC's (what ``beamcat.analyses.stem4d_calibration.AuCalibration.save``
writes): ``reciprocal_space_pix`` (1/Angstrom per px along the major axis) and
``p_ellipse`` ``[x0, y0, a, b, theta]`` (px, rad) in py4DSTEM's axes, as the
ePSIC notebooks write it: x0 is the row, theta runs from the row axis towards the
column axis. ``attrs["calibration"]`` holds `beamcat.analyses.ellipse`'s
convention (x0 the column, theta from +x towards +y): x0 and y0 swap and theta
becomes π/2 - theta, as ``beamcat.analyses.ellipse.from_p_ellipse`` does (the
catalog does not import the analyses: the same two lines live in both).
Optionally ``reflection``, ``voltage_kv``, ``camera_length_cm``.
The catalog reads it itself (it does not import the analyses), so a missing
file or a broken JSON fails at open or add time with the source named.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

from beamcat.catalog._paths import existing_file
from beamcat.errors import FormatError

#: keys carried over from the JSON when present
OPTIONAL_KEYS = ("reflection", "voltage_kv", "camera_length_cm")


def calibration_attrs(calibration, owner: str = "calibration=") -> dict[str, Any]:
    """The attrs of the ``calibration=`` option: the JSON's calibration as a dict.

    Parameters
    ----------
    calibration : path, optional
        A calibration JSON.
    owner : str
        Who asked (the source, or a catalog entry), for messages.

    Returns
    -------
    dict
        ``{"calibration": {x0, y0, a, b, theta, reciprocal_pixel_size, source,
        [reflection, voltage_kv, camera_length_cm]}}`` (``source`` the JSON's
        absolute path), or ``{}`` without `calibration`.

    Raises
    ------
    SourceNotFoundError
        No such file.
    FormatError
        Not JSON, keys missing, ``p_ellipse`` not 5 finite numbers, or ``a``,
        ``b`` or ``reciprocal_space_pix`` not positive.

    Examples
    --------
    >>> calibration_attrs(None)
    {}
    """
    if calibration is None:
        return {}
    path = existing_file(calibration, what="calibration JSON (calibration=)", owner=owner)
    where = f"{owner}: calibration JSON {path}"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FormatError(f"{where}: not JSON ({exc})") from None
    expected = "reciprocal_space_pix and p_ellipse [x0, y0, a, b, theta]"
    if not isinstance(doc, dict) or "reciprocal_space_pix" not in doc or "p_ellipse" not in doc:
        found = sorted(doc) if isinstance(doc, dict) else type(doc).__name__
        raise FormatError(f"{where}: expected keys {expected}, found {found}")
    ellipse = doc["p_ellipse"]
    values = [*ellipse, doc["reciprocal_space_pix"]] if isinstance(ellipse, list) else []
    if len(values) != 6 or not all(_finite(v) for v in values):
        raise FormatError(f"{where}: expected {expected} as finite numbers, got {doc}")
    if min(values[2], values[3], values[5]) <= 0:
        raise FormatError(f"{where}: a, b and reciprocal_space_pix must be > 0, got {doc}")
    row, column, a, b, angle = map(float, ellipse)
    theta = math.pi / 2 - angle % math.pi  # π/2 - angle, an axis: in (-π/2, π/2]
    found = {"x0": column, "y0": row, "a": a, "b": b, "theta": theta}
    found["reciprocal_pixel_size"] = float(values[5])
    extra = {k: doc[k] for k in OPTIONAL_KEYS if doc.get(k) is not None}
    return {"calibration": {**found, **extra, "source": os.fspath(path)}}


def _finite(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
