from __future__ import annotations

import pickle

import h5py
import numpy as np
import pytest

import beamcat
from beamcat.catalog.hdf5 import open_hdf5
from beamcat.errors import FormatError, SourceNotFoundError

LAMBDA = "dioptas/lambda/testasapo1_1009_00002_m{}_part00000.nxs"
DETECTOR = "/entry/instrument/detector"


def _frames(*shape, dtype=np.int32) -> np.ndarray:
    """Data whose every value is distinct, so a misplaced frame or pixel shows."""
    return np.arange(np.prod(shape)).reshape(shape).astype(dtype)


def _nexus(path, data, *, default=True, axes=None, extra=None) -> np.ndarray:
    """A small NeXus file: entry/data (NXdata) with signal 'images' linked to a detector."""
    with h5py.File(path, "w") as f:
        entry = f.create_group("entry")
        entry.attrs["NX_class"] = "NXentry"
        detector = entry.create_group("instrument/detector")
        entry["instrument"].attrs["NX_class"] = "NXinstrument"
        detector.attrs["NX_class"] = "NXdetector"
        detector.create_dataset("images", data=data, chunks=(1, *data.shape[1:]))
        for name, (value, units) in (extra or {}).items():
            detector[name] = value
            if units:
                detector[name].attrs["units"] = units
        nxdata = entry.create_group("plot")
        nxdata.attrs["NX_class"] = "NXdata"
        nxdata.attrs["signal"] = "images"
        nxdata["images"] = detector["images"]  # hard link, as NeXus writers do
        if axes is not None:
            nxdata.attrs["axes"] = [name for name, _ in axes]
            for name, values in axes:
                if values is not None:
                    nxdata[name] = values
                    nxdata[name].attrs["units"] = "eV"
        if default:
            f.attrs["default"] = "entry"
            entry.attrs["default"] = "plot"
    return data


# --- real files ----------------------------------------------------------------------------


def test_lambda_through_nexus_fallback(shared_data):
    path = shared_data / LAMBDA.format(1)
    ds = open_hdf5(path)
    with h5py.File(path, "r") as f:
        expected = f[f"{DETECTOR}/data"][()]
    assert ds.counts.dims == ("frame", "y", "x")
    assert ds.counts.shape == (10, 516, 1554) and ds.counts.dtype == np.int16
    np.testing.assert_array_equal(ds.counts.values, expected)  # exact: same integers
    assert ds.attrs["path"] == f"{DETECTOR}/data"
    # metadata converted to SI from the file's units (micrometer, millisecond, eV)
    assert ds.attrs["energy"] == 12000.0
    assert ds.attrs["pixel_size"] == 55e-6
    assert ds.attrs["count_time"] == pytest.approx(0.1, rel=1e-12)
    assert ds.attrs["threshold_energy"] == 6000.0
    assert ds.attrs["sensor_material"] == "GaAs"
    assert ds.attrs["saturation_value"] == 4095
    assert "sensor_thickness" not in ds.attrs  # stored without units: better absent than wrong
    assert "pixel_size_y" not in ds.attrs  # square pixels


def test_lambda_pixel_mask_variable(shared_data):
    path = shared_data / LAMBDA.format(1)
    ds = open_hdf5(path, variables={"mask": f"{DETECTOR}/pixel_mask"})
    assert ds.mask.dims == ("y", "x")  # the file's (1, 516, 1554) loses its length-1 dim
    mask = ds.mask.values
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(mask, f[f"{DETECTOR}/pixel_mask"][0])
    assert int((mask == 1).sum()) == 5160  # PROVENANCE.md: 5160 px = 1 (gaps etc.)


@pytest.mark.parametrize("module", [2, 3])
def test_lambda_modules_frame_sums(shared_data, module):
    path = shared_data / LAMBDA.format(module)
    ds = beamcat.open_dataset(path)  # sniffed from .nxs
    with h5py.File(path, "r") as f:
        expected = f[f"{DETECTOR}/data"][()].sum(axis=(1, 2), dtype=np.int64)
    np.testing.assert_array_equal(ds.counts.sum(("y", "x")).values, expected)


# --- finding the signal ----------------------------------------------------------------------


def test_nexus_default_chain_with_axes(tmp_path):
    energies = np.array([7000.0, 7100.0, 7200.0, 7300.0])
    data = _nexus(
        tmp_path / "a.nxs", _frames(4, 5, 6), axes=[("energy", energies), (".", None), (".", None)]
    )
    ds = open_hdf5(tmp_path / "a.nxs")
    assert ds.counts.dims == ("energy", "y", "x")
    np.testing.assert_array_equal(ds.energy.values, energies)
    assert ds.energy.attrs["units"] == "eV"
    assert ds.attrs["path"] == "/entry/plot/images"
    np.testing.assert_array_equal(ds.counts.values, data)


def test_single_nxdata_without_default(tmp_path):
    data = _nexus(tmp_path / "a.nxs", _frames(3, 5, 6), default=False)
    ds = open_hdf5(tmp_path / "a.nxs")
    assert ds.attrs["path"] == "/entry/plot/images"
    np.testing.assert_array_equal(ds.counts.values, data)


def test_old_style_signal_attribute(tmp_path):
    data = _frames(3, 5, 6)
    with h5py.File(tmp_path / "old.h5", "w") as f:
        f.create_group("scan").attrs["NX_class"] = "NXentry"
        grp = f.create_group("scan/measurement")
        grp.attrs["NX_class"] = "NXdata"
        grp["frames"] = data
        grp["frames"].attrs["signal"] = 1
    ds = open_hdf5(tmp_path / "old.h5")
    assert ds.attrs["path"] == "/scan/measurement/frames"
    np.testing.assert_array_equal(ds.counts.values, data)


def test_scan_dims_and_explicit_path(tmp_path):
    data = _frames(2, 3, 5, 6, dtype=np.float32)
    with h5py.File(tmp_path / "4d.h5", "w") as f:
        f["stem/frames"] = data
    ds = open_hdf5(tmp_path / "4d.h5", path="stem/frames")
    assert ds.counts.dims == ("scan_y", "scan_x", "y", "x")
    np.testing.assert_array_equal(ds.counts.values, data)


def test_metadata_units_converted(tmp_path):
    extra = {
        "x_pixel_size": (0.172, "mm"),
        "y_pixel_size": (0.150, "mm"),
        "count_time": (2.0, None),  # no units: not reported
        "threshold_energy": (8.0, "keV"),
    }
    _nexus(tmp_path / "a.nxs", _frames(2, 5, 6), extra=extra)
    attrs = open_hdf5(tmp_path / "a.nxs").attrs
    assert attrs["pixel_size"] == 172e-6 and attrs["pixel_size_y"] == 150e-6
    assert attrs["threshold_energy"] == 8000.0
    assert "count_time" not in attrs


# --- dask ------------------------------------------------------------------------------------


def test_open_is_lazy_and_follows_file_chunks(tmp_path, raise_if_dask_computes):
    _nexus(tmp_path / "a.nxs", _frames(6, 5, 6))
    with raise_if_dask_computes():
        ds = open_hdf5(tmp_path / "a.nxs", variables={"first": "entry/plot/images"})
        total = ds.counts.sum("frame")
    assert total.chunks is not None
    # the file is chunked one frame at a time: several of its chunks go in one ~64 MiB dask chunk
    assert ds.counts.chunks == ((6,), (5,), (6,))


@pytest.mark.parametrize("chunks", [(1, 5, 6), (4, 2, 3), "auto"])
def test_any_chunks_same_numbers(tmp_path, chunks):
    data = _nexus(tmp_path / "a.nxs", _frames(6, 5, 6))
    ds = open_hdf5(tmp_path / "a.nxs", chunks=chunks)
    np.testing.assert_array_equal(ds.counts.values, data)
    np.testing.assert_array_equal(ds.counts.sum("frame").values, data.sum(axis=0))


def test_pickles_for_distributed_workers(tmp_path):
    data = _nexus(tmp_path / "a.nxs", _frames(4, 5, 6))
    ds = open_hdf5(tmp_path / "a.nxs", chunks=(1, 5, 6))
    np.testing.assert_array_equal(ds.counts[0].values, data[0])  # read before pickling too
    again = pickle.loads(pickle.dumps(ds))
    np.testing.assert_array_equal(again.counts.values, data)


def test_series_of_files_concatenated(tmp_path):
    data = _frames(7, 5, 6)
    _nexus(tmp_path / "part0.nxs", data[:4])
    _nexus(tmp_path / "part1.nxs", data[4:])
    ds = open_hdf5(tmp_path / "part*.nxs")
    np.testing.assert_array_equal(ds.counts.values, data)
    assert list(ds.file.values) == ["part0.nxs"] * 4 + ["part1.nxs"] * 3


# --- bad input -------------------------------------------------------------------------------


def test_missing_path_lists_neighbours(shared_data):
    path = shared_data / LAMBDA.format(1)
    with pytest.raises(
        SourceNotFoundError, match=r"m1_part00000\.nxs.*'entry/instrument/detector/dat'.*pixel_mask"
    ):
        open_hdf5(path, path="entry/instrument/detector/dat")
    with pytest.raises(SourceNotFoundError, match=r"'entry/instrument/detector/dat'"):
        open_hdf5(path, variables={"mask": "entry/instrument/detector/dat"})


def test_group_path_is_not_a_dataset(tmp_path):
    _nexus(tmp_path / "a.nxs", _frames(2, 5, 6))
    with pytest.raises(SourceNotFoundError, match=r"a\.nxs.*'entry/plot' is a group.*images"):
        open_hdf5(tmp_path / "a.nxs", path="entry/plot")


def test_no_image_found(tmp_path):
    with h5py.File(tmp_path / "odd.h5", "w") as f:
        f["some/where/cube"] = _frames(2, 3, 4)
        f["spectrum"] = np.arange(5)
    with pytest.raises(FormatError, match=r"odd\.h5.*pass path=.*some/where/cube"):
        open_hdf5(tmp_path / "odd.h5")
    with pytest.raises(FormatError, match=r"odd\.h5.*'/spectrum' has shape \(5,\)"):
        open_hdf5(tmp_path / "odd.h5", path="spectrum")


def test_not_hdf5(tmp_path):
    (tmp_path / "fake.h5").write_text("not HDF5")
    with pytest.raises(FormatError, match=r"fake\.h5.*not a readable HDF5"):
        open_hdf5(tmp_path / "fake.h5")


def test_series_with_other_frame_shape(tmp_path):
    _nexus(tmp_path / "part0.nxs", _frames(2, 5, 6))
    _nexus(tmp_path / "part1.nxs", _frames(2, 5, 7))
    with pytest.raises(FormatError, match=r"part1\.nxs.*\(2, 5, 7\).*expected frames of \(5, 6\)"):
        open_hdf5(tmp_path / "part*.nxs")


def test_series_file_without_the_dataset(tmp_path):
    _nexus(tmp_path / "part0.nxs", _frames(2, 5, 6))
    with h5py.File(tmp_path / "part1.nxs", "w") as f:
        f["entry/other"] = _frames(2, 5, 6)
    with pytest.raises(SourceNotFoundError, match=r"part1\.nxs.*'/entry/plot/images'.*other"):
        open_hdf5(tmp_path / "part*.nxs")


def _gzip_nexus(path) -> np.ndarray:
    data = _frames(4, 6, 5)
    with h5py.File(path, "w") as f:
        f.create_dataset("entry/data/data", data=data, chunks=(1, 6, 5), compression="gzip")
    return data


def test_corrupt_compressed_chunk_fails_at_compute_naming_the_file(tmp_path):
    # a damaged gzip chunk is only met when dask reads it: h5py's OSError
    # "filter returned failure during read" must come out as a FormatError
    path = tmp_path / "scan.nxs"
    data = _gzip_nexus(path)
    with h5py.File(path, "r") as f:
        chunk = f["entry/data/data"].id.get_chunk_info(2)  # frame 2's chunk
    raw = bytearray(path.read_bytes())
    raw[chunk.byte_offset : chunk.byte_offset + chunk.size] = b"\xff" * chunk.size
    path.write_bytes(raw)
    ds = open_hdf5(path)  # the metadata is intact: the open succeeds, lazily
    np.testing.assert_array_equal(ds.counts[:2].values, data[:2])  # whole chunks still read
    with pytest.raises(FormatError, match=r"scan.nxs:/entry/data/data: damaged HDF5 file"):
        ds.counts.compute()


def test_corrupt_group_structure_fails_at_open_naming_the_file(tmp_path):
    # h5py raises RuntimeError ("Link iteration failed", "wrong B-tree signature")
    # when a group's B-tree is garbled; beamcat must say FormatError and name the file
    path = tmp_path / "scan.nxs"
    _gzip_nexus(path)
    raw = path.read_bytes()
    assert raw.count(b"TREE") >= 1
    path.write_bytes(raw.replace(b"TREE", b"TRXE"))
    with pytest.raises(FormatError, match=r"scan.nxs.*(damaged|not a readable) HDF5 file"):
        open_hdf5(path).counts.compute()
