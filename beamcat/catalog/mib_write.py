"""Write Quantum Detectors Merlin MIB files (and ``.hdr`` sidecars) that `open_mib` reads back.

The encoder is the inverse of `beamcat.catalog.mib.decode_frames`: plain
``U08``/``U16``/``U32`` big-endian integers, or the chips' RAW (``R64``) order.
Used for the demo 4D-STEM scan, tests and benchmarks.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
from dask.utils import parse_bytes

from beamcat._util import atomic_open
from beamcat.catalog.mib_header import FrameLayout, format_frame_header, format_hdr
from beamcat.errors import OptionError

_PIXEL_TYPE = {1: "U08", 6: "U08", 12: "U16", 24: "U32"}
_BLOCK_BYTES = parse_bytes("64MiB")


def encode_frames(frames: np.ndarray, layout: FrameLayout) -> np.ndarray:
    """Inverse of `decode_frames`: (frame, y, x) images -> (frame, byte) uint8 payloads."""
    m = frames.shape[0]
    if not layout.raw:
        return (
            np.ascontiguousarray(frames, dtype=layout.storage_dtype).view(np.uint8).reshape(m, -1)
        )
    if layout.layout == "2x2":
        h, w = frames.shape[1] // 2, frames.shape[2] // 2
        chips = [frames[:, h:, w:], frames[:, h:, :w], frames[:, :h, w:], frames[:, :h, :w]]
        chips[0], chips[1] = chips[0][:, ::-1, ::-1], chips[1][:, ::-1, ::-1]
        frames = np.concatenate(chips, axis=2)
    return _raw_bytes(frames.reshape(m, -1), layout.depth)


def _raw_bytes(pixels: np.ndarray, depth: int) -> np.ndarray:
    m = pixels.shape[0]
    if depth == 1:
        bits = pixels.astype(np.uint8).reshape(m, -1, 8, 8)
        packed = np.packbits(bits, axis=-1, bitorder="little").reshape(m, -1, 8)
        return np.ascontiguousarray(packed[..., ::-1]).reshape(m, -1)
    if depth == 6:
        return np.ascontiguousarray(pixels.reshape(m, -1, 8)[..., ::-1], dtype=np.uint8).reshape(
            m, -1
        )
    if depth == 12:
        words = np.ascontiguousarray(pixels.reshape(m, -1, 4)[..., ::-1], dtype=">u2")
        return words.view(np.uint8).reshape(m, -1)
    high = _raw_bytes(pixels >> 12, 12)
    return np.concatenate([high, _raw_bytes(pixels & 0xFFF, 12)], axis=1)


def _frame_layout(shape: tuple[int, int], depth: int, raw: bool, layout: str) -> FrameLayout:
    if depth not in _PIXEL_TYPE:
        raise OptionError(f"depth={depth!r}: expected 1, 6, 12 or 24")
    if layout not in ("1x1", "2x2"):
        raise OptionError(f"layout={layout!r}: expected '1x1' or '2x2'")
    ny, nx = shape
    quad = layout == "2x2"
    if raw:
        chips_x = 4 if quad else 1
        width, height = (nx // 2 if quad else nx) * chips_x, ny // 2 if quad else ny
        if quad and (ny % 2 or nx % 2):
            raise OptionError(f"RAW 2x2 frames {shape} must have even height and width")
        if (width * height) % (64 if depth == 1 else 8):
            raise OptionError(f"RAW frames {shape}: pixel count must be a multiple of 64")
        width *= 2 if depth == 24 else 1
    else:
        width, height = nx, ny
    return FrameLayout(
        header_size=768 if quad else 384,
        nchips=4 if quad else 1,
        width=width,
        height=height,
        pixel_type="R64" if raw else _PIXEL_TYPE[depth],
        layout=layout,
        depth=depth,
    )


def _blocks(frames) -> Iterator[np.ndarray]:
    """Yield (k, y, x) blocks from an array (split to bound memory) or an iterable."""
    if isinstance(frames, np.ndarray):
        if frames.ndim != 3:
            raise OptionError(f"frames of shape {frames.shape}: expected (n, y, x)")
        step = max(1, _BLOCK_BYTES // max(1, frames[:1].nbytes))
        for i in range(0, len(frames), step):
            yield frames[i : i + step]
        return
    for block in frames:
        block = np.asarray(block)
        yield block[np.newaxis] if block.ndim == 2 else block


def write_mib(
    path: str | os.PathLike,
    frames: np.ndarray | Iterable[np.ndarray],
    *,
    depth: int = 12,
    raw: bool = False,
    layout: str = "1x1",
    exposure: float | Sequence[float] | np.ndarray = 0.001,
    timestamps: Sequence | np.ndarray | None = None,
    hdr: bool = True,
    scan_shape: tuple[int, int] | None = None,
) -> Path:
    """Write frames as a Merlin MIB file (and ``.hdr`` sidecar) that `open_mib` reads back.

    Parameters
    ----------
    path : path
        Output ``.mib`` file; written to a temporary name, then renamed.
    frames : ndarray (n, y, x) or iterable of (y, x) / (k, y, x) arrays
        Non-negative integer counts below ``2**depth``. An iterable is written
        block by block, so files larger than memory can be streamed.
    depth : {1, 6, 12, 24}
        Counter depth; non-RAW pixels are stored as U08, U08, U16, U32.
    raw : bool
        Write the chips' RAW (R64) encoding instead of plain integers.
    layout : {"1x1", "2x2"}
        Single chip or quad (RAW quad frames are 2 chips high and 2 wide).
    exposure : float or sequence of float
        Shutter time in s, one for all frames or one per frame (fly-back frames
        of a demo scan get a long one).
    timestamps : sequence of datetime64, optional
        UTC start of each frame; by default now, then spaced by the exposures.
    hdr : bool
        Also write ``<stem>.hdr``.
    scan_shape : (ny, nx), optional
        Recorded in the ``.hdr`` (``ScanX``/``ScanY``, ``Frames per Trigger``).

    Returns
    -------
    Path
        The written MIB file.

    Examples
    --------
    >>> import tempfile
    >>> from beamcat.catalog.mib import open_mib
    >>> f = Path(tempfile.mkdtemp()) / "a.mib"
    >>> _ = write_mib(f, np.ones((2, 256, 256), np.uint16), depth=12)
    >>> int(open_mib(f).counts.sum())
    131072
    """
    path = Path(path)
    exposures = np.atleast_1d(np.asarray(exposure, dtype=float))
    if np.any(exposures < 0):
        raise OptionError(f"{path}: exposure must be >= 0 s")
    start = np.datetime64("now", "ns") if timestamps is None else None
    stamps = None if timestamps is None else np.asarray(timestamps, dtype="datetime64[ns]")
    written, elapsed, frame_layout = 0, 0.0, None
    with atomic_open(path, "wb") as f:
        for block in _blocks(frames):
            if frame_layout is None:
                frame_layout = _frame_layout(block.shape[1:], depth, raw, layout)
                dtype = np.dtype(
                    [
                        ("h", f"S{frame_layout.header_size}"),
                        ("d", np.uint8, frame_layout.payload_size),
                    ]
                )
            if block.shape[1:] != frame_layout.shape:
                raise OptionError(
                    f"{path}: frame {written} has shape {block.shape[1:]}, "
                    f"expected {frame_layout.shape} like frame 0"
                )
            if block.size and (block.min() < 0 or block.max() >= 1 << depth):
                raise OptionError(
                    f"{path}: frames {written}..{written + len(block) - 1} hold values "
                    f"outside 0..{(1 << depth) - 1} of a {depth}-bit counter"
                )
            records = np.empty(len(block), dtype=dtype)
            for i in range(len(block)):
                n = written + i
                t_exp = _per_frame(exposures, n, path)
                if stamps is None:
                    when = start + np.timedelta64(int(round(elapsed * 1e9)), "ns")
                else:
                    when = _per_frame(stamps, n, path)
                records["h"][i] = format_frame_header(
                    frame_layout, sequence=n + 1, time=when, exposure=t_exp
                )
                elapsed += t_exp
            records["d"] = encode_frames(block, frame_layout)
            records.tofile(f)
            written += len(block)
        if frame_layout is None:
            raise OptionError(f"{path}: no frames to write")
    if hdr:
        first = start if stamps is None else stamps[0]
        text = format_hdr(
            frame_layout,
            frames=written,
            time=first,
            exposure=float(exposures[0]),
            scan_shape=scan_shape,
        )
        sidecar = path.with_suffix(".hdr")
        with atomic_open(sidecar, "w", encoding="ascii") as f:
            f.write(text)
    return path


def _per_frame(values: np.ndarray, n: int, path: Path):
    if len(values) == 1:
        return values[0]
    if n >= len(values):
        raise OptionError(f"{path}: {len(values)} per-frame values given, frame {n} has none")
    return values[n]
