"""The xarray backend: xr.open_dataset(path, engine="beamcat") is beamcat.open_dataset."""

import warnings

import dask.array as da
import numpy as np
import pytest
import xarray as xr

import beamcat
from beamcat.catalog.backend import BeamcatBackendEntrypoint
from beamcat.errors import BeamcatError, BeamcatWarning, OptionError

MIB_SCAN = (
    "rosettasciio_mib/Merlin_navigation4x2_signalNx256_ROI/"
    "002_merlin_test_roi_sig256x128_nav4x2_hot_pixel_52x_39y.mib"
)
EIS = "eispac_eis/eis_20210306_064444.data.h5"


def _real_files(root):
    """Every real file that beamcat.open_dataset opens (sniffed), and what it gives."""
    opened = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.name != "PROVENANCE.md"):
        try:
            opened[path] = beamcat.open_dataset(path)
        except BeamcatError:
            continue  # .poni, .json, a motor-only stream ...: not openable, nothing to compare
    return opened


def test_entry_point_registered():
    assert isinstance(xr.backends.list_engines()["beamcat"], BeamcatBackendEntrypoint)


def test_every_real_file_opens_identically(shared_data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BeamcatWarning)  # header-only SPICE windows say so
        opened = _real_files(shared_data)
        # every format with a real file is covered (photon-list, zarr, logs' imat have none)
        formats = {ds.attrs["format"] for ds in opened.values()}
        assert {"tiff", "mib", "hdf5", "eis", "spice", "cbor-stream", "massspec-csv"} <= formats
        assert len(opened) >= 45
        for path, ds in opened.items():
            via_xarray = xr.open_dataset(path, engine="beamcat")
            # values, coords, dims, attrs and encodings-independent identity, file by file
            xr.testing.assert_identical(via_xarray, ds)


def test_lazy_and_the_same_dask_arrays(shared_data, raise_if_dask_computes):
    path = shared_data / MIB_SCAN
    with raise_if_dask_computes():
        ref = beamcat.open_dataset(path)
        ds = xr.open_dataset(path, engine="beamcat")
        chunked = xr.open_dataset(path, engine="beamcat", chunks={})
        summed = ds.counts.sum(("y", "x"))  # reductions stay lazy through xarray's adapters
    assert isinstance(summed.data, da.Array)
    # chunks=None (xarray's default) keeps beamcat's dask array behind xarray's adapters
    assert isinstance(ds.counts.data, da.Array) and ds.counts.data.name == ref.counts.data.name
    # chunks={} rechunks along the preferred chunks the backend declares: beamcat's own
    preferred = {d: max(c) for d, c in ref.counts.chunksizes.items()}
    assert ds.counts.encoding["preferred_chunks"] == preferred
    assert chunked.counts.chunks == ref.counts.chunks


def test_options_format_and_backend_kwargs(shared_data):
    path = shared_data / EIS
    by_keyword = xr.open_dataset(path, engine="beamcat", window="Fe XII 192", units="counts")
    by_kwargs = xr.open_dataset(
        path, engine="beamcat", backend_kwargs={"format": "eis", "window": 2, "units": "counts"}
    )
    xr.testing.assert_identical(by_keyword, by_kwargs)
    assert by_keyword.attrs["window"] == "Fe XII 192.410"
    assert by_keyword.intensity.attrs["units"] == "counts"
    with pytest.raises(OptionError, match="format 'eis' takes no option 'windw'"):
        xr.open_dataset(path, engine="beamcat", windw=2)
    dropped = xr.open_dataset(path, engine="beamcat", drop_variables=["intensity"])
    assert "intensity" not in dropped and "wavelength" in dropped.coords


def test_guess_can_open(shared_data, tmp_path):
    backend = BeamcatBackendEntrypoint()
    assert backend.guess_can_open(shared_data / MIB_SCAN)
    assert backend.guess_can_open(str(shared_data / EIS))
    (tmp_path / "notes.bin").write_bytes(b"\0" * 8)
    assert not backend.guess_can_open(tmp_path / "notes.bin")
    assert not backend.guess_can_open(tmp_path / "missing.tif")
    with open(shared_data / EIS, "rb") as f:
        assert not backend.guess_can_open(f)  # file objects: beamcat opens paths


def test_open_mfdataset_concatenates_tiff_frames(shared_data, raise_if_dask_computes):
    files = sorted((shared_data / "dioptas/map").glob("*.tif"))
    ref = beamcat.open_dataset(files)
    with raise_if_dask_computes():
        combined = xr.open_mfdataset(files, engine="beamcat", combine="nested", concat_dim="frame")
    assert isinstance(combined.counts.data, da.Array)
    # each file is frame 0 of its own Dataset: the frame index restarts per file, the rest
    # (pixels, times, file names) is what beamcat gives for the list, exactly
    assert list(combined.frame.values) == [0, 0, 0]
    xr.testing.assert_identical(combined.counts.drop_vars("frame"), ref.counts.drop_vars("frame"))
    np.testing.assert_array_equal(combined.time.values, ref.time.values)
