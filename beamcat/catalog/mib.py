"""Quantum Detectors Merlin (Medipix3) MIB files as lazy xarray Datasets.

Opening parses every frame header (a few bytes per frame, see `mib_header`) and
reads no pixel data; pixels are read per dask chunk, one contiguous read per
chunk, and decoded with vectorised NumPy:

- ``U08``/``U16``/``U32``/``U64``: big-endian integers, byte-swapped on decode.
- ``R64`` (RAW, the chips' own readout), after LiberTEM's ``mib.py`` decoders:
  pixels come reversed in groups of 64 (1 bit, LSB first), 8 (6 bit) or 4
  (12 bit); 24 bit is two 12-bit images, the first holding the high 12 bits.
  A 2x2 quad reads out one row of each chip per raw row in the order
  ``[4 | 3 | 2 | 1]``: chips 1, 2 are the top half, chips 3, 4 the bottom half
  rotated by 180 degrees. (epsic_tools ``_untangle_raw`` puts the chips in
  ``[1 | 2 | 3 | 4]`` order; on the real RosettaSciIO quad files that order
  correlates at 0.49 with the same acquisition's U08 image, LiberTEM's at 0.999.)

Images keep the file's row order (no vertical flip, unlike RosettaSciIO).
`beamcat.catalog.mib_write` writes files this module reads back.
"""

from __future__ import annotations

import os
import threading
import warnings
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from pathlib import Path

import dask.array as da
import numpy as np
import xarray as xr
from dask.base import tokenize
from dask.utils import parse_bytes

from beamcat._util import provenance
from beamcat.catalog._localtime import warn_assumed
from beamcat.catalog.mib_header import (
    FrameHeaders,
    FrameLayout,
    hdr_attrs,
    hdr_depth,
    read_frame_headers,
    read_hdr,
)
from beamcat.catalog.mib_scan import scan_index
from beamcat.catalog.mib_zip import mib_files
from beamcat.errors import BeamcatWarning, FormatError, OptionError

#: Medipix3 pixel pitch in m
PIXEL_SIZE = 55e-6
#: default dask chunk size along frames. Measured on the 2-core benchmark VM
#: (benchmarks/mib_sum.py, 2.15 GB U16, one thread): reading 16 MiB chunks costs
#: ~0.19 s for the file, dask's ~0.5 ms per chunk included; chunks above glibc's
#: 32 MiB mmap threshold are fresh mappings whose first-touch page faults cost
#: more than the decode, and below ~8 MiB dask's per-chunk cost takes over.
_CHUNK_BYTES = parse_bytes("16MiB")
#: frames read through rather than starting a new read (fly-back frames are 1 apart)
_MAX_GAP = 8
# ---------------------------------------------------------------- pixel decoding


def _raw_groups(flat: np.ndarray, depth: int) -> np.ndarray:
    """Undo the in-chip pixel order of RAW data: (m, bytes) uint8 -> (m, pixels)."""
    m = flat.shape[0]
    if depth == 1:
        groups = flat.reshape(m, -1, 8)[..., ::-1]
        return np.unpackbits(groups, axis=-1, bitorder="little").reshape(m, -1)
    if depth == 6:
        return flat.reshape(m, -1, 8)[..., ::-1].reshape(m, -1)
    if depth == 12:
        words = flat.view(">u2").reshape(m, -1, 4)[..., ::-1]
        return words.astype(np.uint16).reshape(m, -1)
    half = flat.shape[1] // 2  # 24 bit: high 12 bits, then low 12 bits
    high = _raw_groups(flat[:, :half], 12).astype(np.uint32)
    return (high << 12) | _raw_groups(flat[:, half:], 12)


def _untangle_quad(img: np.ndarray) -> np.ndarray:
    """(m, H, 4W) raw rows ``[4|3|2|1]`` -> (m, 2H, 2W) image, chips 3 and 4 rotated."""
    m, h, w4 = img.shape
    w = w4 // 4
    out = np.empty((m, 2 * h, 2 * w), dtype=img.dtype)
    out[:, :h, :w] = img[:, :, 3 * w :]
    out[:, :h, w:] = img[:, :, 2 * w : 3 * w]
    out[:, h:, :w] = img[:, ::-1, w : 2 * w][:, :, ::-1]
    out[:, h:, w:] = img[:, ::-1, :w][:, :, ::-1]
    return out


def decode_frames(
    payload: np.ndarray, layout: FrameLayout, out: np.ndarray | None = None
) -> np.ndarray:
    """Decode frame payloads into images.

    Parameters
    ----------
    payload : ndarray (frame, byte) uint8
        Payload bytes of each frame, headers cut off (rows may be strided).
    layout : FrameLayout
        The file's frame layout.
    out : ndarray (frame, y, x) of `layout.dtype`, optional
        Where to write the images.

    Returns
    -------
    ndarray (frame, y, x) of `layout.dtype`
    """
    m = payload.shape[0]
    if out is None:
        out = np.empty((m, *layout.shape), dtype=layout.dtype)
    if not layout.raw:
        pixels = payload.view(layout.storage_dtype).reshape(m, *layout.shape)
        np.copyto(out, pixels)  # byte swap and copy in one pass
        return out
    img = _raw_groups(payload, layout.depth).reshape(m, layout.height, layout.raw_width)
    out[...] = _untangle_quad(img) if layout.layout == "2x2" else img
    return out


# ---------------------------------------------------------------- lazy frames


class MibFrames:
    """Array-like over the frames of MIB files; indexing reads only the frames asked for.

    Parameters
    ----------
    files : list of str
        MIB files, in order; frames are numbered across them.
    counts : list of int
        Frames in each file.
    layout : FrameLayout
        Shared by all files.
    index : ndarray (frame,) or (scan_y, scan_x) int
        Frame number shown at each navigation position (fly-back and skipped
        frames simply do not appear).
    """

    def __init__(self, files: list[str], counts: list[int], layout: FrameLayout, index: np.ndarray):
        self.files = files
        self.counts = counts
        self.layout = layout
        self.index = index
        self._starts = np.cumsum([0, *counts])
        self.shape = index.shape + layout.shape
        self.dtype = layout.dtype
        self.ndim = len(self.shape)

    def __dask_tokenize__(self):
        stamps = [os.stat(f).st_mtime_ns for f in self.files]
        return (type(self).__name__, self.files, stamps, self.layout, tokenize(self.index))

    def __getitem__(self, key) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        if any(k is Ellipsis for k in key):
            i = next(j for j, k in enumerate(key) if k is Ellipsis)
            fill = (slice(None),) * (self.ndim - len(key) + 1)
            key = key[:i] + fill + key[i + 1 :]
        nav = self.index.ndim
        frames = self.index[key[:nav]]
        images = self.read(np.ravel(frames)).reshape(np.shape(frames) + self.layout.shape)
        return images[(slice(None),) * np.ndim(frames) + tuple(key[nav:])]

    def read(self, frames: np.ndarray) -> np.ndarray:
        """Decoded images (n, y, x) of global frame numbers `frames` (any order)."""
        frames = np.asarray(frames).ravel()
        if np.all(np.diff(frames) > 0):  # the usual case: frames asked for in order
            wanted, inverse = frames, None
        else:
            wanted, inverse = np.unique(frames, return_inverse=True)
        out = np.empty((len(wanted), *self.layout.shape), dtype=self.dtype)
        file_of = np.searchsorted(self._starts, wanted, side="right") - 1
        breaks = np.flatnonzero((np.diff(wanted) > _MAX_GAP) | (np.diff(file_of) != 0)) + 1
        for block in np.split(np.arange(len(wanted)), breaks):
            if not len(block):
                continue
            k = file_of[block[0]]
            local = wanted[block] - self._starts[k]
            rows = self._read_span(self.files[k], int(local[0]), int(local[-1] - local[0] + 1))
            if len(local) != len(rows):
                rows = rows[local - local[0]]
            payload = rows[:, self.layout.header_size :]
            decode_frames(payload, self.layout, out=out[block[0] : block[-1] + 1])
        return out if inverse is None else out[inverse.ravel()]

    def _read_span(self, path: str, first: int, count: int) -> np.ndarray:
        """(count, frame_size) uint8 view of consecutive frames of the file's memory map.

        Decoding copies straight from the page cache into the output chunk, with
        no read buffer (`file_map`: one map per file, shared by every reader).
        """
        size = self.layout.frame_size
        end = (first + count) * size
        stat = os.stat(path)  # a map read past a cut file's end is a SIGBUS
        if end > stat.st_size:
            raise FormatError(
                f"{path}: frames {first}..{first + count - 1} (byte offset {first * size}) "
                f"lie beyond the end of the file ({stat.st_size} bytes); did the file change "
                "since it was opened?"
            )
        return file_map(path, stat)[first * size : end].reshape(count, size)


#: memory maps of the files read lately: (path, inode, size, mtime) -> map
_MAPS: OrderedDict[tuple, np.memmap] = OrderedDict()
_MAPS_LOCK = threading.Lock()
#: maps kept (least recently used dropped first); a map costs address space only
MAX_MAPS = 16


def file_map(path: str, stat: os.stat_result | None = None) -> np.memmap:
    """The process's read-only memory map of a file, made on first use and kept.

    A new map pays a page fault per 4 KiB page on first touch even when the
    file is in the page cache (measured ~0.25 s for 2.15 GB on the benchmark
    VM, as long as decoding it), so readers of a file share one map, kept for
    the file's next opening as the page cache keeps its bytes; a file replaced
    or changed (inode, size or mtime) gets a new map.

    Raises
    ------
    FormatError
        The file cannot be mapped.
    """
    stat = stat or os.stat(path)
    key = (path, stat.st_ino, stat.st_size, stat.st_mtime_ns)
    with _MAPS_LOCK:
        mapped = _MAPS.get(key)
        if mapped is not None:
            _MAPS.move_to_end(key)
            return mapped
    try:
        mapped = np.memmap(path, dtype=np.uint8, mode="r")
    except (ValueError, OSError) as err:
        raise FormatError(f"{path}: cannot be mapped: {err}") from None
    with _MAPS_LOCK:
        mapped = _MAPS.setdefault(key, mapped)
        while len(_MAPS) > MAX_MAPS:
            _MAPS.popitem(last=False)
    return mapped


# ---------------------------------------------------------------- opening


def _missing_frames(path: Path, sidecar: Path, n: int, hdr: dict, scan_shape) -> int:
    """Frames the ``.hdr`` announces ("Frames in Acquisition") that the file(s) lack.

    A MIB file cut at a frame boundary looks whole; only the sidecar tells. Warns
    (`BeamcatWarning`) when frames are missing: the whole frames open as a flat
    ``frame`` stack (or in `scan_shape` when given), never as another scan shape.
    """
    expected = hdr.get("frames_in_acquisition")
    if not expected or n >= expected:
        return 0
    shape = "a flat 'frame' stack" if scan_shape is None else f"scan_shape={tuple(scan_shape)}"
    warnings.warn(
        f"{path}: holds {n} whole frames but {sidecar.name} announces {expected} "
        f"(Frames in Acquisition): {expected - n} missing, the file was cut or the "
        f"acquisition stopped early; opened the {n} frames as {shape}, "
        "attrs frames_expected and frames_missing say so",
        BeamcatWarning,
        stacklevel=3,
    )
    return expected - n


def _chunks(nav_shape: tuple[int, ...], layout: FrameLayout, chunks) -> tuple[int, ...]:
    if isinstance(chunks, str):
        target = _CHUNK_BYTES if chunks == "auto" else parse_bytes(chunks)
        per = max(1, target // (layout.dtype.itemsize * int(np.prod(layout.shape))))
    elif isinstance(chunks, int | np.integer) and chunks > 0:
        per = int(chunks)
    else:
        raise OptionError(f"chunks={chunks!r}: expected 'auto', a size like '64MiB' or frames > 0")
    if len(nav_shape) == 1:
        return (min(per, max(nav_shape[0], 1)), *layout.shape)
    ny, nx = nav_shape
    if per >= nx:
        return (min(per // nx, ny), nx, *layout.shape)
    return (1, per, *layout.shape)


def open_mib(
    source: str | os.PathLike | Iterable[str | os.PathLike],
    *,
    scan_shape: Sequence[int] | None = None,
    flyback: bool | str = "auto",
    chunks: int | str = "auto",
    timezone: str | None = None,
    member: str | None = None,
) -> xr.Dataset:
    """Open Merlin MIB file(s) as a lazy Dataset; only frame headers are read.

    Parameters
    ----------
    source : path, glob, folder or list of MIB files, or a ``.zip`` of them
        A ``.hdr`` path stands for its ``.mib``. Several files are concatenated
        along frames in natural order (Merlin's one-file-per-frame mode); all
        must share one frame layout. A ``.zip`` is read through `zipfile`
        (see `beamcat.catalog.mib_zip`): its member is copied once into a cache.
    scan_shape : (ny, nx), optional
        Frames recorded per scan line (`nx`) and lines (`ny`); see `scan_index`
        for what happens when not given.
    flyback : "auto", True or False
        Whether the first frame of each scan line is a fly-back frame to drop
        (see `scan_index`).
    chunks : "auto", str or int
        Dask chunk size along frames: ``"auto"`` (~16 MiB), a size such as
        ``"64MiB"``, or a number of frames. Chunks of a scan hold whole lines
        when a line fits.
    timezone : str, optional
        IANA zone of the frame headers' local time stamps; only used for old
        headers without the UTC ``MQ1A`` time stamp. None (default) reads those
        as UTC with a `BeamcatWarning`, and ``attrs["timezone_assumed"]`` says so.
    member : str, optional
        For a ``.zip``: the member (name, base name or glob pattern) to open;
        needed when the archive holds several acquisitions.

    Returns
    -------
    xarray.Dataset
        ``counts`` : DataArray (frame, y, x) or (scan_y, scan_x, y, x), dask
        backed, uint8/16/32 by counter depth. Coordinates on the navigation
        dims: ``exposure`` (s), ``time`` (UTC datetime64[ns]), ``frame``
        (frame number in the file(s)). Attrs: ``counter_depth``, ``raw``,
        ``layout``, ``pixel_type``, ``pixel_size`` (m), scan-shape provenance
        and the ``.hdr`` sidecar's chip ID, thresholds, etc.; ``frames_expected``
        and ``frames_missing`` when the file(s) hold fewer whole frames than the
        ``.hdr`` announces.

    Raises
    ------
    FormatError
        Empty, garbage or mid-frame truncated files, frames whose headers disagree.
    OptionError
        A `scan_shape` that does not fit, a bad `flyback` or `chunks`.

    Warns
    -----
    BeamcatWarning
        Fewer whole frames than the ``.hdr`` announces (a file cut at a frame
        boundary): they open as a flat ``frame`` stack unless `scan_shape` is given.

    Examples
    --------
    >>> ds = open_mib("scan.mib")  # doctest: +SKIP
    >>> ds.counts.sum(("y", "x")).compute()  # doctest: +SKIP
    """
    files, archive = mib_files(source, member=member)
    sidecar = files[0].with_suffix(".hdr")
    hdr = read_hdr(sidecar) if sidecar.is_file() else {}
    parsed: list[FrameHeaders] = [
        read_frame_headers(f, hdr_depth=hdr_depth(hdr), timezone=timezone or "UTC") for f in files
    ]
    zone = {}
    if "MQ1A" not in parsed[0].first:  # old headers: the local time of the Merlin PC
        zone = {"timezone": timezone} if timezone else warn_assumed(files[0])
    layout = parsed[0].layout
    for f, p in zip(files[1:], parsed[1:], strict=True):
        if p.layout != layout:
            raise FormatError(f"{f}: frame layout {p.layout} differs from {files[0]}'s {layout}")
    exposure = np.concatenate([p.exposure for p in parsed])
    time = np.concatenate([p.time for p in parsed])
    if not len(exposure):
        raise FormatError(f"{files[0]}: no frames")
    extra = hdr_attrs(hdr)
    missing = _missing_frames(files[0], sidecar, len(exposure), extra, scan_shape)
    if missing and scan_shape is None:  # a cut scan is not reshaped into another shape
        index, scan_attrs = np.arange(len(exposure)), {"scan_shape_from": "none (incomplete)"}
        scan_attrs |= {"flyback_dropped": False}
    else:
        index, scan_attrs = scan_index(
            exposure, scan_shape=scan_shape, flyback=flyback, hdr=extra, name=str(files[0])
        )
    frames = MibFrames([str(f) for f in files], [len(p.exposure) for p in parsed], layout, index)
    counts = da.from_array(
        frames,
        chunks=_chunks(index.shape, layout, chunks),
        asarray=False,
        lock=False,  # fancy=True: dask's slice fusion skips getter_nofancy
        meta=np.empty((0,) * frames.ndim, dtype=frames.dtype),
        name=f"open_mib-{tokenize(frames)}",
    )
    nav = ("frame",) if index.ndim == 1 else ("scan_y", "scan_x")
    first = parsed[0].first
    values, occurrences = np.unique(exposure, return_counts=True)
    attrs = provenance(files[0] if len(files) == 1 else files, "mib")
    attrs.update(
        signal="counts",
        pixel_size=PIXEL_SIZE,
        counter_depth=layout.depth,
        raw=layout.raw,
        layout=layout.layout,
        pixel_type=layout.pixel_type,
        chips=layout.nchips,
        header_size=layout.header_size,
        frames_in_file=len(exposure),
        exposure_time=float(values[np.argmax(occurrences)]),
        counter=int(first[11]) if first[11].isdigit() else first[11],
        **scan_attrs,
        **extra,
        **zone,
        **archive,  # a .zip: source is the archive, member and extracted_to say the rest
    )
    if missing:
        attrs.update(frames_expected=extra["frames_in_acquisition"], frames_missing=missing)
    return xr.Dataset(
        {"counts": (nav + ("y", "x"), counts, {"units": "counts", "long_name": "Medipix counts"})},
        coords={
            "exposure": (nav, exposure[index], {"units": "s", "long_name": "shutter time"}),
            "time": (nav, time[index], {"long_name": "frame start (UTC)"}),
            "frame": (nav, index, {"long_name": "frame number in the file(s)"}),
        },
        attrs=attrs,
    )
