"""``beamcat radiography`` on the demo run: every output written, numbers equal the truth."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import beamcat
from beamcat.catalog import demo
from beamcat.cli import main
from beamcat.workflows.radiography import run_radiography


@pytest.fixture(scope="session")
def demo_run(demo_dir, tmp_path_factory):
    """The demo catalog, its radiography truth and a ROI file of the truth's regions."""
    catalog = demo_dir / demo.CATALOG_NAME
    scalars, arrays = demo.read_truth(demo_dir / "radiography")
    rois = tmp_path_factory.mktemp("rois") / "rois.json"
    rois.write_text(json.dumps({"rois": scalars["rois"]}))
    return catalog, scalars, arrays, rois


def _args(catalog, rois, out, *extra):
    return [
        "radiography",
        "imat_run",
        "--catalog",
        str(catalog),
        "--dark",
        "imat_dark",
        "--flat",
        "imat_flat",
        "--rois",
        str(rois),
        "--out",
        str(out),
        "--no-progress",
        *extra,
    ]


def test_cli_writes_tables_and_figures_that_match_the_truth(demo_run, tmp_path, capsys):
    catalog, truth, arrays, rois = demo_run
    air = ",".join(map(str, truth["rois"]["air"]))
    bl = f"{truth['thickness_cm']},{truth['cross_section_barn']}"
    out = tmp_path / "out"
    args = _args(
        catalog, rois, out, "--air", air, "--grid", "4x2", "--grid-region", "128,70,64,120"
    )
    args += ["--beer-lambert", bl, "--difference", "0:3", "--massspec", "imat_massspec"]
    args += ["--temperature", "imat_temperature", "--pixel-size", str(truth["pixel_size"])]
    args += ["--format", "png,svg", "--dpi", "40", "--frame-step", "12"]
    assert main(args) == 0
    assert "double_plot" in capsys.readouterr().out

    expected = [
        "imat_run_greyvalues.csv",
        "imat_run_grid_greyvalues.csv",
        "imat_run_concentration.csv",
        "imat_run_rois.zarr",
        "imat_run_grid.zarr",
        "imat_run_rois.png",
        "imat_run_rois.svg",
        "double_plot.png",
        "double_plot.svg",
        "imat_run_grid.gif",
        "imat_run_difference.gif",
    ]
    for name in expected:
        assert (out / name).exists(), name
    # 48 frames, every 12th drawn: 4 frames per sequence, in both formats
    for seq in ("grid", "difference"):
        frames = sorted((out / f"imat_run_{seq}").iterdir())
        assert len(frames) == 8
        assert all(p.stat().st_size > 0 for p in frames)
        with Image.open(out / f"imat_run_{seq}.gif") as gif:
            assert gif.n_frames == 4
    assert Image.open(out / "double_plot.png").format == "PNG"
    assert (out / "double_plot.svg").read_bytes().startswith(b"<?xml")

    # the original's CSV: a column per ROI, named by the ROI, in the ROI file's order
    # (the issue: "ROI 1" said nothing); transmission within 0.5 %
    table = pd.read_csv(out / "imat_run_greyvalues.csv")
    columns = list(truth["rois"])
    assert len(columns) == len(truth["regions"])
    assert list(table.columns) == ["Absolute Time", "Elapsed Time", *columns]
    order = [truth["regions"].index(name) for name in truth["rois"]]
    truth_t = arrays["transmission"][:, order]
    np.testing.assert_allclose(table[columns].to_numpy(), truth_t, rtol=5e-3)
    np.testing.assert_allclose(
        table["Elapsed Time"],
        (arrays["frame_end"] - arrays["frame_end"][0]) / np.timedelta64(1, "s"),
    )
    # Beer-Lambert relative to frame 0: within 1 % of the largest concentration
    conc = pd.read_csv(out / "imat_run_concentration.csv")[columns].to_numpy()
    truth_c = arrays["concentration"][:, order]
    np.testing.assert_allclose(conc, truth_c, atol=0.01 * truth_c.max())
    # the Zarr store opens through beamcat and holds the same means
    store = beamcat.open_dataset(out / "imat_run_rois.zarr")
    np.testing.assert_allclose(store["mean"].values.T, table[columns].to_numpy())
    assert set(store.data_vars) >= {"mean", "std", "count", "concentration", "reference_image"}
    grid = pd.read_csv(out / "imat_run_grid_greyvalues.csv")
    assert [c for c in grid.columns if "," in c] == [f"{r},{c}" for r in range(4) for c in range(2)]


def test_job_computes_the_rois_and_the_grid_in_one_pass(demo_run, tmp_path, raise_if_dask_computes):
    catalog, truth, _, rois = demo_run
    with raise_if_dask_computes(max_computes=1):
        written = run_radiography(
            catalog,
            "imat_run",
            dark="imat_dark",
            flat="imat_flat",
            rois=rois,
            out=tmp_path,
            grid=(2, 2),
            grid_region=(128, 70, 64, 120),
            air_roi=truth["rois"]["air"],
            dpi=30,
            animation=None,
            frame_step=24,
            progress=False,
        )
    assert sorted(written) == [
        "double_plot",
        "grid_animation",
        "grid_frames",
        "roi_image",
        "tables",
        "zarr",
    ]
    assert written["grid_animation"] == []


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--massspec", "no_such_entry"], "no_such_entry"),
        (["--grid", "8by8"], "ROWSxCOLS"),
        (["--air", "1,2,3"], "4 comma-separated"),
        (["--reference", "a:b"], "frame index"),
    ],
)
def test_bad_options_exit_1_with_a_clear_message(demo_run, tmp_path, capsys, extra, message):
    catalog, _, _, rois = demo_run
    assert main(_args(catalog, rois, tmp_path, *extra)) == 1
    err = capsys.readouterr().err
    assert err.startswith("beamcat: error:") and message in err


def test_roi_outside_the_image_exits_1(demo_run, tmp_path, capsys):
    catalog, _, _, _ = demo_run
    rois = tmp_path / "rois.json"
    rois.write_text(json.dumps({"rois": {"far": [300, 10, 40, 40]}}))
    assert main(_args(catalog, rois, tmp_path / "out", "--no-progress")) == 1
    err = capsys.readouterr().err
    assert "'far'" in err and "outside the image" in err
    assert not (tmp_path / "out").exists()  # nothing written before the inputs are checked


def test_cli_without_dark_and_flat_guesses_them_from_the_catalog(demo_run, tmp_path, capsys):
    # the Radiography page's guess (workflows.calibration_entries), shared with the CLI: the
    # demo's imat_run has imat_dark and imat_flat; the tables are those of the explicit run
    catalog, truth, arrays, rois = demo_run
    out = tmp_path / "out"
    argv = ["radiography", "imat_run", "--catalog", str(catalog), "--rois", str(rois)]
    argv += ["--out", str(out), "--no-progress", "--animation", "none", "--dpi", "30"]
    argv += ["--air", ",".join(map(str, truth["rois"]["air"]))]  # the demo's source drift
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "--dark imat_dark (guessed" in err and "--flat imat_flat (guessed" in err
    table = pd.read_csv(out / "imat_run_greyvalues.csv")
    columns = list(truth["rois"])
    order = [truth["regions"].index(name) for name in truth["rois"]]
    truth_t = arrays["transmission"][:, order]
    np.testing.assert_allclose(table[columns].to_numpy(), truth_t, rtol=5e-3)  # as explicit


def test_cli_says_when_no_dark_can_be_guessed(demo_run, tmp_path, capsys, monkeypatch):
    from beamcat.workflows import calibration_entries

    catalog, _, _, rois = demo_run
    monkeypatch.setattr(
        calibration_entries,
        "default_entries",
        lambda entries, run=None: {"run": run, "dark": None, "flat": "imat_flat"},
    )
    argv = ["radiography", "imat_run", "--catalog", str(catalog), "--rois", str(rois)]
    assert main([*argv, "--out", str(tmp_path / "out"), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "no dark entry found" in err and "--dark ENTRY" in err
    assert not (tmp_path / "out").exists()


def test_cli_reads_both_roi_file_layouts_the_same(demo_run, tmp_path):
    # the issue: the obvious {"bed_top": [134, 75, 52, 30]} failed; both layouts now give
    # the same tables (byte for byte: the same ROIs in the same order)
    catalog, truth, _, _ = demo_run
    layouts = {
        "lists": truth["rois"],
        "boxes": {"rois": {n: dict(zip("xywh", r, strict=True)) for n, r in truth["rois"].items()}},
    }
    tables = {}
    for name, layout in layouts.items():
        rois = tmp_path / f"{name}.json"
        rois.write_text(json.dumps(layout))
        out = tmp_path / name
        args = _args(catalog, rois, out, "--animation", "none", "--dpi", "20")
        assert main([*args, "--frame-step", "48"]) == 0
        tables[name] = (out / "imat_run_greyvalues.csv").read_text()
    assert tables["lists"] == tables["boxes"]
    assert tables["lists"].splitlines()[0].split(",")[2:] == list(truth["rois"])
