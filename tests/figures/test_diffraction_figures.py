"""Diffraction figures: what is drawn is the data (pixels, masked gaps, rings, patterns, cake).

Truths come from pyFAI, called here: the 2θ of each drawn ring vertex
(``ai.tth`` at that pixel position), CeO2's reflections (``Calibrant.get_2th``),
the 1D patterns and the cake (``integrate1d`` / ``integrate2d_ng``), on the
demo's CeO2 image (make_demo's generator and seed).
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
import xarray as xr
from matplotlib.collections import LineCollection
from matplotlib.colors import LogNorm, Normalize
from matplotlib.image import AxesImage
from matplotlib.lines import Line2D
from PIL import Image

import beamcat
from beamcat.catalog.demo import diffraction as demo
from beamcat.errors import OptionError
from beamcat.figures import diffraction as fd
from beamcat.figures import save_figure

NO_SPLIT = ("no", "histogram", "cython")


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    """The demo's CeO2 image (with its PONI in attrs), the pyFAI integrator, the calibrant."""
    from pyFAI.calibrant import get_calibrant
    from pyFAI.integrator.azimuthal import AzimuthalIntegrator

    logging.getLogger("pyFAI").setLevel(logging.ERROR)
    folder = tmp_path_factory.mktemp("demo") / "diffraction"
    (entry,) = demo.write(folder, np.random.default_rng([0, 5]))
    ds = beamcat.open_dataset(entry.source, **entry.options)
    ai = AzimuthalIntegrator()
    ai.set_config(demo.PONI)
    calibrant = get_calibrant("CeO2")
    calibrant.wavelength = ai.wavelength
    image = ds.isel(frame=0)  # a Dataset: its signal carries attrs["poni"] to the figure
    return image, image.counts.values.astype(np.float64), ai, calibrant


def _pattern(sample, unit="2th_deg", name="tth", units="deg", npt=800) -> xr.Dataset:
    """pyFAI's 1D pattern of the image as integrate1d returns it (intensity, count, radial)."""
    _, values, ai, _ = sample
    res = ai.integrate1d(values, npt, unit=unit, mask=values < 0, method=NO_SPLIT)
    return xr.Dataset(
        {"intensity": (name, res.intensity), "count": (name, res.count)},
        coords={name: (name, res.radial, {"units": units})},
        attrs={"poni": sample[0].attrs["poni"]},  # as the accessor's result carries it
    )


def _gid(ax, gid, kind=object):
    found = [a for a in ax.get_children() if a.get_gid() == gid and isinstance(a, kind)]
    assert len(found) == 1, f"{gid}: {found}"
    return found[0]


def _axes(fig, label):
    (ax,) = [a for a in fig.axes if a.get_label() == label]
    return ax


# ------------------------------------------------------------------------------ image


def test_image_shows_the_pixels_masks_the_gap_and_draws_pyfai_rings(sample, tmp_path):
    image, values, ai, calibrant = sample
    fig = fd.diffraction_image_figure(image, rings="CeO2")  # the geometry of attrs["poni"]
    ax = _axes(fig, "image")
    data = [im for im in ax.get_images() if im.get_gid() != "mask"][0]
    gap = values < 0
    shown = np.asarray(data.get_array().filled(np.nan))
    np.testing.assert_array_equal(shown[~gap], values[~gap])  # the counts, untouched
    assert np.isnan(shown[gap]).all() and gap[195:212].all()  # the -2 module gap: masked
    mask = _gid(ax, "mask", AxesImage).get_array().filled(np.nan)
    np.testing.assert_array_equal(np.isfinite(mask), gap)  # drawn over the gap only
    assert isinstance(data.norm, LogNorm)
    # every vertex of the drawn rings lies on a CeO2 reflection by pyFAI's own 2θ:
    # marching squares interpolates linearly between pixel centres, 2θ curves by
    # < 0.001 deg over a pixel here (0.066 deg per pixel at 0.15 m)
    line = _gid(ax, "rings", Line2D)
    x, y = (np.asarray(v, dtype=np.float64) for v in line.get_data())
    keep = np.isfinite(x)
    tth = np.degrees(ai.tth(y[keep], x[keep]))
    reflections = np.degrees(calibrant.get_2th())
    nearest = np.abs(tth[:, None] - reflections[None, :]).min(1)
    assert nearest.max() < 2e-3
    drawn = np.unique(np.abs(tth[:, None] - reflections[None, :]).argmin(1))
    on_detector = reflections[
        reflections < np.degrees(ai.array_from_unit(values.shape, "center", "2th_rad").max())
    ]
    assert drawn.size == on_detector.size == 14  # every ring on the detector is drawn
    assert "CeO2 rings, 30 keV" in ax.get_title(loc="left")
    (written,) = save_figure(fig, tmp_path / "ceo2", dpi=40)
    with Image.open(written) as png:
        assert png.format == "PNG"


def test_image_options_and_errors(sample):
    image, values, _, _ = sample
    mask = np.zeros(values.shape, dtype=bool)
    mask[:10] = True  # a user mask joins the gap
    fig = fd.diffraction_image_figure(image, mask=mask, log=False)
    ax = _axes(fig, "image")
    data = [im for im in ax.get_images() if im.get_gid() != "mask"][0]
    assert isinstance(data.norm, Normalize) and not isinstance(data.norm, LogNorm)
    assert np.isnan(data.get_array().filled(np.nan)[:10]).all()
    assert not [a for a in ax.get_children() if a.get_gid() == "rings"]  # no rings asked
    with pytest.raises(OptionError, match="no geometry to draw CeO2 rings"):
        fd.diffraction_image_figure(image.counts, rings="CeO2")  # a variable: no attrs
    with pytest.raises(OptionError, match=r"mask: \(3, 3\) pixels"):
        fd.diffraction_image_figure(image, mask=np.zeros((3, 3), bool))
    with pytest.raises(OptionError, match=r"expected a DataArray with dims \('y', 'x'\)"):
        fd.diffraction_image_figure(image.counts.expand_dims("frame"))


def test_image_hv_twin_has_the_pixels_and_the_ring_polylines(sample):
    from beamcat.analyses.calibrant import rings

    image, values, ai, _ = sample
    table = rings("CeO2", geometry=ai, shape=values.shape)
    overlay = fd.diffraction_image_hv(image, rings=table)
    element, path = overlay.values()
    shown = element.dimension_values(2, flat=False)
    gap = values < 0
    np.testing.assert_array_equal(shown[~gap], values[~gap])  # rows as the raw image
    assert np.isnan(shown[gap]).all()
    # one path per polyline, together the vertices of the table's contours
    drawn = np.concatenate([p for p in path.split(datatype="array")])
    assert len(drawn) == int(np.isfinite(table["contour_x"].values).sum())


# ------------------------------------------------------------------------------ pattern


def test_pattern_draws_the_curve_and_ticks_the_reflections(sample):
    _, _, _, calibrant = sample
    pattern = _pattern(sample)
    fig = fd.pattern_figure(pattern, rings="CeO2")
    ax = _axes(fig, "pattern")
    x, y = _gid(ax, "pattern", Line2D).get_data()
    np.testing.assert_array_equal(x, pattern.tth.values)
    expected = np.where(pattern["count"] > 0, pattern.intensity, np.nan)  # empty bins blank
    np.testing.assert_array_equal(np.asarray(y, dtype=np.float64), expected)
    ticks = _gid(ax, "rings", LineCollection)
    at = np.array([seg[0, 0] for seg in ticks.get_segments()])
    reflections = np.degrees(calibrant.get_2th())
    inside = reflections[(reflections >= x.min()) & (reflections <= x.max())]
    np.testing.assert_allclose(at, inside, rtol=1e-12)  # pyFAI's CeO2 2θ, every one on the axis
    assert ax.get_xlabel() == "2θ (°)"


def test_pattern_in_q_per_angstrom_ticks_q_and_stacks_lines(sample):
    _, _, _, calibrant = sample
    pattern = _pattern(sample, unit="q_A^-1", name="q", units="A^-1")
    stack = xr.concat([pattern, pattern * 2], dim="frame").assign_coords(frame=[3, 4])
    fig = fd.pattern_figure(stack, rings="CeO2", log=True)
    ax = _axes(fig, "pattern")
    assert [line.get_label() for line in ax.get_lines()] == ["frame 3", "frame 4"]
    assert ax.get_yscale() == "log" and ax.get_xlabel() == "q (Å⁻¹)"
    at = np.array([seg[0, 0] for seg in _gid(ax, "rings", LineCollection).get_segments()])
    q = np.asarray(calibrant.get_peaks("q_A^-1"))  # pyFAI's q of each reflection, 1/Angstrom
    q = q[(q >= pattern.q.min().item()) & (q <= pattern.q.max().item())]
    np.testing.assert_allclose(at, q, rtol=1e-9)


def test_pattern_sigma_band_and_errors(sample):
    pattern = _pattern(sample).assign(sigma=lambda p: np.sqrt(p.intensity.clip(min=0)))
    ax = _axes(fd.pattern_figure(pattern), "pattern")
    band = _gid(ax, "sigma")
    assert band is not None and not [a for a in ax.get_children() if a.get_gid() == "rings"]
    r = _pattern(sample, unit="r_mm", name="r", units="mm")
    with pytest.raises(OptionError, match="ring positions need a 2θ or q axis"):
        fd.pattern_figure(r, rings=ring_table(sample))
    with pytest.raises(OptionError, match="no 'intensity' variable"):
        fd.pattern_figure(pattern.rename(intensity="mean"))
    with pytest.raises(OptionError, match="at most one leading dim"):
        fd.pattern_figure(pattern.expand_dims(a=1, b=1))


def ring_table(sample) -> xr.Dataset:
    """CeO2's rings on the demo geometry (a table: no contours), as ds.diffraction.rings gives."""
    from beamcat.analyses.calibrant import rings

    return rings("CeO2", geometry=sample[2])


def test_pattern_hv_twin(sample):
    pattern = _pattern(sample)
    overlay = fd.pattern_hv(pattern, rings=ring_table(sample))
    curve, spikes = overlay.values()
    np.testing.assert_array_equal(curve.dimension_values(0), pattern.tth.values)
    positions = spikes.dimension_values(0)
    assert len(positions) == 14 and positions.min() >= pattern.tth.min()


# ------------------------------------------------------------------------------ cake


def test_cake_draws_the_bins_blank_where_empty_with_ring_lines(sample):
    _, values, ai, calibrant = sample
    res = ai.integrate2d_ng(values, 300, 72, unit="2th_deg", mask=values < 0, method=NO_SPLIT)
    cake = xr.Dataset(
        {"intensity": (("chi", "tth"), res.intensity), "count": (("chi", "tth"), res.count)},
        coords={"chi": res.azimuthal, "tth": ("tth", res.radial, {"units": "deg"})},
    )
    fig = fd.cake_figure(cake, rings=ring_table(sample))
    ax = _axes(fig, "cake")
    (shown,) = ax.get_images()
    data = shown.get_array().filled(np.nan)
    empty = res.count == 0
    assert empty.any() and np.isnan(data[empty]).all()  # beyond the detector's corners
    np.testing.assert_array_equal(data[~empty], res.intensity[~empty])
    step = res.radial[1] - res.radial[0]
    left, right, bottom, top = shown.get_extent()
    assert left == pytest.approx(res.radial[0] - step / 2) and right == pytest.approx(
        res.radial[-1] + step / 2
    )
    assert bottom < top  # χ upwards
    at = np.array([seg[0, 0] for seg in _gid(ax, "rings", LineCollection).get_segments()])
    reflections = np.degrees(calibrant.get_2th())
    np.testing.assert_allclose(
        at, reflections[(reflections >= res.radial.min()) & (reflections <= res.radial.max())]
    )
    assert ax.get_ylabel() == "χ (°)"
    overlay = fd.cake_hv(cake, rings=ring_table(sample), log=False)
    image, lines = overlay.values()
    np.testing.assert_array_equal(image.dimension_values(2, flat=False), data)  # χ rows upwards
    np.testing.assert_allclose(np.sort(lines.dimension_values(0)), np.sort(at))
    with pytest.raises(OptionError, match=r"expected dims \(chi, tth \| q \| r\)"):
        fd.cake_figure(_pattern(sample))
