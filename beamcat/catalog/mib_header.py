"""Quantum Detectors Merlin MIB headers: per-frame ASCII headers and the ``.hdr`` sidecar.

Every MIB frame is an ASCII header followed by the pixel payload. The header is
comma separated and padded with NUL bytes up to its declared size::

    MQ1,seq,hdr_size,nchips,W,H,pixel_type,layout,chipsel,local_time,shutter_s,
    counter,colour,gain,thr0..thr7,<DACs per chip>,MQ1A,utc_time,shutter_ns,depth,

Short (RAW, old firmware) headers leave out the thresholds and DACs, so the
extension block is found by its ``MQ1A`` tag rather than by position (the
``field 18`` of epsic_tools only holds for the 20-field header). Pixel types:
``U08``/``U16``/``U32``/``U64`` are big-endian unsigned integers; ``R64`` is the
chips' raw readout whose counter depth (1, 6, 12 or 24 bit) is given after
``MQ1A``. This module only parses text; decoding pixels lives in `mib`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from beamcat._util import to_utc
from beamcat.catalog._mib_columns import parse_columns
from beamcat.errors import FormatError

MAGIC = b"MQ1,"
#: bytes read first: enough to hold the fields up to the header size
_PROBE = 64
#: non-RAW pixel type -> big-endian storage dtype
_STORAGE = {"U08": ">u1", "U16": ">u2", "U32": ">u4", "U64": ">u8"}
#: counter depth a non-RAW pixel type implies (U08 is 1 or 6 bit: needs MQ1A or .hdr)
_DEPTH_OF_TYPE = {"U08": 6, "U16": 12, "U32": 24, "U64": 48}
#: RAW payload bytes per pixel, by counter depth (24 bit = two 12-bit images)
_RAW_BYTES_PER_PIXEL = {1: 1 / 8, 6: 1, 12: 2, 24: 4}
#: decoded (native) dtype by counter depth
_DECODED = {1: np.uint8, 6: np.uint8, 12: np.uint16, 24: np.uint32, 48: np.uint64}
#: fields that every frame of one file must share: index -> name
_SHARED_FIELDS = {
    2: "header size",
    3: "chip count",
    4: "width",
    5: "height",
    6: "pixel type",
    7: "layout",
}


@dataclass(frozen=True)
class FrameLayout:
    """What every frame of a MIB file shares.

    Attributes
    ----------
    header_size : int
        Bytes of ASCII header before each payload (384 single chip, 768 quad).
    nchips : int
        Number of Medipix chips read out.
    width, height : int
        Size declared in the header (for RAW: of the raw readout, not the image).
    pixel_type : str
        ``U08``, ``U16``, ``U32``, ``U64`` or ``R64`` (raw).
    layout : str
        Chip assembly, ``1x1``, ``2x2``, ``Nx1`` ...
    depth : int
        Counter depth in bits (1, 6, 12, 24).
    """

    header_size: int
    nchips: int
    width: int
    height: int
    pixel_type: str
    layout: str
    depth: int

    @property
    def raw(self) -> bool:
        """True for R64 frames (the chips' raw readout)."""
        return self.pixel_type == "R64"

    @property
    def raw_width(self) -> int:
        """Pixels per row of one raw image (24-bit RAW holds two images side by side)."""
        return self.width // 2 if self.depth == 24 else self.width

    @property
    def shape(self) -> tuple[int, int]:
        """Decoded image shape ``(y, x)``."""
        if not self.raw:
            return (self.height, self.width)
        if self.layout == "2x2":
            return (2 * self.height, self.raw_width // 2)
        return (self.height, self.raw_width)

    @property
    def payload_size(self) -> int:
        """Pixel bytes per frame."""
        if self.raw:
            return int(self.height * self.raw_width * _RAW_BYTES_PER_PIXEL[self.depth])
        return self.height * self.width * np.dtype(_STORAGE[self.pixel_type]).itemsize

    @property
    def frame_size(self) -> int:
        """Header plus pixel bytes per frame."""
        return self.header_size + self.payload_size

    @property
    def storage_dtype(self) -> np.dtype:
        """Big-endian dtype of a non-RAW payload."""
        return np.dtype(_STORAGE[self.pixel_type])

    @property
    def dtype(self) -> np.dtype:
        """Native dtype of decoded pixels."""
        return np.dtype(_DECODED[self.depth])


@dataclass(frozen=True)
class FrameHeaders:
    """Per-frame values parsed from every header of a file.

    Attributes
    ----------
    layout : FrameLayout
    sequence : ndarray (frame,) int64
        Merlin's 1-based frame counter.
    exposure : ndarray (frame,) float64
        Shutter time in s (from ``MQ1A``'s ns value when present).
    time : ndarray (frame,) datetime64[ns]
        Frame start in UTC.
    first : list of str
        Fields of the first header, for attrs.
    """

    layout: FrameLayout
    sequence: np.ndarray
    exposure: np.ndarray
    time: np.ndarray
    first: list[str]


def _fields(raw: bytes) -> list[str]:
    return raw.split(b"\0", 1)[0].decode("ascii", errors="replace").split(",")


def _int(path: Path, fields: list[str], index: int, offset: int, name: str) -> int:
    try:
        return int(fields[index])
    except (IndexError, ValueError):
        raise FormatError(
            f"{path}: byte offset {offset}: header field {index} ({name}) should be "
            f"an integer, got {fields[index] if index < len(fields) else 'nothing'!r}"
        ) from None


def _extension(fields: list[str]) -> int | None:
    """Index of the ``MQ1A`` tag, or None for headers without the extension."""
    try:
        return fields.index("MQ1A")
    except ValueError:
        return None


def read_layout(path: Path, fd: int, hdr_depth: int | None) -> FrameLayout:
    """Parse the first frame header of an open file into a `FrameLayout`.

    `hdr_depth` is the ``.hdr`` sidecar's counter depth, used when the frame
    headers do not say it (no ``MQ1A`` block).
    """
    probe = os.pread(fd, _PROBE, 0)
    if not probe:
        raise FormatError(f"{path}: empty file: expected MIB frames starting with 'MQ1,'")
    if not probe.startswith(MAGIC):
        raise FormatError(
            f"{path}: byte offset 0: expected a MIB frame header starting with 'MQ1,', "
            f"found {probe[:16]!r}"
        )
    header_size = _int(path, _fields(probe), 2, 0, "header size")
    if not 0 < header_size < 1 << 20:
        raise FormatError(f"{path}: byte offset 0: implausible header size {header_size}")
    fields = _fields(os.pread(fd, header_size, 0))
    if len(fields) < 11:
        raise FormatError(
            f"{path}: byte offset 0: header has {len(fields)} fields, expected at least 11"
        )
    pixel_type = fields[6].strip()
    if pixel_type != "R64" and pixel_type not in _STORAGE:
        raise FormatError(
            f"{path}: byte offset 0: unsupported pixel type {pixel_type!r}: "
            f"expected one of {', '.join([*_STORAGE, 'R64'])}"
        )
    ext = _extension(fields)
    if ext is not None and ext + 3 < len(fields):
        depth = _int(path, fields, ext + 3, 0, "counter depth")
    elif hdr_depth is not None:
        depth = hdr_depth
    elif pixel_type == "R64":
        raise FormatError(
            f"{path}: RAW (R64) frames without an 'MQ1A' header block and without a "
            ".hdr sidecar: the counter depth is unknown"
        )
    else:
        depth = _DEPTH_OF_TYPE[pixel_type]
    layout = FrameLayout(
        header_size=header_size,
        nchips=_int(path, fields, 3, 0, "chip count"),
        width=_int(path, fields, 4, 0, "width"),
        height=_int(path, fields, 5, 0, "height"),
        pixel_type=pixel_type,
        layout=fields[7].strip(),
        depth=depth,
    )
    if layout.raw and depth not in _RAW_BYTES_PER_PIXEL:
        raise FormatError(f"{path}: RAW counter depth {depth}: expected 1, 6, 12 or 24")
    if layout.raw and layout.layout not in ("1x1", "2x2"):
        raise FormatError(
            f"{path}: RAW frames in layout {layout.layout!r}: only 1x1 and 2x2 are supported"
        )
    if layout.raw and layout.layout == "2x2" and layout.raw_width % 4:
        raise FormatError(f"{path}: RAW 2x2 width {layout.width} is not 4 chips wide")
    if min(layout.width, layout.height) <= 0:
        raise FormatError(f"{path}: byte offset 0: frame size {layout.width}x{layout.height}")
    return layout


def read_frame_headers(path: Path, *, hdr_depth: int | None, timezone: str) -> FrameHeaders:
    """Read and check every frame header of a MIB file, touching no pixel bytes.

    One ``os.pread`` of `header_size` bytes per frame: for 16384 frames this is
    a few tens of ms and reads 6 MB instead of the file's GBs.

    Raises
    ------
    FormatError
        Empty file, no ``MQ1`` magic, a size that is not a whole number of
        frames, or a frame whose header disagrees with the first one.
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        layout = read_layout(path, fd, hdr_depth)
        size = os.fstat(fd).st_size
        count, rest = divmod(size, layout.frame_size)
        if rest:
            raise FormatError(
                f"{path}: truncated: {size} bytes is not a whole number of "
                f"{layout.frame_size}-byte frames; frame {count} is cut at byte offset "
                f"{count * layout.frame_size} ({rest} of {layout.frame_size} bytes present)"
            )
        step, head = layout.frame_size, layout.header_size
        headers = [os.pread(fd, head, i * step) for i in range(count)]
    finally:
        os.close(fd)
    return _parse_headers(path, layout, headers, timezone)


def _parse_headers(
    path: Path, layout: FrameLayout, headers: list[bytes], timezone: str
) -> FrameHeaders:
    first = _fields(headers[0])
    ext = _extension(first)
    raw = np.frombuffer(b"".join(headers), dtype=np.uint8).reshape(len(headers), -1)
    parsed = parse_columns(raw, ext, tuple(_SHARED_FIELDS))  # whole columns at once
    sequence, exposure, times = parsed or _parse_rows(path, layout, headers, first, ext)
    expected = sequence[0] + np.arange(len(headers))
    if np.any(sequence != expected):
        i = int(np.flatnonzero(sequence != expected)[0])
        raise FormatError(
            f"{path}: frame {i} at byte offset {i * layout.frame_size}: sequence number "
            f"{sequence[i]}, expected {expected[i]} (frames missing or out of order)"
        )
    try:
        if ext is not None:  # MQ1A times are UTC with ns resolution
            time = np.array(times, dtype="datetime64[ns]")
        else:  # the PC's local time, as written by Merlin
            time = to_utc(times, timezone)
    except ValueError as err:
        raise FormatError(f"{path}: unreadable frame timestamp: {err}") from None
    return FrameHeaders(layout, sequence, exposure, time, first)


def _parse_rows(
    path: Path, layout: FrameLayout, headers: list[bytes], first: list[str], ext: int | None
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Frame by frame: the headers `parse_columns` does not take, and the error naming one."""
    sequence = np.empty(len(headers), dtype=np.int64)
    exposure = np.empty(len(headers), dtype=np.float64)
    times: list[str] = []
    step = layout.frame_size
    for i, raw in enumerate(headers):
        offset = i * step
        if not raw.startswith(MAGIC):
            raise FormatError(
                f"{path}: frame {i} at byte offset {offset}: expected 'MQ1,' header, "
                f"found {raw[:16]!r}"
            )
        fields = _fields(raw)
        for index, name in _SHARED_FIELDS.items():
            if index >= len(fields) or fields[index] != first[index]:
                got = fields[index] if index < len(fields) else "nothing"
                raise FormatError(
                    f"{path}: frame {i} at byte offset {offset}: {name} {got!r} differs "
                    f"from frame 0's {first[index]!r}"
                )
        sequence[i] = _int(path, fields, 1, offset, "sequence number")
        if ext is not None:
            if fields[ext : ext + 1] != ["MQ1A"] or ext + 3 >= len(fields):
                raise FormatError(
                    f"{path}: frame {i} at byte offset {offset}: expected the 'MQ1A' block "
                    f"at field {ext} with time, shutter and depth, as in frame 0"
                )
            times.append(fields[ext + 1].rstrip("Z"))
            exposure[i] = _ns(path, fields[ext + 2], offset)
            if fields[ext + 3] != first[ext + 3]:
                raise FormatError(
                    f"{path}: frame {i} at byte offset {offset}: counter depth "
                    f"{fields[ext + 3]!r} differs from frame 0's {first[ext + 3]!r}"
                )
        else:
            times.append(fields[9])
            exposure[i] = _float(path, fields[10], offset, "shutter time")
    return sequence, exposure, times


def _ns(path: Path, text: str, offset: int) -> float:
    if not text.endswith("ns"):
        raise FormatError(f"{path}: byte offset {offset}: shutter time {text!r} should end in 'ns'")
    return _float(path, text[:-2], offset, "shutter time") * 1e-9


def _float(path: Path, text: str, offset: int, name: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise FormatError(
            f"{path}: byte offset {offset}: {name} {text!r} is not a number"
        ) from None


# ---------------------------------------------------------------- .hdr sidecar

#: .hdr key -> attrs name, for the values worth lifting into Dataset attrs
_HDR_ATTRS = {
    "Chip ID": "chip_id",
    "Chip Type": "chip_type",
    "Assembly Size": "assembly_size",
    "Chip Mode": "chip_mode",
    "Gain": "gain",
    "Readout System": "readout_system",
    "Software Version": "software_version",
    "Time and Date Stamp": "acquisition_start",
}
_UNITS_IN_KEY = re.compile(r"\s*\(.*\)\s*$")


def read_hdr(path: Path) -> dict[str, str]:
    """Parse a Merlin ``.hdr`` sidecar (``key:<TAB>value`` lines from ``HDR,`` to ``End``).

    Keys are returned without their parenthesised hints, e.g. ``"Counter Depth"``
    for ``"Counter Depth (number)"``.
    """
    result: dict[str, str] = {}
    with open(path, encoding="ascii", errors="replace") as f:
        lines = f.read().splitlines()
    if not lines or not lines[0].startswith("HDR"):
        raise FormatError(f"{path}: expected a Merlin .hdr file starting with 'HDR,'")
    for line in lines[1:]:
        if line.startswith("End"):
            break
        key, sep, value = line.partition(":\t")
        if sep:
            result[_UNITS_IN_KEY.sub("", key.strip())] = value.strip()
    return result


def hdr_attrs(hdr: dict[str, str]) -> dict:
    """The useful part of a parsed ``.hdr`` as Dataset attrs (numbers as numbers)."""
    attrs = {name: hdr[key] for key, name in _HDR_ATTRS.items() if key in hdr}
    if "Thresholds" in hdr:
        attrs["thresholds_keV"] = [float(v) for v in hdr["Thresholds"].split(",") if v.strip()]
    bias = re.match(r"\s*(-?[\d.]+)", hdr.get("Sensor Bias", ""))
    if bias:
        attrs["sensor_bias_V"] = float(bias.group(1))
    for key in ("Frames in Acquisition", "Frames per Trigger", "ScanX", "ScanY"):
        value = hdr.get(key, "").strip()
        if value.isdigit():
            attrs[key.lower().replace(" ", "_")] = int(value)
    return attrs


def hdr_depth(hdr: dict[str, str]) -> int | None:
    """The counter depth a parsed ``.hdr`` states, if any."""
    value = hdr.get("Counter Depth", "").strip()
    return int(value) if value.isdigit() else None


# ---------------------------------------------------------------- writing


def format_frame_header(
    layout: FrameLayout,
    *,
    sequence: int,
    time: np.datetime64,
    exposure: float,
    thresholds_keV: tuple[float, ...] = (10.0, 511.0),
) -> bytes:
    """One frame header as Merlin writes it (long form, with the ``MQ1A`` block).

    `time` is UTC; it fills both the local-time field and the ``MQ1A`` UTC field.
    """
    ns = int(round(exposure * 1e9))
    stamp = np.datetime_as_string(np.datetime64(time, "ns"), unit="ns")
    thresholds = [*thresholds_keV, *[0.0] * (8 - len(thresholds_keV))][:8]
    chipsel = f"{(1 << layout.nchips) - 1:02X}"
    fields = [
        "MQ1",
        f"{sequence:06d}",
        f"{layout.header_size:05d}",
        f"{layout.nchips:02d}",
        f"{layout.width:04d}",
        f"{layout.height:04d}",
        layout.pixel_type,
        f"{layout.layout:>6}",
        chipsel,
        stamp[:26].replace("T", " "),
        f"{exposure:.6f}",
        "0",
        "0",
        "0",
        *[f"{t:.6E}".replace("E+0", "E+").replace("E-0", "E-") for t in thresholds],
        "3RX",
        "MQ1A",
        stamp + "Z",
        f"{ns}ns",
        str(layout.depth),
        "",
    ]
    text = ",".join(fields).encode("ascii")
    if len(text) > layout.header_size:
        raise FormatError(f"MIB header of {len(text)} bytes exceeds {layout.header_size}")
    return text.ljust(layout.header_size, b"\0")


def format_hdr(
    layout: FrameLayout,
    *,
    frames: int,
    time: np.datetime64,
    exposure: float,
    scan_shape: tuple[int, int] | None = None,
) -> str:
    """A ``.hdr`` sidecar describing an acquisition written by `beamcat`.

    With `scan_shape` ``(ny, nx)`` it says one trigger per scan line
    (``Frames per Trigger`` = nx) and adds ``ScanX``/``ScanY`` as Merlin 1.5 does.
    """
    stamp = np.datetime64(time, "s").astype(object).strftime("%d/%m/%Y %H:%M:%S")
    chips = ",".join(f"BEAMCAT_{i}" for i in range(layout.nchips))
    lines = [
        "HDR,\t",
        f"Time and Date Stamp (day, mnth, yr, hr, min, s):\t{stamp}",
        f"Chip ID:\t{chips}",
        "Chip Type (Medipix 3.0, Medipix 3.1, Medipix 3RX):\tMedipix 3RX",
        f"Assembly Size (NX1, 2X2):\t{layout.layout:>6}",
        "Chip Mode  (SPM, CSM, CM, CSCM):\tSPM",
        f"Counter Depth (number):\t{layout.depth}",
        "Gain:\tSLGM",
        "Active Counters:\tCounter 0",
        "Thresholds (keV):\t1.000000E+1,5.110000E+2,0.000000E+0,0.000000E+0,"
        "0.000000E+0,0.000000E+0,0.000000E+0,0.000000E+0",
        "Acquisition Type (Normal, Th_scan, Config):\tNormal",
        f"Frames in Acquisition (Number):\t{frames}",
        f"Frames per Trigger (Number):\t{scan_shape[1] if scan_shape else 1}",
        "Trigger Start (Positive, Negative, Internal):\tInternal",
        "Trigger Stop (Positive, Negative, Internal):\tInternal",
        "Sensor Bias (V):\t120 V",
        f"Shutter Time (s):\t{exposure:.6f}",
        "Readout System:\tbeamcat write_mib",
        "Software Version:\tbeamcat",
    ]
    if scan_shape:
        lines += [f"ScanX:\t{scan_shape[1]}", f"ScanY:\t{scan_shape[0]}"]
    lines.append("End\t")
    return "\n".join(lines) + "\n"
