"""Turn a user's source (file, folder, glob, list) into an ordered list of files."""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Iterable
from pathlib import Path

from beamcat.errors import SourceNotFoundError

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
