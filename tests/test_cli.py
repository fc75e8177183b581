"""The ``beamcat`` command's help (every argument explained, defaults shown) and serve's options."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from beamcat import cli
from beamcat.errors import OptionError


def _subparsers(parser: argparse.ArgumentParser, prefix=()):
    """(command words, parser) of every (sub)command, depth first."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*prefix, name), sub
                yield from _subparsers(sub, (*prefix, name))


COMMANDS = dict(_subparsers(cli.build_parser()))


def test_every_command_is_covered():
    assert set(COMMANDS) >= {
        ("demo",),
        ("catalog",),
        ("catalog", "add"),
        ("catalog", "list"),
        ("catalog", "show"),
        ("serve",),
        ("radiography",),
        ("replay",),
    }


@pytest.mark.parametrize("words", list(COMMANDS), ids=" ".join)
def test_every_argument_has_help_and_shows_its_default(words, capsys):
    # the issue: `demo [dir]`, --catalog, --port, --dark/--flat/--out, --option/--meta had no
    # help text nor shown defaults; now every argument says what it is, and what it defaults to
    parser = COMMANDS[words]
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
            continue
        assert action.help, f"beamcat {' '.join(words)}: {action.dest} has no help"
    with pytest.raises(SystemExit):
        cli.main([*words, "--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for action in parser._actions:
        shown = action.default not in (None, False, [], argparse.SUPPRESS)
        if shown and not isinstance(action, argparse._HelpAction):
            assert f"(default: {action.default})" in text, (words, action.dest)


def test_help_shows_the_defaults_users_asked_about(capsys):
    expected = {
        ("demo",): "(default: beamcat-demo)",
        ("serve",): "(default: 5006)",
        ("catalog", "add"): f"(default: {cli.DEFAULT_CATALOG})",
    }
    for words, default in expected.items():
        with pytest.raises(SystemExit):
            cli.main([*words, "--help"])
        assert default in " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize("command", ["radiography", "replay"])
def test_roi_file_layouts_are_in_the_help(command, capsys):
    with pytest.raises(SystemExit):
        cli.main([command, "--help"])
    out = capsys.readouterr().out
    assert '{"bed_top": [134, 75, 52, 30]' in out  # the layout a new user tries first
    assert '{"rois": {"bed_top": {"x": 134, "y": 75, "w": 52, "h": 30}}}' in out


def test_radiography_dark_and_flat_are_optional():
    args = cli.build_parser().parse_args(["radiography", "run", "--rois", "r.json", "--out", "o"])
    assert args.dark is None and args.flat is None


@pytest.mark.parametrize(
    ("argv", "address", "port"),
    [
        (["serve"], "127.0.0.1", 5006),
        (["serve", "--address", "0.0.0.0", "--port", "8080"], "0.0.0.0", 8080),
    ],
)
def test_serve_passes_address_and_port_through(monkeypatch, argv, address, port):
    from beamcat.apps import serve as serve_module

    calls = []
    monkeypatch.setattr(serve_module, "serve", lambda catalog, **kw: calls.append((catalog, kw)))
    assert cli.main(argv) == 0
    ((catalog, kwargs),) = calls
    assert catalog is None  # the demo catalog
    assert kwargs == {"port": port, "address": address, "show": False, "trusted": False}


def test_parsers():
    assert cli.parse_grid("8x4") == (8, 4)
    assert cli.parse_numbers("1,2.5", 2, "--x") == (1, 2.5)
    assert cli.parse_frames("3", "--f") == 3 and cli.parse_frames("0:5", "--f") == slice(0, 5)
    with pytest.raises(OptionError, match="--x"):
        cli.parse_numbers("1,nan", 2, "--x")


def test_catalog_add_takes_a_4d_stem_calibration(demo_dir, tmp_path):
    # the flag stores the JSON as the entry's calibration= option; the entry then opens
    # with the planted calibration in attrs (the catalog reads ePSIC's JSON itself)
    import json

    from beamcat.catalog.catalogs import open_catalog

    sample = demo_dir / "stem4d"
    scan = next((sample / "scan").glob("*.mib"))
    catalog = tmp_path / "catalog.yaml"
    argv = ["catalog", "add", "scan", str(scan), "--catalog", str(catalog)]
    assert cli.main([*argv, "--calibration", str(sample / "calibration.json")]) == 0
    attrs = open_catalog(catalog)["scan"].read().attrs["calibration"]
    planted = json.loads((sample / "calibration.json").read_text())
    assert attrs["reciprocal_pixel_size"] == planted["reciprocal_space_pix"]
    row, column, a, b, angle = planted["p_ellipse"]  # py4DSTEM's axes
    assert [attrs[k] for k in ("x0", "y0", "a", "b", "theta")] == pytest.approx(
        [column, row, a, b, np.pi / 2 - angle]
    )
