"""`run_stem4d` on the demo scan, with the calibration fitted on the demo's Au reference.

What the job writes is compared with the analyses run in the test on the same
scan and calibration (`radial_profiles`, `nmf`: the job adds no arithmetic of its
own, so profiles and loadings are compared exactly), the converted store with
the MIB's values, and the NMF with the demo's planted Au fraction.
"""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import xarray as xr

import beamcat
from beamcat.analyses.decomposition import nmf
from beamcat.analyses.stem4d import radial_profiles
from beamcat.analyses.stem4d_calibration import AuCalibration, calibrate_au
from beamcat.catalog.demo import CATALOG_NAME, read_truth
from beamcat.errors import BeamcatError, FormatError, OptionError
from beamcat.workflows import stem4d as workflow
from beamcat.workflows.stem4d import SUMMARY_NAME, nmf_start, run_stem4d

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def catalog(demo_dir):
    return beamcat.open_catalog(demo_dir / CATALOG_NAME)


@pytest.fixture(scope="module")
def au_json(catalog, tmp_path_factory):
    """The demo Au reference's calibration (the 300 kV of the demo), as ePSIC's JSON."""
    reference = catalog["stem4d_au_reference"].read()
    path = tmp_path_factory.mktemp("au") / "au.json"
    return calibrate_au(reference, voltage_kv=300).save(path)


@pytest.fixture(scope="module")
def job(catalog, demo_dir, au_json, tmp_path_factory):
    out = tmp_path_factory.mktemp("stem4d") / "out"
    summary = run_stem4d(
        "stem4d_scan",
        out=out,
        catalog=demo_dir / CATALOG_NAME,
        calibration=au_json,
        convert=True,
        progress=False,
    )
    return out, summary


def test_the_job_writes_every_file(job):
    out, summary = job
    assert json.loads((out / SUMMARY_NAME).read_text()) == summary
    expected = {
        "converted": "stem4d_scan.zarr",
        "profiles_zarr": "stem4d_scan_profiles.zarr",
        "profiles_hdf5": "stem4d_scan_profiles.h5",
        "nmf_zarr": "stem4d_scan_nmf.zarr",
        "calibration_profile_figure": "stem4d_scan_calibration_profile.png",
        "calibration_pattern_figure": "stem4d_scan_calibration_pattern.png",
        "scree_figure": "stem4d_scan_scree.png",
        "nmf_figure": "stem4d_scan_nmf.png",
        "summary": SUMMARY_NAME,
    }
    assert {k: [p.split("/")[-1] for p in v] for k, v in summary["files"].items()} == {
        k: [v] for k, v in expected.items()
    }
    for name in expected.values():
        if name.endswith(".png"):
            assert (out / name).read_bytes()[:8] == PNG
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary left
    assert summary["scan_shape"] == [32, 32] and summary["pattern_shape"] == [128, 128]


def test_profiles_are_radial_profiles_of_the_scan(job, catalog, au_json):
    out, summary = job
    cal = AuCalibration.load(au_json)
    assert summary["calibration"] == cal.to_attrs()
    scan = catalog["stem4d_scan"].read()
    expected = radial_profiles(scan, cal).compute()
    stored = xr.open_zarr(out / "stem4d_scan_profiles.zarr", consolidated=False)
    with h5py.File(out / "stem4d_scan_profiles.h5") as f:
        for ours, epsic in (("mean", "mean"), ("variance", "var"), ("count", "count")):
            truth = expected[ours].values
            np.testing.assert_array_equal(stored[f"stem4d_scan_azimuthal_{epsic}"].values, truth)
            np.testing.assert_array_equal(f[f"stem4d_scan_azimuthal_{epsic}"][()], truth)
        np.testing.assert_array_equal(f["q"][()], expected["q"].values)
    assert summary["q_bins"] == expected.sizes["q"] and summary["q_unit"] == "1/Angstrom"


def test_the_converted_store_holds_the_mib_values(job, catalog):
    out, _ = job
    converted = beamcat.open_dataset(out / "stem4d_scan.zarr", format="zarr")
    scan = catalog["stem4d_scan"].read()
    np.testing.assert_array_equal(converted["counts"].values, scan["counts"].values)


def test_nmf_is_nmf_of_the_profiles_and_finds_the_au_fraction(job, catalog, au_json, demo_dir):
    out, summary = job
    scan = catalog["stem4d_scan"].read()
    profiles = radial_profiles(scan, AuCalibration.load(au_json)).compute()
    q_range = tuple(summary["nmf"]["q_range"])
    assert q_range[0] == nmf_start(profiles)
    # twice the BF disc's edge: the planted 5 px disc at 0.0145 1/A per px is 0.145 1/A,
    # the half-maximum edge lies within a bin (0.0145) of it
    info, arrays = read_truth(demo_dir / "stem4d")
    planted = 2 * info["disc_radius_px"] * info["reciprocal_pixel_size"]
    assert abs(q_range[0] - planted) <= 2 * 0.0145 + 1e-9
    expected = nmf(profiles, 2, q_range=q_range)
    stored = xr.open_zarr(out / "stem4d_scan_nmf.zarr", consolidated=False)
    np.testing.assert_array_equal(stored["loadings"].values, expected["loadings"].values)
    np.testing.assert_array_equal(stored["components"].values, expected["components"].values)
    r = [
        np.corrcoef(m.ravel(), arrays["au_fraction"].ravel())[0, 1]
        for m in stored["loadings"].values
    ]
    assert max(np.abs(r)) >= 0.9  # the bar for the planted Au fraction
    assert summary["nmf"]["n_iter"] == expected.attrs["n_iter"]


def test_nmf_start_of_a_flat_profile_is_zero():
    flat = xr.Dataset({"mean": ("q", np.ones(5))}, coords={"q": np.arange(5.0)})
    assert nmf_start(flat) == 0.0


def test_bad_input(demo_dir, tmp_path, au_json):
    catalog = demo_dir / CATALOG_NAME
    with pytest.raises(OptionError, match="stem4d_au_reference: no calibration"):
        run_stem4d("stem4d_au_reference", out=tmp_path / "a", catalog=catalog, progress=False)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"reciprocal_space_pix": 0.01}))
    with pytest.raises(FormatError, match="bad.json"):
        run_stem4d("stem4d_scan", out=tmp_path / "b", catalog=catalog, calibration=bad)
    with pytest.raises(BeamcatError, match="'nothing': no such file or folder"):
        run_stem4d("nothing", out=tmp_path / "c", catalog=catalog)
    with pytest.raises(OptionError, match="expected a 4D-STEM scan"):
        run_stem4d("diffraction_ceo2", out=tmp_path / "d", catalog=catalog, calibration=au_json)
    # an output store already there: refused before any work, nothing written
    out = tmp_path / "e"
    (out / "stem4d_scan_nmf.zarr").mkdir(parents=True)
    with pytest.raises(OptionError, match="stem4d_scan_nmf.zarr: already exists"):
        run_stem4d("stem4d_scan", out=out, catalog=catalog, progress=False)
    assert [p.name for p in out.iterdir()] == ["stem4d_scan_nmf.zarr"]


def test_a_failure_leaves_no_partial_store(demo_dir, tmp_path, monkeypatch):
    def failing(*args, **kwargs):
        raise OptionError("NMF failed")

    monkeypatch.setattr(workflow, "nmf", failing)
    out = tmp_path / "out"
    with pytest.raises(OptionError, match="NMF failed"):
        run_stem4d("stem4d_scan", out=out, catalog=demo_dir / CATALOG_NAME, progress=False)
    # the profiles were complete before NMF ran; no NMF store, no temporary folder
    assert sorted(p.name for p in out.iterdir()) == [
        "stem4d_scan_profiles.h5",
        "stem4d_scan_profiles.zarr",
    ]
