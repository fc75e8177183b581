"""FITS camera image stacks (IMAT and PSI cameras) as ``counts (frame, y, x)`` Datasets.

Also the lazy FITS pieces the SPICE reader shares: checking the magic bytes,
header keywords as attrs, and a dask array over an HDU's data that reads only
the slices a computation asks for (``numpy.memmap`` at the HDU's data offset).
"""

from __future__ import annotations

import contextlib
import gzip
import math
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr
from astropy.io import fits
from astropy.io.fits.verify import VerifyError

from beamcat._util import provenance, to_utc
from beamcat.catalog._paths import expand_source
from beamcat.errors import BeamcatError, FormatError, OptionError

FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz")
_MAGIC = b"SIMPLE  ="
_SKIPPED_KEYS = {"", "COMMENT", "HISTORY"}
_DISK_DTYPES = {8: ">u1", 16: ">i2", 32: ">i4", 64: ">i8", -32: ">f4", -64: ">f8"}
_BLOCK = 2880
_MAX_HEADER_BYTES = 1000 * _BLOCK  # 36,000 cards: far beyond any real header
_STRUCTURE_KEY = re.compile(r"BITPIX|NAXIS\d*|PCOUNT|GCOUNT")


def open_hdus(path: Path) -> fits.HDUList:
    """Open a FITS file for reading headers only (HDUs are parsed on first access).

    The structure keywords of every HDU (BITPIX, NAXIS, NAXISn, PCOUNT, GCOUNT) are
    checked against the file's size first (`check_structure`), so a garbled header
    fails here instead of making astropy allocate or loop on what it claims. Use
    the HDUs inside `reading_fits`, which turns astropy's errors into `FormatError`.

    Raises
    ------
    FormatError
        When the file does not start with the FITS magic, a header is cut, garbled
        or announces more data than the file holds, or astropy cannot parse it.
    """
    gzipped = _is_gzip(path)
    opener = gzip.open if gzipped else open
    with opener(path, "rb") as f:
        head = f.read(len(_MAGIC))
    if head != _MAGIC:
        raise FormatError(
            f"{path}: not a FITS file: expected 'SIMPLE  =' at byte 0, found {head!r}"
        )
    if not gzipped:  # a gzip file's size says nothing of its data's
        check_structure(path)
    with reading_fits(path):
        return fits.open(path, memmap=True, lazy_load_hdus=True)


@contextlib.contextmanager
def reading_fits(where: str | os.PathLike):
    """Turn astropy's errors about a damaged FITS header or WCS into `FormatError`.

    astropy raises OSError (header missing END card), KeyError (a missing NAXISn),
    TypeError (a blank BITPIX), VerifyError, or WCS errors (ValueError subclasses:
    a garbled CTYPE or CUNIT) from deep inside; the message names `where`.
    """
    try:
        yield
    except BeamcatError:
        raise
    except (OSError, ValueError, KeyError, TypeError, IndexError, VerifyError) as err:
        raise FormatError(
            f"{os.fspath(where)}: damaged FITS header, astropy says: {type(err).__name__}: {err}"
        ) from err


def check_structure(path: Path) -> None:
    """Check every HDU's structure keywords against the file's size, reading headers only.

    A header must end (END card) inside the file; BITPIX must be one of 8, 16,
    32, 64, -32, -64; NAXIS 0..999 with every NAXISn a non-negative integer; and
    the data that BITPIX x GCOUNT x (PCOUNT + NAXIS1 x ... x NAXISn) announce must
    fit in what follows. Bytes after the last HDU that do not start an extension
    are left to astropy (which ignores trailing padding).

    Raises
    ------
    FormatError
        Naming the file, the HDU and the keyword.
    """
    size = path.stat().st_size
    with open(path, "rb") as f:
        offset, index = 0, 0
        while offset < size:
            f.seek(offset)
            if index and f.read(8) != b"XTENSION":
                return  # padding or garbage after the last HDU: astropy skips it
            cards, header_end = _structure_cards(f, path, offset, index)
            data = _data_bytes(cards, path, index)
            if header_end + data > size:
                raise FormatError(
                    f"{path}: truncated: HDU {index} announces {data} bytes of data at "
                    f"offset {header_end}, the file has {size} bytes"
                )
            offset = header_end + -(-data // _BLOCK) * _BLOCK
            index += 1


def _structure_cards(f, path: Path, offset: int, index: int) -> tuple[dict, int]:
    """The structure keywords of the header at `offset`, and where its data begin."""
    cards: dict[str, bytes] = {}
    f.seek(offset)
    for block_start in range(offset, offset + _MAX_HEADER_BYTES, _BLOCK):
        block = f.read(_BLOCK)
        if len(block) < _BLOCK:
            raise FormatError(
                f"{path}: HDU {index} header (at byte {offset}) is cut: no END card "
                f"before the end of the file at byte {block_start + len(block)}"
            )
        for start in range(0, _BLOCK, 80):
            card = block[start : start + 80]
            key = card[:8].rstrip().decode("ascii", "replace")
            if key == "END":
                return cards, block_start + _BLOCK
            if card[8:10] == b"= " and _STRUCTURE_KEY.fullmatch(key):
                cards.setdefault(key, card[10:].split(b"/")[0].strip())
    raise FormatError(f"{path}: HDU {index} header has no END card in {_MAX_HEADER_BYTES} bytes")


def _data_bytes(cards: dict[str, bytes], path: Path, index: int) -> int:
    """Bytes of data an HDU's structure keywords announce (checked as `check_structure` says)."""

    def integer(key: str, default: int | None = None) -> int:
        text = cards.get(key)
        if text is None and default is not None:
            return default
        try:
            return int(text)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            found = "no such card" if text is None else repr(text.decode("ascii", "replace"))
            raise FormatError(f"{path}: HDU {index} {key}: {found}; expected an integer") from None

    bitpix, naxis = integer("BITPIX"), integer("NAXIS")
    if bitpix not in _DISK_DTYPES:
        raise FormatError(
            f"{path}: HDU {index} BITPIX = {bitpix}: expected one of 8, 16, 32, 64, -32, -64"
        )
    if not 0 <= naxis <= 999:
        raise FormatError(f"{path}: HDU {index} NAXIS = {naxis}: expected 0 to 999")
    sizes = [integer(f"NAXIS{n}") for n in range(1, naxis + 1)]
    if any(n < 0 for n in sizes):
        raise FormatError(f"{path}: HDU {index} NAXISn = {sizes}: expected sizes >= 0")
    if not naxis:
        return 0
    if sizes[0] == 0 and naxis > 1:  # random groups: NAXIS1 = 0 and the groups follow
        sizes = sizes[1:]
    pcount, gcount = integer("PCOUNT", 0), integer("GCOUNT", 1)
    return abs(bitpix) // 8 * gcount * (pcount + math.prod(sizes))


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


def header_attrs(header: fits.Header) -> dict:
    """Header keywords as attrs that JSON and Zarr can store (str, int, float, bool).

    COMMENT, HISTORY and blank cards are left out; a repeated keyword keeps its
    first value.
    """
    attrs: dict = {}
    for key, value in header.items():
        if key in _SKIPPED_KEYS or key in attrs:
            continue
        if isinstance(value, bool | int | float | str):
            attrs[key] = value
    return attrs


def scaled_dtype(bitpix: int, bscale: float = 1.0, bzero: float = 0.0) -> np.dtype:
    """The dtype of an image after BSCALE/BZERO, as astropy gives it.

    The unsigned-integer convention (BSCALE 1, BZERO 2**(bits-1), e.g. 32768 for
    BITPIX 16) gives unsigned integers (signed bytes for BITPIX 8 with BZERO -128);
    any other scaling gives float32 for 8/16-bit and float64 for 32/64-bit data.
    """
    if bitpix < 0:
        return np.dtype(f"f{-bitpix // 8}")
    if bscale == 1 and bzero == 0:
        return np.dtype(_DISK_DTYPES[bitpix]).newbyteorder("=")
    if bscale == 1 and bitpix == 8 and bzero == -128:
        return np.dtype("i1")
    if bscale == 1 and bitpix > 8 and bzero == 2 ** (bitpix - 1):
        return np.dtype(f"u{bitpix // 8}")
    return np.dtype("f4") if bitpix <= 16 else np.dtype("f8")


@dataclass(frozen=True)
class _HduSlicer:
    """Array-like over an uncompressed HDU's data; reads and scales only the slice asked for.

    Holds a path, not an open file, so it pickles cheaply to dask workers.
    """

    path: str
    offset: int
    shape: tuple[int, ...]
    disk_dtype: str  # big-endian, from BITPIX
    bscale: float
    bzero: float
    blank: int | None
    dtype: np.dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __getitem__(self, key) -> np.ndarray:
        try:  # the file was checked at open time; it can still be cut since
            raw = np.memmap(self.path, self.disk_dtype, "r", offset=self.offset, shape=self.shape)
            block = np.asarray(raw[key])
        except (OSError, ValueError) as err:
            raise FormatError(f"{self.path}: cannot read the image data: {err}") from err
        if self.dtype.kind == "f":
            out = block.astype(self.dtype)
            if self.bscale != 1 or self.bzero != 0:
                out = out * self.dtype.type(self.bscale) + self.dtype.type(self.bzero)
            if self.blank is not None and block.dtype.kind == "i":
                out[block == self.blank] = np.nan
            return out
        if self.bzero != 0:  # unsigned convention: flipping the sign bit adds 2**(bits-1)
            size = block.dtype.itemsize
            unsigned = block.astype(block.dtype.newbyteorder("=")).view(f"u{size}")
            return (unsigned ^ np.array(1 << (8 * size - 1), f"u{size}")).view(self.dtype)
        return block.astype(self.dtype)


def hdu_shape(header: fits.Header) -> tuple[int, ...]:
    """Data shape in numpy order (NAXISn ... NAXIS1); ``()`` for a header-only HDU."""
    return tuple(int(header[f"NAXIS{i}"]) for i in range(int(header["NAXIS"]), 0, -1))


def hdu_dask_array(path: Path, hdul: fits.HDUList, index: int, *, chunks) -> da.Array:
    """A dask array over one image HDU's data, scaled by BSCALE/BZERO; nothing is read now.

    Parameters
    ----------
    path : Path
        The file `hdul` was opened from.
    hdul : astropy.io.fits.HDUList
        From `open_hdus` (headers read, data not).
    index : int
        Index of the image HDU in `hdul`.
    chunks : dask chunks spec
        Chunks of the result. A tile-compressed HDU or a gzip file cannot be
        sliced on disk: one task reads it whole, then it is rechunked.

    Returns
    -------
    dask.array.Array
        Shape ``(NAXISn, ..., NAXIS1)``, dtype from `scaled_dtype`.

    Raises
    ------
    FormatError
        When the file is shorter than the data its header announces.
    """
    hdu = hdul[index]
    header = hdu.header  # for a CompImageHDU astropy shows the image header
    shape = hdu_shape(header)
    bitpix = int(header["BITPIX"])
    if bitpix not in _DISK_DTYPES:
        raise FormatError(f"{path}: HDU {index} has BITPIX = {bitpix}: expected one of 8, 16, "
                          "32, 64, -32, -64")  # fmt: skip
    bscale = float(header.get("BSCALE", 1.0))
    bzero = float(header.get("BZERO", 0.0))
    dtype = scaled_dtype(bitpix, bscale, bzero)
    if isinstance(hdu, fits.CompImageHDU) or _is_gzip(path):
        read = dask.delayed(_read_whole, pure=True)(os.fspath(path), index, dtype)
        return da.from_delayed(read, shape, dtype=dtype).rechunk(chunks)
    offset = int(hdu.fileinfo()["datLoc"])
    disk_dtype = np.dtype(_DISK_DTYPES[bitpix])
    needed = offset + int(np.prod(shape)) * disk_dtype.itemsize
    size = path.stat().st_size
    if size < needed:
        raise FormatError(
            f"{path}: truncated: HDU {index} needs {needed} bytes "
            f"(data at offset {offset}, shape {shape}), the file has {size}"
        )
    blank = header.get("BLANK")
    slicer = _HduSlicer(
        os.fspath(path), offset, shape, disk_dtype.str, bscale, bzero,
        None if blank is None else int(blank), dtype,
    )  # fmt: skip
    name = "fits-" + dask.base.tokenize(slicer, path.stat().st_mtime_ns, chunks)
    return da.from_array(slicer, chunks=chunks, name=name, meta=np.empty((0,) * len(shape), dtype))


def _read_whole(path: str, index: int, dtype: np.dtype) -> np.ndarray:
    with reading_fits(path), fits.open(path) as hdul:  # decompression errors too
        return np.asarray(hdul[index].data, dtype=dtype)


def open_fits(
    source: str | os.PathLike | Iterable[str | os.PathLike],
    *,
    hdu: int | str | None = None,
    timezone: str = "UTC",
) -> xr.Dataset:
    """Open FITS camera images (one file or many) as a lazy ``counts (frame, y, x)`` stack.

    A file holding a 2-D image is one frame; a 3-D cube is ``NAXIS3`` frames.
    Only headers are read: every file's image shape and dtype are checked from
    its header, and pixels are read (one frame per dask chunk) when computed.

    Parameters
    ----------
    source : path, folder, glob or list of paths
        The FITS files, in natural order (``frame_2`` before ``frame_10``).
    hdu : int or str, optional
        Index or EXTNAME of the image HDU; by default the first HDU with a
        2-D or 3-D image (so tile-compressed images in extension 1 work too).
    timezone : str
        Time zone of DATE-OBS values without one (FITS says UTC; some camera
        software writes local time).

    Returns
    -------
    xarray.Dataset
        ``counts (frame, y, x)`` with BSCALE/BZERO applied (uint16 for the
        BZERO=32768 convention, float for other scaling); coordinates ``frame``,
        ``time (frame)`` UTC from DATE-OBS (or DATE; TIME-OBS joined to a
        date-only DATE-OBS) when present -- every frame of a cube gets its file's
        time, as FITS has no standard per-plane time -- and ``exposure (frame)``
        in s from EXPTIME/EXPOSURE when present. ``attrs`` hold the first file's
        header keywords (str/int/float/bool, no COMMENT/HISTORY), ``signal``,
        ``source`` and ``format``; ``pixel_size`` (m) from XPIXSZ (um) if present.

    Raises
    ------
    FormatError
        A file is not FITS, holds no image, is truncated, or its image shape or
        dtype differs from the first file's.
    OptionError
        `hdu` names no HDU of a file.

    Examples
    --------
    >>> from beamcat.catalog.fits import open_fits
    >>> ds = open_fits("imat_run/*.fits")  # doctest: +SKIP
    >>> ds.counts.mean("frame").compute()  # doctest: +SKIP
    """
    files = expand_source(source, suffixes=FITS_SUFFIXES)
    arrays, times, exposures = [], [], []
    attrs: dict = {}
    for path in files:
        with open_hdus(path) as hdul, reading_fits(path):
            index = _image_hdu_index(hdul, path, hdu)
            shape = hdu_shape(hdul[index].header)
            if len(shape) not in (2, 3):
                raise FormatError(
                    f"{path}: HDU {index} holds a {len(shape)}-D array {shape}: "
                    "expected a 2-D image or a 3-D cube (use open_spice for SPICE L2)"
                )
            array = hdu_dask_array(path, hdul, index, chunks=(1,) * (len(shape) - 2) + shape[-2:])
            # keywords of the image HDU, falling back on the primary header's
            keys = {**header_attrs(hdul[0].header), **header_attrs(hdul[index].header)}
        frames = array if array.ndim == 3 else array[None]
        if arrays and (frames.shape[1:], frames.dtype) != (arrays[0].shape[1:], arrays[0].dtype):
            raise FormatError(
                f"{path}: image is {frames.shape[1:]} {frames.dtype}, expected "
                f"{arrays[0].shape[1:]} {arrays[0].dtype} like {files[0]}"
            )
        attrs = attrs or keys
        arrays.append(frames)
        times += [_obs_time(keys, path)] * len(frames)
        exposures += [keys.get("EXPTIME", keys.get("EXPOSURE", np.nan))] * len(frames)
    counts = da.concatenate(arrays, axis=0)
    coords: dict = {"frame": np.arange(counts.shape[0])}
    if any(t is not None for t in times):
        coords["time"] = ("frame", to_utc(times, timezone))
    if not np.all(np.isnan(np.asarray(exposures, dtype=float))):
        coords["exposure"] = ("frame", np.asarray(exposures, dtype=float), {"units": "s"})
    if "XPIXSZ" in attrs:
        attrs["pixel_size"] = float(attrs["XPIXSZ"]) * 1e-6
    units = attrs.get("BUNIT") or "counts"
    return xr.Dataset(
        {"counts": (("frame", "y", "x"), counts, {"units": units})},
        coords=coords,
        attrs={**attrs, **provenance(source, "fits"), "signal": "counts"},
    )


def _image_hdu_index(hdul: fits.HDUList, path: Path, hdu: int | str | None) -> int:
    """Index of the requested HDU, or of the first one holding an image of 2 or more dims."""
    if hdu is not None:
        try:
            index = hdul.index_of(hdu)
            hdul[index]  # index_of passes any int through
            return index
        except (IndexError, KeyError):
            names = [h.name for h in hdul]
            raise OptionError(f"{path}: no HDU {hdu!r}; the file has {names}") from None
    for index, h in enumerate(hdul):
        if isinstance(h, fits.PrimaryHDU | fits.ImageHDU | fits.CompImageHDU):
            if int(h.header.get("NAXIS", 0)) >= 2:
                return index
    raise FormatError(f"{path}: no image HDU: expected an HDU with NAXIS >= 2")


def _obs_time(header: dict, path: Path) -> str | None:
    """DATE-OBS (or DATE) as an ISO string, with TIME-OBS joined to a date-only value."""
    key = "DATE-OBS" if "DATE-OBS" in header else "DATE" if "DATE" in header else None
    if key is None:
        return None
    value = str(header[key]).strip()
    if "T" not in value and "TIME-OBS" in header:
        value = f"{value}T{str(header['TIME-OBS']).strip()}"
    try:
        pd.Timestamp(value)
    except ValueError:
        raise FormatError(f"{path}: {key} = {value!r}: expected an ISO date-time") from None
    return value
