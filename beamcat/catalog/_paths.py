"""Turn a user's source (file, folder, glob, list) into an ordered list of files.

Also the files options name: `existing_file`, and `poni_attrs` for ``poni=``.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from beamcat.errors import OptionError, SourceNotFoundError

_GLOB_CHARS = re.compile(r"[*?\[]")


def _natural_key(path: Path) -> list:
    """Sort key so that frame_2 comes before frame_10."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name)]


def expand_source(
    source: str | os.PathLike | Iterable[str | os.PathLike],
    *,
    suffixes: tuple[str, ...] = (),
) -> list[Path]:
    """Resolve `source` into an ordered, non-empty list of existing files.

    Parameters
    ----------
    source : path, glob pattern, folder, or list of those
        A folder contributes its files whose suffix is in `suffixes`
        (case-insensitive; every file when `suffixes` is empty).
    suffixes : tuple of str
        Accepted suffixes such as ``(".tif", ".tiff")``.

    Returns
    -------
    list of Path
        Files in natural (numeric-aware) order within each source item.

    Raises
    ------
    SourceNotFoundError
        When a path does not exist or a glob/folder matches no file.
    """
    if isinstance(source, str | os.PathLike):
        items = [source]
    else:
        items = list(source)
        if not items:
            raise SourceNotFoundError("empty list of sources: expected at least one file")
    files: list[Path] = []
    for item in items:
        text = os.fspath(item)
        if _GLOB_CHARS.search(text) and not Path(text).exists():
            matches = [Path(m) for m in glob.glob(text) if Path(m).is_file()]
            if not matches:
                raise SourceNotFoundError(f"{text}: glob pattern matches no file")
            files.extend(sorted(matches, key=_natural_key))
            continue
        path = Path(text).expanduser()
        if path.is_dir():
            with os.scandir(path) as entries:  # DirEntry.is_file needs no stat per file
                found = [
                    path / e.name
                    for e in entries
                    if not e.name.startswith(".")
                    and (not suffixes or _has_suffix(e.name, suffixes))
                    and e.is_file()
                ]
            if not found:
                wanted = ", ".join(suffixes) or "any"
                raise SourceNotFoundError(f"{path}: folder holds no files ({wanted})")
            files.extend(sorted(found, key=_natural_key))
        elif path.is_file():
            files.append(path)
        else:
            raise SourceNotFoundError(f"{path}: no such file or folder")
    return files


def _has_suffix(name: str, suffixes: tuple[str, ...]) -> bool:
    return name.lower().endswith(tuple(s.lower() for s in suffixes))


def existing_file(path: str | os.PathLike, *, what: str, owner: str) -> Path:
    """`path` as an absolute path to an existing file.

    Parameters
    ----------
    path : path-like
        A file an option names (``poni=``); ``file://`` URLs (Intake's
        ``{CATALOG_DIR}``) are paths too.
    what : str
        What the file is, for the message (``"PONI file"``).
    owner : str
        Who asked for it, for the message (the source, or a catalog entry).

    Raises
    ------
    OptionError
        `path` is not a path.
    SourceNotFoundError
        No such file.

    Examples
    --------
    >>> existing_file(__file__, what="module", owner="doctest").is_absolute()
    True
    """
    if not isinstance(path, str | os.PathLike):
        raise OptionError(f"{owner}: {what} must be a path, got {path!r}")
    found = Path(os.fspath(path).removeprefix("file://")).expanduser()
    if not found.is_file():
        raise SourceNotFoundError(f"{owner}: {what} {found} not found")
    return found.resolve()


def poni_attrs(poni, poni_flip, owner: str = "poni=") -> dict[str, Any]:
    """The attrs of the ``poni=`` and ``poni_flip=`` options: the PONI checked, not parsed.

    The catalog layer only finds the file (parsing is
    `beamcat.analyses.geometry`'s), so a missing PONI fails at open time with
    the source named, not later inside an analysis.

    Parameters
    ----------
    poni : path, optional
    poni_flip : bool
    owner : str
        Who asked (the source), for messages.

    Returns
    -------
    dict
        ``{"poni": absolute path str, "poni_flip": 0 or 1}``, or ``{}`` without `poni`.

    Raises
    ------
    SourceNotFoundError
        `poni` names no file.
    OptionError
        `poni_flip` is not a bool (or 0/1), or is set without `poni`.

    Examples
    --------
    >>> poni_attrs(None, False)
    {}
    """
    if poni_flip not in (True, False):  # 0 and 1 too, not "no" or 2
        raise OptionError(f"{owner}: poni_flip must be true or false, got {poni_flip!r}")
    if poni is None:
        if poni_flip:
            raise OptionError(f"{owner}: poni_flip=True needs the PONI file: pass poni=PATH too")
        return {}
    path = existing_file(poni, what="PONI file (poni=)", owner=owner)
    return {"poni": str(path), "poni_flip": int(bool(poni_flip))}
