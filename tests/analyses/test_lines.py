"""Line catalog: SAFFRON's bundled lines and windows, its JSON layout, edits and bad files."""

from __future__ import annotations

import json

import pytest

from beamcat.analyses.lines import LineCatalog, ion_name
from beamcat.errors import BeamcatWarning, FormatError, OptionError, SourceNotFoundError


def _saffron(shared_data):
    return json.loads((shared_data / "saffron" / "SPICE_SpecLines.json").read_text())


def test_bundled_catalog_is_saffrons(shared_data):
    # every line of SAFFRON's file, by name and wavelength; its one repeated name
    # (ne_vi_1 at 1005.79 and 1010.29 A) is ne_vi_2 for the second in the bundled copy
    catalog = LineCatalog.default()
    saffron = _saffron(shared_data)
    expected = [(e["name"], e["wvl"]) for e in saffron["LINES"]]
    expected[[w for _, w in expected].index(1010.29)] = ("ne_vi_2", 1010.29)
    assert [(n, catalog.rest_wavelength(n)) for n, _ in expected] == expected
    assert len(catalog.lines) == len(expected)
    assert len(catalog.windows) == len(saffron["SPECTRAL_WINDOWS_CATALOGUE"])
    assert catalog.extra["Deleted"] == saffron["Deleted"]


def test_ions_from_names():
    catalog = LineCatalog.default()
    assert catalog.ion("mg_ix_1") == "Mg IX"
    assert catalog.ion("ne_viii_2") == "Ne VIII"
    assert catalog.ion("h_i_be") == "H I"
    assert catalog.ion("c_iii") == "C III"
    assert ion_name("fe_xii_192") == "Fe XII"
    assert ion_name("ghost") == "ghost"


def test_lines_in_a_window_range():
    catalog = LineCatalog.default()
    # the demo's first window (701.6 - 707.4 A) holds SAFFRON's first window's three lines
    first = {"o_iii_1": 702.7, "o_iii_2": 703.87, "mg_ix_1": 706.02}
    assert catalog.lines_in(701.6, 707.4) == first
    assert catalog.lines_in(707.4, 701.6) == catalog.lines_in(701.6, 707.4)  # either order
    assert catalog.lines_in(800, 900) == {}
    assert catalog.lines_in(770.42, 770.42) == {"ne_viii_1": 770.42}  # edges included


def test_round_trip_in_saffrons_layout(tmp_path, shared_data):
    catalog = LineCatalog.default()
    catalog.add_line("fe_xii_192", 192.394)
    catalog.add_line("blend_195", 195.12, ion="Fe XII")
    catalog.add_window(["fe_xii_192", "blend_195"])
    path = catalog.save(tmp_path / "lines.json")
    data = json.loads(path.read_text())
    # SAFFRON's reader (pandas.DataFrame(data["LINES"])) needs name and wvl in each entry
    assert all({"name", "wvl"} <= set(e) for e in data["LINES"])
    assert {"lines": ["fe_xii_192", "blend_195"], "max_line": "fe_xii_192"} in data[
        "SPECTRAL_WINDOWS_CATALOGUE"
    ]
    back = LineCatalog.load(path)
    assert back.lines == catalog.lines
    assert back.windows == catalog.windows
    assert back.ion("blend_195") == "Fe XII"
    # SAFFRON's own file loads too (with its repeated name: first kept, with a warning)
    with pytest.warns(BeamcatWarning, match="ne_vi_1"):
        upstream = LineCatalog.load(shared_data / "saffron" / "SPICE_SpecLines.json")
    assert upstream.rest_wavelength("ne_vi_1") == 1005.79


def test_edits():
    catalog = LineCatalog.default()
    with pytest.raises(OptionError, match="o_iii_1"):
        catalog.add_line("o_iii_1", 702.7)
    with pytest.raises(OptionError, match="remove those windows"):
        catalog.remove_line("o_iii_1")
    with pytest.raises(OptionError, match="no line 'x_ii'"):
        catalog.rest_wavelength("x_ii")
    with pytest.raises(OptionError, match="positive"):
        catalog.add_line("x_ii", -3)
    catalog.add_line("x_ii", 800.0)
    catalog.add_window(["x_ii"])
    with pytest.raises(OptionError, match="exists"):
        catalog.add_window(["x_ii"])
    catalog.remove_window(["x_ii"])
    catalog.remove_line("x_ii")
    assert "x_ii" not in catalog.lines
    with pytest.raises(OptionError, match="no window"):
        catalog.remove_window(["x_ii"])
    assert "x_ii" not in LineCatalog.default().lines  # default() is a fresh copy


ONE_LINE = '{"LINES": [{"name": "a_i", "wvl": 1}], '


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("{not json", "not JSON"),
        ('{"SPECTRAL_WINDOWS_CATALOGUE": []}', "missing key 'LINES'"),
        ('{"LINES": [{"name": "o_iii_1"}]}', r"LINES\[0\] missing key 'wvl'"),
        ('{"LINES": [{"wvl": 702.7}]}', r"LINES\[0\] missing key 'name'"),
        (
            ONE_LINE + '"SPECTRAL_WINDOWS_CATALOGUE": [{"max_line": "a_i"}]}',
            r"SPECTRAL_WINDOWS_CATALOGUE\[0\] missing key 'lines'",
        ),
        (
            ONE_LINE + '"SPECTRAL_WINDOWS_CATALOGUE": [{"lines": ["b_i"]}]}',
            "not in LINES",
        ),
    ],
)
def test_bad_catalog_files(tmp_path, content, match):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(FormatError, match=match) as error:
        LineCatalog.load(path)
    assert str(path) in str(error.value)


def test_missing_catalog_file(tmp_path):
    with pytest.raises(SourceNotFoundError, match="nothere.json"):
        LineCatalog.load(tmp_path / "nothere.json")
