"""Vectorised parsing of many MIB frame headers that share frame 0's field layout.

Merlin writes fixed-width fields (zero-padded sequence numbers, fixed-format
times), so the headers of one acquisition are columns of bytes: the shared
fields are compared, and sequence numbers, times and shutter times are decoded,
as whole columns. Only the ``MQ1A`` shutter time in ns varies in width (a
fly-back frame's is longer) and is decoded row by row as digits. `parse_columns`
returns None whenever a header does not fit frame 0's layout;
`beamcat.catalog.mib_header` then parses frame by frame and names the culprit.
"""

from __future__ import annotations

import numpy as np

_COMMA, _ZERO = ord(","), ord("0")
#: widest shutter time in ns (about 30 years)
_NS_DIGITS = 18


def _spans(row: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) byte range of each comma-separated field of one header."""
    text_end = int(np.argmax(row == 0)) if (row == 0).any() else len(row)
    commas = np.flatnonzero(row[:text_end] == _COMMA)
    starts = np.r_[0, commas + 1]
    ends = np.r_[commas, text_end]
    return list(zip(starts.tolist(), ends.tolist(), strict=True))


def _digits(column: np.ndarray) -> np.ndarray | None:
    """Unsigned integers of a (rows, width) column of ASCII digits; None if any is not one."""
    d = column.astype(np.int64) - _ZERO
    if d.size and (d.min() < 0 or d.max() > 9):
        return None
    return d @ (10 ** np.arange(column.shape[1] - 1, -1, -1, dtype=np.int64))


def _text(column: np.ndarray) -> np.ndarray:
    """A (rows, width) byte column as an array of str."""
    return np.ascontiguousarray(column).view(f"S{column.shape[1]}").ravel().astype("U")


def parse_columns(
    raw: np.ndarray, ext: int | None, shared: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Sequence numbers, shutter times and time texts of every header, or None.

    Parameters
    ----------
    raw : ndarray (frame, header_size) uint8
        The headers.
    ext : int or None
        Field index of the ``MQ1A`` tag in frame 0, None without the extension.
    shared : tuple of int
        Indices of the fields every frame must share with frame 0.

    Returns
    -------
    (sequence, exposure, times) or None
        ``int64`` sequence numbers, shutter times in s (float64), and the time
        field as str (``MQ1A``: UTC ISO without the ``Z``; otherwise the PC's
        local time), or None when any header departs from frame 0's layout.

    Examples
    --------
    >>> rows = [b"MQ1,000001,X,MQ1A,2024-01-01T00:00:00Z,900ns,12,",
    ...         b"MQ1,000002,X,MQ1A,2024-01-01T00:00:01Z,50000ns,12,"]
    >>> raw = np.zeros((2, 64), np.uint8)
    >>> for i, row in enumerate(rows):
    ...     raw[i, : len(row)] = np.frombuffer(row, np.uint8)
    >>> sequence, exposure, times = parse_columns(raw, 3, (2,))
    >>> sequence.tolist(), np.round(exposure * 1e9).tolist(), times.tolist()
    ([1, 2], [900.0, 50000.0], ['2024-01-01T00:00:00', '2024-01-01T00:00:01'])
    """
    spans = _spans(raw[0])
    fixed = (ext + 2) if ext is not None else 11  # fields before it are fixed width
    if len(spans) <= max(fixed, *shared) or (ext is not None and len(spans) <= ext + 3):
        return None
    prefix = spans[fixed][0]
    commas = raw[:, :prefix] == _COMMA
    if not (commas == commas[0]).all():
        return None
    same = [*shared] + ([ext] if ext is not None else [])
    for index in [0, *same]:  # field 0 is the MQ1 magic
        start, end = spans[index]
        if not (raw[:, start:end] == raw[0, start:end]).all():
            return None
    sequence = _digits(raw[:, slice(*spans[1])])
    if sequence is None:
        return None
    if ext is None:
        try:
            exposure = _text(raw[:, slice(*spans[10])]).astype(np.float64)
        except ValueError:
            return None
        return sequence, exposure, _text(raw[:, slice(*spans[9])])
    start, end = spans[ext + 1]
    if not (raw[:, end - 1] == ord("Z")).all():
        return None
    times = _text(raw[:, start : end - 1])
    exposure = _shutter_ns(raw, spans[ext + 2][0], raw[0, slice(*spans[ext + 3])].tobytes())
    return None if exposure is None else (sequence, exposure, times)


def _shutter_ns(raw: np.ndarray, start: int, depth: bytes) -> np.ndarray | None:
    """Shutter times (s) of ``<digits>ns,<depth>,`` fields starting at byte `start`."""
    window = raw[:, start : start + _NS_DIGITS + 4 + len(depth)].astype(np.int64)
    is_n = window == ord("n")
    if not is_n.any(axis=1).all():
        return None
    width = np.argmax(is_n, axis=1)  # digits before "ns"
    rows = np.arange(len(raw))[:, None]
    tail = np.frombuffer(b"ns," + depth + b",", np.uint8)
    if (width < 1).any() or window.shape[1] < width.max() + len(tail):
        return None
    if not (window[rows, width[:, None] + np.arange(len(tail))] == tail).all():
        return None
    digits = window[:, :_NS_DIGITS] - _ZERO
    inside = np.arange(_NS_DIGITS) < width[:, None]
    if ((digits < 0) | (digits > 9))[inside].any():
        return None
    value = np.zeros(len(raw), dtype=np.int64)
    for k in range(min(_NS_DIGITS, int(width.max()))):
        value = np.where(k < width, value * 10 + digits[:, k], value)
    return value * 1e-9
