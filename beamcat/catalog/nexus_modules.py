"""Multi-module detectors in NeXus files (X-Spectrum Lambda): modules placed by their translations.

A Lambda 2M writes one file per module (``..._m1_part00000.nxs``, ``_m2``,
``_m3``), each holding that module's ``(frame, 516, 1554)`` frames and its
position on the detector plane in ``entry/instrument/detector/translation/distance``
(x, y, z in pixels; Dioptas' ``LambdaLoader`` reads the same field). A glob over
such files is not a stack of frames: `detector_modules` tells module files
apart (``collection/module_id`` and the translation), and `assemble_modules`
pastes each module's frames at its offset into one image per frame, lazily.

The image keeps the files' row order, as every beamcat reader does; Dioptas
shows it flipped vertically (``image[::-1]``), which is the orientation its
PONI calibrations (e.g. Dioptas' ``lambda/L2.poni``) refer to.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import dask.array as da
import h5py
import numpy as np
import xarray as xr

from beamcat._util import provenance
from beamcat.errors import FormatError

DETECTOR = "entry/instrument/detector"
TRANSLATION = f"{DETECTOR}/translation/distance"
MODULE_ID = f"{DETECTOR}/collection/module_id"


def _module_key(path: Path) -> tuple[str | None, tuple[int, int] | None]:
    """(module ID, (x, y) translation in pixels) of one file; None for what it lacks."""
    try:
        with h5py.File(path, "r", locking=False) as f:
            ident = f.get(MODULE_ID)
            ident = None if ident is None else np.ravel(ident[()])[0]
            node = f.get(TRANSLATION)
            if node is None:
                return _text(ident), None
            units = node.attrs.get("units", b"pixel")
            units = units.decode() if isinstance(units, bytes) else str(units)
            values = np.ravel(node[()]).astype(float)
    except OSError as err:
        raise FormatError(f"{path}: not a readable HDF5 file ({err})") from None
    if units.strip().lower() not in ("pixel", "pixels") or values.size < 2:
        raise FormatError(
            f"{path}:{TRANSLATION} is {values.tolist()} {units!r}: expected (x, y[, z]) in pixel"
        )
    return _text(ident), (round(values[0]), round(values[1]))


def _text(value) -> str | None:
    if value is None:
        return None
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def detector_modules(files: Sequence[Path]) -> list[tuple[tuple[int, int], list[Path]]] | None:
    """Group files by detector module; None when they are all frames of one module.

    Returns
    -------
    list of ((x, y), files) or None
        One item per module in order of first appearance: its translation in
        pixels and its files (parts of the series, in the order given).

    Raises
    ------
    FormatError
        The files belong to different modules (module IDs or translations
        differ) but some carry no translation: they cannot be placed.
    """
    if len(files) < 2:
        return None
    keys = [_module_key(f) for f in files]
    groups: dict[tuple, list[Path]] = {}
    for key, f in zip(keys, files, strict=True):
        groups.setdefault(key, []).append(f)
    if len(groups) == 1:
        return None
    unplaced = [(k, g[0]) for k, g in groups.items() if k[1] is None]
    if unplaced:
        ids = sorted({str(k[0]) for k in groups})
        raise FormatError(
            f"{unplaced[0][1]}: the files are {len(groups)} different detector modules "
            f"(module_id {', '.join(ids)}) but some carry no {TRANSLATION}: they cannot be "
            "placed on one image; open one module's files at a time"
        )
    return [(key[1], group) for key, group in groups.items()]


def assemble_modules(
    modules: list[tuple[tuple[int, int], list[Path]]],
    open_module: Callable[[list[Path]], xr.Dataset],
) -> xr.Dataset:
    """One Dataset whose images hold every module at its translation.

    Parameters
    ----------
    modules : list of ((x, y), files)
        From `detector_modules`.
    open_module : callable
        Opens one module's files as a ``(..., y, x)`` Dataset (`open_hdf5`).

    Returns
    -------
    xarray.Dataset
        Every data variable with trailing ``(y, x)`` dims assembled lazily on
        the bounding canvas (offsets shifted so the smallest is 0); pixels no
        module covers are -1 for signed integers (the Lambda's own gap value),
        NaN for floats and all bits set for unsigned integers (a NeXus
        ``pixel_mask`` then marks gaps as bad). Coordinate ``module (y, x)``
        is the module index covering each pixel, -1 in gaps. Other variables
        and coordinates come from the first module (per-file ``file`` names
        are dropped); attrs add ``modules`` (files per module),
        ``module_offsets`` ([y, x] of each module's first pixel) and
        ``module_shape``.

    Raises
    ------
    FormatError
        Modules that differ in frame count, leading dims or dtype, or overlap.
    """
    parts = [open_module(files) for _, files in modules]
    first = parts[0]
    signal = first.attrs.get("signal", "counts")
    xs = [x for (x, _), _ in modules]
    ys = [y for (_, y), _ in modules]
    offsets = [(y - min(ys), x - min(xs)) for x, y in zip(xs, ys, strict=True)]
    shapes = [(p.sizes["y"], p.sizes["x"]) for p in parts]
    height = max(o[0] + s[0] for o, s in zip(offsets, shapes, strict=True))
    width = max(o[1] + s[1] for o, s in zip(offsets, shapes, strict=True))
    owner = np.full((height, width), -1, np.int8)
    for index, ((y0, x0), (h, w)) in enumerate(zip(offsets, shapes, strict=True)):
        block = owner[y0 : y0 + h, x0 : x0 + w]
        if (block >= 0).any():
            raise FormatError(
                f"{modules[index][1][0]}: module at (y={y0}, x={x0}) overlaps module "
                f"{int(block.max())}; translations {[m[0] for m in modules]}"
            )
        block[...] = index
    data_vars = {}
    for name, var in first.data_vars.items():
        if var.dims[-2:] != ("y", "x"):
            data_vars[name] = var
            continue
        arrays = [p[name] for p in parts]
        for p, arr in zip(modules[1:], arrays[1:], strict=True):
            if arr.dims != var.dims or arr.shape[:-2] != var.shape[:-2] or arr.dtype != var.dtype:
                raise FormatError(
                    f"{p[1][0]}: {name} is {dict(arr.sizes)} {arr.dtype}; expected the "
                    f"leading dims and dtype of {modules[0][1][0]}'s {dict(var.sizes)} {var.dtype}"
                )
        mosaic = _paste([a.data for a in arrays], offsets, (height, width))
        data_vars[name] = (var.dims, mosaic, var.attrs)
    coords = {k: v for k, v in first.coords.items() if "file" not in (k, *v.dims)}
    coords = {k: v for k, v in coords.items() if not {"y", "x"} & set(v.dims)}
    coords["module"] = (("y", "x"), owner, {"long_name": "module index (-1: gap)"})
    attrs = dict(first.attrs)
    attrs.update(
        provenance([f for _, files in modules for f in files], first.attrs.get("format", "hdf5")),
        modules=[[str(f) for f in files] for _, files in modules],
        module_offsets=[list(o) for o in offsets],
        module_shape=list(shapes[0]),
        signal=signal,
    )
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)


def _fill_value(dtype: np.dtype):
    """NaN, -1 (the Lambda's gap value) or all bits set (a NeXus pixel_mask's "not a pixel")."""
    if dtype.kind == "f":
        return np.nan
    return -1 if dtype.kind == "i" else np.iinfo(dtype).max


def _paste(arrays: list[da.Array], offsets: list[tuple[int, int]], shape: tuple[int, int]):
    """Lazily place (..., h_i, w_i) arrays at `offsets` on a (..., H, W) canvas.

    The leading dims are chunked alike in every module; each output chunk is
    built from the matching chunk of each module (one task per chunk, no
    padding arrays).
    """
    lead = arrays[0].chunks[:-2]
    aligned = [a.rechunk(lead + (-1, -1)) for a in arrays]
    fill = _fill_value(arrays[0].dtype)
    return da.map_blocks(
        _paste_block,
        *aligned,
        offsets=offsets,
        shape=shape,
        fill=fill,
        chunks=lead + ((shape[0],), (shape[1],)),
        dtype=arrays[0].dtype,
        meta=np.empty((0,) * arrays[0].ndim, arrays[0].dtype),
    )


def _paste_block(*blocks: np.ndarray, offsets, shape, fill) -> np.ndarray:
    out = np.full(blocks[0].shape[:-2] + tuple(shape), fill, dtype=blocks[0].dtype)
    for block, (y0, x0) in zip(blocks, offsets, strict=True):
        out[..., y0 : y0 + block.shape[-2], x0 : x0 + block.shape[-1]] = block
    return out
