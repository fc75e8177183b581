"""TIFF frames -> ``counts (frame, y, x)``: a multi-page file, a folder, a glob or a list.

Opening reads the first file's TIFF header and only ``os.stat`` of the others, so a
10,000-file stack opens in well under a second. A file whose size differs from the
first one's gets its header read at open time (compressed stacks do). Every other
file is checked when a dask task reads it: if its bytes outside the pixel block
equal the first file's, its TIFF structure (tags, so shape, dtype and offsets) is
the same and its pixels are read directly; otherwise tifffile parses it and a shape
or dtype differing from the first file's raises `FormatError` naming the file.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NamedTuple

import dask.array as da
import numpy as np
import tifffile
import xarray as xr

from beamcat._util import provenance
from beamcat.catalog._paths import expand_source
from beamcat.catalog._tiff_tags import tag_attrs, tag_times
from beamcat.errors import BeamcatError, FormatError, OptionError

SUFFIXES = (".tif", ".tiff")
#: with ``times="auto"``, stacks of at most this many files get every DateTime tag read
TAG_TIMES_MAX_FILES = 1000
# default chunks of about 8 MiB: large frames (over 2 MiB) in bands of rows of 4 frames.
# Small chunks keep every buffer an analysis makes of one (float32, float64) under
# 32 MiB, past which glibc hands out fresh pages, whose faults cost more than the work
_CHUNK_BYTES = 8 * 2**20
_BAND_FRAMES = 4
# a chunk reads a whole file per single-page frame; bounding them keeps threads busy and
# a strided selection (ds.counts[::100]) from reading thousands of files
_CHUNK_FILES = 256
# tifffile raises these (besides TiffFileError) on truncated or garbled headers
_TIFF_ERRORS = (tifffile.TiffFileError, ValueError, EOFError, IndexError, KeyError, struct.error)
# ... and these on garbled tags (ImageWidth 0: ZeroDivisionError) or pixels (a Compression tag
# changed: zlib.error; a codec not installed: ImportError)
_DECODE_ERRORS = (*_TIFF_ERRORS, ZeroDivisionError, OverflowError, TypeError, zlib.error, OSError)
#: a compressed page may decode to at most this many times the file's size (deflate's
#: limit is ~1032): a header claiming more is garbled, not a well-compressed image
_MAX_COMPRESSION_RATIO = 4096


@dataclass(frozen=True)
class _Header:
    """What one TIFF header says: pages, the first page's image layout and a few tags."""

    npages: int
    shape: tuple[int, ...]
    dtype: np.dtype
    tags: dict
    contiguous_offset: int | None  # byte offset of all pages' pixels when stored as one block
    byteorder: str  # of the pixels in the file; `dtype` is the native one tifffile returns
    raw_block: tuple[int, int] | None  # (offset, bytes) of a single page's plain pixels


class _RawLayout(NamedTuple):
    """A plain single-page file: pixels at ``offset`` (``nbytes``), `head` and `tail` around."""

    offset: int
    nbytes: int
    head: bytes
    tail: bytes


def open_tiff(
    source: str | os.PathLike | Iterable[str | os.PathLike],
    *,
    frame_log: str | os.PathLike | None = None,
    timezone: str | None = None,
    times: Literal["auto", "tags", "none"] = "auto",
    chunks: int | Mapping[str, int] | None = None,
) -> xr.Dataset:
    """Open TIFF frames lazily as ``counts (frame, y, x)``.

    Parameters
    ----------
    source : path, folder, glob or list of paths
        One multi-page file, or single- or multi-page files taken in natural order
        (``frame_2`` before ``frame_10``); a folder contributes its ``.tif``/``.tiff``.
    frame_log : path, optional
        IMAT frame log (CSV ``time,type,count,monbefore,monafter``) read with
        `beamcat.catalog.logs.open_imat_log`; its rows (less "Stopping" rows) are
        matched to the frames in order and give ``time``, ``elapsed`` (s),
        ``monbefore``, ``monafter`` (and for tomography ``angle``) coordinates
        along ``frame``.
    timezone : str, optional
        IANA zone of naive times (the log's, and TIFF DateTime tags, which are local
        times); they are converted to UTC. None (default) reads them as UTC with a
        `BeamcatWarning`, and ``attrs["timezone_assumed"]`` says so.
    times : {"auto", "tags", "none"}
        Where frame times come from without a `frame_log`. ``"tags"`` reads every
        file's DateTime tag (306, ``%Y:%m:%d %H:%M:%S``, local time of `timezone`)
        or, for EPICS areaDetector files, its EPICS timestamp tags (65002/65003,
        UTC) and fails naming a file that has neither. ``"auto"`` (default) does
        the same only for stacks of at most `TAG_TIMES_MAX_FILES` single-page files,
        since it opens every file, and leaves ``time`` out when a file lacks a
        time. ``"none"`` never reads them.
    chunks : int or mapping, optional
        Frames per dask chunk, or chunk sizes by dim such as ``{"y": 512, "x": 512}``.
        By default about 8 MiB per chunk: whole frames up to 2 MiB (a chunk may
        span several files, so a stack of small files gives a small graph), bands
        of rows of 4 frames for larger ones (2048 x 2048 uint16: 512 rows) unless
        they are compressed (whole frames: a page is decoded whole). A
        ``y`` chunk (given or default) makes each task read only its band of
        rows from each plain file (rows lie contiguously there), so bands that no
        computation needs are never read; ``x`` chunks are cut from a band read
        once (reading part of a row would cost a read per row).

    Returns
    -------
    xarray.Dataset
        ``counts (frame, y, x)`` dask-backed in the files' dtype; coordinates
        ``frame`` (index), ``file`` (name of each frame's file) and ``time`` (UTC)
        when known; attrs from `provenance`, ``signal="counts"``, and where the
        tags say so ``model``, ``software``, ``pixel_size`` (m),
        ``exposure_time`` (s), ``threshold_energy`` (eV), ``distance`` (m),
        ``wavelength`` (m), ``energy`` (eV).

    Raises
    ------
    SourceNotFoundError
        When a path, folder or glob matches no file.
    FormatError
        When a file is not a TIFF, pages are not 2-D grayscale images, or a
        file's shape or dtype differs from the first file's (at open time when its
        size differs, otherwise when its frames are computed); when the frame log
        has a different number of frame rows than there are frames.
    OptionError
        For an unknown `times`, or `chunks` not positive sizes of ``frame``, ``y``, ``x``.

    Examples
    --------
    >>> from beamcat.catalog.tiff import open_tiff
    >>> ds = open_tiff("run_0001/*.tif", frame_log="run_0001.csv")  # doctest: +SKIP
    >>> ds.counts.mean("frame")  # doctest: +SKIP
    """
    if times not in ("auto", "tags", "none"):
        raise OptionError(f"times={times!r}: expected 'auto', 'tags' or 'none'")
    files = expand_source(source, suffixes=SUFFIXES)
    first = _read_header(files[0])
    read_tags = times == "tags" or (
        times == "auto"
        and frame_log is None
        and len(files) <= TAG_TIMES_MAX_FILES
        and first.npages == 1
    )
    headers = _stack_headers(files, first, read_all=read_tags)
    npages = [h.npages if h else first.npages for h in headers]
    nframes = sum(npages)
    stack = TiffStack(files, [h or first for h in headers], _raw_layout(files[0], first))
    # rows are read directly from plain files; compressed ones decode whole pages
    plain = stack.raw is not None or first.contiguous_offset is not None
    per_chunk, rows, columns = _chunk_sizes(chunks, first, bands=plain)
    counts = da.from_array(
        stack, chunks=(per_chunk, rows, first.shape[1]), meta=np.empty((0, 0, 0), first.dtype)
    )
    if columns < first.shape[1]:
        counts = counts.rechunk({2: columns})

    coords = {
        "frame": np.arange(nframes),
        "file": ("frame", np.repeat([f.name for f in files], npages)),
    }
    zone: dict = {}  # of the local times in the log or tags: outputs show them so
    if frame_log is not None:
        log_coords, zone = _log_coords(frame_log, timezone, nframes)
        coords |= log_coords
    elif read_tags:
        frame_times, zone = tag_times(files, headers, timezone, required=times == "tags")
        if frame_times is not None:
            coords["time"] = ("frame", frame_times)
    attrs = provenance(source, "tiff", signal="counts", **tag_attrs(first.tags), **zone)
    return xr.Dataset(
        {"counts": (("frame", "y", "x"), counts, {"units": "counts", "long_name": "counts"})},
        coords=coords,
        attrs=attrs,
    )


def _chunk_sizes(chunks, first: _Header, *, bands: bool) -> tuple[int, int, int]:
    """(frames, rows, columns) per chunk from `open_tiff`'s `chunks`, checked.

    Rows default to whole frames up to 2 MiB (or whenever not `bands`: a
    compressed page is decoded whole, whatever rows are wanted), else bands of
    `_BAND_FRAMES` frames in `_CHUNK_BYTES`; frames to `_CHUNK_BYTES` per
    chunk, and at most `_CHUNK_FILES` single-page files.
    """
    sizes = chunks if isinstance(chunks, Mapping) else {"frame": chunks}
    valid = set(sizes) <= {"frame", "y", "x"} and all(
        size is None or (isinstance(size, int | np.integer) and size >= 1 and size is not True)
        for size in sizes.values()
    )
    if not valid:
        raise OptionError(
            f"chunks={chunks!r}: expected a positive number of frames per chunk, or "
            "positive chunk sizes by dim 'frame', 'y', 'x'"
        )
    ny, nx = first.shape
    row_bytes = first.dtype.itemsize * nx
    band = max(1, _CHUNK_BYTES // (_BAND_FRAMES * row_bytes)) if bands else ny
    rows = min(int(sizes.get("y") or band), ny)
    columns = min(int(sizes.get("x") or nx), nx)
    frames = sizes.get("frame")
    if frames is None:
        frames = max(1, _CHUNK_BYTES // (rows * row_bytes))
        frames = min(frames, _CHUNK_FILES) if first.npages == 1 else frames
    return int(frames), rows, columns


def _read_header(path: Path) -> _Header:
    """Read one file's TIFF header (no pixel data)."""
    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages.first
            npages = len(tif.pages)
            _check_page(path, page)
            shape, dtype = tuple(page.shape), np.dtype(page.dtype)
            tags = {tag.code: tag.value for tag in page.tags.values()}
            byteorder = tif.byteorder
            native = dtype.newbyteorder(tif.byteorder).isnative
            plain = npages == 1 and page.is_final and page.is_contiguous and native
            raw_block = (page.dataoffsets[0], page.nbytes) if plain else None
            offset = None
            series = tif.series[0] if len(tif.series) == 1 else None
            if npages > 1 and series is not None and series.dataoffset is not None:
                offset = series.dataoffset if series.size == npages * page.size else None
    except BeamcatError:
        raise
    except _DECODE_ERRORS as err:
        raise FormatError(f"{path}: not a readable TIFF file ({err})") from None
    if len(shape) != 2:
        raise FormatError(f"{path}: page 0 has shape {shape}; expected a 2-D grayscale image")
    return _Header(npages, shape, dtype, tags, offset, byteorder, raw_block)


def _check_page(path: Path, page) -> None:
    """Check what a page's tags claim against each other and the file, before any allocation.

    The pixels' bytes (StripByteCounts or TileByteCounts) must lie inside the
    file; uncompressed, they must be exactly what ImageWidth x ImageLength x
    BitsPerSample need (a BitsPerSample changed from 32 to 16 would otherwise
    decode half of each row as another image); compressed, the image may not
    exceed `_MAX_COMPRESSION_RATIO` times the file (ImageWidth 2**31 - 1 would
    otherwise allocate terabytes).
    """
    size = os.fstat(page.parent.filehandle.fileno()).st_size
    if page.dtype is None or min(page.shape, default=0) < 1:
        raise FormatError(
            f"{path}: page 0 is {page.shape} of BitsPerSample {page.bitspersample}, "
            f"SampleFormat {page.sampleformat}: expected a non-empty image of a numeric type"
        )
    counts = [int(c) for c in page.databytecounts]
    end = max((int(o) + c for o, c in zip(page.dataoffsets, counts, strict=True)), default=0)
    if end > size:
        raise FormatError(
            f"{path}: truncated: page 0's pixels run to byte {end}, the file has {size} bytes"
        )
    itemsize = np.dtype(page.dtype).itemsize
    pixels = int(np.prod(page.shape, dtype=np.int64))
    if page.is_tiled:
        pixels = len(counts) * page.tilelength * page.tilewidth * page.tiledepth
    needed = pixels * itemsize
    if page.compression == 1 and sum(counts) != needed:
        raise FormatError(
            f"{path}: page 0 holds {sum(counts)} bytes of pixels (StripByteCounts) but its "
            f"{page.imagewidth} x {page.imagelength} image of {page.bitspersample}-bit "
            f"{np.dtype(page.dtype)} needs {needed}: the header is inconsistent"
        )
    if needed > _MAX_COMPRESSION_RATIO * size:
        raise FormatError(
            f"{path}: page 0 claims a {page.imagewidth} x {page.imagelength} image "
            f"({needed} bytes) in a {size}-byte file: its header is garbled"
        )


def _stack_headers(files: list[Path], first: _Header, *, read_all: bool) -> list[_Header | None]:
    """Headers of the files, read only where needed (all, or sizes differing from the first)."""
    size = os.stat(files[0]).st_size
    headers: list[_Header | None] = [first]
    for path in files[1:]:
        if read_all or os.stat(path).st_size != size:
            header = _read_header(path)
            _check_layout(path, 0, header.shape, header.dtype, first.shape, first.dtype, files[0])
            headers.append(header)
        else:  # same size as the first: assume same layout, checked when read
            headers.append(None)
    return headers


def _check_layout(path, page, shape, dtype, want_shape, want_dtype, first) -> None:
    if tuple(shape) != tuple(want_shape) or np.dtype(dtype) != np.dtype(want_dtype):
        raise FormatError(
            f"{path}: page {page} is {tuple(shape)} {np.dtype(dtype)}; expected "
            f"{tuple(want_shape)} {np.dtype(want_dtype)} like {first}"
        )


def _raw_layout(path: Path, first: _Header) -> _RawLayout | None:
    """Where the pixels of a single-page file stored plainly lie, and the bytes around them.

    A file of the stack whose bytes outside the pixel block equal these has the
    same TIFF structure (same tags, so same shape, dtype and strip offsets), and
    its pixels can be read without parsing it: 30 us instead of 600 us a file.
    """
    if first.raw_block is None:
        return None
    offset, nbytes = first.raw_block
    with open(path, "rb") as f:
        head = f.read(offset)
        f.seek(offset + nbytes)
        tail = f.read()
    return _RawLayout(offset, nbytes, head, tail)


class TiffStack:
    """The frames of TIFF files as one read-only ``(frame, y, x)`` array for dask.

    ``__getitem__`` reads only the files holding the requested frames (of a plain
    file, only the requested band of rows) and checks each page's shape and dtype
    against the first file's (`FormatError` naming the file otherwise). It holds
    paths and layouts only, so it pickles cheaply to distributed workers.

    Parameters
    ----------
    files : list of Path
        The files, in frame order.
    headers : list of _Header
        Each file's header, or the first file's for files assumed alike.
    raw : _RawLayout, optional
        `_raw_layout` of the first file, for reading plain single-page files fast.
    """

    def __init__(self, files: list[Path], headers: list[_Header], raw: _RawLayout | None = None):
        self.paths = [os.fspath(f) for f in files]
        self.headers = headers
        self.raw = raw
        self.first_frame = np.cumsum([0] + [h.npages for h in headers])
        self.frame_shape, self.dtype = headers[0].shape, headers[0].dtype
        self.shape = (int(self.first_frame[-1]), *self.frame_shape)
        self.ndim = 3

    def __dask_tokenize__(self) -> tuple:
        return (
            type(self).__name__,
            self.paths,
            self.first_frame.tolist(),
            self.shape,
            self.dtype.str,
        )

    def __getitem__(self, key) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        frames = np.arange(self.shape[0])[key[0]]
        rows, rest = _row_band(key[1:], self.frame_shape[0])
        out = np.empty((frames.size, rows.stop - rows.start, self.frame_shape[1]), self.dtype)
        files = np.searchsorted(self.first_frame, frames.ravel(), side="right") - 1
        for i in np.unique(files):
            at = np.flatnonzero(files == i)
            path, header = self.paths[i], self.headers[i]
            if (
                header.npages == 1
                and self.raw is not None
                and self._read_raw(path, rows, out[at[0]])
            ):
                continue
            pages = frames.ravel()[at] - self.first_frame[i]
            if header.contiguous_offset is not None:
                out[at] = self._read_contiguous(path, header, pages, rows)
            else:
                out[at] = self._read_pages(path, pages)[:, rows]
        out = out[rest]
        return out[0] if frames.ndim == 0 else out

    def _read_raw(self, path: str, rows: slice, out: np.ndarray) -> bool:
        """Read `rows` of a file laid out like the first one into `out`; False if unlike.

        Only the bytes around the pixels (the header: a few hundred bytes) are
        compared, then the rows are read straight into `out` (C-contiguous): one
        copy from the page cache, with the GIL released.
        """
        layout = self.raw
        row_bytes = self.dtype.itemsize * self.frame_shape[1]
        with open(path, "rb", buffering=0) as f:
            size = layout.offset + layout.nbytes + len(layout.tail)
            if os.fstat(f.fileno()).st_size != size or f.read(layout.offset) != layout.head:
                return False
            if layout.tail:
                f.seek(layout.offset + layout.nbytes)
                if f.read() != layout.tail:
                    return False
            f.seek(layout.offset + rows.start * row_bytes)
            view = memoryview(out).cast("B")
            while view.nbytes:  # a regular file reads in full but for a concurrent truncation
                done = f.readinto(view)
                if not done:
                    raise FormatError(f"{path}: truncated while its pixels were read")
                view = view[done:]
        return True

    def _read_contiguous(
        self, path: str, header: _Header, pages: np.ndarray, rows: slice
    ) -> np.ndarray:
        """`rows` of pages of a multi-page file whose pixels lie as one uncompressed block."""
        shape = (header.npages, *self.frame_shape)
        end = header.contiguous_offset + self.dtype.itemsize * int(np.prod(shape))
        if os.path.getsize(path) < end:
            raise FormatError(f"{path}: truncated; its {header.npages} pages need {end} bytes")
        dtype = self.dtype.newbyteorder(header.byteorder)
        frames = np.memmap(path, dtype, mode="r", offset=header.contiguous_offset, shape=shape)
        return frames[pages, rows]

    def _read_pages(self, path: str, pages: np.ndarray) -> np.ndarray:
        out = np.empty((len(pages), *self.frame_shape), self.dtype)
        try:
            with tifffile.TiffFile(path) as tif:
                for j, index in enumerate(pages):
                    if index >= len(tif.pages):
                        raise FormatError(
                            f"{path}: has no page {index}; expected files alike {self.paths[0]}"
                        )
                    page = tif.pages[int(index)]
                    _check_layout(
                        path,
                        index,
                        page.shape,
                        page.dtype,
                        self.frame_shape,
                        self.dtype,
                        self.paths[0],
                    )
                    out[j] = page.asarray()
        except ImportError as err:  # tifffile imports codecs on first use
            raise FormatError(
                f"{path}: its compression needs a codec that is not installed ({err}); "
                "tifffile decodes it with the imagecodecs package: pip install imagecodecs"
            ) from None
        except _DECODE_ERRORS as err:
            raise FormatError(f"{path}: not a readable TIFF file ({err})") from None
        return out


def _row_band(key: tuple, ny: int) -> tuple[slice, tuple]:
    """Rows to read for a ``(y, x)`` index `key` (a step-1 slice), and the index left to apply.

    A step-1 slice of rows is read as such; any other row index reads every row.
    """
    if key and isinstance(key[0], slice) and key[0].step in (None, 1):
        start, stop, _ = key[0].indices(ny)
        return slice(start, max(start, stop)), (slice(None), slice(None), *key[1:])
    return slice(0, ny), (slice(None), *key)


def _log_coords(frame_log, timezone: str | None, nframes: int) -> tuple[dict, dict]:
    """``time``, ``elapsed``, monitor counts (and ``angle``) along ``frame`` from an IMAT log.

    Also the log's ``timezone`` (and ``timezone_assumed``) attrs.
    """
    from beamcat.catalog.logs import open_imat_log

    log = open_imat_log(frame_log, timezone=timezone)
    if log.sizes["time"] != nframes:
        raise FormatError(
            f"{frame_log}: {log.sizes['time']} frame rows (not counting 'Stopping' rows); "
            f"expected one per TIFF frame, {nframes}"
        )
    coords = {"time": ("frame", log["time"].values)}
    for name in ("elapsed", "monbefore", "monafter", "angle"):
        if name in log.variables:
            coords[name] = ("frame", log[name].values, dict(log[name].attrs))
    zone = {k: log.attrs[k] for k in ("timezone", "timezone_assumed") if k in log.attrs}
    return coords, zone
