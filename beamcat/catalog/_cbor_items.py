"""Low-level pieces of recorded dranspose streams: walking CBOR items, reading payloads.

A recording (``*.cbors`` or ``*.cbors.gz``) is a CBOR sequence: items one after
another, no framing. cbor2 would decode every payload into memory; the walker
here parses the same items but returns large byte strings as `Blob` (offset and
length in the -- possibly decompressed -- stream) and seeks over them, so an
index of a recording is built without holding any pixel data.

gzip streams are not seekable. With ``indexed_gzip`` installed, the scan builds a
seek-point index (one point per `GZIP_SPACING` decompressed bytes, 32 KiB window
each, stored zlib-compressed: about 0.2 % of the decompressed size) that every
dask task imports, so a task decompresses at most `GZIP_SPACING` bytes before its
first frame. Without it, each read decompresses the stream from its start.
"""

from __future__ import annotations

import gzip
import io
import json
import math
import struct
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import numpy as np

from beamcat.errors import FormatError

try:  # optional: random access into gzip streams
    import indexed_gzip
except ImportError:  # pragma: no cover - exercised by monkeypatching in tests
    indexed_gzip = None

#: decompressed bytes between two gzip seek points
GZIP_SPACING = 16 * 2**20
#: byte strings at least this long are located, not read, by the walker
BLOB_MIN = 64 * 2**10
#: image payload encodings `decode_frame` reads
COMPRESSIONS = ("none", "bslz4", "lz4")
_MAX_DEPTH = 32
#: CBOR tags of a recording: "this is CBOR" (each item), dranspose message, stream data
SELF_DESCRIBED_TAG, MESSAGE_TAG, STREAM_TAG = 55799, 42877, 42878
_GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class Blob:
    """A byte string: `length` bytes at `offset`; its `data` when shorter than `BLOB_MIN`."""

    offset: int
    length: int
    data: bytes | None = None


@dataclass(frozen=True)
class Tag:
    """A CBOR tag the walker does not interpret."""

    tag: int
    value: Any


#: what `read_item` returns at the end of a stream
END = object()


class Truncated(Exception):
    """The stream ended inside an item (internal; the caller adds file and item)."""


class Garbled(Exception):
    """Bytes that are not CBOR (internal; the caller adds file and item)."""


def is_gzip(path: Path) -> bool:
    """Whether a file starts with the gzip magic bytes."""
    with open(path, "rb") as f:
        return f.read(2) == _GZIP_MAGIC


def open_stream(path: Path, index: bytes | None = None) -> IO[bytes]:
    """Open a recording for reading its (decompressed) CBOR sequence.

    Parameters
    ----------
    path : Path
        A plain or gzip-compressed CBOR sequence (told apart by magic bytes).
    index : bytes, optional
        An ``indexed_gzip`` index exported by `export_index`; makes seeks cheap.
    """
    if not is_gzip(path):
        return open(path, "rb")
    if indexed_gzip is None:
        return gzip.open(path, "rb")
    # indexed_gzip's default buffer is 4 x spacing = 64 MiB per open file; below ~8 MiB
    # reads of multi-MB frames slow down by half
    f = indexed_gzip.IndexedGzipFile(str(path), spacing=GZIP_SPACING, buffer_size=2**23)
    if index is not None:
        f.import_index(fileobj=io.BytesIO(index))
    return f


def export_index(stream: IO[bytes]) -> bytes | None:
    """The seek-point index an ``indexed_gzip`` stream built while it was read."""
    if indexed_gzip is None or not isinstance(stream, indexed_gzip.IndexedGzipFile):
        return None
    out = io.BytesIO()
    stream.export_index(fileobj=out)
    return out.getvalue()


def check_gzip_complete(path: Path, size: int) -> None:
    """Raise `Truncated` when a gzip file ends before its end-of-stream marker.

    ``indexed_gzip`` stops quietly at the end of a truncated file, so the
    decompressed size is compared with the gzip trailer (ISIZE, size mod 2**32);
    only on a mismatch (a truncated file, or several gzip members) is the file
    decompressed again by the strict `gzip` module to tell which.
    """
    with open(path, "rb") as f:
        f.seek(-4, io.SEEK_END)
        (isize,) = struct.unpack("<I", f.read(4))
    if isize == size % 2**32:
        return
    try:
        with gzip.open(path, "rb") as g:
            while g.read(2**24):
                pass
    except (EOFError, OSError, gzip.BadGzipFile) as exc:
        raise Truncated(str(exc)) from None


def read_item(f: IO[bytes]) -> Any:
    """Read the next CBOR item of a sequence; `END` at a clean end of the stream.

    Byte strings come back as `Blob` (with their bytes when shorter than
    `BLOB_MIN`, else only located and skipped); tag 0/1
    (date-time) as aware `datetime`; tag 55799 is dropped; other tags as `Tag`.

    Raises
    ------
    Truncated, Garbled
        When the stream ends inside the item, or the bytes are not CBOR.
    """
    try:
        first = f.read(1)
        return _value(f, first[0], 0) if first else END
    except EOFError as exc:  # the gzip module: compressed data ends before its end marker
        raise Truncated(str(exc)) from None
    except OSError as exc:  # gzip.BadGzipFile, zlib and indexed_gzip read errors
        raise Garbled(f"the compressed stream is corrupt: {exc}") from None


def _read(f: IO[bytes], n: int) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise Truncated(f"expected {n} more bytes, got {len(data)}")
    return data


def _argument(f: IO[bytes], info: int) -> int | None:
    """The integer after an initial byte; None for indefinite length (31)."""
    if info < 24:
        return info
    if info == 31:
        return None
    if info > 27:
        raise Garbled(f"reserved additional information {info}")
    return int.from_bytes(_read(f, 1 << (info - 24)), "big")


def _skip(f: IO[bytes], n: int) -> int:
    """Seek over `n` bytes; return where they start. Checked against the stream's end."""
    start = f.tell()
    if f.seek(n, io.SEEK_CUR) != start + n or f.tell() != start + n:
        raise Truncated(f"byte string of {n} bytes at {start} runs past the end")
    return start


def _value(f: IO[bytes], initial: int, depth: int) -> Any:
    if depth > _MAX_DEPTH:
        raise Garbled(f"items nested deeper than {_MAX_DEPTH}")
    major, info = initial >> 5, initial & 0x1F
    if major == 7:
        return _simple(f, info)
    arg = _argument(f, info)
    if major == 0:
        return arg
    if major == 1:
        return -1 - arg
    if arg is None and major in (2, 3):
        raise Garbled("indefinite-length strings are not used by dranspose")
    if major == 2:
        if arg >= BLOB_MIN:
            return Blob(_skip(f, arg), arg)
        return Blob(f.tell(), arg, _read(f, arg))
    if major == 3:
        if arg >= BLOB_MIN:  # recordings hold short texts only: a long one is garbage
            raise Garbled(f"text string of {arg} bytes")
        try:
            return _read(f, arg).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise Garbled(f"text string is not UTF-8: {exc}") from None
    if major == 4:
        return list(_members(f, arg, depth))
    if major == 5:
        items = list(_members(f, None if arg is None else 2 * arg, depth))
        try:
            return dict(zip(items[::2], items[1::2], strict=True))
        except TypeError as exc:  # a list or dict as key: not what a recording holds
            raise Garbled(f"unhashable map key: {exc}") from None
    return _tagged(arg, _value(f, _read(f, 1)[0], depth + 1))


def _members(f: IO[bytes], count: int | None, depth: int):
    if count is None:  # indefinite length: until the "break" byte 0xff
        while (b := _read(f, 1)[0]) != 0xFF:
            yield _value(f, b, depth + 1)
        return
    for _ in range(count):
        yield _value(f, _read(f, 1)[0], depth + 1)


def _simple(f: IO[bytes], info: int) -> Any:
    if info in (20, 21):
        return info == 21
    if info in (22, 23):
        return None
    if info == 24:
        return Tag(7, _read(f, 1)[0])
    if info in (25, 26, 27):
        fmt = {25: ">e", 26: ">f", 27: ">d"}[info]
        return struct.unpack(fmt, _read(f, struct.calcsize(fmt)))[0]
    if info < 20:
        return Tag(7, info)
    raise Garbled(f"unexpected simple value {info}")


def _tagged(tag: int, value: Any) -> Any:
    if tag == SELF_DESCRIBED_TAG:
        return value
    if tag == 0 and isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            raise Garbled(f"date-time tag holds {value!r}") from None
    if tag == 1 and isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    return Tag(tag, value)


# --- payloads -------------------------------------------------------------------------------


def frame_dtype(header: dict) -> np.dtype:
    """The little-endian numpy dtype named by an image header's ``type``."""
    try:
        return np.dtype(header["type"]).newbyteorder("<")
    except (TypeError, KeyError):
        raise FormatError(f"image type {header.get('type')!r} is not a numpy dtype") from None


def decode_frame(raw: bytes, header: dict) -> np.ndarray:
    """Decode one image payload as its JSON header describes it.

    Parameters
    ----------
    raw : bytes
        The payload as recorded.
    header : dict
        The image's JSON header: ``shape`` (y, x), ``type`` and ``compression``
        (``"none"``; ``"bslz4"``: Dectris bitshuffle-LZ4 with its 12-byte header;
        ``"lz4"``: one LZ4 block).

    Returns
    -------
    ndarray (y, x)
        A writable array in native byte order.
    """
    shape = tuple(header["shape"])
    dtype = frame_dtype(header)
    nbytes = math.prod(shape) * dtype.itemsize
    compression = header.get("compression", "none")
    if compression == "none":
        if len(raw) != nbytes:
            raise FormatError(f"payload has {len(raw)} bytes, {shape} {dtype} needs {nbytes}")
        flat = np.frombuffer(raw, dtype=dtype)
    elif compression == "bslz4":
        flat = _bslz4(raw, nbytes, dtype)
    elif compression == "lz4":
        flat = np.frombuffer(_lz4_block(raw, nbytes), dtype=dtype)
    else:
        raise FormatError(f"compression {compression!r} not supported ({', '.join(COMPRESSIONS)})")
    return flat.reshape(shape).astype(dtype.newbyteorder("="), copy=False)


def encode_frame(frame: np.ndarray, compression: str) -> bytes:
    """Encode a frame the way `decode_frame` reads it (for writing recordings)."""
    data = np.ascontiguousarray(frame, dtype=frame.dtype.newbyteorder("<"))
    if compression == "none":
        return data.tobytes()
    if compression == "bslz4":
        bitshuffle = _import("bitshuffle", "bslz4")
        block = 8192 // data.itemsize * data.itemsize  # bitshuffle's default block, in bytes
        head = struct.pack(">QI", data.nbytes, block)
        body = bitshuffle.compress_lz4(data.ravel(), block // data.itemsize)
        return head + body.tobytes()
    if compression == "lz4":
        return _import("lz4.block", "lz4").compress(data.tobytes(), store_size=False)
    raise FormatError(f"compression {compression!r} not supported ({', '.join(COMPRESSIONS)})")


def _bslz4(raw: bytes, nbytes: int, dtype: np.dtype) -> np.ndarray:
    bitshuffle = _import("bitshuffle", "bslz4")
    if len(raw) < 12:
        raise FormatError(f"bslz4 payload of {len(raw)} bytes is shorter than its 12-byte header")
    total, block = struct.unpack(">QI", raw[:12])
    if total != nbytes:
        raise FormatError(f"bslz4 header says {total} bytes, the image header {nbytes}")
    try:
        return bitshuffle.decompress_lz4(
            np.frombuffer(raw, np.uint8, offset=12),
            (nbytes // dtype.itemsize,),
            dtype,
            block // dtype.itemsize,
        )
    except (ValueError, RuntimeError) as exc:
        raise FormatError(f"bslz4 payload does not decompress: {exc}") from None


def _lz4_block(raw: bytes, nbytes: int) -> bytes:
    lz4_block = _import("lz4.block", "lz4")
    try:
        out = lz4_block.decompress(raw, uncompressed_size=nbytes)
    except lz4_block.LZ4BlockError as exc:
        raise FormatError(f"lz4 payload does not decompress: {exc}") from None
    if len(out) != nbytes:
        raise FormatError(f"lz4 payload gives {len(out)} bytes, expected {nbytes}")
    return out


def _import(module: str, compression: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        package = module.split(".")[0]
        raise FormatError(
            f"compression {compression!r} needs the {package!r} package (pip install {package})"
        ) from None


def blob_bytes(f: IO[bytes], blob: Blob) -> bytes:
    """The bytes of a `Blob`, read from the stream when the walker skipped them."""
    if blob.data is not None:
        return blob.data
    here = f.tell()
    f.seek(blob.offset)
    data = f.read(blob.length)
    f.seek(here)
    if len(data) != blob.length:
        raise Truncated(f"byte string of {blob.length} bytes at {blob.offset} runs past the end")
    return data


def parse_json(raw: Any, what: str) -> dict:
    """A JSON object recorded as bytes (message headers, sardana packets)."""
    if not isinstance(raw, bytes | str):
        raise FormatError(f"{what} is {type(raw).__name__}, expected JSON bytes")
    try:
        value = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FormatError(f"{what} is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise FormatError(f"{what} is JSON {type(value).__name__}, expected an object")
    return value
