"""Photon lists as HDF5 in drp-femtomax's layout: write one, and open one as an event Dataset.

drp-femtomax's reducer (``CmosReducer._setup_photon_file`` / ``write_xye``) writes,
for a Balor acquisition ``.../raw/.../<root>.h5``, the file
``.../process/xye/.../<root>_integrated.h5``::

    /hits                      group
        hits_xye               (N, 3) float64, resizable: one row per photon
        hits_frame_number      (N,) uint32: the detector frame of each photon
        roi_x, roi_y           [start, stop] of the analysis ROI's columns / rows (int64)
        pre_threshold          scalar: the energy cut (default 1100)
        threshold_counting     scalar: the pixel threshold (default 108, with background)
        meta/                  strings: versions of the pipeline that wrote it
    /raw_data                  ExternalLink to the raw file's "/"

The columns of ``hits_xye`` are, despite the name, (row, column, energy): the
worker's ``x`` is the image's first axis (``(x + crop_top, y + crop_left, e)``),
so column 0 is beamcat's ``y`` and column 1 its ``x``. beamcat writes the same
layout and adds, without changing it for the original's readers: NeXus
``NX_class`` attributes (NXroot; ``hits`` an NXdata whose signal is
``hits_xye``; ``meta`` an NXcollection), ``hits_xye@columns`` naming the
columns, ``hits/hits_pileup`` (uint8) when the events carry a pile-up flag, and
the frame shape (``attrs["frame_shape"]`` of the events) as ``hits@frame_shape``.

`open_photon_list` reads it back as an event Dataset (format ``"photon-list"``),
lazily; `beamcat.open_dataset` recognises such a ``.h5`` file by its
``hits/hits_xye``.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

import dask
import dask.array as da
import h5py
import numpy as np
import xarray as xr

from beamcat._util import __version__, atomic_path, provenance
from beamcat.catalog._paths import expand_source
from beamcat.catalog.hdf5 import H5Array, reading_hdf5
from beamcat.errors import FormatError, OptionError

__all__ = ["is_photon_list", "open_photon_list", "write_photon_list"]

HITS = "hits/hits_xye"
FRAMES = "hits/hits_frame_number"
PILEUP = "hits/hits_pileup"
COLUMNS = ("y", "x", "energy")  # the order of the original's hits_xye
_REQUIRED = ("frame", "y", "x", "energy")
_SUFFIXES = (".h5", ".hdf5", ".hdf", ".nxs")


def is_photon_list(path: str | os.PathLike) -> bool:
    """Whether `path` is an HDF5 file holding ``hits/hits_xye`` (a photon list)."""
    try:
        with h5py.File(path, "r", locking=False) as f:
            return isinstance(f.get(HITS), h5py.Dataset)
    except (OSError, RuntimeError, KeyError, ValueError):  # not HDF5, or damaged: not one
        return False


def _roi_bounds(roi, path: Path) -> tuple[list[int], list[int]]:
    """``roi_x``, ``roi_y`` ([start, stop] of columns, rows) of a ROI ``(x, y, w, h)``."""
    try:
        x, y, w, h = (float(v) for v in roi)
    except (TypeError, ValueError):
        raise OptionError(f"{path}: roi={roi!r}; expected (x, y, w, h) in pixels") from None
    return [int(x), int(x + w)], [int(y), int(y + h)]


def _event_blocks(events, path: Path) -> tuple[list[str], Iterator[dict[str, np.ndarray]]]:
    """The variables to write and an iterator over blocks of events (one dask chunk each).

    `events` is an event Dataset, or a lazy event table: an object with ``table``,
    a structured (dask) array over events whose fields are the variables, and
    ``attrs`` (`beamcat.analyses.photon.PhotonEvents`, whose chunks have unknown
    lengths, which an xarray Dataset cannot hold).
    """
    is_dataset = isinstance(events, xr.Dataset) and "event" in events.dims
    if is_dataset:
        fields = set(events.variables)
    elif getattr(getattr(events, "table", None), "dtype", np.dtype(float)).names:
        fields = set(events.table.dtype.names)
    else:
        hint = (
            "; these are per-frame event tables: pass tables.photon.events() (a computed "
            "event list) or the lazy PhotonEvents of beamcat.analyses.photon.detect"
            if isinstance(events, xr.Dataset) and "frame" in events.dims
            else ""
        )
        raise OptionError(
            f"{path}: expected an event Dataset (dim 'event'), got {type(events).__name__}{hint}"
        )
    missing = [v for v in _REQUIRED if v not in fields]
    if missing:
        raise OptionError(
            f"{path}: the events lack {missing}; expected variables {list(_REQUIRED)} along 'event'"
        )
    names = [*_REQUIRED, *(["pileup"] if "pileup" in fields else [])]
    if is_dataset:
        events = events.unify_chunks()
        return names, _blocks([events[n].data for n in names], names)
    return names, _table_blocks(events.table, names)


def _table_blocks(table, names: list[str]) -> Iterator[dict[str, np.ndarray]]:
    """The fields `names` of a structured event table, one dask chunk at a time."""
    for block in table.blocks if isinstance(table, da.Array) else [table]:
        part = np.asarray(dask.compute(block)[0])
        yield {n: part[n] for n in names}


def _blocks(arrays: list, names: list[str]) -> Iterator[dict[str, np.ndarray]]:
    """Aligned event variables block by block (one dask chunk of events at a time)."""
    numblocks = {a.numblocks[0] if isinstance(a, da.Array) else None for a in arrays}
    if len(numblocks) == 1 and None not in numblocks:
        for i in range(numblocks.pop()):
            yield dict(zip(names, dask.compute(*(a.blocks[i] for a in arrays)), strict=True))
    else:  # NumPy-backed (or mixed) events: one block
        yield dict(zip(names, map(np.asarray, dask.compute(*arrays)), strict=True))


def write_photon_list(
    events: xr.Dataset,
    path: str | os.PathLike,
    *,
    raw_file: str | os.PathLike | None = None,
    roi=None,
    threshold: float | None = None,
    energy_min: float | None = None,
    metadata: Mapping[str, str] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write photon events as an HDF5 photon list in drp-femtomax's layout (atomically).

    Parameters
    ----------
    events : Dataset (event) or PhotonEvents
        ``frame`` (detector frame number, >= 0), ``y``, ``x`` (full-frame pixel
        coordinates), ``energy``, optionally ``pileup`` (bool), e.g. from
        `beamcat.analyses.photon.detect`; or its lazy result on dask-backed
        frames (an object with a structured ``table`` of these fields and
        ``attrs``). Dask-backed events are computed and written one chunk at a
        time, so memory holds one chunk's events.
    path : path
        The file to write (the original names it ``<raw root>_integrated.h5``);
        missing folders are created.
    raw_file : path, optional
        The raw data file the photons come from, linked as ``/raw_data``
        (an HDF5 ExternalLink to its ``/``; it need not exist now). Default
        ``events.attrs["filename"]`` (the stream header's file name); no link
        when neither is known.
    roi : (x, y, w, h), optional
        The analysis ROI, written as ``roi_x``/``roi_y``; default
        ``events.attrs["roi"]``; not written when None (as the original when it
        had no photon ROI).
    threshold, energy_min : float, optional
        The pixel threshold and the energy cut, written as ``threshold_counting``
        and ``pre_threshold``; default ``events.attrs["threshold"]`` and
        ``["energy_min"]`` (as `beamcat.analyses.photon.detect` sets them).
    metadata : mapping of str to str, optional
        Written as strings under ``hits/meta``; beamcat adds ``beamcat_version``,
        ``written`` (UTC ISO time) and ``source`` (``events.attrs["source"]``).
    overwrite : bool
        Replace an existing `path` (once the new file is complete).

    Returns
    -------
    Path
        `path`.

    Raises
    ------
    OptionError
        `path` exists without `overwrite`, the events lack a variable, or a frame
        number does not fit the file's uint32.

    Examples
    --------
    >>> events = xr.Dataset(
    ...     {"frame": ("event", [0, 2]), "y": ("event", [10.2, 3.5]),
    ...      "x": ("event", [4.0, 7.25]), "energy": ("event", [1203.0, 1180.0])}
    ... )
    >>> path = "scan_integrated.h5"
    >>> write_photon_list(events, path, threshold=108, energy_min=1100)  # doctest: +SKIP
    >>> open_photon_list(path).y.values  # doctest: +SKIP
    array([10.2,  3.5])
    """
    path = Path(path)
    names, blocks = _event_blocks(events, path)
    if path.exists() and not overwrite:
        raise OptionError(f"{path}: already exists; pass overwrite=True to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    raw_file = raw_file if raw_file is not None else events.attrs.get("filename")
    roi = roi if roi is not None else events.attrs.get("roi")
    shape = events.attrs.get("frame_shape")
    meta = {
        "beamcat_version": __version__,
        "written": dt.datetime.now(dt.UTC).isoformat(),
        **({"source": str(events.attrs["source"])} if "source" in events.attrs else {}),
        **{str(k): str(v) for k, v in (metadata or {}).items()},
    }
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs.update(NX_class="NXroot", default="hits", creator="beamcat")
        hits = f.create_group("hits")
        hits.attrs.update(NX_class="NXdata", signal="hits_xye")
        if shape is not None:
            hits.attrs["frame_shape"] = np.asarray(shape, np.int64)
        if roi is not None:
            roi_x, roi_y = _roi_bounds(roi, path)
            hits.create_dataset("roi_x", data=roi_x)
            hits.create_dataset("roi_y", data=roi_y)
        for name, value in (
            ("pre_threshold", events.attrs.get("energy_min") if energy_min is None else energy_min),
            (
                "threshold_counting",
                events.attrs.get("threshold") if threshold is None else threshold,
            ),
        ):
            if value is not None:
                hits.create_dataset(name, data=value)
        group = hits.create_group("meta")
        group.attrs["NX_class"] = "NXcollection"
        for key, text in meta.items():
            group.create_dataset(key, data=text)
        xye = hits.create_dataset("hits_xye", (0, 3), maxshape=(None, 3), dtype=np.float64)
        xye.attrs.update(columns=list(COLUMNS), long_name="row (y), column (x), energy")
        frames = hits.create_dataset("hits_frame_number", (0,), maxshape=(None,), dtype=np.uint32)
        pileup = None
        if "pileup" in names:
            pileup = hits.create_dataset("hits_pileup", (0,), maxshape=(None,), dtype=np.uint8)
        for block in blocks:
            _append(block, xye, frames, pileup, path)
        if raw_file is not None:
            f["raw_data"] = h5py.ExternalLink(os.fspath(raw_file), "/")
    return path


def _append(block: dict, xye, frames, pileup, path: Path) -> None:
    """Append one block of events, as the original's ``write_xye`` grows its datasets."""
    n = len(block["frame"])
    if n == 0:
        return
    frame = np.asarray(block["frame"])
    if frame.min() < 0 or frame.max() > np.iinfo(np.uint32).max:
        raise OptionError(
            f"{path}: frame numbers {frame.min()}..{frame.max()} do not fit "
            "hits_frame_number (uint32)"
        )
    start = xye.shape[0]
    for dset in (xye, frames, pileup):
        if dset is not None:
            dset.resize(start + n, axis=0)
    xye[start:] = np.stack([block[c] for c in COLUMNS], axis=1)
    frames[start:] = frame
    if pileup is not None:
        pileup[start:] = np.asarray(block["pileup"], bool)


def open_photon_list(source: str | os.PathLike, *, chunks: int | str = "auto") -> xr.Dataset:
    """Open an HDF5 photon list (drp-femtomax layout) as a lazy event Dataset.

    Parameters
    ----------
    source : path
        One ``*_integrated.h5`` file (see the module docstring for its layout).
    chunks : int or "auto"
        Events per dask chunk.

    Returns
    -------
    Dataset (event)
        ``frame`` (int64, the detector frame number), ``y``, ``x`` (pixels,
        full-frame coordinates), ``energy`` (float64, ADU), and ``pileup``
        (bool) when stored; dask-backed, nothing read but the small scalars.
        attrs from `provenance` (format ``"photon-list"``), ``signal="energy"``,
        ``threshold`` and ``energy_min`` (the file's ``threshold_counting`` and
        ``pre_threshold``), ``roi`` ``[x, y, w, h]``, ``frame_shape`` ``[ny, nx]``
        (when stored), ``raw_file`` (the ``/raw_data`` link target) and
        ``metadata`` (dict of the ``hits/meta`` strings).

    Raises
    ------
    SourceNotFoundError
        The file does not exist.
    FormatError
        Not HDF5, or no ``hits/hits_xye`` (N, 3) with a matching
        ``hits_frame_number``.
    """
    files = expand_source(source, suffixes=_SUFFIXES)
    if len(files) != 1:
        raise OptionError(f"{source}: {len(files)} files; open one photon list at a time")
    file = files[0]
    try:
        f = h5py.File(file, "r", locking=False)
    except OSError as err:
        raise FormatError(f"{file}: not a readable HDF5 file ({err})") from None
    with f, reading_hdf5(file):  # h5py's errors on a damaged file name it
        xye, frames = f.get(HITS), f.get(FRAMES)
        if not isinstance(xye, h5py.Dataset) or xye.ndim != 2 or xye.shape[1] != 3:
            raise FormatError(f"{file}: no {HITS} (N, 3) dataset; not a photon list")
        if not isinstance(frames, h5py.Dataset) or frames.shape != xye.shape[:1]:
            raise FormatError(
                f"{file}: {FRAMES} is {getattr(frames, 'shape', 'missing')}; "
                f"expected ({xye.shape[0]},) like {HITS}"
            )
        hits = f["hits"]
        columns = [str(c) for c in xye.attrs.get("columns", COLUMNS)]
        attrs = _file_attrs(f, hits)
        has_pileup = PILEUP in f
    table = da.from_array(H5Array(file, HITS), chunks=(chunks, 3))
    frame = da.from_array(H5Array(file, FRAMES), chunks=table.chunks[0]).astype(np.int64)
    data = {"frame": ("event", frame, {"long_name": "detector frame number"})}
    for name, unit in zip(COLUMNS, ("pixel", "pixel", "ADU"), strict=True):
        data[name] = ("event", table[:, columns.index(name)], {"units": unit})
    if has_pileup:
        pileup = da.from_array(H5Array(file, PILEUP), chunks=table.chunks[0]).astype(bool)
        data["pileup"] = ("event", pileup, {"long_name": "energy above energy_max"})
    return xr.Dataset(data, attrs=provenance(source, "photon-list", signal="energy", **attrs))


def _file_attrs(f: h5py.File, hits: h5py.Group) -> dict:
    """Thresholds, ROI, frame shape, raw-file link and meta strings of an open photon list."""
    attrs = {}
    for name, key in (("threshold_counting", "threshold"), ("pre_threshold", "energy_min")):
        if name in hits:
            attrs[key] = hits[name][()].item()
    if "roi_x" in hits and "roi_y" in hits:
        (x0, x1), (y0, y1) = hits["roi_x"][()].tolist(), hits["roi_y"][()].tolist()
        attrs["roi"] = [x0, y0, x1 - x0, y1 - y0]
    if "frame_shape" in hits.attrs:
        attrs["frame_shape"] = [int(n) for n in hits.attrs["frame_shape"]]
    link = f.get("raw_data", getlink=True)
    if isinstance(link, h5py.ExternalLink):
        attrs["raw_file"] = link.filename
    if isinstance(hits.get("meta"), h5py.Group):
        meta = hits["meta"]
        attrs["metadata"] = {
            k: v.decode() if isinstance(v, bytes) else str(v)
            for k, v in ((k, meta[k][()]) for k in meta)
            if isinstance(meta[k], h5py.Dataset)
        }
    return attrs
