"""Intake 2 datatypes and readers, one pair per beamcat format.

Registered through the ``intake.imports`` entry point, so that after
``import intake`` the readers are known to ``intake.readers.datatypes.recommend``
and a catalog can name them. Each reader calls the same opener as
`beamcat.open_dataset`.
"""

from __future__ import annotations

from intake.readers.datatypes import FileData
from intake.readers.readers import BaseReader


class BeamcatData(FileData):
    """A file, folder, glob or list of files in one of beamcat's formats."""

    format: str = ""
    structure = {"array"}

    def __init__(self, url, storage_options=None, metadata=None):
        if storage_options:
            raise NotImplementedError("beamcat reads local files only; storage_options unsupported")
        super().__init__(url, metadata=metadata)


class TIFFStack(BeamcatData):
    """TIFF frames: one multi-page file, a folder or a glob -> (frame, y, x)."""

    format = "tiff"
    filepattern = "tiff?$"
    magic = {b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"}


class FITSStack(BeamcatData):
    """FITS camera images, one or many files -> (frame, y, x)."""

    format = "fits"
    filepattern = "fits?$|fts$"


class SPICEL2(BeamcatData):
    """Solar Orbiter SPICE level-2 FITS: one spectral window -> (time, wavelength, y, x)."""

    format = "spice"
    filepattern = "solo_L2_spice.*fits$"


class MerlinMIB(BeamcatData):
    """Quantum Detectors Merlin MIB -> (frame, y, x) or (scan_y, scan_x, y, x)."""

    format = "mib"
    filepattern = "mib$"
    magic = {b"MQ1,"}


class DetectorHDF5(BeamcatData):
    """An HDF5 dataset path, or the NeXus default signal -> (frame, y, x)."""

    format = "hdf5"
    filepattern = "(h5|hdf5?|nxs|nx5)$"
    magic = {b"\x89HDF"}
    structure = {"array", "hierarchy"}


class CBORStream(BeamcatData):
    """A recorded detector (and motor) stream, CBOR sequences -> (frame, y, x)."""

    format = "cbor-stream"
    filepattern = r"cbors?(\.gz)?$"


class MassSpecCSV(BeamcatData):
    """Hiden RGA mass-spectrometer CSV export -> (time,)."""

    format = "massspec-csv"
    structure = {"table", "timeseries"}


class TemperatureLog(BeamcatData):
    """ISIS JournalViewer temperature log export -> (time,)."""

    format = "temperature-log"
    structure = {"table", "timeseries"}


class IMATFrameLog(BeamcatData):
    """IMAT frame log (time, type, count, monbefore, monafter) -> (time,)."""

    format = "imat-log"
    structure = {"table", "timeseries"}


class ZarrStore(BeamcatData):
    """A Zarr store folder of derived results (`beamcat.analyses.tables.to_zarr`)."""

    format = "zarr"
    filepattern = "zarr/?$"
    structure = {"array", "hierarchy"}


class PhotonList(BeamcatData):
    """An HDF5 photon list in drp-femtomax's layout (``hits/hits_xye``) -> (event,)."""

    format = "photon-list"
    filepattern = r"_integrated\.h5$"
    structure = {"table"}


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


DATATYPES: dict[str, type[BeamcatData]] = {
    cls.format: cls
    for cls in (
        TIFFStack,
        FITSStack,
        SPICEL2,
        MerlinMIB,
        DetectorHDF5,
        CBORStream,
        MassSpecCSV,
        TemperatureLog,
        IMATFrameLog,
        ZarrStore,
        PhotonList,
    )
}


def _reader_class(datatype: type[BeamcatData]) -> type[BeamcatReader]:
    name = datatype.__name__ + "Reader"
    doc = f"Read {datatype.__doc__[0].lower()}{datatype.__doc__[1:]}"
    cls = type(name, (BeamcatReader,), {"implements": {datatype}, "__doc__": doc})
    cls.__module__ = __name__
    return cls


# One reader per format so intake can recommend the right one for a datatype;
# they differ only in what they implement.
READERS: dict[str, type[BeamcatReader]] = {f: _reader_class(d) for f, d in DATATYPES.items()}
globals().update({cls.__name__: cls for cls in READERS.values()})
