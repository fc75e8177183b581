"""Indexing a recorded dranspose stream: every message's place, no pixel data.

`index` scans each file once (gzip streams decompressed, see `_cbor_items`),
checks every item's layout and keeps, per stream and event, the JSON header and
where the payloads lie. `beamcat.catalog.cbor_stream` builds its Datasets and
replays from this index; `_cbor_frames` reads the payloads.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from beamcat.catalog import _cbor_items as items
from beamcat.errors import FormatError

STINS = "STINS"
SARDANA = "sardana"


@dataclass(frozen=True)
class Message:
    """One stream's part of one recorded event; payload parts stay `Blob` locations."""

    event: int
    time: datetime | None
    file: int
    item: int
    stream: str
    typ: str
    header: dict
    parts: tuple  # the parts after the JSON header: Blob (data dropped for payloads)


@dataclass(frozen=True)
class Recording:
    """The index of the stream files of one recording."""

    files: tuple[Path, ...]
    gzip_indexes: tuple[bytes | None, ...]
    messages: tuple[Message, ...]  # in event order

    def where(self, message: Message) -> str:
        return f"{self.files[message.file]}: item {message.item} (event {message.event})"


def index(files: list[Path]) -> Recording:
    """Scan every file once; messages of all files merged in event order."""
    messages: list[Message] = []
    indexes = []
    for number, path in enumerate(files):
        found, index = _scan(path, number)
        messages += found
        indexes.append(index)
    messages.sort(key=lambda m: (m.event, m.file, m.item))
    return Recording(tuple(files), tuple(indexes), tuple(messages))


def _scan(path: Path, number: int) -> tuple[list[Message], bytes | None]:
    gz = items.is_gzip(path)
    where = " of the decompressed stream" if gz else ""
    found: list[Message] = []
    count = 0
    with items.open_stream(path) as f:
        while True:
            offset = f.tell()
            try:
                item = items.read_item(f)
                if item is items.END:
                    break
                found += _messages(f, item, number, count)
            except items.Truncated as exc:
                raise FormatError(
                    f"{path}: item {count} at byte {offset}{where} is truncated ({exc})"
                ) from None
            except items.Garbled as exc:
                raise FormatError(
                    f"{path}: item {count} at byte {offset}{where} is not CBOR ({exc}); "
                    "expected a dranspose recording (CBOR sequence of tag-42877 messages)"
                ) from None
            except FormatError as exc:
                raise FormatError(f"{path}: item {count} at byte {offset}{where}: {exc}") from None
            count += 1
        size = f.tell()
        index = items.export_index(f)
    if not gz and size > path.stat().st_size:  # a plain file seeks past its end without a word
        raise FormatError(
            f"{path}: item {count - 1} is truncated (a byte string runs past the end)"
        )
    if index is not None:
        try:
            items.check_gzip_complete(path, size)
        except items.Truncated as exc:
            raise FormatError(
                f"{path}: gzip stream is truncated after item {count - 1} ({exc})"
            ) from None
    if count == 0:
        raise FormatError(f"{path}: empty file; expected a CBOR sequence of dranspose messages")
    return found, index


def _messages(f, item, file: int, count: int) -> list[Message]:
    """Check one item's layout and split it into its streams' messages."""
    if not (isinstance(item, items.Tag) and item.tag == items.MESSAGE_TAG):
        raise FormatError(f"found {_describe(item)}, expected a dranspose message (tag 42877)")
    value = item.value
    if not (isinstance(value, list) and len(value) in (2, 3)):
        raise FormatError("message is not (event_number, streams[, created_at])")
    event, streams = value[0], value[1]
    created = value[2] if len(value) == 3 else None
    if not isinstance(event, int) or not isinstance(streams, dict):
        raise FormatError("message is not (event_number, streams[, created_at])")
    if created is not None and not isinstance(created, datetime):
        raise FormatError(f"created_at is {_describe(created)}, expected a date-time")
    out = []
    for name, data in streams.items():
        if not (isinstance(data, items.Tag) and data.tag == items.STREAM_TAG):
            raise FormatError(f"stream {name!r} is {_describe(data)}, expected tag 42878")
        if not (isinstance(data.value, list) and len(data.value) == 2):
            raise FormatError(f"stream {name!r} is not (typ, frames)")
        typ, parts = data.value
        if not (isinstance(typ, str) and isinstance(parts, list) and parts):
            raise FormatError(f"stream {name!r} is not (typ, frames)")
        if not all(isinstance(p, items.Blob) for p in parts):
            raise FormatError(f"stream {name!r} has frames that are not byte strings")
        header = items.parse_json(items.blob_bytes(f, parts[0]), f"stream {name!r} header")
        # keep small parts (a series header's detail JSON); of images only the payload's place
        image = typ == STINS and header.get("htype") == "image"
        rest = tuple(items.Blob(p.offset, p.length) if image else p for p in parts[1:])
        out.append(Message(event, created, file, count, str(name), typ, header, rest))
    return out


def _describe(value) -> str:
    if isinstance(value, items.Tag):
        return f"CBOR tag {value.tag}"
    if isinstance(value, items.Blob):
        return f"a byte string of {value.length} bytes"
    return f"a CBOR {type(value).__name__}"
