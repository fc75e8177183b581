"""Provenance of analysis results: carried attrs, and one ``attrs["history"]`` line per step."""

from __future__ import annotations

from collections.abc import Mapping

#: attrs a reduced result keeps from its input: where it came from, the detector,
#: and the time zone its local times are shown in
CARRIED = (
    "source",
    "format",
    "detector",
    "pixel_size",
    "energy",
    "wavelength",
    "exposure",
    "timezone",
)


def carried(attrs: Mapping) -> dict:
    """The `CARRIED` attrs of `attrs` that it has."""
    return {k: attrs[k] for k in CARRIED if k in attrs}


def history(attrs: Mapping, line: str) -> str:
    """``attrs["history"]`` with `line` appended."""
    previous = attrs.get("history", "")
    return f"{previous}\n{line}" if previous else line


def add_history(attrs: Mapping, line: str) -> dict:
    """A copy of `attrs` with `line` appended to its ``history``."""
    return {**attrs, "history": history(attrs, line)}
