"""Which entries calibrate which run: the guess the radiography page and the CLI share.

Checked on the demo catalog (whose truth is known: one IMAT run with its dark,
flat and logs; the other stacks have neither) and on hand-made entry tables for
the rules (role words, run metadata before name prefix, frame shapes).
"""

from __future__ import annotations

import pytest

from beamcat import open_catalog
from beamcat.catalog.demo import CATALOG_NAME
from beamcat.workflows.calibration_entries import (
    EntryInfo,
    calibratable_runs,
    default_entries,
    describe,
    image_stacks,
    role,
)

STACK = ("frame", "y", "x")


def _stack(run: str, description: str = "", shape=(5, 256, 320)) -> EntryInfo:
    return EntryInfo("tiff", {"run": run, "description": description}, STACK, shape)


@pytest.fixture(scope="module")
def demo(demo_dir):
    return describe(open_catalog(demo_dir / CATALOG_NAME))


def test_demo_offers_only_the_imat_run_with_its_dark_flat_and_logs(demo):
    # femtomax_scan and the gain-map stacks are stacks too, but have no dark or flat
    assert {"femtomax_scan", "gainmap_pos1", "imat_run"} <= set(image_stacks(demo))
    assert calibratable_runs(demo) == ["imat_run"]
    assert default_entries(demo) == {
        "run": "imat_run",
        "dark": "imat_dark",
        "flat": "imat_flat",
        "massspec": "imat_massspec",
        "temperature": "imat_temperature",
    }
    # asked for another run, the closest candidates are still given (the page lets a user pick)
    assert default_entries(demo, run="femtomax_scan")["run"] == "femtomax_scan"


def test_roles_come_from_names_and_descriptions():
    entries = {
        "a_dark": _stack("1"),
        "a_ob": _stack("1", "Open Beam frames"),
        "a_run": _stack("1", "operando series"),
    }
    assert [role(entries, n) for n in entries] == ["dark", "flat", None]


def test_run_metadata_wins_over_the_name_prefix_and_shapes_must_match():
    entries = {
        "x_run": _stack("7"),
        "x_dark": _stack("8"),  # same prefix, other run
        "y_dark": _stack("7"),  # same run metadata
        "x_flat": _stack("7"),
        "z_run": _stack("9", shape=(5, 64, 64)),  # a dark and flat of its prefix, wrong shape
        "z_dark": _stack("9"),
        "z_flat": _stack("9"),
    }
    assert calibratable_runs(entries) == ["x_run"]
    assert default_entries(entries, run="x_run")["dark"] == "y_dark"


def test_entries_that_cannot_be_opened_are_never_candidates():
    entries = {
        "broken_run": EntryInfo("tiff", {"run": "1"}),  # no dims: it did not open
        "broken_dark": _stack("1"),
        "broken_flat": _stack("1"),
    }
    assert image_stacks(entries) == ["broken_dark", "broken_flat"]
    assert calibratable_runs(entries) == []
    assert default_entries(entries)["run"] is None
