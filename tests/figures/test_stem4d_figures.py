"""Au calibration figures against the demo's planted truth (make_demo's generator and seed).

What is compared: the profile figure's corrected line with `corrected_profile`
and its peaks with the planted Au s = 1/d; the reflection marks with the
truth's s; the raw panel's ellipse with the demo's own distortion formula
(every vertex at the planted corrected radius); the corrected panel's rings
with circles of the planted radius (every octant peaks there, where the raw
pattern's octants disagree by the planted a - b).
"""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.collections import LineCollection
from matplotlib.lines import Line2D
from PIL import Image

import beamcat
from beamcat.analyses.stem4d_calibration import AuCalibration, corrected_profile, mean_pattern
from beamcat.catalog.demo import read_truth, stem4d
from beamcat.errors import FormatError
from beamcat.figures import save_figure
from beamcat.figures import stem4d as fs


@pytest.fixture(scope="module")
def sample(demo_dir):
    """The demo's Au reference (its mean pattern), the planted calibration, the truth."""
    ds = beamcat.open_catalog(demo_dir / "catalog.yaml")["stem4d_au_reference"].read()
    truth, _ = read_truth(demo_dir / "stem4d")
    cal = AuCalibration(**truth["ellipse"], reciprocal_pixel_size=truth["reciprocal_pixel_size"])
    return mean_pattern(ds), cal, truth


def _drawn(fig, label: str, gid: str, kind=Line2D):
    """The one artist `gid` (of type `kind`) on the axes labelled `label`."""
    (ax,) = (a for a in fig.axes if a.get_label() == label)
    (artist,) = (c for c in ax.get_children() if isinstance(c, kind) and c.get_gid() == gid)
    return artist


def test_profile_peaks_on_the_planted_reflections(sample, tmp_path):
    pattern, cal, truth = sample
    fig = fs.calibration_profile_figure(pattern, cal)
    ax = fig.axes[0]
    s, corrected = (
        np.asarray(v, dtype=float) for v in _drawn(fig, "profile", "corrected").get_data()
    )
    expected = corrected_profile(pattern, cal, step=0.5)
    np.testing.assert_array_equal(corrected, expected.values)  # the analysis' numbers, drawn
    uncorrected = _drawn(fig, "profile", "uncorrected").get_data()
    s_plain, plain = (np.asarray(v, float) for v in uncorrected)
    lines = _drawn(fig, "profile", "reflections", LineCollection)
    marks = [seg[0, 0] for seg in lines.get_segments()]
    for hkl, mark in zip(("111", "200", "220", "311"), marks, strict=True):
        ring = truth["rings"][hkl]["s"]
        assert mark == pytest.approx(ring, rel=1e-12)  # the Au d-spacings of a = 4.08 A
        near = np.abs(s - ring) < 0.02
        # the corrected peak sits in the bin of the planted s (bins 0.5 px = 0.00725 1/A)
        assert s[near][np.argmax(corrected[near])] == pytest.approx(ring, abs=0.5 * 0.00725)
        if hkl in ("220", "311"):  # outer rings: a - b > 1 px smears the uncorrected peak
            assert corrected[near].max() > 1.1 * plain[np.abs(s_plain - ring) < 0.02].max()
    assert "0.0145 Å⁻¹/px" in ax.get_title(loc="left")
    (written,) = save_figure(fig, tmp_path / "profile", dpi=40)
    with Image.open(written) as png:
        assert png.format == "PNG"


def test_raw_panel_draws_the_planted_ellipse_and_corrected_panel_circles(sample):
    pattern, cal, truth = sample
    fig = fs.calibration_pattern_figure(pattern, cal)
    x, y = (np.asarray(v, dtype=float) for v in _drawn(fig, "raw", "ellipse").get_data())
    # every vertex has the planted 220 radius by the demo's own distortion formula
    dx, dy = x - stem4d.CENTRE[0], y - stem4d.CENTRE[1]
    u = dx * np.cos(stem4d.THETA) + dy * np.sin(stem4d.THETA)
    v = -dx * np.sin(stem4d.THETA) + dy * np.cos(stem4d.THETA)
    np.testing.assert_allclose(np.hypot(u, v / stem4d.AXIS_RATIO), truth["ellipse"]["a"])
    corrected, raw = (ax.get_images()[0].get_array().filled(np.nan) for ax in fig.axes)
    assert [ax.get_label() for ax in fig.axes] == ["corrected", "raw"]
    np.testing.assert_allclose(raw, np.log10(np.fmax(pattern, pattern[pattern > 0].min())))
    # per octant, where the 220 ring peaks (circular radius about the centre, 0.25 px bins):
    # on the corrected pattern at the planted a in every octant (bilinear resampling: 0.3 px),
    # on the raw pattern spread over the planted a - b (1.4 px)
    yy, xx = np.indices(pattern.shape)
    r = np.hypot(xx - cal.x0, yy - cal.y0)
    octant = ((np.arctan2(yy - cal.y0, xx - cal.x0) + np.pi) // (np.pi / 4)).astype(int) % 8
    ring = (r > cal.a - 3) & (r < cal.a + 3)

    def peaks(image):
        out = []
        for k in range(8):
            keep = ring & (octant == k) & np.isfinite(image)
            bins = np.rint(r[keep] * 4).astype(int)
            mean = np.bincount(bins, image[keep]) / np.maximum(np.bincount(bins), 1)
            out.append(np.argmax(mean) / 4)
        return np.array(out)

    assert np.abs(peaks(corrected) - cal.a).max() < 0.3
    assert np.ptp(peaks(raw)) > 1.0


def test_calibration_from_attrs_and_bad_attrs(sample):
    pattern, cal, _ = sample
    fig = fs.calibration_profile_figure(pattern, {"calibration": cal.to_attrs()}, log=True)
    assert fig.axes[0].get_yscale() == "log"
    with pytest.raises(FormatError, match=r"calibration lacks \['theta'"):
        fs.calibration_pattern_figure(pattern, {"x0": 1, "y0": 2, "a": 3, "b": 2})
