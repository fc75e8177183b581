"""HDF5 photon lists: drp-femtomax's layout byte for byte in structure, round trips, sniffing."""

from __future__ import annotations

import os
from types import SimpleNamespace

import dask.array as da
import h5py
import numpy as np
import pytest
import xarray as xr

import beamcat
from beamcat.catalog.build import add_source, describe_entries
from beamcat.catalog.catalogs import open_catalog
from beamcat.catalog.formats import sniff_format
from beamcat.catalog.intake_readers import DATATYPES, READERS
from beamcat.catalog.photon_list import is_photon_list, open_photon_list, write_photon_list
from beamcat.catalog.zarr_store import to_zarr
from beamcat.errors import FormatError, OptionError, SourceNotFoundError

RAW = "/data/staff/femtomax/2024_autumn/raw/scan-103327_balor.h5"


def _events(n: int = 500, *, seed: int = 5, pileup: bool = True) -> xr.Dataset:
    """Events as `detect` gives them: frame-ordered, full-frame float positions."""
    rng = np.random.default_rng(seed)
    variables = {
        "frame": ("event", np.sort(rng.integers(0, 40, n))),
        "y": ("event", rng.uniform(20, 70, n)),
        "x": ("event", rng.uniform(10, 110, n)),
        "energy": ("event", rng.normal(1250, 40, n)),
    }
    if pileup:
        variables["pileup"] = ("event", rng.random(n) > 0.97)
    attrs = {
        "threshold": 8,
        "energy_min": 1100,
        "roi": [10, 20, 100, 50],
        "frame_shape": [256, 256],
        "filename": RAW,
        "source": "/data/balor.cbors",
    }
    return xr.Dataset(variables, attrs=attrs)


def _original_writer(path, hits_xye, frame_numbers, roi, threshold_counting, pre_threshold):
    """drp-femtomax CmosReducer._setup_photon_file + write_xye (reducer.py), h5py calls as
    written there, one write per frame."""
    with h5py.File(path, "w") as fh:
        group = fh.create_group("hits")
        group.create_dataset("roi_x", data=[roi[1].start, roi[1].stop])
        group.create_dataset("roi_y", data=[roi[0].start, roi[0].stop])
        group.create_dataset("pre_threshold", data=pre_threshold)
        group.create_dataset("threshold_counting", data=threshold_counting)
        meta = group.create_group("meta")
        meta.create_dataset("dranspose_version", data="0.9.1")
        xye_dset = group.create_dataset("hits_xye", (0, 3), maxshape=(None, 3), dtype=np.float64)
        fr_dset = group.create_dataset("hits_frame_number", (0,), maxshape=(None,), dtype=np.uint32)
        fh["raw_data"] = h5py.ExternalLink(RAW, "/")
        for frame_no in np.unique(frame_numbers):
            photon_xye = hits_xye[frame_numbers == frame_no]
            hits_fr = [frame_no] * len(photon_xye)
            oldsize = xye_dset.shape[0]
            xye_dset.resize(oldsize + len(hits_fr), axis=0)
            fr_dset.resize(oldsize + len(hits_fr), axis=0)
            xye_dset[oldsize : oldsize + len(hits_fr), :] = photon_xye
            fr_dset[oldsize : oldsize + len(hits_fr)] = hits_fr


def _structure(path) -> dict:
    """name -> (kind, dtype, shape, maxshape) of every node, links as their target."""
    out = {}
    with h5py.File(path, "r") as f:
        link = f.get("raw_data", getlink=True)
        out["raw_data"] = (type(link).__name__, link.filename, link.path)

        def visit(name, node):
            if isinstance(node, h5py.Dataset):
                out[name] = (
                    "dataset",
                    node.dtype.kind,
                    node.dtype.itemsize,
                    node.shape,
                    node.maxshape,
                )
            else:
                out[name] = ("group",)

        f["hits"].visititems(visit)
    return out


def test_layout_matches_the_original_writer(tmp_path):
    events = _events(pileup=False)
    ours = write_photon_list(events, tmp_path / "ours_integrated.h5")
    xye = np.stack([events.y, events.x, events.energy], axis=1)  # the original's (row, col, e)
    theirs = tmp_path / "theirs_integrated.h5"
    roi = (slice(20, 70), slice(10, 110))  # rois["photon"]: (rows, columns)
    _original_writer(theirs, xye, events.frame.values, roi, 8, 1100)
    mine, original = _structure(ours), _structure(theirs)
    assert set(original) - {"meta/dranspose_version"} <= set(mine)
    for name, entry in original.items():
        if not name.startswith("meta/"):
            assert mine[name] == entry, name  # same dtype, shape and resizability
    assert set(mine) - set(original) == {"meta/beamcat_version", "meta/written", "meta/source"}
    with h5py.File(ours) as a, h5py.File(theirs) as b:
        for name in ("hits_xye", "hits_frame_number", "roi_x", "roi_y", "pre_threshold"):
            np.testing.assert_array_equal(a["hits"][name][()], b["hits"][name][()])
        assert a["hits/threshold_counting"][()] == b["hits/threshold_counting"][()] == 8
        # NeXus attributes on top
        assert a.attrs["NX_class"] == "NXroot" and a.attrs["default"] == "hits"
        assert a["hits"].attrs["NX_class"] == "NXdata" and a["hits"].attrs["signal"] == "hits_xye"
        assert a["hits/meta"].attrs["NX_class"] == "NXcollection"
        assert list(a["hits/hits_xye"].attrs["columns"]) == ["y", "x", "energy"]


def test_files_of_the_original_writer_open_as_events(tmp_path):
    events = _events(pileup=False)
    path = tmp_path / "scan_integrated.h5"
    xye = np.stack([events.y, events.x, events.energy], axis=1)
    _original_writer(path, xye, events.frame.values, (slice(20, 70), slice(10, 110)), 108, 1100)
    back = beamcat.open_dataset(path).compute()
    for name in ("frame", "y", "x", "energy"):
        np.testing.assert_array_equal(back[name].values, events[name].values)
    assert back.attrs["format"] == "photon-list" and back.attrs["roi"] == [10, 20, 100, 50]
    assert back.attrs["threshold"] == 108 and back.attrs["energy_min"] == 1100
    assert back.attrs["raw_file"] == RAW and back.attrs["metadata"] == {
        "dranspose_version": "0.9.1"
    }
    assert "pileup" not in back and "frame_shape" not in back.attrs


def _lazy_table(events: xr.Dataset, chunk: int):
    """What `detect` returns on dask-backed frames: a structured event table whose chunks
    (one per frame chunk) have unknown lengths, with attrs; built here by hand."""
    fields = [(n, events[n].dtype) for n in events.data_vars]
    table = np.empty(events.sizes["event"], fields)
    for name in events.data_vars:
        table[name] = events[name].values
    keep = da.from_array(np.ones(table.size, bool), chunks=chunk)
    lazy = da.from_array(table, chunks=chunk)[keep]
    assert np.isnan(lazy.chunks[0][0])
    return SimpleNamespace(table=lazy, attrs=events.attrs)


@pytest.mark.parametrize("chunks", [None, 64, "lazy table"])
def test_round_trip(tmp_path, chunks, raise_if_dask_computes):
    events = _events()
    if chunks == 64:
        events = events.chunk(event=64)
    elif chunks == "lazy table":
        events = _lazy_table(events, 100)
    path = write_photon_list(events, tmp_path / "scan_integrated.h5", metadata={"note": "t"})
    with raise_if_dask_computes():
        back = beamcat.open_dataset(path)
    assert isinstance(back["energy"].data, da.Array)
    for name in ("frame", "y", "x", "energy", "pileup"):
        np.testing.assert_array_equal(back[name].values, _events()[name].values)  # float64: exact
    assert back["frame"].dtype == np.int64 and back["pileup"].dtype == bool
    attrs = back.attrs
    assert attrs["threshold"] == 8 and attrs["energy_min"] == 1100
    assert attrs["roi"] == [10, 20, 100, 50] and attrs["frame_shape"] == [256, 256]
    assert attrs["raw_file"] == RAW and attrs["metadata"]["note"] == "t"
    assert attrs["metadata"]["source"] == "/data/balor.cbors"
    assert attrs["metadata"]["beamcat_version"] == beamcat.__version__


def test_options_override_the_events_attrs(tmp_path):
    path = write_photon_list(
        _events(),
        tmp_path / "a.h5",
        raw_file="raw.h5",
        roi=(0, 0, 8, 4),
        threshold=12,
        energy_min=900,
    )
    back = open_photon_list(path)
    assert back.attrs["roi"] == [0, 0, 8, 4] and back.attrs["raw_file"] == "raw.h5"
    assert back.attrs["threshold"] == 12 and back.attrs["energy_min"] == 900


def test_no_roi_no_thresholds_no_link_when_unknown(tmp_path):
    events = _events()
    events.attrs = {}
    path = write_photon_list(events, tmp_path / "bare.h5")
    with h5py.File(path) as f:
        assert {"roi_x", "pre_threshold", "threshold_counting"}.isdisjoint(f["hits"])
        assert "raw_data" not in f
    assert set(open_photon_list(path).attrs) == {"source", "format", "signal", "metadata"}


def test_the_raw_data_link_resolves(tmp_path):
    raw = tmp_path / "raw" / "scan_balor.h5"
    raw.parent.mkdir()
    with h5py.File(raw, "w") as f:
        f["entry/data/data"] = np.arange(6, dtype=np.uint16).reshape(1, 2, 3)
    path = write_photon_list(_events(), tmp_path / "scan_integrated.h5", raw_file=raw)
    with h5py.File(path) as f:
        assert f["raw_data/entry/data/data"][()].tolist() == [[[0, 1, 2], [3, 4, 5]]]


def test_empty_event_list(tmp_path):
    path = write_photon_list(_events().isel(event=slice(0, 0)), tmp_path / "none.h5")
    back = open_photon_list(path)
    assert back.sizes["event"] == 0 and back["energy"].values.shape == (0,)


def test_writes_are_atomic_and_do_not_overwrite(tmp_path):
    path = write_photon_list(_events(seed=1), tmp_path / "scan_integrated.h5")
    with pytest.raises(OptionError, match="already exists; pass overwrite=True"):
        write_photon_list(_events(seed=2), path)
    bad = _events(seed=2).chunk(event=100)
    bad["frame"] = bad["frame"].copy(data=da.where(da.arange(500, chunks=100) > 300, -1, 0))
    with pytest.raises(OptionError, match=r"frame numbers -1\.\.0 do not fit hits_frame_number"):
        write_photon_list(bad, path, overwrite=True)  # fails in the 4th block
    np.testing.assert_array_equal(open_photon_list(path)["y"].values, _events(seed=1)["y"].values)
    assert os.listdir(tmp_path) == ["scan_integrated.h5"]  # no temporary file left
    write_photon_list(_events(seed=2), path, overwrite=True)
    np.testing.assert_array_equal(open_photon_list(path)["y"].values, _events(seed=2)["y"].values)


def test_bad_input_is_named(tmp_path):
    with pytest.raises(OptionError, match=r"lack \['energy'\]"):
        write_photon_list(_events().drop_vars("energy"), tmp_path / "a.h5")
    with pytest.raises(OptionError, match="expected an event Dataset"):
        write_photon_list(xr.Dataset({"y": ("frame", [1.0])}), tmp_path / "a.h5")
    with pytest.raises(OptionError, match=r"roi=\(1, 2\); expected \(x, y, w, h\)"):
        write_photon_list(_events(), tmp_path / "a.h5", roi=(1, 2))
    detector = tmp_path / "detector.h5"
    with h5py.File(detector, "w") as f:
        f["entry/data/data"] = np.zeros((2, 4, 4), np.uint16)
    with pytest.raises(FormatError, match=r"detector\.h5: no hits/hits_xye \(N, 3\) dataset"):
        open_photon_list(detector)
    torn = tmp_path / "torn.h5"
    with h5py.File(torn, "w") as f:
        f["hits/hits_xye"] = np.zeros((3, 3))
        f["hits/hits_frame_number"] = np.zeros(2, np.uint32)
    with pytest.raises(FormatError, match=r"hits_frame_number is \(2,\); expected \(3,\)"):
        open_photon_list(torn)
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(FormatError, match="text.h5: not a readable HDF5 file"):
        open_photon_list(tmp_path / "text.h5")
    with pytest.raises(SourceNotFoundError):
        open_photon_list(tmp_path / "missing.h5")


def test_sniffing_tells_photon_lists_from_detector_files(tmp_path):
    photons = write_photon_list(_events(), tmp_path / "scan_integrated.h5")
    detector = tmp_path / "detector.h5"
    with h5py.File(detector, "w") as f:
        f["entry/data/data"] = np.zeros((2, 4, 4), np.uint16)
    (tmp_path / "text.h5").write_text("not hdf5")
    assert is_photon_list(photons) and not is_photon_list(detector)
    assert sniff_format(photons) == "photon-list" and sniff_format(detector) == "hdf5"
    assert sniff_format(tmp_path / "text.h5") == "hdf5"  # its opener says what is wrong
    assert beamcat.open_dataset(detector).attrs["format"] == "hdf5"


def test_catalog_entry_and_intake_datatype(tmp_path):
    path = write_photon_list(_events(), tmp_path / "data" / "scan_integrated.h5")
    assert DATATYPES["photon-list"].__name__ == "PhotonList" and "photon-list" in READERS
    catalog = tmp_path / "catalog.yaml"
    add_source(catalog, "photons", path)  # format sniffed
    cat = open_catalog(catalog)
    (row,) = describe_entries(cat)
    assert row["format"] == "photon-list"
    back = cat["photons"].read()
    np.testing.assert_array_equal(back["energy"].values, _events()["energy"].values)


def test_zarr_copy_of_a_photon_list(tmp_path):
    events = open_photon_list(write_photon_list(_events(), tmp_path / "scan_integrated.h5"))
    store = to_zarr(events, tmp_path / "photons.zarr")
    back = beamcat.open_dataset(store)
    xr.testing.assert_identical(back.compute().drop_attrs(), events.compute().drop_attrs())
    assert back.attrs["roi"] == [10, 20, 100, 50] and back.attrs["threshold"] == 8


def test_per_frame_event_tables_are_refused_with_what_to_pass(tmp_path):
    # ds.photon.detect(...) on lazy frames gives per-frame tables (dim 'frame'), not an
    # event list: the writer says how to get one instead of a bare type error
    tables = xr.Dataset({"events": ("frame", np.empty(3, dtype=object))})
    with pytest.raises(OptionError, match=r"x\.h5.*per-frame event tables.*photon\.events\(\)"):
        write_photon_list(tables, tmp_path / "x.h5")
    assert not (tmp_path / "x.h5").exists()
