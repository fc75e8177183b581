"""Tests of `beamcat convert`: real MIB files to sharded Zarr v3 and back, atomicity, bad input."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
import xarray as xr
import zarr
from zarr.codecs import BloscCodec

import beamcat
from beamcat.catalog import mib
from beamcat.catalog.build import add_source
from beamcat.catalog.catalogs import open_catalog
from beamcat.catalog.convert import convert, default_layout, parse_compressor
from beamcat.catalog.mib_write import write_mib
from beamcat.catalog.mib_zip import CACHE_ENV
from beamcat.cli import main
from beamcat.errors import FormatError, OptionError, SourceNotFoundError

ROSETTA = "rosettasciio_mib"
#: every real MIB folder; the Quad_9 12/24-bit files exist only inside the zip
REAL_FOLDERS = [
    "epsic_tools_mib",
    f"{ROSETTA}/Merlin_Single_Quad",
    f"{ROSETTA}/Merlin_navigation4x2_ROI",
    f"{ROSETTA}/Merlin_navigation4x2_signalNx256_ROI",
]
ZIP_ONLY = [f"Quad_9_Frame_CounterDepth_{depth}_Rows_256.mib" for depth in (12, 24)]


def assert_same(source: xr.Dataset, store) -> xr.Dataset:
    """The store reads back with the source's values, dims, coords and attrs, bit for bit."""
    back = beamcat.open_dataset(store)
    xr.testing.assert_identical(source.drop_attrs(), back.drop_attrs())  # values, dtype, coords
    for var in source.variables:
        assert back[var].dtype == source[var].dtype
    attrs = {k: v for k, v in source.attrs.items() if k not in ("source", "format")}
    stored = {k: back.attrs[k] for k in attrs}
    # attrs go through JSON: tuples come back as lists, otherwise equal
    assert stored == {k: list(v) if isinstance(v, tuple) else v for k, v in attrs.items()}
    assert back.attrs["derived_from"] == source.attrs["source"]
    assert back.attrs["source_format"] == source.attrs["format"]
    return back


# ---------------------------------------------------------------- real files


@pytest.mark.parametrize("folder", REAL_FOLDERS)
def test_every_real_mib_converts_losslessly(shared_data, tmp_path, folder):
    files = sorted((shared_data / folder).glob("*.mib"))
    assert files
    for path in files:
        source = beamcat.open_dataset(path)
        out = convert(path, tmp_path / f"{path.stem}.zarr", progress=False)
        assert_same(source, out)


def test_zip_only_quad_mibs_convert_losslessly(shared_data, tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    archive = shared_data / ROSETTA / "Merlin_Single_Quad.zip"
    with zipfile.ZipFile(archive) as z:
        assert set(ZIP_ONLY) <= set(z.namelist())
    for member in ZIP_ONLY:
        source = beamcat.open_dataset(archive, member=member)
        out = convert(archive, tmp_path / f"{member}.zarr", options={"member": member})
        assert_same(source, out)


def test_rosettasciio_4x2_scans_keep_scan_shape_and_virtual_images(shared_data, tmp_path):
    folder = shared_data / ROSETTA
    paths = [
        folder / "Merlin_navigation4x2_ROI/001_4x2_6bit.mib",
        folder
        / "Merlin_navigation4x2_signalNx256_ROI"
        / "002_merlin_test_roi_sig256x128_nav4x2_hot_pixel_52x_39y.mib",
    ]
    for path in paths:
        source = beamcat.open_dataset(path, scan_shape=(2, 4))
        out = convert(source, tmp_path / f"{path.stem}.zarr", progress=False)
        back = assert_same(source, out)
        assert back.counts.dims == ("scan_y", "scan_x", "y", "x")
        # a virtual image (annulus sum) of the store equals the source's: same integers
        yy, xx = np.indices(source.counts.shape[-2:])
        r = np.hypot(yy - 60, xx - 60)
        ring = xr.DataArray((r > 10) & (r < 50), dims=("y", "x"))
        expected = source.counts.where(ring, 0).sum(("y", "x")).values
        np.testing.assert_array_equal(back.counts.where(ring, 0).sum(("y", "x")).values, expected)


# ---------------------------------------------------------------- layout


def test_default_layout_groups_whole_frames():
    # 128 KiB frames: 16 per ~2 MiB chunk along a line; 16 MiB shards = one scan line
    sizes = {"scan_y": 128, "scan_x": 128, "y": 256, "x": 256}
    chunks, shards = default_layout(sizes, 2)
    assert chunks == {"scan_y": 1, "scan_x": 16, "y": 256, "x": 256}
    assert shards == {"scan_y": 1, "scan_x": 128, "y": 256, "x": 256}
    # short lines: a shard takes several
    chunks, shards = default_layout({"scan_y": 64, "scan_x": 32, "y": 256, "x": 256}, 2)
    assert (chunks["scan_y"], chunks["scan_x"]) == (1, 16)
    assert (shards["scan_y"], shards["scan_x"]) == (4, 32)
    # a flat frame stack, a tiny scan, and chosen sizes (shards rounded up to whole chunks)
    assert default_layout({"frame": 100, "y": 256, "x": 256}, 2) == (
        {"frame": 16, "y": 256, "x": 256},
        {"frame": 112, "y": 256, "x": 256},
    )
    assert default_layout({"scan_y": 2, "scan_x": 4, "y": 64, "x": 256}, 1)[0]["scan_x"] == 4
    chosen = {"scan_y": 2, "scan_x": 8}
    chunks, shards = default_layout(sizes, 2, chunks=chosen, shards={"scan_y": 5})
    assert (chunks["scan_y"], chunks["scan_x"], shards["scan_y"]) == (2, 8, 6)
    assert shards["scan_x"] % 8 == 0


def test_store_is_sharded_and_blosc_bitshuffle_compressed(tmp_path):
    rng = np.random.default_rng(0)
    frames = rng.poisson(0.5, (6 * 8, 16, 16)).astype(np.uint16)
    path = write_mib(tmp_path / "scan.mib", frames, depth=12, scan_shape=(6, 8))
    out = convert(
        path,
        tmp_path / "scan.zarr",
        chunks={"scan_y": 2, "scan_x": 4},
        shards={"scan_y": 4},
        options={"scan_shape": (6, 8)},
        progress=False,
    )
    counts = zarr.open_array(out / "counts", mode="r")
    assert counts.chunks == (2, 4, 16, 16)
    assert counts.shards == (4, 8, 16, 16)
    (codec,) = counts.compressors
    assert isinstance(codec, BloscCodec)
    assert (codec.cname.value, codec.shuffle.value, codec.clevel) == ("zstd", "bitshuffle", 3)
    np.testing.assert_array_equal(counts[...], frames.reshape(6, 8, 16, 16))
    # one shard file per 4 x 8 block of scan positions: 2 along scan_y
    assert len(list((out / "counts").rglob("c/*/*/*/*"))) == 2
    # per-frame coordinates are stored whole (one chunk), not per shard
    assert zarr.open_array(out / "exposure", mode="r").chunks == (6, 8)
    # opened, a dask task reads a whole shard (one file), not each inner chunk
    opened = beamcat.open_dataset(out).counts
    assert opened.data.chunks == ((4, 2), (8,), (16,), (16,))
    np.testing.assert_array_equal(opened.values, frames.reshape(6, 8, 16, 16))


def test_parse_compressor():
    assert parse_compressor("none") == []
    (codec,) = parse_compressor("blosc-lz4-shuffle-3")
    assert (codec.cname.value, codec.shuffle.value, codec.clevel) == ("lz4", "shuffle", 3)
    for bad in ("gzip", "blosc-zstd", "blosc-zip-shuffle", "blosc-zstd-bitshuffle-12"):
        with pytest.raises(OptionError, match="blosc-CNAME-SHUFFLE"):
            parse_compressor(bad)


# ---------------------------------------------------------------- atomicity


def test_failure_mid_write_leaves_nothing_under_the_final_name(tmp_path, monkeypatch):
    frames = np.arange(8 * 4 * 16 * 16, dtype=np.uint16).reshape(32, 16, 16) % 4096
    path = write_mib(tmp_path / "scan.mib", frames, depth=12, scan_shape=(8, 4))
    read = mib.MibFrames.read
    calls = []

    def failing(self, wanted):
        calls.append(1)
        if len(calls) > 2:  # the first shards are written, then the source fails
            raise FormatError(f"{path}: planted read failure")
        return read(self, wanted)

    monkeypatch.setattr(mib.MibFrames, "read", failing)
    out = tmp_path / "out" / "scan.zarr"
    with pytest.raises(FormatError, match="planted"):
        convert(
            path,
            out,
            shards={"scan_y": 1},
            chunks={"scan_y": 1},
            options={"scan_shape": (8, 4), "chunks": 4},
            progress=False,
        )
    assert len(calls) > 2
    assert not out.exists()
    assert list(out.parent.iterdir()) == []  # the temporary store is gone too


# ---------------------------------------------------------------- catalogs and CLI


def test_catalog_entry_to_registered_store(tmp_path, capsys):
    frames = np.random.default_rng(1).integers(0, 64, (12, 32, 32)).astype(np.uint8)
    path = write_mib(tmp_path / "scan.mib", frames, depth=6, scan_shape=(3, 4))
    catalog = tmp_path / "catalog.yaml"
    add_source(catalog, "scan", path, options={"scan_shape": [3, 4]})
    out = convert("scan", tmp_path / "scan.zarr", catalog=catalog, name="scan_zarr")
    assert "100% Completed" in capsys.readouterr().out  # dask's progress bar
    cat = open_catalog(catalog)
    source = cat["scan"].read()
    back = cat["scan_zarr"].read()
    assert back.attrs["format"] == "zarr"
    np.testing.assert_array_equal(back.counts.values, frames.reshape(3, 4, 32, 32))
    assert_same(source, out)
    # the CLI: an entry, registered under a new name
    assert main(["convert", "scan", str(tmp_path / "cli.zarr"), "--catalog", str(catalog),
                 "--name", "scan_cli", "--no-progress"]) == 0  # fmt: skip
    assert "scan_cli" in open_catalog(catalog)
    assert "scan_cli" in capsys.readouterr().out
    # taken name: refused before anything is written
    assert main(["convert", "scan", str(tmp_path / "again.zarr"), "--catalog", str(catalog),
                 "--name", "scan_cli"]) == 1  # fmt: skip
    assert "already has an entry 'scan_cli'" in capsys.readouterr().err
    assert not (tmp_path / "again.zarr").exists()


def test_bad_input(tmp_path):
    frames = np.zeros((4, 8, 8), dtype=np.uint16)
    path = write_mib(tmp_path / "scan.mib", frames, depth=12)
    (tmp_path / "taken.zarr").mkdir()
    with pytest.raises(OptionError, match="already exists"):
        convert(path, tmp_path / "taken.zarr")
    with pytest.raises(OptionError, match="compressor='lzma'"):
        convert(path, tmp_path / "a.zarr", compressor="lzma")
    with pytest.raises(OptionError, match="chunks=.*frame, y, x"):
        convert(path, tmp_path / "a.zarr", chunks={"scan_y": 2}, progress=False)
    with pytest.raises(OptionError, match="needs catalog="):
        convert(path, tmp_path / "a.zarr", name="scan")
    with pytest.raises(SourceNotFoundError):
        convert(tmp_path / "missing.mib", tmp_path / "a.zarr")
    catalog = tmp_path / "catalog.yaml"
    add_source(catalog, "scan", path)
    with pytest.raises(SourceNotFoundError, match="entries are: scan"):
        convert("nothing", tmp_path / "a.zarr", catalog=catalog)
    (tmp_path / "garbage.mib").write_bytes(b"not a MIB file at all")
    with pytest.raises(FormatError, match="garbage.mib"):
        convert(tmp_path / "garbage.mib", tmp_path / "a.zarr", options={"format": "mib"})
    assert not (tmp_path / "a.zarr").exists()
