"""``beamcat gainmap`` on the demo catalog: files written, summary printed, bad input one line."""

from __future__ import annotations

import json

from beamcat.catalog import demo
from beamcat.cli import main
from beamcat.workflows.gainmap import SUMMARY_NAME

ENTRIES = [f"gainmap_pos{k}" for k in range(1, 6)]


def test_gainmap_command_writes_maps_figures_and_summary(demo_dir, tmp_path, capsys):
    catalog = demo_dir / demo.CATALOG_NAME
    ponis = [str(demo_dir / "gainmap" / f"pos{k}.poni") for k in range(1, 6)]
    out = tmp_path / "gain"
    argv = ["gainmap", *ENTRIES, "--poni", *ponis, "--catalog", str(catalog), "--out", str(out)]
    code = main([*argv, "--median-window", "1", "--name", "pilatus", "--no-progress"])
    assert code == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / SUMMARY_NAME).read_text())
    assert summary["options"]["median_window"] == 1
    assert summary["options"]["polarization_factor"] == 0.99  # the command's default
    assert summary["geometries"] == ponis
    for kind in ("gain_tiff", "correction_tiff", "gsas2_map", "nexus", "gain_map_figure"):
        (path,) = summary["files"][kind]
        assert (out / path.split("/")[-1]).is_file()
        assert f"{kind}: {path}" in printed
    assert summary["files"]["gain_tiff"][0].split("/")[-1].startswith("pilatus_20")
    assert "position spread" in printed and "after correction" in printed
    # without the filter the correction takes the spread down > 5x (tests/analyses: ~6.3x)
    assert summary["spread_ratio"] > 5


def test_gainmap_command_bad_input_is_one_line(demo_dir, tmp_path, capsys):
    catalog = demo_dir / demo.CATALOG_NAME
    argv = ["gainmap", *ENTRIES[:2], "--catalog", str(catalog), "--out", str(tmp_path)]
    assert main([*argv, "--poni", str(tmp_path / "missing.poni"), "x.poni"]) == 1
    assert "missing.poni: no such PONI file" in capsys.readouterr().err
    assert main([*argv, "--flat-range", "1,2,3"]) == 1
    assert "--flat-range '1,2,3': expected 2 comma-separated numbers" in capsys.readouterr().err
    assert main([*argv, "--polarization-factor", "horizontal"]) == 1
    assert "--polarization-factor 'horizontal'" in capsys.readouterr().err
