"""Any catalog source to a sharded, compressed Zarr v3 store (``beamcat convert``).

The store replaces the ePSIC "convert MIB to HDF5 on SLURM" step: one pass over
the source, chunk by chunk on whatever dask scheduler is active, written beside
the target under a temporary name and renamed onto it when complete.

Layout of an image variable ``(*nav, y, x)``: each Zarr chunk holds a few whole
frames (``~2 MiB``, consecutive positions of a scan line), so the pattern of one
scan position costs one small chunk, and a pass over all frames (virtual images,
radial profiles) reads shards of many chunks (``~16 MiB``: whole scan lines where
they fit, the MIB reader's own dask chunks, so nothing is regrouped on the way).
Larger shards cost more than they save on the benchmark machine: every fresh
buffer above glibc's 32 MiB mmap threshold pays first-touch page faults. Chunks are
compressed with Blosc (zstd, bit shuffle by default): Medipix counts are small
integers in wide words, which bit shuffle turns into long runs of zero bits.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from zarr.codecs import BloscCname, BloscCodec, BloscShuffle

from beamcat._util import atomic_directory
from beamcat.catalog.zarr_store import FORMAT, _storable
from beamcat.errors import CatalogError, OptionError, SourceNotFoundError

__all__ = ["convert", "default_layout", "parse_compressor"]

#: uncompressed bytes of one Zarr chunk of frames (the pattern browser reads one)
CHUNK_BYTES = 2 << 20
#: uncompressed bytes of one shard (one file; one dask task writes it)
SHARD_BYTES = 16 << 20
#: detector dims; every other dim of an image variable is a navigation dim
DETECTOR = ("y", "x")


def parse_compressor(text: str | None) -> list:
    """Zarr v3 compressors of a name ``"blosc-<cname>-<shuffle>"`` or ``"none"``.

    Parameters
    ----------
    text : str or None
        ``cname`` one of Blosc's (``zstd``, ``lz4``, ``lz4hc``, ``blosclz``,
        ``zlib``, ``snappy``), ``shuffle`` one of ``bitshuffle``, ``shuffle``,
        ``noshuffle``; a level may follow (``"blosc-zstd-bitshuffle-3"``,
        default 3). ``"none"`` or None stores chunks uncompressed. Measured on
        256 x 256 12-bit Medipix frames (one core): zstd-3 with bit shuffle
        compresses 8.5x at ~700 MB/s and decompresses at ~1.7 GB/s; level 5
        gains 1 % in size for 1.5x the time, level 1 loses 4 % and halves
        decompression speed; lz4 is ~3x faster but compresses only 6.8x.

    Returns
    -------
    list of zarr codecs

    Raises
    ------
    OptionError
        Anything else.

    Examples
    --------
    >>> parse_compressor("blosc-lz4-shuffle-1")[0].clevel
    1
    >>> parse_compressor("none")
    []
    """
    if text is None or text == "none":
        return []
    parts = str(text).split("-")
    cnames = [c.value for c in BloscCname]
    shuffles = [s.value for s in BloscShuffle]
    level = parts[3] if len(parts) == 4 else "3"
    if not (
        len(parts) in (3, 4)
        and parts[0] == "blosc"
        and parts[1] in cnames
        and parts[2] in shuffles
        and level.isdigit()
        and 0 <= int(level) <= 9
    ):
        raise OptionError(
            f"compressor={text!r}: expected 'none' or 'blosc-CNAME-SHUFFLE[-LEVEL]' with CNAME "
            f"one of {', '.join(cnames)}, SHUFFLE one of {', '.join(shuffles)}, LEVEL 0-9"
        )
    return [BloscCodec(cname=parts[1], shuffle=parts[2], clevel=int(level))]


def _group(sizes: list[int], count: int) -> list[int]:
    """Block of ~`count` items over dims of `sizes`, filling the last (fastest) dims first."""
    out = [1] * len(sizes)
    left = max(1, count)
    for i in range(len(sizes) - 1, -1, -1):
        out[i] = min(sizes[i], left)
        left = max(1, left // out[i])
    return out


def _checked(given: Mapping[str, int] | None, dims: tuple[str, ...], what: str) -> dict[str, int]:
    given = dict(given or {})
    for dim, size in given.items():
        if dim not in dims or not isinstance(size, int | np.integer) or size < 1:
            raise OptionError(
                f"{what}={given!r}: expected positive sizes of the dims {', '.join(dims)}"
            )
    return {k: int(v) for k, v in given.items()}


def default_layout(
    sizes: Mapping[str, int],
    itemsize: int,
    *,
    chunks: Mapping[str, int] | None = None,
    shards: Mapping[str, int] | None = None,
) -> tuple[dict[str, int], dict[str, int]]:
    """Zarr chunk and shard shapes of an image variable.

    Parameters
    ----------
    sizes : mapping dim -> size
        The variable's dims in order; ``y`` and ``x`` are the detector, the
        others navigation (``frame`` or ``scan_y, scan_x``).
    itemsize : int
        Bytes per pixel.
    chunks, shards : mapping dim -> size, optional
        Sizes to use instead of the defaults along some dims (a shard size is
        rounded up to a multiple of the chunk size).

    Returns
    -------
    (chunks, shards) : dicts dim -> size
        Chunks hold whole frames, ~`CHUNK_BYTES` of them along a scan line;
        shards hold whole frames too, ~`SHARD_BYTES`, whole scan lines where
        they fit.

    Raises
    ------
    OptionError
        A size that is not a positive integer, or a dim the variable lacks.

    Examples
    --------
    >>> chunks, shards = default_layout({"scan_y": 128, "scan_x": 128, "y": 256, "x": 256}, 2)
    >>> chunks
    {'scan_y': 1, 'scan_x': 16, 'y': 256, 'x': 256}
    >>> shards
    {'scan_y': 1, 'scan_x': 128, 'y': 256, 'x': 256}
    """
    dims = tuple(sizes)
    chunks = _checked(chunks, dims, "chunks")
    shards = _checked(shards, dims, "shards")
    nav = [d for d in dims if d not in DETECTOR]
    frame = itemsize * math.prod(sizes[d] for d in dims if d in DETECTOR)
    count = max(1, CHUNK_BYTES // frame)
    inner = dict(zip(nav, _group([sizes[d] for d in nav], count), strict=True))
    inner = {d: chunks.get(d, inner.get(d, sizes[d])) for d in dims}
    per_shard = max(1, SHARD_BYTES // (frame * math.prod(inner[d] for d in nav)))
    blocks = [math.ceil(sizes[d] / inner[d]) for d in nav]
    outer = dict(zip(nav, _group(blocks, per_shard), strict=True))
    outer = {d: math.ceil(shards[d] / inner[d]) if d in shards else outer.get(d, 1) for d in dims}
    return inner, {d: outer[d] * inner[d] for d in dims}


def _encoding(ds: xr.Dataset, chunks, shards, compressors: list) -> dict[str, dict[str, Any]]:
    """Per-variable Zarr encoding: sharded image variables, compressed numbers."""
    encoding = {}
    for name, v in ds.variables.items():
        if v.dtype.kind not in "biufcmM":
            continue  # strings: Zarr's own variable-length encoding
        enc: dict[str, Any] = {"compressors": compressors}
        if v.ndim > len(DETECTOR) and v.dims[-2:] == DETECTOR:
            sizes = dict(zip(v.dims, v.shape, strict=True))
            inner, outer = default_layout(sizes, v.dtype.itemsize, chunks=chunks, shards=shards)
            enc.update(chunks=tuple(inner.values()), shards=tuple(outer.values()))
        encoding[str(name)] = enc
    return encoding


def _open_source(source, catalog, options: Mapping[str, Any]) -> tuple[xr.Dataset, str]:
    """The Dataset of a Dataset, a path (`beamcat.open_dataset`) or a catalog entry."""
    if isinstance(source, xr.Dataset):
        return source, "Dataset"
    if isinstance(source, xr.DataArray):
        return source.to_dataset(name=source.name or "data"), "DataArray"
    from beamcat.catalog.formats import open_dataset

    text = os.fspath(source)
    if Path(text).expanduser().exists() or any(c in text for c in "*?[") or catalog is None:
        return open_dataset(text, **options), text
    cat = _catalog(catalog)
    if text not in cat:
        raise SourceNotFoundError(
            f"{text!r}: no such file or folder, nor an entry of the catalog; "
            f"its entries are: {', '.join(sorted(cat)) or 'none'}"
        )
    return cat[text].read(), text


def _catalog(catalog):
    if isinstance(catalog, str | os.PathLike):
        from beamcat.catalog.catalogs import open_catalog

        return open_catalog(catalog)
    return catalog


def convert(
    source,
    out: str | os.PathLike,
    *,
    chunks: Mapping[str, int] | None = None,
    shards: Mapping[str, int] | None = None,
    compressor: str | None = "blosc-zstd-bitshuffle",
    catalog: str | os.PathLike | None = None,
    name: str | None = None,
    options: Mapping[str, Any] | None = None,
    progress: bool = True,
) -> Path:
    """Convert a source to a sharded, compressed Zarr v3 store, atomically.

    Parameters
    ----------
    source : path, catalog entry name, or Dataset
        A file/folder/glob (`beamcat.open_dataset`, with `options`), the name
        of an entry of `catalog`, or a Dataset (e.g. an opened MIB scan).
    out : path
        The store folder to create (``scan.zarr``); it must not exist. It is
        written as a hidden temporary folder beside `out` and renamed onto it
        when complete: `out` never holds a partial store, and a failure
        removes the temporary folder.
    chunks, shards : mapping dim -> size, optional
        Zarr chunk/shard sizes of image variables ``(*nav, y, x)`` instead of
        the defaults of `default_layout` (chunks of ~2 MiB of whole frames,
        shards of ~16 MiB).
    compressor : str or None
        ``"blosc-zstd-bitshuffle"`` (default), any ``"blosc-CNAME-SHUFFLE[-LEVEL]"``,
        or ``"none"`` (`parse_compressor`).
    catalog : path or intake Catalog, optional
        Where an entry-name `source` is looked up, and the catalog file where
        the store is registered (format ``zarr``, created if missing) when
        `name` is given.
    name : str, optional
        Entry name of the store in `catalog`; checked to be free before converting.
    options : mapping, optional
        Reader options for a path `source` (``scan_shape``, ``flyback`` ...).
    progress : bool
        Show dask's progress bar (threaded/synchronous schedulers).

    Returns
    -------
    Path
        `out`. ``beamcat.open_dataset(out)`` gives the source's variables,
        coords (``exposure``, ``time``, ``frame``), dims (scan shape) and attrs
        (the source path lands in ``derived_from``, its format in ``source_format``).

    Raises
    ------
    OptionError
        `out` exists, bad `chunks`/`shards`/`compressor`, `name` without `catalog`.
    SourceNotFoundError
        `source` is neither a file nor an entry of `catalog`.
    CatalogError
        `name` is taken in `catalog` or not a valid entry name.
    FormatError
        The source cannot be read.

    Examples
    --------
    >>> from beamcat.catalog.convert import convert
    >>> convert("scan.mib", "scan.zarr", catalog="catalog.yaml", name="scan")  # doctest: +SKIP
    """
    out = Path(out).expanduser()
    if out.exists():
        raise OptionError(f"{out}: already exists; remove it or choose another name")
    if name is not None:
        if not isinstance(catalog, str | os.PathLike):
            raise OptionError(f"name={name!r}: registering the store needs catalog= a catalog file")
        if Path(catalog).exists() and name in _catalog(catalog):
            raise CatalogError(f"{catalog}: already has an entry {name!r}; choose another name")
    compressors = parse_compressor(compressor)
    ds, origin = _open_source(source, catalog, dict(options or {}))
    ds = _storable(ds.assign_attrs(source_format=ds.attrs.get("format", origin)))
    encoding = _encoding(ds, chunks, shards, compressors)
    for var, enc in encoding.items():  # a dask chunk per shard; coordinates stay whole
        if "shards" in enc:
            v = ds.variables[var]
            ds[var] = v.chunk(dict(zip(v.dims, enc["shards"], strict=True)))
    bar = contextlib.nullcontext()
    if progress:
        from dask.diagnostics import ProgressBar

        bar = ProgressBar()
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_directory(out) as tmp, bar:
        ds.to_zarr(tmp, mode="w-", zarr_format=3, consolidated=False, encoding=encoding)
    if name is not None:
        from beamcat.catalog.build import add_source

        add_source(catalog, name, out, format=FORMAT)
    return out
