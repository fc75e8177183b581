"""Choosing one spectral window of a file by index or by name (SPICE, EIS).

Names are matched as people type them: exactly, then ignoring case, then as an
unambiguous prefix, then as an unambiguous substring (case and repeated spaces
ignored). Anything else is an `OptionError` that lists the windows.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Sequence

from beamcat.errors import OptionError


def _fold(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().casefold()


def match_window(
    window: int | str,
    names: Sequence[str],
    *,
    where: str,
    aliases: Sequence[Sequence[str]] = (),
) -> int:
    """Index of the window that `window` selects.

    Parameters
    ----------
    window : int or str
        A window index (negative counts from the end) or a name.
    names : sequence of str
        The windows' names, in file order (SPICE EXTNAMEs, EIS line IDs).
    where : str
        The file, for messages.
    aliases : sequence of sequence of str, optional
        Other names each window answers to exactly (EIS ``win02``).

    Returns
    -------
    int
        Index into `names`.

    Raises
    ------
    OptionError
        No window or several windows match, or the index is out of range; the
        message lists the windows.

    Examples
    --------
    >>> match_window("fe xii 192", ["Fe XII 186.750", "Fe XII 192.410"], where="f.h5")
    1
    >>> match_window(-1, ["WINDOW0_70.51", "WINDOW1_76.65"], where="f.fits")
    1
    """
    listing = ", ".join(f"{i}: {n!r}" for i, n in enumerate(names))
    if not isinstance(window, str):
        try:
            index = None if isinstance(window, bool) else operator.index(window)
        except TypeError:  # float, None ...: neither an index nor a name
            index = None
        if index is None:
            raise OptionError(
                f"{where}: window={window!r}: expected a window index or name; the windows "
                f"are {listing}"
            )
        window = index
        if not -len(names) <= window < len(names):
            raise OptionError(
                f"{where}: window index {window} out of range; the file has {len(names)} "
                f"windows: {listing}"
            )
        return window % len(names)
    for index, name in enumerate(names):
        if window == name or window in (aliases[index] if aliases else ()):
            return index
    wanted = _fold(window)
    tests = (
        lambda n: n == wanted,
        lambda n: n.startswith(wanted),
        lambda n: wanted in n,
    )
    for test in tests:
        found = [i for i, n in enumerate(names) if test(_fold(n))]
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            several = ", ".join(repr(names[i]) for i in found)
            raise OptionError(
                f"{where}: window {window!r} matches {len(found)} windows ({several}); "
                f"give more of the name or an index: {listing}"
            )
    raise OptionError(f"{where}: no window {window!r}; the windows are {listing}")
