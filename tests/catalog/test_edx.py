"""AZtec RPL/RAW and .h5oina EDX exports (beamcat.catalog.edx).

Truth: the arrays written in the test (by `write_edx`, by RosettaSciIO's own
writer as HyperSpy saves, a hand-written Lispix header, or an .h5oina laid
out as Oxford Instruments' H5OINA specification 7.0 says), read back exactly;
the demo's EDX map against the 4D-STEM scan it was planted with.
"""

from __future__ import annotations

import dask.array as da
import h5py
import numpy as np
import pytest
from rsciio.ripple import file_writer

from beamcat.catalog import edx as edx_format
from beamcat.catalog.demo import stem4d_edx
from beamcat.catalog.edx import match_scan, open_edx, write_edx
from beamcat.errors import BeamcatError, FormatError, SourceNotFoundError


def _counts(shape=(5, 6, 40), dtype="u2", seed=0):
    return np.random.default_rng(seed).integers(0, 200, shape).astype(dtype)


@pytest.mark.parametrize("record_by", ["image", "vector"])
@pytest.mark.parametrize("dtype", ["u1", "u2", "u4", "f4"])
def test_write_and_open_round_trip(tmp_path, record_by, dtype, raise_if_dask_computes):
    counts = _counts(dtype=dtype)
    path = write_edx(
        tmp_path / "map.rpl",
        counts,
        energy_offset_kev=-0.2,
        energy_scale_kev=0.01,
        record_by=record_by,
        energy_resolution_ev=128.0,
        beam_energy_kev=300.0,
        live_time_s=0.05,
    )
    with raise_if_dask_computes():  # nothing is read at open time
        ds = open_edx(path)
    assert isinstance(ds.counts.data, da.Array)
    assert ds.counts.dims == ("scan_y", "scan_x", "energy")
    np.testing.assert_array_equal(ds.counts.values, counts)
    np.testing.assert_allclose(ds.energy.values, -0.2 + 0.01 * np.arange(40), atol=1e-12)
    assert ds.energy.attrs["units"] == "keV"
    assert ds.attrs["format"] == "edx" and ds.attrs["record_by"] == record_by
    assert ds.attrs["energy_resolution_mnka_ev"] == 128.0
    assert ds.attrs["beam_energy_kev"] == 300.0 and ds.attrs["live_time_s"] == 0.05
    assert sorted(p.name for p in tmp_path.iterdir()) == ["map.raw", "map.rpl"]  # no temp left


def test_the_raw_name_opens_its_pair_and_chunks_pass_through(tmp_path):
    counts = _counts((8, 8, 16))
    write_edx(tmp_path / "m.rpl", counts, energy_offset_kev=0, energy_scale_kev=0.02)
    ds = open_edx(tmp_path / "m.raw", chunks=(4, 8, 8))  # the file's own order: (energy, y, x)
    assert ds.counts.data.numblocks == (1, 1, 4)  # 4 blocks of 4 channels
    np.testing.assert_array_equal(ds.counts.values, counts)


def test_a_hyperspy_export_written_by_rosettasciio_opens(tmp_path):
    # HyperSpy saves (scan_y, scan_x, energy) "record-by vector" with depth-* keys in keV
    counts = _counts((4, 3, 50))
    axes = [
        {"name": "y", "size": 4, "scale": 1.0, "offset": 0.0, "units": "nm", "navigate": True},
        {"name": "x", "size": 3, "scale": 1.0, "offset": 0.0, "units": "nm", "navigate": True},
        {
            "name": "Energy",
            "size": 50,
            "scale": 0.005,
            "offset": 0.1,
            "units": "keV",
            "navigate": False,
        },
    ]
    signal = {"data": counts, "axes": axes, "metadata": {"Signal": {"signal_type": ""}}}
    file_writer(str(tmp_path / "hs.rpl"), signal)
    ds = open_edx(tmp_path / "hs.rpl")
    np.testing.assert_array_equal(ds.counts.values, counts)
    np.testing.assert_allclose(ds.energy.values, 0.1 + 0.005 * np.arange(50), atol=1e-12)


def _lispix(tmp_path, counts, extra: str = "") -> str:
    """A plain Lispix header as AZtec writes it (energy planes), without HyperSpy's keys."""
    ny, nx, depth = counts.shape
    header = (
        f"key\tvalue\nwidth\t{nx}\nheight\t{ny}\ndepth\t{depth}\noffset\t0\n"
        "data-length\t2\ndata-type\tunsigned\nbyte-order\tlittle-endian\n"
        f"record-by\timage\n{extra}"
    )
    (tmp_path / "az.rpl").write_text(header)
    np.moveaxis(counts, 2, 0).astype("<u2").tofile(tmp_path / "az.raw")
    return str(tmp_path / "az.rpl")


def test_energy_from_ev_per_chan_or_options(tmp_path):
    counts = _counts((3, 4, 30))
    ds = open_edx(_lispix(tmp_path, counts, "ev-per-chan\t10\n"))
    np.testing.assert_allclose(ds.energy.values, 0.01 * np.arange(30), atol=1e-12)
    np.testing.assert_array_equal(ds.counts.values, counts)
    # no calibration in the header: the options give it, else a FormatError says so
    bare = _lispix(tmp_path, counts)
    with pytest.raises(FormatError, match=r"az.rpl: no energy calibration.*energy_scale_kev"):
        open_edx(bare)
    given = open_edx(bare, energy_offset_kev=0.5, energy_scale_kev=0.02)
    np.testing.assert_allclose(given.energy.values, 0.5 + 0.02 * np.arange(30), atol=1e-12)


def test_match_scan_follows_the_simultaneous_edx_rule(tmp_path):
    # 4D-STEM with EDX: N - 1 lines of N positions; AZtec's map is N x N
    counts = _counts((6, 6, 10))
    path = write_edx(tmp_path / "s.rpl", counts, energy_offset_kev=0, energy_scale_kev=0.01)
    edx = open_edx(path)
    assert match_scan(edx, (6, 6)) is edx
    last = open_edx(path, scan_shape=(5, 6))
    np.testing.assert_array_equal(last.counts.values, counts[:-1])
    assert last.attrs["edx_line_dropped"] == "last"
    first = match_scan(edx, (5, 6), extra_line="first")
    np.testing.assert_array_equal(first.counts.values, counts[1:])
    for shape in [(6, 5), (4, 6), (5, 5), (12, 3)]:
        with pytest.raises(BeamcatError, match=r"s.rpl: EDX map of 6 x 6 .* 4D-STEM scan"):
            match_scan(edx, shape)


def test_bad_files_raise_beamcat_errors_naming_them(tmp_path):
    with pytest.raises(SourceNotFoundError, match="nothing.rpl"):
        open_edx(tmp_path / "nothing.rpl")
    counts = _counts((3, 3, 8))
    path = write_edx(tmp_path / "c.rpl", counts, energy_offset_kev=0, energy_scale_kev=0.01)
    raw = tmp_path / "c.raw"
    raw.write_bytes(raw.read_bytes()[:-4])
    with pytest.raises(FormatError, match=r"c.raw: 140 bytes; expected 144"):
        open_edx(path)
    raw.unlink()
    with pytest.raises(SourceNotFoundError, match="c.raw is missing"):
        open_edx(path)
    (tmp_path / "g.rpl").write_text("this is not a ripple header\n")
    (tmp_path / "g.raw").write_bytes(b"")
    with pytest.raises(FormatError, match="g.rpl"):
        open_edx(tmp_path / "g.rpl")
    with pytest.raises(BeamcatError, match="record_by"):
        write_edx(
            tmp_path / "w.rpl", counts, energy_offset_kev=0, energy_scale_kev=1, record_by="pixel"
        )


def test_demo_edx_map_matches_its_scan(tmp_path):
    # written with the 4D-STEM sample's maps: the 32 x 32 scan once fly-back frames are dropped
    yy, xx = np.mgrid[:32, :32]
    au, thickness = (xx < 10).astype(float), 0.8 + 0.01 * yy
    _, truth = stem4d_edx.write(tmp_path / "edx", np.random.default_rng(1), au, thickness)
    ds = open_edx(tmp_path / truth["source"], scan_shape=(32, 32))
    assert dict(ds.counts.sizes) == {"scan_y": 32, "scan_x": 32, "energy": truth["channels"]}
    assert ds.energy.values[-1] == pytest.approx((truth["channels"] - 1) * truth["kev_per_channel"])
    # the Au La line is there where the planted Au is
    au_la = truth["lines"]["Au_La"]["energy_kev"]
    window = ds.counts.sel(energy=slice(au_la - 0.15, au_la + 0.15)).sum("energy").values
    assert window[:, :10].mean() > 5 * window[:, 10:].mean()


def _h5oina(path, counts, *, detector="EDS", start_ev=-20.0, width_ev=10.0, spectra=True):
    """An .h5oina EDS map as the H5OINA specification (7.0+) lays it out."""
    ny, nx, channels = counts.shape
    with h5py.File(path, "w") as f:
        f["Format Version"] = [b"7.0"]
        f["Index"] = [b"1"]
        header = f.create_group(f"1/{detector}/Header")
        for name, value, dtype in [
            ("X Cells", nx, "i4"),
            ("Y Cells", ny, "i4"),
            ("Start Channel", start_ev, "f4"),
            ("Channel Width", width_ev, "f4"),
            ("Number Channels", channels, "i4"),
            ("Beam Voltage", 300.0, "f4"),
            ("Detector Elevation", np.pi / 6, "f4"),
        ]:
            header.create_dataset(name, data=np.full((1, 1), value, dtype))
        header["Analysis Label"] = [b"Map Data 1"]
        data = f.create_group(f"1/{detector}/Data")
        data["Live Time"] = np.full((ny * nx, 1), 0.05, "f4")
        if spectra:  # one row per position, x fastest, LZF as AZtec writes it
            data.create_dataset(
                "Spectrum",
                data=counts.reshape(-1, channels).astype("i4"),
                compression="lzf",
                chunks=(nx, channels),
            )
    return path


def test_h5oina_eds_map_opens_lazily(tmp_path, raise_if_dask_computes, monkeypatch):
    counts = _counts((6, 6, 64))
    path = _h5oina(tmp_path / "Map Data 1.h5oina", counts)
    with raise_if_dask_computes():
        ds = open_edx(path)
    assert isinstance(ds.counts.data, da.Array) and ds.counts.dtype == np.int32
    np.testing.assert_array_equal(ds.counts.values, counts)  # rows are positions, x fastest
    np.testing.assert_allclose(ds.energy.values, -0.02 + 0.01 * np.arange(64), atol=1e-9)
    assert ds.attrs["beam_energy_kev"] == 300.0 and ds.attrs["title"] == "Map Data 1"
    assert ds.attrs["elevation_angle_deg"] == pytest.approx(30.0)
    assert ds.attrs["live_time_s"] == pytest.approx(0.05)
    # "auto" chunks hold whole scan lines; any asked chunking gives the same counts
    monkeypatch.setattr(edx_format, "_H5OINA_CHUNK_BYTES", 2 * 6 * 64 * 4)  # two lines of int32
    assert open_edx(path).counts.data.chunks[0] == (2, 2, 2)
    np.testing.assert_array_equal(open_edx(path, chunks=(7, 16)).counts.values, counts)
    np.testing.assert_array_equal(open_edx(path, scan_shape=(5, 6)).counts.values, counts[:-1])


def test_h5oina_second_detector_and_bad_files(tmp_path):
    counts = _counts((3, 4, 16))
    two = _h5oina(tmp_path / "two.h5oina", counts, detector="EDS2")
    np.testing.assert_array_equal(open_edx(two, detector="EDS2").counts.values, counts)
    with pytest.raises(FormatError, match=r"two.h5oina: no /1/EDS/Data/Spectrum.*\['EDS2'\]"):
        open_edx(two)
    grouped = _h5oina(tmp_path / "grouped.h5oina", counts, spectra=False)
    with h5py.File(grouped, "r+") as f:  # the spectra as Spectrum/Counts, as some files hold them
        f["1/EDS/Data/Spectrum/Counts"] = counts.reshape(-1, 16)
    np.testing.assert_array_equal(open_edx(grouped).counts.values, counts)
    windows = _h5oina(tmp_path / "old.h5oina", counts, spectra=False)
    with pytest.raises(FormatError, match="old.h5oina: no /1/EDS/Data/Spectrum"):
        open_edx(windows)
    short = _h5oina(tmp_path / "short.h5oina", counts)
    with h5py.File(short, "r+") as f:
        f["1/EDS/Header/Y Cells"][...] = 5
    with pytest.raises(FormatError, match=r"short.h5oina.*12 spectra; expected .* 5 x 4"):
        open_edx(short)
    (tmp_path / "junk.h5oina").write_bytes(b"not hdf5")
    with pytest.raises(FormatError, match="junk.h5oina"):
        open_edx(tmp_path / "junk.h5oina")
