"""Build, save and open beamcat's Intake 2 catalogs.

A catalog file is YAML that Intake turns into readers; Intake templates such as
``{func(module:object)}``, ``{import(...)}``, ``{pickle64(...)}`` or ``{env(...)}``
and reader/datatype class names outside beamcat make it run arbitrary code or
read the environment. `load_catalog` (and `beamcat.catalog.catalogs.open_catalog`)
refuses those unless ``trusted=True``. Opening the demo catalog is
`beamcat.catalog.catalogs.open_catalog`'s: the demo writes its catalog with
`add_source`, so this module does not import it.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from beamcat._util import atomic_open
from beamcat.catalog._calibration import calibration_attrs
from beamcat.catalog._paths import poni_attrs
from beamcat.errors import CatalogError, UntrustedCatalogError

#: Intake templates that import, unpickle or read the environment
_CODE_TEMPLATE = re.compile(r"\{\s*(func|import|pickle64|env)\s*\(")
_SAFE_CLASS_PREFIXES = ("beamcat.", "intake.readers.datatypes:")

METADATA_KEYS = ("instrument", "sample", "run", "description")


def _read_yaml(path: Path) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except FileNotFoundError:
        from beamcat.errors import SourceNotFoundError

        raise SourceNotFoundError(f"{path}: no such catalog file") from None
    except yaml.YAMLError as err:
        raise CatalogError(f"{path}: not valid YAML ({err})") from None
    if not isinstance(data, dict) or data.get("version") != 2:
        raise CatalogError(f"{path}: not an Intake 2 catalog (expected 'version: 2' at top level)")
    return data


def check_trusted(data: Mapping, path: Path | str) -> None:
    """Raise `UntrustedCatalogError` if a catalog's content can run code.

    Parameters
    ----------
    data : dict
        The catalog as loaded from YAML.
    path : path
        Named in the error message.
    """
    problems = []
    for where, value in _walk(data):
        if isinstance(value, str) and _CODE_TEMPLATE.search(value):
            problems.append(f"{where}: template {value!r}")
        if where.endswith((".reader", ".datatype")) and not value.startswith(_SAFE_CLASS_PREFIXES):
            problems.append(f"{where}: class {value!r} is not one of beamcat's")
    if problems:
        listed = "\n  ".join(problems)
        raise UntrustedCatalogError(
            f"{path}: refusing to open a catalog that can run code or read the environment "
            f"when loaded:\n  {listed}\nOpen it with trusted=True (CLI: --trust) only if you "
            "trust whoever wrote it."
        )


def _walk(value: Any, where: str = "") -> Iterable[tuple[str, Any]]:
    if isinstance(value, Mapping):
        for k, v in value.items():
            yield from _walk(v, f"{where}.{k}" if where else str(k))
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            yield from _walk(v, f"{where}[{i}]")
    else:
        yield where, value


def load_catalog(path: str | os.PathLike, *, trusted: bool = False):
    """Load a catalog file, refusing code-running templates unless `trusted`.

    Returns
    -------
    intake.readers.entry.Catalog
    """
    from intake.readers.entry import Catalog

    path = Path(path).expanduser().resolve()
    data = _read_yaml(path)
    if not trusted:
        check_trusted(data, path)
    try:
        cat = Catalog.from_yaml_file(str(path))
    except Exception as err:  # intake raises bare ValueError/KeyError on malformed entries
        raise CatalogError(f"{path}: malformed catalog ({type(err).__name__}: {err})") from err
    cat.__class__ = _catalog_class()  # from_yaml_file builds a plain Catalog; same state
    return cat


class EntryNotFoundError(CatalogError, KeyError):
    """A catalog has no entry of that name (a `KeyError` too, as Intake expects)."""

    def __str__(self) -> str:  # KeyError would show the message quoted
        return str(self.args[0])


@functools.cache
def _catalog_class() -> type:
    """The catalog class `load_catalog` returns (built on first use: intake loads slowly)."""
    from intake.readers.entry import Catalog

    class BeamcatCatalog(Catalog):
        """An Intake catalog whose missing entries name the entries there are."""

        def __getitem__(self, item):
            try:
                return super().__getitem__(item)
            except KeyError:
                if item in self.aliases or item in self.entries or item in self.data:
                    raise  # a KeyError from inside the reader, not a missing entry
                where = self.user_parameters.get("CATALOG_PATH", "catalog")
                where = getattr(where, "default", where)
                names = ", ".join(sorted(self.aliases)) or "none"
                raise EntryNotFoundError(
                    f"{where}: no entry {item!r}; the entries are: {names}"
                ) from None

    return BeamcatCatalog


def make_reader(
    source: str | os.PathLike | list,
    *,
    format: str | None = None,
    options: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
):
    """An Intake reader for a beamcat source, ready to add to a catalog."""
    from beamcat.catalog.formats import OPENERS, sniff_format
    from beamcat.catalog.intake_readers import DATATYPES, READERS

    if format is None:
        format = sniff_format(source)
    if format not in OPENERS:
        raise CatalogError(f"unknown format {format!r}: expected one of {', '.join(OPENERS)}")
    url = [os.fspath(s) for s in source] if isinstance(source, list) else os.fspath(source)
    data = DATATYPES[format](url)
    return READERS[format](data, metadata=dict(metadata or {}), **dict(options or {}))


def add_source(
    catalog: str | os.PathLike,
    name: str,
    source: str | os.PathLike | list,
    *,
    format: str | None = None,
    options: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
    trusted: bool = False,
    replace: bool = False,
) -> None:
    """Add an entry to a catalog file (or replace one), creating the file if needed.

    Sources inside the catalog's folder, and options naming existing files
    there (such as ``frame_log``), are stored relative to it
    (``{CATALOG_DIR}/...``), so a catalog and its data can move together.
    The file is rewritten atomically.

    Parameters
    ----------
    catalog : path
        The catalog YAML file.
    name : str
        Entry name, e.g. ``"run_0042"``.
    source : path, glob or list of paths
        What the entry opens.
    format : str, optional
        beamcat format; sniffed when not given.
    options : mapping
        Reader options (``scan_shape``, ``path``, ``timezone`` ...), and those
        of every format: ``attrs``, ``poni`` (a PONI file, which must exist),
        ``poni_flip`` and ``calibration`` (a 4D-STEM calibration JSON, which
        must exist and be valid) (`beamcat.catalog.formats.open_dataset`).
    metadata : mapping
        Free metadata; beamcat shows ``instrument``, ``sample``, ``run`` and
        ``description`` in its apps.
    trusted : bool
        Allow a catalog file that can run code (see `open_catalog`).
    replace : bool
        Replace an entry of the same name; without it such an entry is an error,
        so its source and options are never lost by accident.

    Raises
    ------
    CatalogError
        The name is not valid, or is taken and `replace` is False.
    SourceNotFoundError
        The ``poni`` or ``calibration`` option names no file.
    FormatError
        The ``calibration`` JSON lacks keys or values.
    """
    from intake.readers.entry import Catalog

    catalog = Path(catalog).expanduser().resolve()
    if not re.fullmatch(r"[A-Za-z_][\w.-]*", name):
        raise CatalogError(f"{catalog}: entry name {name!r} must be letters, digits, _ . -")
    cat = load_catalog(catalog, trusted=trusted) if catalog.exists() else Catalog()
    if name in cat:
        if not replace:
            raise CatalogError(
                f"{catalog}: already has an entry {name!r}; pass replace=True "
                "(CLI: --replace) to replace it"
            )
        cat.delete(name)
    if format is None:
        from beamcat.catalog.formats import sniff_format

        format = sniff_format(source)
    folder = catalog.parent
    options = dict(options or {})
    # checked now, with the entry named: the file must be there to be stored relative to the catalog
    owner = f"{catalog}: entry {name!r}"
    poni_attrs(options.get("poni"), options.get("poni_flip", False), owner)
    calibration_attrs(options.get("calibration"), owner)
    options = {k: _relative_to(v, folder) if _is_path(v) else v for k, v in options.items()}
    reader = make_reader(
        _relative_to(source, folder), format=format, options=options, metadata=metadata
    )
    token = cat.add_entry(reader)
    cat.give_name(token, name)
    save_catalog(cat, catalog)


def _is_path(value) -> bool:
    return isinstance(value, os.PathLike) or (isinstance(value, str) and Path(value).exists())


def _relative_to(source, folder: Path):
    if isinstance(source, list | tuple):
        return [_relative_to(s, folder) for s in source]
    text = os.fspath(source)
    try:
        rel = Path(text).expanduser().resolve().relative_to(folder)
    except ValueError:
        return str(Path(text).expanduser().absolute()) if not re.match(r"\w+://", text) else text
    return "{CATALOG_DIR}/" + rel.as_posix()


def save_catalog(cat, path: str | os.PathLike) -> None:
    """Write a catalog to YAML atomically (temp file in the same folder, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = cat.to_dict()
    for key in ("CATALOG_DIR", "CATALOG_PATH", "STORAGE_OPTIONS"):
        data.get("user_parameters", {}).pop(key, None)  # set anew on every load
    with atomic_open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(data, f, sort_keys=False)


def describe_entries(cat) -> list[dict[str, Any]]:
    """One row per entry: name, format, source, options and metadata (opens nothing)."""
    rows = []
    for name in sorted(cat):
        entry = cat.entries[cat.aliases[name]] if name in cat.aliases else cat.entries[name]
        kwargs = dict(entry.kwargs)
        data = kwargs.pop("data", None) or (kwargs.pop("args", None) or [None])[0]
        data_desc = cat.data.get(_data_token(data)) if isinstance(data, str) else None
        url = data_desc.kwargs.get("url") if data_desc is not None else getattr(data, "url", None)
        datatype = data_desc.datatype if data_desc is not None else type(data).__name__
        rows.append(
            {
                "name": name,
                "format": _format_of(datatype),
                "source": url,
                "options": kwargs,
                "metadata": dict(entry.metadata or {}),
            }
        )
    return rows


def _data_token(ref: str) -> str:
    m = re.fullmatch(r"\{data\((\w+)\)\}", ref)
    return m.group(1) if m else ref


def _format_of(datatype: str) -> str:
    from beamcat.catalog.intake_readers import DATATYPES

    cls_name = datatype.rsplit(":", 1)[-1].rsplit(".", 1)[-1]
    for fmt, cls in DATATYPES.items():
        if cls.__name__ == cls_name:
            return fmt
    return "?"
