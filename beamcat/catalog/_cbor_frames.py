"""Reading the image payloads of an indexed recording (see `_cbor_index`)."""

from __future__ import annotations

import numpy as np

from beamcat.catalog import _cbor_items as items
from beamcat.catalog._cbor_index import Message, Recording
from beamcat.errors import FormatError


class Reader:
    """Open stream files (each once) and decode image payloads from them."""

    def __init__(self, recording: Recording):
        self.recording = recording
        self.open: dict[int, object] = {}

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *exc) -> None:
        for f in self.open.values():
            f.close()

    def frame(self, m: Message, out: np.ndarray | None = None) -> np.ndarray:
        """Decode the image of message `m`, into `out` (y, x) when given."""
        if m.file not in self.open:
            path = self.recording.files[m.file]
            self.open[m.file] = items.open_stream(path, self.recording.gzip_indexes[m.file])
        f = self.open[m.file]
        blob = m.parts[0]
        try:
            f.seek(blob.offset)
            if out is not None and m.header.get("compression", "none") == "none":
                # straight into the output: page faults on fresh buffers cost more than decoding
                got = f.readinto(memoryview(out).cast("B"))
                if got != blob.length:
                    raise FormatError(f"payload ends after {got} of {blob.length} bytes")
                if out.dtype != items.frame_dtype(m.header):  # a big-endian host
                    out.byteswap(inplace=True)
                return out
            raw = f.read(blob.length)
            if len(raw) != blob.length:
                raise FormatError(f"payload ends after {len(raw)} of {blob.length} bytes")
            frame = items.decode_frame(raw, m.header)
            if out is None:
                return frame
            out[...] = frame
            return out
        except FormatError as exc:
            raise FormatError(f"{self.recording.where(m)}: {exc}") from None
        except (EOFError, OSError) as exc:
            raise FormatError(
                f"{self.recording.where(m)}: cannot read the payload: {exc}"
            ) from None


class FrameStore:
    """Array-like ``(frame, y, x)`` over a recorded detector stream, for `dask.array.from_array`.

    Indexing reads only the frames asked for, each file opened once per call and
    read in offset order (forward seeks only, which gzip streams need).
    """

    def __init__(
        self,
        recording: Recording,
        frames: tuple[Message, ...],
        shape: tuple[int, int],
        dtype: np.dtype,
    ):
        self.recording = recording
        self.frames = frames
        self.dtype = dtype
        self.shape = (len(frames), *shape)
        self.ndim = 3
        self.frame_nbytes = int(np.prod(shape)) * dtype.itemsize

    def __getitem__(self, key) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        first, rest = (key[0], key[1:]) if key else (slice(None), ())
        picked = np.arange(self.shape[0])[first]
        wanted = np.atleast_1d(picked)
        out = np.empty((len(wanted), *self.shape[1:]), self.dtype)
        order = sorted(range(len(wanted)), key=lambda i: self._place(wanted[i]))
        with Reader(self.recording) as reader:
            for i in order:
                reader.frame(self.frames[wanted[i]], out[i])
        out = out[(slice(None), *rest)]
        return out[0] if np.ndim(picked) == 0 else out

    def _place(self, i: int) -> tuple[int, int]:
        m = self.frames[i]
        return m.file, m.parts[0].offset
