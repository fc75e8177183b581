"""Intake 2 datatypes and readers, one pair per beamcat format, generated from the registry.

`beamcat.catalog.formats.REGISTRY` names each format's datatype class
(``TIFFStack``, ``MerlinMIB`` ...) and reader (the same name + ``Reader``); both
are module attributes here so that catalogs can name them. Registered through
the ``intake.imports`` entry point, so that after ``import intake`` the readers
are known to ``intake.readers.datatypes.recommend``. Each reader calls
`beamcat.open_dataset` with its datatype's format.
"""

from __future__ import annotations

from intake.readers.datatypes import FileData
from intake.readers.readers import BaseReader

from beamcat.catalog.formats import REGISTRY, Format


class BeamcatData(FileData):
    """A file, folder, glob or list of files in one of beamcat's formats."""

    format: str = ""
    structure = {"array"}

    def __init__(self, url, storage_options=None, metadata=None):
        if storage_options:
            raise NotImplementedError("beamcat reads local files only; storage_options unsupported")
        super().__init__(url, metadata=metadata)


def _datatype_class(fmt: Format) -> type[BeamcatData]:
    """The Intake datatype of a registry entry (a `BeamcatData` subclass named `fmt.datatype`)."""
    namespace = {
        "format": fmt.name,
        "structure": set(fmt.structure),
        "__doc__": fmt.doc,
        "__module__": __name__,
    }
    if fmt.filepattern is not None:
        namespace["filepattern"] = fmt.filepattern
    if fmt.magic:
        namespace["magic"] = set(fmt.magic)
    return type(fmt.datatype, (BeamcatData,), namespace)


class BeamcatReader(BaseReader):
    """Open a beamcat source as a labelled, lazily backed xarray.Dataset."""

    imports = {"xarray", "beamcat"}
    output_instance = "xarray:Dataset"
    func = "beamcat:open_dataset"

    def _read(self, data, **options):
        from beamcat.catalog.formats import open_dataset

        options = {k: _local(v) for k, v in options.items()}
        return open_dataset(_local(data.url), format=data.format, **options)


def _local(value):
    """Intake expands ``{CATALOG_DIR}`` to a ``file://`` URL; beamcat's openers take paths.

    Applies to the source and to path-valued options such as ``frame_log``.
    """
    if isinstance(value, list | tuple):
        return [_local(v) for v in value]
    if isinstance(value, str):
        return value.removeprefix("file://")
    return value


#: format name -> its Intake datatype, one per registry entry
DATATYPES: dict[str, type[BeamcatData]] = {f.name: _datatype_class(f) for f in REGISTRY}


def _reader_class(datatype: type[BeamcatData]) -> type[BeamcatReader]:
    name = datatype.__name__ + "Reader"
    doc = f"Read {datatype.__doc__[0].lower()}{datatype.__doc__[1:]}"
    cls = type(name, (BeamcatReader,), {"implements": {datatype}, "__doc__": doc})
    cls.__module__ = __name__
    return cls


# One reader per format so intake can recommend the right one for a datatype;
# they differ only in what they implement.
READERS: dict[str, type[BeamcatReader]] = {f: _reader_class(d) for f, d in DATATYPES.items()}
globals().update({cls.__name__: cls for cls in DATATYPES.values()})
globals().update({cls.__name__: cls for cls in READERS.values()})
