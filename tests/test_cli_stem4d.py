"""``beamcat stem4d`` on the demo catalog: files written, summary printed, bad input one line."""

from __future__ import annotations

import json

from beamcat.analyses.stem4d_calibration import AuCalibration
from beamcat.catalog import demo
from beamcat.cli import main
from beamcat.workflows.stem4d import SUMMARY_NAME


def test_stem4d_command_writes_profiles_nmf_figures_and_summary(demo_dir, tmp_path, capsys):
    catalog = demo_dir / demo.CATALOG_NAME
    # the demo's planted calibration, as a user's au.json (ePSIC's JSON)
    au = tmp_path / "au.json"
    AuCalibration.load(demo_dir / "stem4d" / "calibration.json").save(au)
    out = tmp_path / "out"
    argv = ["stem4d", "stem4d_scan", "--catalog", str(catalog), "--calibration", str(au)]
    code = main(
        [*argv, "--out", str(out), "--n-components", "3", "--name", "scan", "--no-progress"]
    )
    assert code == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / SUMMARY_NAME).read_text())
    assert summary["nmf"]["n_components"] == 3 and summary["nmf"]["profile"] == "variance"
    for kind in ("profiles_zarr", "profiles_hdf5", "nmf_zarr", "nmf_figure", "scree_figure"):
        (path,) = summary["files"][kind]
        assert path.split("/")[-1].startswith("scan_") and (out / path.split("/")[-1]).exists()
        assert f"{kind}: {path}" in printed
    assert "converted" not in summary["files"]  # no --convert
    assert "32 x 32 patterns: 63 radial bins of 0.0145 1/Angstrom; NMF of 3 components" in printed


def test_stem4d_command_bad_input_is_one_line(demo_dir, tmp_path, capsys):
    catalog = demo_dir / demo.CATALOG_NAME
    argv = ["stem4d", "--catalog", str(catalog), "--out", str(tmp_path / "out"), "--no-progress"]
    assert main([*argv, "stem4d_scan", "--calibration", str(tmp_path / "missing.json")]) == 1
    err = capsys.readouterr().err
    assert (
        err.startswith("beamcat: error: ") and "missing.json" in err and len(err.splitlines()) == 1
    )
    assert main([*argv, "stem4d_au_reference"]) == 1
    assert "no calibration; give an Au calibration JSON (--calibration" in capsys.readouterr().err
    assert main([*argv, "no_such_entry"]) == 1
    assert "'no_such_entry': no such file or folder" in capsys.readouterr().err
