"""Which catalog entries go together for a radiography run: its dark, flat and logs.

A radiography run (a stack of frames) is calibrated with a dark and a flat
(open-beam) stack of the same detector shape, and read beside the run's
mass-spectrometer and temperature logs. Catalogs say so only through names and
metadata: darks and flats are stacks whose name or description says "dark",
"flat" or "open beam"; entries of one run share the ``run`` metadata or the
name prefix (``imat_`` of ``imat_run``). The radiography page and the CLI guess
the same way, here.

Entries are described by `EntryInfo` (format, metadata, dims and shape of the
signal); `describe` makes them from a catalog by opening each entry lazily
(headers only), the page from the summaries it already has.

Examples
--------
>>> import beamcat
>>> entries = describe(beamcat.open_catalog())
>>> calibratable_runs(entries)
['imat_run']
>>> default_entries(entries)["dark"], default_entries(entries)["flat"]
('imat_dark', 'imat_flat')
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from beamcat.analyses._frames import pick
from beamcat.catalog.build import describe_entries

#: words in an entry's name or description that mark its role
ROLE_WORDS = {"dark": ("dark",), "flat": ("flat", "open beam", "open-beam", "openbeam")}
#: log kind -> catalog format of the logs read beside a run
LOG_FORMATS = {"massspec": "massspec-csv", "temperature": "temperature-log"}


class EntryInfo(NamedTuple):
    """What the guessing reads of one catalog entry.

    Attributes
    ----------
    format : str
        The entry's beamcat format (``"tiff"``, ``"massspec-csv"``...).
    metadata : mapping
        The entry's catalog metadata (``run``, ``description``...).
    dims, shape : tuple
        Dims and shape of the entry's signal; empty when it cannot be opened.
    """

    format: str
    metadata: Mapping[str, Any]
    dims: tuple[str, ...] = ()
    shape: tuple[int, ...] = ()


def entry_info(row: Mapping[str, Any], read: Callable[[], Any]) -> EntryInfo:
    """`EntryInfo` of a catalog row (`describe_entries`) whose Dataset `read()` opens lazily.

    An entry that cannot be opened gets empty dims and shape (it is never
    offered as a run, a dark or a flat).
    """
    try:
        signal = pick(read())
        dims, shape = tuple(map(str, signal.dims)), tuple(signal.shape)
    except Exception:  # noqa: BLE001 - any reader failure: the entry is no candidate
        dims, shape = (), ()
    return EntryInfo(row["format"], row["metadata"], dims, shape)


def describe(catalog) -> dict[str, EntryInfo]:
    """`EntryInfo` of every entry of an (Intake) catalog, opening each lazily (headers only)."""
    return {
        row["name"]: entry_info(row, catalog[row["name"]].read) for row in describe_entries(catalog)
    }


def image_stacks(entries: Mapping[str, EntryInfo]) -> list[str]:
    """Entries whose signal is a stack of frames ``(frame or time, y, x)``."""
    return [n for n, e in entries.items() if len(e.dims) == 3 and e.dims[1:] == ("y", "x")]


def role(entries: Mapping[str, EntryInfo], name: str) -> str | None:
    """``"dark"``, ``"flat"`` or None (a run), from the entry's name and description."""
    text = f"{name} {entries[name].metadata.get('description', '')}".lower()
    return next((r for r, words in ROLE_WORDS.items() if any(w in text for w in words)), None)


def affinity(entries: Mapping[str, EntryInfo], name: str, run: str | None) -> int:
    """How surely `name` belongs to `run`: same ``run`` metadata (2), same name prefix (1)."""
    if run is None:
        return 0
    mine, theirs = entries[name].metadata.get("run"), entries[run].metadata.get("run")
    same_run = mine not in (None, "") and mine == theirs
    return 2 * same_run + (name.split("_")[0] == run.split("_")[0])


def _closest(entries: Mapping[str, EntryInfo], names: list[str], run: str | None) -> str | None:
    """The entry of `names` closest to `run` (first by name among equals); None if none."""
    if not names:
        return None
    return max(names, key=lambda n: (affinity(entries, n, run), [-ord(c) for c in n]))


def _by_role(entries: Mapping[str, EntryInfo]) -> dict[str | None, list[str]]:
    stacks = image_stacks(entries)
    return {r: [n for n in stacks if role(entries, n) == r] for r in (*ROLE_WORDS, None)}


def calibratable_runs(entries: Mapping[str, EntryInfo]) -> list[str]:
    """Runs that can be calibrated: stacks with a dark and a flat of their own.

    A run's own dark (flat) is a dark (flat) stack that shares its ``run``
    metadata or name prefix and has frames of the run's ``(y, x)`` shape.
    """
    by_role = _by_role(entries)

    def has_own(run: str, kind: str) -> bool:
        return any(
            affinity(entries, c, run) and entries[c].shape[1:] == entries[run].shape[1:]
            for c in by_role[kind]
        )

    return [n for n in by_role[None] if all(has_own(n, kind) for kind in ROLE_WORDS)]


def default_entries(
    entries: Mapping[str, EntryInfo], *, run: str | None = None
) -> dict[str, str | None]:
    """Default run, dark, flat, mass-spec and temperature entries.

    Darks and flats are the stacks whose name or description says so ("dark",
    "flat", "open beam"); logs are entries of the mass-spec and temperature-log
    formats. Among candidates, the one sharing the run's ``run`` metadata, then
    its name prefix (``imat_`` of ``imat_run``), wins. Without a `run`, the first
    calibratable run (`calibratable_runs`) is the run, else the first stack that
    is neither a dark nor a flat.

    Returns
    -------
    dict
        Keys ``run``, ``dark``, ``flat``, ``massspec``, ``temperature``; None
        where the catalog has no candidate.
    """
    by_role = _by_role(entries)
    if run is None:
        run = (calibratable_runs(entries) or by_role[None] or [None])[0]
    out: dict[str, str | None] = {"run": run}
    out |= {r: _closest(entries, by_role[r], run) for r in ROLE_WORDS}
    for key, fmt in LOG_FORMATS.items():
        logs = [n for n, e in entries.items() if e.format == fmt]
        out[key] = _closest(entries, logs, run)
    return out
