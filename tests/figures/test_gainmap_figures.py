"""Gain-map figures: what is drawn is the data (map, damaged pixels, histogram, profiles, spread).

The Datasets are small hand-made ones shaped as `gain_map` and `position_spread`
return them, so each drawn value is known here; the workflow test draws the real ones.
"""

from __future__ import annotations

import holoviews as hv
import numpy as np
import pytest
import xarray as xr
from matplotlib.lines import Line2D
from matplotlib.patches import StepPatch
from PIL import Image

from beamcat.errors import OptionError
from beamcat.figures import gainmap as fg
from beamcat.figures import save_figure

DPI = 40  # small renders: the tests check data, not looks


@pytest.fixture(scope="module")
def gm() -> xr.Dataset:
    rng = np.random.default_rng(2)
    gain = rng.normal(1.0, 0.03, (20, 30))
    gain[2, 3] = np.nan
    damaged = np.zeros(gain.shape, bool)
    damaged[[5, 9], [7, 20]] = True
    gain[damaged] = 1.6
    tth = np.linspace(1, 20, 50)
    profile = np.stack([np.where(tth < hi, 100 + tth, np.nan) for hi in (20.1, 15.0, 12.0)])
    extrapolated = np.where(np.isfinite(profile), profile, 100 + tth)
    return xr.Dataset(
        {
            "gain": (("y", "x"), gain),
            "damaged": (("y", "x"), damaged),
            "profile": (("position", "tth"), profile),
            "extrapolated": (("position", "tth"), extrapolated),
            "expected_profile": ("tth", extrapolated.mean(0)),
        },
        coords={"tth": tth, "source": ("position", ["/d/pos1", "/d/pos2", "/d/pos3"])},
        attrs={"damaged_threshold": 1.12, "flat_range": [10.0, 11.5]},
    )


def _spread(level: float) -> xr.Dataset:
    tth = np.linspace(2, 12, 40)
    relative = 1 + level * np.array([[1.0], [-1.0], [0.5]]) * np.ones((3, 40))
    spread = relative.std(0) / relative.mean(0)
    return xr.Dataset(
        {
            "relative": (("position", "tth"), relative),
            "spread": ("tth", spread),
            "rms_spread": ((), float(np.sqrt(np.mean(spread**2)))),
        },
        coords={"tth": tth, "source": ("position", ["a", "b", "c"])},
    )


def _axes(fig, label):
    """The one axes labelled `label`."""
    return next(a for a in fig.axes if a.get_label() == label)


def _gid(ax, gid, kind=object):
    """The one artist of `ax` with this gid (and type)."""
    (artist,) = (a for a in ax.get_children() if a.get_gid() == gid and isinstance(a, kind))
    return artist


def _png_ok(fig, path) -> None:
    """The figure saves as a readable PNG."""
    (written,) = save_figure(fig, path, dpi=DPI)
    with Image.open(written) as png:
        assert (png.format, min(png.size) > 50) == ("PNG", True)


def test_gain_map_figure_draws_map_damaged_pixels_and_histogram(gm, tmp_path):
    fig = fg.gain_map_figure(gm, bins=20, title="Pilatus")
    ax = _axes(fig, "map")
    image = _gid(ax, "gain")
    np.testing.assert_array_equal(image.get_array().filled(np.nan), gm.gain.values)
    assert image.get_array().mask[2, 3]  # invalid pixels are masked (drawn grey)
    lo, hi = image.get_clim()
    assert hi < 1.6  # the damaged pixels do not stretch the colours
    points = _gid(ax, "damaged").get_offsets()
    assert sorted(map(tuple, np.asarray(points).tolist())) == [(7.0, 5.0), (20.0, 9.0)]  # x, y
    hist_ax = _axes(fig, "histogram")
    counts, edges, _ = _gid(hist_ax, "histogram", StepPatch).get_data()
    want, want_edges = np.histogram(gm.gain.values[np.isfinite(gm.gain.values)], bins=20)
    np.testing.assert_array_equal(counts, want)
    np.testing.assert_allclose(edges, want_edges)
    assert _gid(hist_ax, "threshold", Line2D).get_xdata()[0] == 1.12
    _png_ok(fig, tmp_path / "gain")


def test_profiles_figure_splits_measured_and_continued(gm, tmp_path):
    fig = fg.profiles_figure(gm)
    ax = _axes(fig, "profiles")
    for k in range(3):
        measured = _gid(ax, f"profile:{k}", Line2D).get_ydata()
        continued = _gid(ax, f"extrapolated:{k}", Line2D).get_ydata()
        np.testing.assert_array_equal(measured, gm.profile.values[k])
        # the dashed line is the continuation only: NaN where the position measured
        np.testing.assert_array_equal(np.isnan(continued), np.isfinite(gm.profile.values[k]))
    np.testing.assert_array_equal(
        _gid(ax, "expected", Line2D).get_ydata(), gm.expected_profile.values
    )
    window = _gid(ax, "flat_window")  # a rectangle in data x, axes y
    assert (window.get_x(), window.get_x() + window.get_width()) == (10.0, 11.5)
    assert [t.get_text() for t in ax.get_legend().get_texts()][:3] == ["pos1", "pos2", "pos3"]
    _png_ok(fig, tmp_path / "profiles")


def test_position_spread_figure_before_and_after(tmp_path):
    before, after = _spread(0.01), _spread(0.001)
    fig = fg.position_spread_figure(before, after)
    for label, data in (("before", before), ("after", after)):
        ax = _axes(fig, label)
        for k in range(3):
            np.testing.assert_array_equal(
                _gid(ax, f"pattern:{k}", Line2D).get_ydata(), data.relative.values[k]
            )
        assert f"{float(data.rms_spread) * 100:.3f} %" in ax.get_title()
        np.testing.assert_allclose(
            _gid(_axes(fig, "spread"), f"spread:{label}", Line2D).get_ydata(),
            data.spread.values * 100,
        )
    _png_ok(fig, tmp_path / "spread")


def test_holoviews_twins(gm):
    layout = fg.gain_map_hv(gm, bins=20)
    assert isinstance(layout, hv.Layout)
    image = layout.Overlay.I.Image.I
    shown = image.dimension_values("gain", flat=False)  # rows in increasing y
    np.testing.assert_allclose(shown, gm.gain.values, rtol=1e-7)  # float32
    overlay = fg.profiles_hv(gm)
    curves = overlay.Curve.values()
    assert len(curves) == 7  # 3 measured, 3 continued, expected
    assert len(overlay.VSpan.values()) == 1
    spread = fg.position_spread_hv(_spread(0.01), _spread(0.001))
    assert len(spread) == 3


def test_figures_refuse_other_data():
    with pytest.raises(OptionError, match="gain, damaged"):
        fg.gain_map_figure(xr.Dataset({"x": ("a", [1])}))
    with pytest.raises(OptionError, match="position spread"):
        fg.position_spread_figure(xr.Dataset(), xr.Dataset())
