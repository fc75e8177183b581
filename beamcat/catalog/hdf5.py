"""HDF5 / NeXus detector data -> ``counts (frame, y, x)``, chunked like the file.

The dataset is found from an explicit path or by following the NeXus default
chain (root ``@default`` -> NXentry ``@default`` -> NXdata ``@signal``), then a
single NXdata, then the usual detector layouts. Pixels are read by dask through
`H5Array`, which opens the file on first access in each process, so the
Dataset can be pickled to distributed workers.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import dask.array as da
import h5py
import numpy as np
import xarray as xr

from beamcat._util import provenance
from beamcat.catalog._paths import expand_source
from beamcat.catalog.nexus_modules import assemble_modules, detector_modules
from beamcat.errors import BeamcatError, FormatError, SourceNotFoundError

SUFFIXES = (".h5", ".hdf5", ".hdf", ".nxs", ".nx5")
#: tried in order when a file has no NeXus default and no single NXdata
FALLBACK_PATHS = ("entry/instrument/detector/data", "entry/data/data")
# NeXus field -> (attr name, SI unit it is converted to; None keeps the value as is)
_NX_FIELDS = {
    "x_pixel_size": ("pixel_size", "m"),
    "y_pixel_size": ("pixel_size_y", "m"),
    "beam_energy": ("energy", "eV"),
    "incident_energy": ("energy", "eV"),
    "incident_wavelength": ("wavelength", "m"),
    "wavelength": ("wavelength", "m"),
    "count_time": ("count_time", "s"),
    "frame_time": ("frame_time", "s"),
    "threshold_energy": ("threshold_energy", "eV"),
    "distance": ("distance", "m"),
    "sensor_material": ("sensor_material", None),
    "sensor_thickness": ("sensor_thickness", "m"),
    "saturation_value": ("saturation_value", None),
    "bit_depth_readout": ("bit_depth", None),
    "description": ("detector", None),
}
# names of the dims before (y, x), by their number, when NXdata @axes does not name them
_LEADING_DIMS = {1: ("frame",), 2: ("scan_y", "scan_x")}
# lower-case unit -> (SI unit, power of ten to it)
_TO_SI = {
    "m": ("m", 0),
    "mm": ("m", -3),
    "um": ("m", -6),
    "micron": ("m", -6),
    "microns": ("m", -6),
    "micrometer": ("m", -6),
    "micrometre": ("m", -6),
    "nm": ("m", -9),
    "angstrom": ("m", -10),
    "a": ("m", -10),
    "s": ("s", 0),
    "second": ("s", 0),
    "ms": ("s", -3),
    "millisecond": ("s", -3),
    "us": ("s", -6),
    "microsecond": ("s", -6),
    "ev": ("eV", 0),
    "kev": ("eV", 3),
}
_CHUNK_BYTES = 64 * 2**20
# what h5py raises on a damaged file: RuntimeError "Link iteration failed", OSError "wrong
# B-tree signature" or "filter returned failure during read" (a corrupt compressed chunk) ...
_H5_ERRORS = (OSError, RuntimeError, KeyError, ValueError)


class H5Array:
    """A picklable, read-only view of one HDF5 dataset for dask.

    ``shape``, ``dtype`` and ``chunks`` are read at construction; each
    ``__getitem__`` opens the file read-only without HDF5 file locking, reads and
    closes it. No handle stays open, so the object pickles to distributed workers,
    survives forks, and does not clash with the user opening the file with h5py
    (HDF5 refuses a second open with other locking flags). An open costs well
    under a millisecond against tens of MB read per dask chunk.

    Parameters
    ----------
    filename : path
        The HDF5 file.
    path : str
        The dataset's path inside it.
    """

    def __init__(self, filename: str | os.PathLike, path: str):
        self.filename = os.fspath(filename)
        self.path = path
        with reading_hdf5(self.filename, path), self._file() as f:
            dset = f[path]
            self.shape, self.dtype, self.chunks = dset.shape, dset.dtype, dset.chunks
        self.ndim = len(self.shape)

    def _file(self) -> h5py.File:
        return h5py.File(self.filename, "r", locking=False)

    def __getitem__(self, key) -> np.ndarray:
        with reading_hdf5(self.filename, self.path), self._file() as f:
            return f[self.path][key]

    def __dask_tokenize__(self) -> tuple:
        stat = os.stat(self.filename)
        return (type(self).__name__, self.filename, self.path, stat.st_mtime_ns, stat.st_size)


def open_hdf5(
    source: str | os.PathLike | Iterable[str | os.PathLike],
    *,
    path: str | None = None,
    variables: Mapping[str, str] | None = None,
    chunks: int | tuple | str | None = None,
) -> xr.Dataset:
    """Open a detector image dataset of HDF5/NeXus files lazily.

    Parameters
    ----------
    source : path, glob or list of paths
        One file, or several whose datasets are frames of one series (parts of a
        Lambda or Eiger acquisition): they are concatenated along the first dim.
        Files of different detector modules (a Lambda's ``_m1``, ``_m2``,
        ``_m3``) are placed by their NeXus translations into one image
        (`beamcat.catalog.nexus_modules`).
    path : str, optional
        The dataset inside each file, e.g. ``"entry/instrument/detector/data"``.
        By default the NeXus default signal: root ``@default`` -> NXentry
        ``@default`` -> NXdata ``@signal``; else the signal of the entry's only
        NXdata; else the first of `FALLBACK_PATHS` that exists.
    variables : mapping of str to str, optional
        More datasets to open as variables, name -> path, e.g.
        ``{"mask": "entry/instrument/detector/pixel_mask"}``; leading length-1
        dims are dropped and dims matched to the signal's by size, so a
        ``(1, y, x)`` mask becomes ``mask (y, x)``. Read from the first file.
    chunks : int, tuple or "auto", optional
        dask chunks; by default the file's own HDF5 chunks, as many stacked
        along the first dim as fit about 64 MiB (``"auto"`` for contiguous
        datasets).

    Returns
    -------
    xarray.Dataset
        ``counts`` with dims ``(..., "y", "x")``: the leading dims named by the
        NXdata ``@axes`` when present (with their axis datasets as coordinates),
        else ``frame`` (``scan_y, scan_x`` for 4-D data); attrs from
        `provenance`, ``signal="counts"``, ``path`` and scalar detector metadata
        converted to SI: ``pixel_size`` (m), ``energy`` (eV), ``count_time`` (s),
        ``threshold_energy`` (eV), ``sensor_material`` ...

    Raises
    ------
    SourceNotFoundError
        When a file, `path` or a `variables` path does not exist (the message
        lists what the nearest existing group holds).
    FormatError
        When a file is not HDF5, no image dataset can be found, the signal has
        fewer than 2 dims, or files of a series disagree in frame shape or dtype.

    Examples
    --------
    >>> from beamcat.catalog.hdf5 import open_hdf5
    >>> mask = {"mask": "entry/instrument/detector/pixel_mask"}
    >>> ds = open_hdf5("scan_00001.nxs", variables=mask)  # doctest: +SKIP
    >>> ds.counts.where(ds.mask == 0).sum("frame")  # doctest: +SKIP
    """
    files = expand_source(source, suffixes=SUFFIXES)
    modules = detector_modules(files)  # None: the files are frames of one module
    if modules is not None:
        return assemble_modules(
            modules, lambda part: open_hdf5(part, path=path, variables=variables, chunks=chunks)
        )
    with reading_hdf5(files[0]), _open_file(files[0]) as f:
        signal_path = _check_path(f, files[0], path) if path else _default_signal(f, files[0])
        dims, coords = _signal_dims(f, signal_path)
        attrs = _metadata(f, signal_path)
        extra = {name: _check_path(f, files[0], p) for name, p in (variables or {}).items()}

    arrays = [_dask_array(file, signal_path, chunks) for file in files]  # checks each file
    for file, arr in zip(files[1:], arrays[1:], strict=True):
        if arr.shape[1:] != arrays[0].shape[1:] or arr.dtype != arrays[0].dtype:
            raise FormatError(
                f"{file}:{signal_path} is {arr.shape} {arr.dtype}; expected frames of "
                f"{arrays[0].shape[1:]} {arrays[0].dtype} like {files[0]}"
            )
    counts = arrays[0] if len(arrays) == 1 else da.concatenate(arrays, axis=0)
    if len(files) > 1:
        coords = {k: v for k, v in coords.items() if k != dims[0]}  # per-file axes don't join
        lengths = [a.shape[0] for a in arrays]
        coords["file"] = (dims[0], np.repeat([f.name for f in files], lengths))
    data_vars = {"counts": (dims, counts, {"units": "counts", "long_name": "counts"})}
    sizes = dict(zip(dims, counts.shape, strict=True))
    for name, extra_path in extra.items():
        arr = _dask_array(files[0], extra_path, None)
        data_vars[name] = _align(arr, dims, sizes, name)
    attrs = provenance(source, "hdf5", signal="counts", path=signal_path, **attrs)
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)


@contextlib.contextmanager
def reading_hdf5(file: str | os.PathLike, dataset: str | None = None):
    """Turn h5py's errors about a damaged file into a `FormatError` naming the file.

    Used around reading metadata at open time and around every chunk read that
    dask makes, so a corrupt file fails the same way when opened or computed.
    """
    try:
        yield
    except BeamcatError:
        raise
    except _H5_ERRORS as err:
        where = f"{os.fspath(file)}:{dataset}" if dataset else os.fspath(file)
        raise FormatError(
            f"{where}: damaged HDF5 file, h5py says: {type(err).__name__}: {err}"
        ) from err


def _open_file(path: Path) -> h5py.File:
    try:
        return h5py.File(path, "r", locking=False)
    except OSError as err:
        raise FormatError(f"{path}: not a readable HDF5 file ({err})") from None


def _dask_array(file: Path, dataset: str, chunks) -> da.Array:
    with reading_hdf5(file), _open_file(file) as f:
        _check_path(f, file, dataset)
    arr = H5Array(file, dataset)
    if chunks is None:
        chunks = _file_chunks(arr)
    return da.from_array(arr, chunks=chunks)


def _file_chunks(arr: H5Array) -> tuple | str:
    """The file's chunks, several stacked along the first dim to reach about 64 MiB.

    One dask chunk per HDF5 chunk would give 10,000 tasks for a 10,000-frame file
    chunked per frame; a multiple of the file's chunks keeps each read aligned.
    """
    if arr.chunks is None or arr.ndim == 0:
        return "auto"
    chunk_bytes = arr.dtype.itemsize * int(np.prod(arr.chunks))
    factor = max(1, _CHUNK_BYTES // chunk_bytes)
    return (min(arr.shape[0], arr.chunks[0] * factor), *arr.chunks[1:])


def _check_path(f: h5py.File, file: Path, path: str) -> str:
    """`path` if it is a dataset in `f`, else an error listing what its nearest group holds."""
    node = f.get(path)
    if isinstance(node, h5py.Dataset):
        return node.name
    if node is not None:
        raise SourceNotFoundError(
            f"{file}: {path!r} is a group, not a dataset; it holds {_listing(node)}"
        )
    parts = path.strip("/").split("/")
    parent = f
    for depth in range(len(parts) - 1, 0, -1):
        candidate = f.get("/".join(parts[:depth]))
        if isinstance(candidate, h5py.Group):
            parent = candidate
            break
    raise SourceNotFoundError(
        f"{file}: no dataset {path!r}; {parent.name!r} holds {_listing(parent)}"
    )


def _listing(group: h5py.Group) -> str:
    names = sorted(group.keys())
    return ", ".join(names) if names else "nothing"


def _nx_class(node) -> str:
    value = node.attrs.get("NX_class", b"")
    return value.decode() if isinstance(value, bytes) else str(value)


def _attr_str(node, name: str) -> str | None:
    value = node.attrs.get(name)
    if value is None:
        return None
    if isinstance(value, np.ndarray):  # some writers store a 1-element array
        value = value.flat[0]
    return value.decode() if isinstance(value, bytes) else str(value)


def _default_signal(f: h5py.File, file: Path) -> str:
    """The NeXus default signal's path, or a fallback image dataset's."""
    entry = _child(f, _attr_str(f, "default"), "NXentry")
    if entry is not None:
        nxdata = _child(entry, _attr_str(entry, "default"), "NXdata")
        if nxdata is not None and _signal_of(nxdata) is not None:
            return _signal_of(nxdata)
    for path in FALLBACK_PATHS:
        if isinstance(f.get(path), h5py.Dataset) and f[path].ndim >= 2:
            return f[path].name
    images = []
    f.visititems(lambda name, node: images.append(name) if _is_image(node) else None)
    found = ", ".join(images[:10]) or "none"
    raise FormatError(
        f"{file}: no NeXus default signal and none of {', '.join(FALLBACK_PATHS)}; "
        f"pass path= (datasets with 2 or more dims: {found})"
    )


def _child(group: h5py.Group, name: str | None, nx_class: str) -> h5py.Group | None:
    """The group `name` of `group`, or its only child of class `nx_class` when `name` is None."""
    if name is not None:
        node = group.get(name)
        return node if isinstance(node, h5py.Group) else None
    found = _children(group, nx_class)
    return found[0] if len(found) == 1 else None


def _signal_of(nxdata: h5py.Group) -> str | None:
    """Path of an NXdata's signal: its ``@signal``, else a field flagged ``@signal=1``."""
    name = _attr_str(nxdata, "signal")
    if name is not None and isinstance(nxdata.get(name), h5py.Dataset):
        return nxdata[name].name
    for node in nxdata.values():
        if isinstance(node, h5py.Dataset) and _attr_str(node, "signal") == "1":
            return node.name
    return None


def _is_image(node) -> bool:
    return isinstance(node, h5py.Dataset) and node.ndim >= 2 and node.dtype.kind in "iuf"


def _signal_dims(f: h5py.File, signal_path: str) -> tuple[tuple[str, ...], dict]:
    """Dims of the signal (``..., y, x``) and coordinates from its NXdata ``@axes``."""
    dset = f[signal_path]
    if dset.ndim < 2:
        raise FormatError(
            f"{f.filename}: {signal_path!r} has shape {dset.shape}; expected an image "
            "dataset with 2 or more dims (pass path=)"
        )
    lead = dset.ndim - 2
    names = _LEADING_DIMS.get(lead) or tuple(f"dim_{i}" for i in range(lead))
    coords = {}
    parent = dset.parent
    axes = parent.attrs.get("axes") if _nx_class(parent) == "NXdata" else None
    if axes is not None:
        axes = [axes] if isinstance(axes, str | bytes) else list(axes)
        axes = [a.decode() if isinstance(a, bytes) else str(a) for a in axes]
        if len(axes) == 1 and ":" in axes[0]:  # old NeXus "a:b:c" form
            axes = axes[0].split(":")
        if len(axes) == dset.ndim:
            names = tuple(a if a != "." else n for a, n in zip(axes[:lead], names, strict=True))
            for i, name in enumerate(names):
                axis = parent.get(name)
                if isinstance(axis, h5py.Dataset) and axis.shape == (dset.shape[i],):
                    units = _attr_str(axis, "units")
                    coords[name] = (name, axis[()], {"units": units} if units else {})
    return (*names, "y", "x"), coords


def _metadata(f: h5py.File, signal_path: str) -> dict:
    """Scalar detector/beam fields near the signal, converted to SI attrs (first found wins)."""
    entry = f[signal_path.strip("/").split("/")[0]]
    groups = [f[signal_path].parent]
    for instrument in _children(entry, "NXinstrument"):
        groups += _children(instrument, "NXdetector", "NXbeam", "NXmonochromator")
    groups += [c for g in groups for c in _children(g, "NXcollection")]
    attrs: dict = {}
    for group in groups:
        for field, (name, unit) in _NX_FIELDS.items():
            node = group.get(field)
            if name not in attrs and isinstance(node, h5py.Dataset) and node.size == 1:
                value = _scalar(node, unit)
                if value is not None:
                    attrs[name] = value
    if attrs.get("pixel_size_y") == attrs.get("pixel_size"):
        attrs.pop("pixel_size_y", None)
    return attrs


def _children(group: h5py.Group, *nx_classes: str) -> list[h5py.Group]:
    return [g for g in group.values() if isinstance(g, h5py.Group) and _nx_class(g) in nx_classes]


def _scalar(node: h5py.Dataset, unit: str | None):
    """A size-1 field as a Python scalar, in `unit` (None when its units are unknown)."""
    value = node[()]
    value = value.flat[0] if isinstance(value, np.ndarray) else value
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, str) or unit is None:
        return value.item() if isinstance(value, np.generic) else value
    found = _TO_SI.get((_attr_str(node, "units") or "").strip().lower())
    if found is None or found[0] != unit:
        return None  # no or unknown units: better absent than in the wrong unit
    # 15 digits drop the scaling's last-bit noise (55 um -> 5.5e-05 m, not 5.4999999999999995e-05)
    return float(f"{float(value) * 10.0 ** found[1]:.15g}")


def _align(arr: da.Array, dims: tuple[str, ...], sizes: dict, name: str) -> tuple:
    """Dims for an extra variable: trailing image dims as the signal's, leading by size."""
    while arr.ndim and arr.shape[0] == 1:
        arr = arr[0]
    names = []
    image = dims[-2:]
    trailing = arr.ndim >= 2 and arr.shape[-2:] == tuple(sizes[d] for d in image)
    lead = arr.shape[:-2] if trailing else arr.shape
    free = list(dims[:-2])
    for i, n in enumerate(lead):
        match = next((d for d in free if sizes[d] == n), None)
        if match is not None:
            free.remove(match)
        names.append(match or f"{name}_dim_{i}")
    return (*names, *(image if trailing else ())), arr
