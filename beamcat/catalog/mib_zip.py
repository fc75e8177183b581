"""Which MIB files a source names: ``.mib`` and ``.hdr`` paths, and ``.zip`` archives of them.

Merlin acquisitions are often shared zipped (RosettaSciIO ships its test data
so). `mib_files` opens a ``.zip`` without unpacking by hand: the chosen member
(and its ``.hdr`` sidecar) is copied once, through `zipfile`, into a cache
folder keyed by the archive's path, size and modification time, and opened from
there with memory maps like any MIB file. Deflated members cannot be read at an
offset without decompressing everything before it, and opening reads every
frame header anyway, so one sequential pass is the cheapest way in; stored
members go the same way for one code path. Later opens reuse the copy.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import re
import shutil
import zipfile
import zlib
from collections.abc import Iterable
from pathlib import Path

from beamcat._util import atomic_path
from beamcat.catalog._paths import _natural_key, expand_source
from beamcat.errors import FormatError, OptionError, SourceNotFoundError

#: environment variable naming the folder for members copied out of archives
CACHE_ENV = "BEAMCAT_CACHE_DIR"


def mib_files(
    source: str | os.PathLike | Iterable[str | os.PathLike], *, member: str | None = None
) -> tuple[list[Path], dict]:
    """The MIB files of `source`, and attrs that say where they came from.

    Parameters
    ----------
    source : path, glob, folder or list
        ``.mib`` files; a ``.hdr`` path stands for its ``.mib``; a ``.zip``
        archive stands for the members `member` selects.
    member : str, optional
        For a ``.zip``: a member's name, base name or a glob pattern
        (``"*_6bit.mib"``) over them; may be omitted when the archive holds
        one ``.mib``.

    Returns
    -------
    files : list of Path
        Existing MIB files, in order.
    attrs : dict
        ``{}`` for plain files; for an archive ``source`` (the ``.zip``),
        ``member`` (the member names) and ``extracted_to``.

    Raises
    ------
    SourceNotFoundError
        A ``.hdr`` whose ``.mib`` is missing (the message says if an archive
        beside it holds the acquisition).
    OptionError
        An archive holding several acquisitions and no `member`, or a
        `member` matching none; the message lists the members. `member`
        given for plain files.
    FormatError
        A ``.zip`` that is not a readable archive.
    """
    files = expand_source(source, suffixes=(".mib",))  # a folder: its .mib files
    archives = [f for f in files if f.suffix.lower() == ".zip"]
    if archives:
        if len(files) != 1:
            raise OptionError(
                f"{archives[0]}: a .zip opens on its own, not with other files; "
                "open one archive (with member=) at a time"
            )
        return _from_archive(archives[0], member)
    if member is not None:
        raise OptionError(f"{files[0]}: member={member!r} applies to a .zip archive only")
    mibs = []
    for f in files:
        if f.suffix.lower() == ".hdr":  # a .hdr sidecar names its acquisition, as in LiberTEM
            mib = f.with_suffix(".mib")
            if not mib.is_file():
                raise SourceNotFoundError(f"{f}: its acquisition {mib.name} is missing{_hint(f)}")
            f = mib
        mibs.append(f)
    return mibs, {}


def _hint(hdr: Path) -> str:
    for archive in sorted(hdr.parent.parent.glob("*.zip")) + sorted(hdr.parent.glob("*.zip")):
        try:
            with zipfile.ZipFile(archive) as zf:
                names = zf.namelist()
        except (zipfile.BadZipFile, OSError):
            continue
        wanted = hdr.with_suffix(".mib").name
        if any(Path(n).name == wanted for n in names):
            return f"; {archive} holds it: open_dataset({str(archive)!r}, member={wanted!r})"
    return ""


def _from_archive(archive: Path, member: str | None) -> tuple[list[Path], dict]:
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as err:
        raise FormatError(f"{archive}: not a readable zip archive ({err})") from None
    with zf:
        infos = {i.filename: i for i in zf.infolist() if not i.is_dir()}
        mibs = sorted(
            (n for n in infos if n.lower().endswith(".mib")), key=lambda n: _natural_key(Path(n))
        )
        if not mibs:
            raise FormatError(f"{archive}: the archive holds no .mib file")
        chosen = _choose(archive, mibs, member)
        folder = _cache_folder(archive)
        paths = [_extract(zf, infos[name], folder) for name in chosen]
        for name in chosen:
            sidecar = re.sub(r"\.mib$", ".hdr", name, flags=re.IGNORECASE)
            if sidecar in infos:
                _extract(zf, infos[sidecar], folder)
    return paths, {
        "source": str(archive),
        "member": chosen[0] if len(chosen) == 1 else chosen,
        "extracted_to": str(folder),
    }


def _choose(archive: Path, mibs: list[str], member: str | None) -> list[str]:
    listing = ", ".join(mibs[:12]) + (f" ... ({len(mibs)} in all)" if len(mibs) > 12 else "")
    if member is None:
        if len(mibs) == 1:
            return mibs
        raise OptionError(
            f"{archive}: the archive holds {len(mibs)} MIB files: {listing}; pass member= "
            "with one of them (or a pattern such as '*.mib' for the frames of one "
            "acquisition written one file per frame)"
        )
    found = [n for n in mibs if fnmatch.fnmatchcase(n, member) or Path(n).name == member]
    found = found or [n for n in mibs if fnmatch.fnmatchcase(Path(n).name, member)]
    if not found:
        raise OptionError(f"{archive}: member={member!r} matches no .mib in it: {listing}")
    return found


def _cache_folder(archive: Path) -> Path:
    stat = archive.stat()
    key = f"{archive.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    root = os.environ.get(CACHE_ENV)
    if root is None:
        import platformdirs

        root = platformdirs.user_cache_dir("beamcat")
    return Path(root) / "zip" / f"{archive.stem}-{digest}"


def _extract(zf: zipfile.ZipFile, info: zipfile.ZipInfo, folder: Path) -> Path:
    """Copy one member into `folder` (atomically), unless a whole copy is already there."""
    target = folder / Path(info.filename).name
    if target.is_file() and target.stat().st_size == info.file_size:
        return target
    folder.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_path(target) as tmp, zf.open(info) as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst, 16 * 2**20)
    except (zipfile.BadZipFile, zlib.error, EOFError) as err:
        raise FormatError(
            f"{zf.filename}: member {info.filename} cannot be read ({err}); the archive is "
            "damaged: unpack what is whole by hand or fetch it again"
        ) from None
    return target
