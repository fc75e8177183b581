"""ROI files on the ground floor: every JSON layout users write, and the import floor."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest

import beamcat.rois
from beamcat.errors import FormatError, OptionError
from beamcat.rois import Rect, check_rect, load_rois, save_rois

BED = {"bed_top": Rect(134, 75, 52, 30), "air": Rect(10, 10, 60, 60)}


@pytest.mark.parametrize(
    "doc",
    [
        # what save_rois writes and `beamcat radiography --rois` documents
        {"rois": {"bed_top": {"x": 134, "y": 75, "w": 52, "h": 30}, "air": [10, 10, 60, 60]}},
        # the obvious short form: name -> [x, y, w, h]
        {"bed_top": [134, 75, 52, 30], "air": [10, 10, 60, 60]},
        # name -> {"x", "y", "w", "h"} without the "rois" key
        {
            "bed_top": {"x": 134, "y": 75, "w": 52, "h": 30},
            "air": {"x": 10, "y": 10, "w": 60, "h": 60},
        },
    ],
    ids=["rois-key", "name-list", "name-dict"],
)
def test_every_json_layout_reads_the_same_rois(tmp_path, doc):
    path = tmp_path / "rois.json"
    path.write_text(json.dumps(doc))
    rois = load_rois(path)
    assert rois == BED and list(rois) == ["bed_top", "air"]  # file order kept
    assert all(type(v) is int for rect in rois.values() for v in rect)  # whole numbers stay int
    # and what save_rois writes reads back the same
    assert load_rois(save_rois(rois, tmp_path / "again.json")) == BED


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('{"bed_top": [134, 75, 52]}', r"rois.json: ROI 'bed_top' is \[134, 75, 52\]; expected"),
        ('{"bed_top": "134 75 52 30"}', "ROI 'bed_top'"),
        ('{"bed_top": {"x": 1, "y": 2, "w": 3}}', "ROI 'bed_top'"),
        ("[]", r"rois.json: expected a ROI set \{\"rois\""),
        ("3", r"rois.json: expected a ROI set"),
    ],
)
def test_malformed_json_names_the_file_the_roi_and_the_layouts(tmp_path, text, match):
    path = tmp_path / "rois.json"
    path.write_text(text)
    with pytest.raises(FormatError, match=match):
        load_rois(path)


def test_check_rect_and_masks(tmp_path):
    assert check_rect((1, 2, 3.0, 4.5), (10, 10)) == Rect(1, 2, 3, 4.5)
    with pytest.raises(OptionError, match=r"air_roi: .* reaches outside the image"):
        check_rect((8, 0, 4, 4), (10, 10), "air_roi")
    mask = np.zeros((4, 4), bool)
    mask[1, 2] = True
    path = save_rois({"m": mask, "r": (0, 0, 2, 2)}, tmp_path / "rois.json")
    np.testing.assert_array_equal(load_rois(path)["m"], mask)
    assert (tmp_path / "rois.masks.npz").is_file()


def test_the_roi_module_imports_only_the_ground_floor():
    # ROI files sit on the ground floor: the CLI, workflows and pages read them without
    # numba, dask, xarray or any analysis module (its module-level imports, read by ast)
    tree = ast.parse(Path(beamcat.rois.__file__).read_text())
    modules = {
        node.module if isinstance(node, ast.ImportFrom) else alias.name
        for node in tree.body
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    ours = {m for m in modules if m.startswith("beamcat")}
    assert ours == {"beamcat._util", "beamcat.errors"}
    assert not {m for m in modules if m.split(".")[0] in ("numba", "dask", "xarray")}
