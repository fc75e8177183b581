"""``beamcat spice`` on the demo catalog: files written, statuses printed, bad input one line."""

from __future__ import annotations

import json

from beamcat.catalog import demo
from beamcat.cli import main
from beamcat.workflows.spice import SUMMARY_NAME


def test_spice_command_fits_and_prints_statuses(demo_dir, tmp_path, capsys):
    catalog = str(demo_dir / demo.CATALOG_NAME)
    out = tmp_path / "out"
    argv = ["spice", "spice_window1", "--catalog", catalog, "--out", str(out), "--no-progress"]
    assert main([*argv, "--background", "linear", "--no-l3"]) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / SUMMARY_NAME).read_text())
    assert summary["background"] == "linear" and "l3_fits" not in summary["files"]
    assert "spice_window1 Ne VIII 770: ne_viii_1: " in printed and "converged" in printed


def test_spice_command_bad_lock_is_one_line(demo_dir, tmp_path, capsys):
    catalog = str(demo_dir / demo.CATALOG_NAME)
    argv = ["spice", "spice_window1", "--catalog", catalog, "--out", str(tmp_path / "o")]
    assert main([*argv, "--lock", "ne_viii_1"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "LINE_B:LINE_A" in err
