"""The format registry: one entry per format, and what is derived from it.

Adding a format is one `Format` entry in `REGISTRY`: its name, its opener
(``"module:function"``, imported on first use so that opening a TIFF does not
import astropy or cbor2), the suffixes and magic bytes that tell it, an optional
sniff predicate that tells it apart from formats sharing a suffix, and its Intake
datatype (class name, one-line description, file pattern, structure).

Derived from the registry: `open_dataset`'s dispatch and option checking,
`sniff_format`, the Intake datatypes and readers (`beamcat.catalog.intake_readers`)
and the xarray backend (`beamcat.catalog.backend`, ``engine="beamcat"``).
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import os
import zipfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import xarray as xr

from beamcat.catalog._calibration import calibration_attrs
from beamcat.catalog._paths import expand_source, poni_attrs
from beamcat.errors import FormatError, OptionError

Source = str | os.PathLike | Iterable[str | os.PathLike]

_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_HDF5_MAGIC = (b"\x89HDF\r\n\x1a\n",)
_FITS_MAGIC = (b"SIMPLE  =",)
_TEXT_SUFFIXES = (".csv", ".txt", ".dat", ".log")
_FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz")  # fits.FITS_SUFFIXES; no astropy import
_HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf", ".nxs", ".nx5")


@dataclass(frozen=True)
class Format:
    """One file format: how to open it, how to recognise it, how Intake names it.

    Parameters
    ----------
    name : str
        The ``format=`` name, e.g. ``"tiff"``.
    opener : str
        ``"module:function"`` of ``open_<format>(source, *, **options) -> Dataset``;
        its keyword parameters are the format's options.
    datatype : str
        Name of the Intake datatype class generated for it.
    doc : str
        One line: what the source is and the Dataset it gives.
    suffixes : tuple of str
        Lower-case name endings that suggest the format (longest match wins).
    magic : tuple of bytes
        First bytes that suggest it when the name does not tell.
    sniff : callable, optional
        ``(path) -> bool`` confirming a file that the suffix or magic bytes
        suggested; entries with a predicate are tried before those without.
    folder : bool
        The source is a folder named with one of `suffixes` (a Zarr store).
    filepattern : str, optional
        Intake's regular expression on the URL.
    structure : tuple of str
        Intake's structure tags.
    """

    name: str
    opener: str
    datatype: str
    doc: str
    suffixes: tuple[str, ...] = ()
    magic: tuple[bytes, ...] = ()
    sniff: Callable[[Path], bool] | None = None
    folder: bool = False
    filepattern: str | None = None
    structure: tuple[str, ...] = ("array",)


# ------------------------------------------------------------------ sniff predicates


def _head(path: Path, size: int = 4096) -> str:
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read(size)


def _is_massspec(path: Path) -> bool:
    head = _head(path)
    return "DataLength" in head or ",scans," in head or "Time,ms" in head


def _is_temperature_log(path: Path) -> bool:
    head = _head(path)
    return head.lstrip().startswith("# Property") or "seconds(absolute)" in head


def _is_imat_log(path: Path) -> bool:
    head = _head(path)
    first_line = head.splitlines()[0] if head else ""
    return "monbefore" in head or "IMAGE COUNTER" in first_line or first_line.count(",") == 4


def _is_spice(path: Path, *, max_blocks: int = 64) -> bool:
    """SPICE L2 files say so in their primary header (or their name).

    The primary HDU of a SPICE file is its first window, whose header runs to
    ~12 blocks of 2880 bytes before INSTRUME; read card by card up to END.
    """
    if path.name.lower().startswith("solo_l2_spice"):
        return True
    with open(path, "rb") as f:
        for _ in range(max_blocks):
            block = f.read(2880)
            for start in range(0, len(block), 80):
                card = block[start : start + 80]
                if card.startswith(b"INSTRUME="):
                    return b"'SPICE" in card
                if card.rstrip() == b"END":
                    return False
            if len(block) < 2880:
                return False
    return False


def _is_spice_l3(path: Path) -> bool:
    from beamcat.catalog.spice_l3 import is_l3  # imports astropy: only for FITS files

    return is_l3(path)


def _is_photon_list(path: Path) -> bool:
    """HDF5 photon lists (``hits/hits_xye``) share the suffix of detector HDF5 files."""
    from beamcat.catalog.photon_list import is_photon_list  # imports h5py: only for .h5 files

    return is_photon_list(path)


def _is_eis(path: Path) -> bool:
    from beamcat.catalog.eis import is_eis  # imports h5py: only for .h5 files

    return is_eis(path)


def _is_mib(path: Path) -> bool:
    """A ``.mib``; a ``.hdr`` that is a Merlin sidecar; a ``.zip`` holding ``.mib`` files."""
    name = path.name.lower()
    if name.endswith(".hdr"):
        with open(path, "rb") as f:
            return f.read(4) == b"HDR,"
    if name.endswith(".zip"):
        try:
            with zipfile.ZipFile(path) as zf:
                return any(n.lower().endswith(".mib") for n in zf.namelist())
        except (zipfile.BadZipFile, OSError):
            return False
    return True


# ------------------------------------------------------------------ the registry

REGISTRY: tuple[Format, ...] = (
    Format(
        "tiff",
        "beamcat.catalog.tiff:open_tiff",
        "TIFFStack",
        "TIFF frames: one multi-page file, a folder or a glob -> (frame, y, x).",
        suffixes=(".tif", ".tiff"),
        magic=_TIFF_MAGIC,
        filepattern="tiff?$",
    ),
    Format(
        "spice-l3",
        "beamcat.catalog.spice_l3:open_l3",
        "SPICEL3",
        "Line-fit maps in SAFFRON's L3 FITS layout, one file per line -> (line, [time,] y, x).",
        suffixes=_FITS_SUFFIXES,
        magic=_FITS_MAGIC,
        sniff=_is_spice_l3,
        filepattern=r"(L2\.5|_L3)_.*fits$",
    ),
    Format(
        "spice",
        "beamcat.catalog.spice:open_spice",
        "SPICEL2",
        "Solar Orbiter SPICE level-2 FITS: one spectral window -> (time, wavelength, y, x).",
        suffixes=_FITS_SUFFIXES,
        magic=_FITS_MAGIC,
        sniff=_is_spice,
        filepattern="solo_L2_spice.*fits$",
    ),
    Format(
        "fits",
        "beamcat.catalog.fits:open_fits",
        "FITSStack",
        "FITS camera images, one or many files -> (frame, y, x).",
        suffixes=_FITS_SUFFIXES,
        magic=_FITS_MAGIC,
        filepattern="fits?$|fts$",
    ),
    Format(
        "mib",
        "beamcat.catalog.mib:open_mib",
        "MerlinMIB",
        "Quantum Detectors Merlin MIB (or a .zip of them) -> (frame, y, x) or "
        "(scan_y, scan_x, y, x).",
        suffixes=(".mib", ".hdr", ".zip"),
        magic=(b"MQ1,",),
        sniff=_is_mib,
        filepattern="mib$",
    ),
    Format(
        "edx",
        "beamcat.catalog.edx:open_edx",
        "EDXSpectrumImage",
        "Oxford AZtec EDX spectrum image, RPL/RAW (RosettaSciIO's ripple reader) or "
        "H5OINA -> (scan_y, scan_x, energy).",
        suffixes=(".rpl", ".h5oina"),
        filepattern=r"(rpl|h5oina)$",
    ),
    Format(
        "eis",
        "beamcat.catalog.eis:open_eis",
        "HinodeEIS",
        "Hinode EIS level-1 HDF5 (.data.h5 + .head.h5): one window -> (wavelength, y, x).",
        suffixes=(".data.h5", ".head.h5"),
        magic=_HDF5_MAGIC,
        sniff=_is_eis,
        filepattern=r"eis_.*\.(data|head)\.h5$",
    ),
    Format(
        "photon-list",
        "beamcat.catalog.photon_list:open_photon_list",
        "PhotonList",
        "An HDF5 photon list in drp-femtomax's layout (``hits/hits_xye``) -> (event,).",
        suffixes=(".h5", ".hdf5"),
        magic=_HDF5_MAGIC,
        sniff=_is_photon_list,
        filepattern=r"_integrated\.h5$",
        structure=("table",),
    ),
    Format(
        "hdf5",
        "beamcat.catalog.hdf5:open_hdf5",
        "DetectorHDF5",
        "An HDF5 dataset path, or the NeXus default signal -> (frame, y, x).",
        suffixes=_HDF5_SUFFIXES,
        magic=_HDF5_MAGIC,
        filepattern="(h5|hdf5?|nxs|nx5)$",
        structure=("array", "hierarchy"),
    ),
    Format(
        "cbor-stream",
        "beamcat.catalog.cbor_stream:open_cbor_stream",
        "CBORStream",
        "A recorded detector (and motor) stream, CBOR sequences -> (frame, y, x).",
        suffixes=(".cbors", ".cbor", ".cbors.gz", ".cbor.gz"),
        filepattern=r"cbors?(\.gz)?$",
    ),
    Format(
        "massspec-csv",
        "beamcat.catalog.logs:open_massspec_csv",
        "MassSpecCSV",
        "Hiden RGA mass-spectrometer CSV export -> (time,).",
        suffixes=_TEXT_SUFFIXES,
        sniff=_is_massspec,
        structure=("table", "timeseries"),
    ),
    Format(
        "temperature-log",
        "beamcat.catalog.logs:open_temperature_log",
        "TemperatureLog",
        "ISIS JournalViewer temperature log export -> (time,).",
        suffixes=_TEXT_SUFFIXES,
        sniff=_is_temperature_log,
        structure=("table", "timeseries"),
    ),
    Format(
        "imat-log",
        "beamcat.catalog.logs:open_imat_log",
        "IMATFrameLog",
        "IMAT frame log (time, type, count, monbefore, monafter) -> (time,).",
        suffixes=_TEXT_SUFFIXES,
        sniff=_is_imat_log,
        structure=("table", "timeseries"),
    ),
    Format(
        "zarr",
        "beamcat.catalog.zarr_store:open_zarr_store",
        "ZarrStore",
        "A Zarr store folder of derived results (`beamcat.catalog.zarr_store.to_zarr`).",
        suffixes=(".zarr",),
        folder=True,
        filepattern="zarr/?$",
        structure=("array", "hierarchy"),
    ),
)

#: format name -> its entry
FORMATS: dict[str, Format] = {f.name: f for f in REGISTRY}
#: format name -> "module:function" of its opener
OPENERS: dict[str, str] = {f.name: f.opener for f in REGISTRY}


def get_format(format: str) -> Format:
    """The registry entry of a format name; `OptionError` listing the names otherwise."""
    try:
        return FORMATS[format]
    except (KeyError, TypeError):
        known = ", ".join(sorted(FORMATS))
        raise OptionError(f"unknown format {format!r}: expected one of {known}") from None


def get_opener(format: str) -> Callable[..., xr.Dataset]:
    """Return the opener function of a format name."""
    module, func = get_format(format).opener.split(":")
    return getattr(importlib.import_module(module), func)


def format_options(format: str) -> tuple[str, ...]:
    """The options a format's opener accepts: its keyword parameters after the source."""
    params = list(inspect.signature(get_opener(format)).parameters.values())[1:]
    return tuple(p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD))


def check_options(format: str, options: Mapping[str, Any], source: Any = None) -> None:
    """Raise `OptionError` when `options` holds a name that `format`'s opener does not take.

    The message names the source, the option, the format and the options it
    accepts (with the nearest name when one is close).
    """
    accepted = format_options(format)
    unknown = [name for name in options if name not in accepted]
    params = inspect.signature(get_opener(format)).parameters.values()
    if not unknown or any(p.kind is p.VAR_KEYWORD for p in params):
        return  # an opener taking **options checks them itself
    name = unknown[0]
    near = difflib.get_close_matches(name, accepted, n=1)
    hint = f" (did you mean {near[0]!r}?)" if near else ""
    where = f"{_describe(source)}: " if source is not None else ""
    raise OptionError(
        f"{where}format {format!r} takes no option {name!r}{hint}; "
        f"its options are: {', '.join(accepted) or 'none'}"
    )


def _describe(source: Any) -> str:
    if isinstance(source, str | os.PathLike):
        return os.fspath(source)
    try:
        items = [os.fspath(s) for s in source]
    except TypeError:
        return repr(source)
    return items[0] if len(items) == 1 else f"{items[0]} (+{len(items) - 1} more)"


# ------------------------------------------------------------------ sniffing


def sniff_format(source: Source) -> str:
    """Guess the format of a source from its first file's name and first bytes.

    For a folder or list, the first file whose name a format claims decides
    (a recording's PONI sidecar does not); otherwise the first file.

    The longest registered suffix the name ends with picks the candidates;
    among them, entries with a sniff predicate are asked first and the first
    that confirms wins, else the one without a predicate. A name that tells
    nothing is matched on its magic bytes the same way.

    Raises
    ------
    FormatError
        When nothing recognises the file; the message says to pass ``format=``.
    """
    if isinstance(source, str | os.PathLike):
        name = os.fspath(source).rstrip("/\\").lower()
        for fmt in REGISTRY:  # a store is a folder: its own name tells, not its files'
            if fmt.folder and name.endswith(fmt.suffixes):
                return fmt.name
    files = expand_source(source)
    # a folder's sidecars (a PONI, notes) do not decide: its first file of a known kind does
    first = next((f for f in files if _by_suffix(f.name.lower())), files[0])
    candidates = _by_suffix(first.name.lower())
    kind = "file"
    if candidates:
        kind = "text file" if candidates[0].suffixes == _TEXT_SUFFIXES else "file"
    else:
        candidates = _by_magic(first)
    found = _confirm(first, candidates)
    if found is not None:
        return found
    if candidates:
        names = ", ".join(repr(c.name) for c in candidates)
        raise FormatError(f"{first}: {kind} of unknown kind; pass format= (one of {names})")
    raise FormatError(
        f"{first}: cannot tell the format from the name; pass format= "
        f"(one of {', '.join(sorted(FORMATS))})"
    )


def _by_suffix(name: str) -> list[Format]:
    """Formats with a suffix that `name` ends with, in the order to try them.

    Longest suffix first; within one length, entries with a sniff predicate
    before those without, then registry order.
    """
    ranked = []
    for index, fmt in enumerate(REGISTRY):
        length = max((len(s) for s in fmt.suffixes if name.endswith(s)), default=0)
        if length and not fmt.folder:
            ranked.append(((-length, fmt.sniff is None, index), fmt))
    return [fmt for _, fmt in sorted(ranked, key=lambda r: r[0])]


def _by_magic(path: Path) -> list[Format]:
    """Formats whose magic bytes start the file, predicates first, then registry order."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError:
        return []
    found = [f for f in REGISTRY if f.magic and head.startswith(f.magic)]
    return sorted(found, key=lambda f: f.sniff is None)


def _confirm(path: Path, candidates: list[Format]) -> str | None:
    """The first candidate whose predicate confirms `path`, or that needs none."""
    for fmt in candidates:
        if fmt.sniff is None or fmt.sniff(path):
            return fmt.name
    return None


# ------------------------------------------------------------------ opening


def open_dataset(
    source: Source,
    *,
    format: str | None = None,
    attrs: Mapping[str, Any] | None = None,
    poni: str | os.PathLike | None = None,
    poni_flip: bool = False,
    calibration: str | os.PathLike | None = None,
    **options,
) -> xr.Dataset:
    """Open any supported source as a labelled, lazily backed Dataset.

    Parameters
    ----------
    source : path, folder, glob or list of paths
        What to open.
    format : str, optional
        One of ``tiff, fits, spice, mib, eis, hdf5, photon-list, cbor-stream,
        massspec-csv, temperature-log, imat-log, zarr`` (`REGISTRY`); sniffed
        from the name and first bytes when not given.
    attrs : dict, optional
        Attributes to set on the Dataset, for what the file does not record
        (``{"pixel_size": 55e-6, "energy": 8048}``); a catalog entry can carry
        them as an option.
    poni : path, optional
        The pyFAI PONI file of the detector geometry (diffraction images). It
        must exist; its absolute path lands in ``attrs["poni"]``, where
        ``beamcat.analyses.geometry.as_geometry`` and ``ds.diffraction`` find
        it. In a catalog it is stored relative to the catalog file like the source.
    poni_flip : bool
        The PONI refers to the image flipped vertically, as Dioptas shows it and
        writes its PONI files; lands in ``attrs["poni_flip"]`` (0 or 1).
    calibration : path, optional
        A 4D-STEM calibration JSON (ePSIC's ``reciprocal_space_pix`` and
        ``p_ellipse``, as ``AuCalibration.save`` writes it), read and checked
        now: ``attrs["calibration"]`` is ``{x0, y0, a, b, theta,
        reciprocal_pixel_size, source}`` (px, rad, 1/Angstrom per px; the
        JSON's absolute path), where the 4D-STEM analyses find it. In a catalog
        it is stored relative to the catalog file like the source.
    **options
        Passed to the format's opener (``scan_shape=`` for MIB, ``path=`` for
        HDF5, ``window=`` for SPICE and EIS, ``timezone=`` for logs ...);
        `format_options` lists them.

    Returns
    -------
    xarray.Dataset
        Pixel data stays on disk until computed; ``attrs["signal"]`` names the
        main variable, ``attrs["source"]`` and ``attrs["format"]`` say where it
        came from.

    Raises
    ------
    OptionError
        An unknown `format`, or an option the format does not take (the
        message lists the ones it does); `poni_flip` without `poni`.
    SourceNotFoundError
        The source, or the `poni` or `calibration` file, does not exist.
    FormatError
        The format cannot be sniffed, or the file is not what it claims; the
        `calibration` JSON lacks keys or values.

    Examples
    --------
    >>> import beamcat
    >>> ds = beamcat.open_dataset("run_0001/*.tif")  # doctest: +SKIP
    >>> ds[ds.attrs["signal"]].mean("frame")  # doctest: +SKIP
    >>> eis = beamcat.open_dataset("eis_20210306_064444.data.h5", window="Fe XII 192")
    ... # doctest: +SKIP
    >>> ceo2 = beamcat.open_dataset("CeO2.tif", poni="CeO2.poni", poni_flip=True)
    ... # doctest: +SKIP
    """
    if format is None:
        format = sniff_format(source)
    opener = get_opener(format)
    check_options(format, options, source)
    owner = _describe(source)
    attrs = {
        **(attrs or {}),
        **poni_attrs(poni, poni_flip, owner),
        **calibration_attrs(calibration, owner),
    }
    ds = opener(source, **options)
    return ds.assign_attrs(attrs) if attrs else ds
