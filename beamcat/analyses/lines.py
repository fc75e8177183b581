"""EUV line catalog: rest wavelengths, ions and spectral windows (SAFFRON's JSON layout).

The bundled catalog (`LineCatalog.default`, file ``spice_lines.json`` beside
this module) is SAFFRON's ``saffron/line_catalog/SPICE_SpecLines.json``
(slimguat/SAFFRON @90de426, MIT licence, (c) the SAFFRON authors) with one
change: SAFFRON names two lines ``ne_vi_1`` (1005.79 and 1010.29 Angstrom),
so a lookup by name only ever finds the first; the copy calls the second
``ne_vi_2`` (in its line list and in the one window that lists it).

Layout (SAFFRON's, read and written by `LineCatalog.load` / `LineCatalog.save`)::

    {"LINES": [{"name": "o_iii_1", "wvl": 702.70}, ...],
     "SPECTRAL_WINDOWS_CATALOGUE": [{"lines": ["o_iii_1", "o_iii_2"],
                                     "max_line": "o_iii_2"}, ...]}

``wvl`` is the rest wavelength in Angstrom; ``max_line`` the window's brightest
line. Ion names come from the line names, CHIANTI style: ``o_iii_1`` ->
``"O III"``, ``h_i_be`` -> ``"H I"``; a line entry may carry its own ``"ion"``
(written only when it differs from the derived one). SAFFRON's ``"Deleted"``
list and any other top-level keys are kept as they are.

Examples
--------
>>> catalog = LineCatalog.default()
>>> catalog.ion("o_iii_1"), catalog.rest_wavelength("o_iii_1")
('O III', 702.7)
>>> catalog.lines_in(701.6, 707.4)
{'o_iii_1': 702.7, 'o_iii_2': 703.87, 'mg_ix_1': 706.02}
>>> catalog.add_line("fe_xii_192", 192.394)
>>> catalog.ion("fe_xii_192")
'Fe XII'
"""

from __future__ import annotations

import copy
import json
import os
import re
import warnings
from collections.abc import Iterable
from pathlib import Path

from beamcat._util import atomic_open
from beamcat.errors import BeamcatWarning, FormatError, OptionError, SourceNotFoundError

BUNDLED = Path(__file__).with_name("spice_lines.json")
_ROMAN = re.compile(r"^[ivxl]+$")


def ion_name(line: str) -> str:
    """The ion of a line named CHIANTI style (``"ne_viii_1"`` -> ``"Ne VIII"``).

    A name that is not element_roman[_suffix] (SAFFRON's ``"ghost"``) is its own ion.

    >>> ion_name("ne_viii_1"), ion_name("h_i_ga"), ion_name("ghost")
    ('Ne VIII', 'H I', 'ghost')
    """
    parts = line.split("_")
    if len(parts) >= 2 and parts[0].isalpha() and len(parts[0]) <= 2 and _ROMAN.match(parts[1]):
        return f"{parts[0].capitalize()} {parts[1].upper()}"
    return line


class LineCatalog:
    """Lines (name -> ion, rest wavelength in Angstrom) and spectral windows.

    Parameters
    ----------
    lines : dict
        ``name -> {"ion": str, "wavelength": float}`` (Angstrom).
    windows : list of dict
        ``{"lines": [names], "max_line": name}``, SAFFRON's window catalogue.
    extra : dict, optional
        Other top-level keys of the JSON file (SAFFRON's ``"Deleted"``), kept on save.
    source : str, optional
        Where the catalog was read from (named in error messages).
    """

    def __init__(
        self,
        lines: dict[str, dict] | None = None,
        windows: list[dict] | None = None,
        *,
        extra: dict | None = None,
        source: str = "<memory>",
    ):
        self.lines: dict[str, dict] = {}
        self.windows: list[dict] = []
        self.extra = dict(extra or {})
        self.source = source
        for name, entry in (lines or {}).items():
            self.add_line(name, entry["wavelength"], ion=entry.get("ion"))
        for window in windows or []:
            self.add_window(window["lines"], window.get("max_line"))

    def __repr__(self) -> str:
        return f"<LineCatalog {len(self.lines)} lines, {len(self.windows)} windows ({self.source})>"

    # --- reading and writing ------------------------------------------------------------

    @classmethod
    def default(cls) -> LineCatalog:
        """The bundled catalog (SAFFRON's SPICE lines and windows); a fresh copy each call."""
        return cls.load(BUNDLED)

    @classmethod
    def load(cls, path: str | os.PathLike) -> LineCatalog:
        """Read a catalog in SAFFRON's JSON layout.

        Raises
        ------
        FormatError
            The file is not JSON, or a key is missing (``LINES``, an entry's
            ``name``/``wvl``, a window's ``lines``), or a window names a line
            that is not in ``LINES``.
        SourceNotFoundError
            No such file.

        Warns
        -----
        BeamcatWarning
            A line name repeats: the first entry is kept, as SAFFRON's lookup does.
        """
        path = Path(path)
        where = str(path)
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise SourceNotFoundError(f"line catalog {where}: no such file") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise FormatError(f"line catalog {where}: not JSON ({error})") from None
        if not isinstance(data, dict) or "LINES" not in data:
            raise FormatError(f"line catalog {where}: missing key 'LINES' (SAFFRON's layout)")
        catalog = cls(source=where)
        for i, entry in enumerate(data["LINES"]):
            for key in ("name", "wvl"):
                if not isinstance(entry, dict) or key not in entry:
                    raise FormatError(f"line catalog {where}: LINES[{i}] missing key {key!r}")
            if entry["name"] in catalog.lines:
                warnings.warn(
                    f"line catalog {where}: line {entry['name']!r} repeats (LINES[{i}], "
                    f"{entry['wvl']} A); the first ({catalog.rest_wavelength(entry['name'])} A) "
                    "is kept",
                    BeamcatWarning,
                    stacklevel=2,
                )
                continue
            catalog.add_line(entry["name"], entry["wvl"], ion=entry.get("ion"))
        for i, window in enumerate(data.get("SPECTRAL_WINDOWS_CATALOGUE", [])):
            if not isinstance(window, dict) or "lines" not in window:
                raise FormatError(
                    f"line catalog {where}: SPECTRAL_WINDOWS_CATALOGUE[{i}] missing key 'lines'"
                )
            unknown = [name for name in window["lines"] if name not in catalog.lines]
            if unknown:
                raise FormatError(
                    f"line catalog {where}: SPECTRAL_WINDOWS_CATALOGUE[{i}] names lines "
                    f"{unknown} that are not in LINES"
                )
            # SAFFRON's windows may list a line twice; a window is a set of lines
            catalog.windows.append(
                {
                    "lines": list(dict.fromkeys(window["lines"])),
                    "max_line": window.get("max_line", window["lines"][0]),
                }
            )
        catalog.extra = {
            k: v for k, v in data.items() if k not in ("LINES", "SPECTRAL_WINDOWS_CATALOGUE")
        }
        return catalog

    def save(self, path: str | os.PathLike) -> Path:
        """Write the catalog in SAFFRON's JSON layout (atomically); return the path."""
        path = Path(path)
        lines = []
        for name, entry in sorted(self.lines.items(), key=lambda item: item[1]["wavelength"]):
            row = {"name": name, "wvl": entry["wavelength"]}
            if entry["ion"] != ion_name(name):
                row["ion"] = entry["ion"]
            lines.append(row)
        data = {"LINES": lines, "SPECTRAL_WINDOWS_CATALOGUE": self.windows, **self.extra}
        with atomic_open(path, "w") as f:
            json.dump(data, f, indent=1)
            f.write("\n")
        return path

    def copy(self) -> LineCatalog:
        """An independent copy."""
        return copy.deepcopy(self)

    # --- lines --------------------------------------------------------------------------

    def add_line(self, name: str, wavelength: float, *, ion: str | None = None) -> None:
        """Add a line: `wavelength` its rest wavelength in Angstrom, `ion` derived if None.

        Raises `OptionError` if the name is taken or the wavelength is not a positive number.
        """
        if name in self.lines:
            raise OptionError(
                f"line catalog {self.source}: line {name!r} exists "
                f"({self.lines[name]['wavelength']} A); remove it first to replace it"
            )
        try:
            value = float(wavelength)
        except (TypeError, ValueError):
            value = float("nan")
        if not value > 0:
            raise OptionError(
                f"line catalog {self.source}: line {name!r}: wavelength {wavelength!r}, "
                "expected a positive number (Angstrom)"
            )
        self.lines[name] = {"ion": ion if ion is not None else ion_name(name), "wavelength": value}

    def remove_line(self, name: str) -> None:
        """Remove a line; `OptionError` if unknown or still in a window (remove those first)."""
        self._check(name)
        inside = [w["lines"] for w in self.windows if name in w["lines"]]
        if inside:
            raise OptionError(
                f"line catalog {self.source}: line {name!r} is in windows {inside}; "
                "remove those windows first"
            )
        del self.lines[name]

    def rest_wavelength(self, name: str) -> float:
        """Rest wavelength of a line, Angstrom (`OptionError` naming it if unknown)."""
        return self._check(name)["wavelength"]

    def ion(self, name: str) -> str:
        """Ion of a line (``"O III"``)."""
        return self._check(name)["ion"]

    def lines_in(self, lo: float, hi: float) -> dict[str, float]:
        """Lines with ``lo <= rest wavelength <= hi`` (Angstrom): name -> wavelength, ascending.

        The mapping is what `beamcat.analyses.linefit.line_model` takes as `lines`.
        """
        lo, hi = sorted((float(lo), float(hi)))
        inside = {n: e["wavelength"] for n, e in self.lines.items() if lo <= e["wavelength"] <= hi}
        return dict(sorted(inside.items(), key=lambda item: item[1]))

    def _check(self, name: str) -> dict:
        try:
            return self.lines[name]
        except KeyError:
            raise OptionError(
                f"line catalog {self.source}: no line {name!r}; known: {sorted(self.lines)}"
            ) from None

    # --- windows ------------------------------------------------------------------------

    def add_window(self, lines: Iterable[str], max_line: str | None = None) -> None:
        """Add a window of catalog lines; `max_line` (its brightest line) defaults to the first.

        Raises `OptionError` for an unknown line, a `max_line` not among `lines`, or a
        window with the same set of lines.
        """
        lines = list(dict.fromkeys(lines))
        for name in lines:
            self._check(name)
        max_line = lines[0] if max_line is None and lines else max_line
        if max_line not in lines:
            raise OptionError(
                f"line catalog {self.source}: max_line {max_line!r} is not one of {lines}"
            )
        if self._window_index(lines) is not None:
            raise OptionError(f"line catalog {self.source}: a window with lines {lines} exists")
        self.windows.append({"lines": lines, "max_line": max_line})

    def remove_window(self, lines: Iterable[str]) -> None:
        """Remove the window with exactly this set of lines (`OptionError` if none)."""
        lines = list(lines)
        index = self._window_index(lines)
        if index is None:
            raise OptionError(f"line catalog {self.source}: no window with lines {lines}")
        del self.windows[index]

    def _window_index(self, lines: Iterable[str]) -> int | None:
        wanted = set(lines)
        return next((i for i, w in enumerate(self.windows) if set(w["lines"]) == wanted), None)
