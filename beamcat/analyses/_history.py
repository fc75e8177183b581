"""Provenance of analysis results: one ``attrs["history"]`` line per step."""

from __future__ import annotations

from collections.abc import Mapping


def history(attrs: Mapping, line: str) -> str:
    """``attrs["history"]`` with `line` appended."""
    previous = attrs.get("history", "")
    return f"{previous}\n{line}" if previous else line


def add_history(attrs: Mapping, line: str) -> dict:
    """A copy of `attrs` with `line` appended to its ``history``."""
    return {**attrs, "history": history(attrs, line)}
