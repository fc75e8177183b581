"""What TIFF tags say besides pixels: frame times and detector attrs.

Frame times come from the DateTime tag (306, a local time) or EPICS areaDetector
timestamp tags (65002/65003, UTC); detector attrs from Model, Software and a
Pilatus (camserver) ``# Key value unit`` ImageDescription, converted to SI. A
JSON ImageDescription that beamcat wrote (``{"beamcat": ...}``, e.g. a gain
map's ``form``) gives its keys as attrs.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd

from beamcat.catalog._localtime import local_to_utc
from beamcat.errors import FormatError

_EPICS_EPOCH = np.datetime64("1990-01-01T00:00:00", "ns")
_HC_EV_ANGSTROM = 12398.419843320026  # h*c in eV*Angstrom: energy = hc / wavelength
# "# Key[:] value unit" lines of a Pilatus (camserver) ImageDescription -> attr, unit -> SI factor
_PILATUS_KEYS = {
    "Exposure_time": "exposure_time",
    "Exposure_period": "exposure_period",
    "Threshold_setting": "threshold_energy",
    "Detector_distance": "distance",
    "Wavelength": "wavelength",
}
_PILATUS_UNITS = {"s": 1.0, "m": 1.0, "eV": 1.0, "A": 1e-10}
_PILATUS_LINE = re.compile(r"#\s*(\w+):?\s+([-+]?[\d.]+(?:[eE][-+]?\d+)?)\s*(\w+)?")
_PILATUS_PIXEL = re.compile(r"Pixel_size\s+([\d.eE+-]+)\s*m\s*x\s*([\d.eE+-]+)\s*m")


def tag_times(
    files, headers, timezone: str | None, *, required: bool
) -> tuple[np.ndarray | None, dict]:
    """One UTC time per single-page file from its DateTime or EPICS timestamp tags.

    Also the attrs saying in which zone local DateTime tags were read (see
    `beamcat.catalog._localtime.local_to_utc`); EPICS times are UTC.
    """
    stamps = []
    for path, header in zip(files, headers, strict=True):
        stamp = _tag_time(header.tags) if header.npages == 1 else None
        if stamp is None:
            if required:
                raise FormatError(
                    f"{path}: no DateTime (306) or EPICS timestamp tag on a single page; "
                    "times='tags' needs one per file, each file one frame"
                )
            return None, {}
        stamps.append(stamp)
    if all(utc for _, utc in stamps):
        zone = {"timezone": timezone} if timezone else {}
        return np.array([t for t, _ in stamps], dtype="datetime64[ns]"), zone
    if not any(utc for _, utc in stamps):
        return local_to_utc([t for t, _ in stamps], timezone, files[0])
    raise FormatError(
        f"{files[0]} ...: some files carry EPICS (UTC) and others DateTime (local) times"
    )


def _tag_time(tags: dict) -> tuple[np.datetime64, bool] | None:
    """(time, is_utc) from EPICS areaDetector timestamp tags, else from DateTime."""
    if str(tags.get(305, "")).startswith("EPICS") and 65002 in tags and 65003 in tags:
        seconds, nanoseconds = int(tags[65002]), int(tags[65003])
        return _EPICS_EPOCH + np.timedelta64(seconds * 10**9 + nanoseconds, "ns"), True
    text = tags.get(306)
    if not isinstance(text, str):
        return None
    stamp = pd.to_datetime(text.strip(), format="%Y:%m:%d %H:%M:%S", errors="coerce")
    return None if pd.isna(stamp) else (stamp.to_datetime64(), False)


def tag_attrs(tags: dict) -> dict:
    """Detector attrs from the first page's tags (Model, Software, Pilatus header)."""
    attrs = {}
    for code, name in ((272, "model"), (305, "software")):
        value = tags.get(code)
        if isinstance(value, str) and value.strip() and value.strip() != "Unknown":
            attrs[name] = value.strip()
    description = tags.get(270)
    if isinstance(description, str) and description.lstrip().startswith("#"):
        attrs |= _pilatus_attrs(description)
    elif isinstance(description, str) and description.startswith('{"beamcat":'):
        attrs |= _beamcat_attrs(description)
    return attrs


def _beamcat_attrs(description: str) -> dict:
    """The scalar keys of a JSON ImageDescription that beamcat wrote (a gain map's ``form``)."""
    try:
        meta = json.loads(description)
    except ValueError:
        return {}
    # where the file was read from is the reader's to say, not the description's
    return {
        str(k): v
        for k, v in meta.items()
        if isinstance(v, str | int | float) and k not in ("source", "format", "signal")
    }


def _pilatus_attrs(description: str) -> dict:
    """Geometry and exposure from a Pilatus ``# Key value unit`` ImageDescription, in SI."""
    attrs = {}
    pixel = _PILATUS_PIXEL.search(description)
    if pixel:
        size_x, size_y = float(pixel[1]), float(pixel[2])
        attrs["pixel_size"] = size_x
        if size_y != size_x:
            attrs["pixel_size_y"] = size_y
    for key, value, unit in _PILATUS_LINE.findall(description):
        if key in _PILATUS_KEYS and unit in _PILATUS_UNITS:
            attrs[_PILATUS_KEYS[key]] = float(value) * _PILATUS_UNITS[unit]
    if attrs.get("wavelength"):
        attrs["energy"] = _HC_EV_ANGSTROM / (attrs["wavelength"] * 1e10)
    return attrs
