"""Photon figures: files are valid, and what is drawn is the data (pixels, bars, cuts, errors).

Ground truths are computed here independently with numpy: photons per pixel from the
event positions, the histogram from the event energies, the accumulated image from
the frames, block maxima by reshaping; positions and counts of the real FemtoMAX
recording come from PROVENANCE.md (30 frames, ``burstscan dummy_mot_01 1.0 2.0 4 6``).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import xarray as xr
from matplotlib.collections import LineCollection
from matplotlib.container import ErrorbarContainer
from matplotlib.patches import Rectangle, StepPatch
from PIL import Image

import beamcat
from beamcat.analyses.accumulate import accumulate
from beamcat.analyses.photon import clean_image, detect, histogram
from beamcat.catalog.demo import photon as demo_photon
from beamcat.errors import OptionError
from beamcat.figures import block_reduce, save_figure
from beamcat.figures import photon as fp

DPI = 40  # small renders: the tests check geometry and data, not looks
ROIS = {"ring": (600, 300, 300, 200), "off": (100, 100, 200, 100)}
PHOTON_ROI = (20, 10, 200, 230)  # x, y, w, h: the spot and most of the frame
FRAMES, POSITIONS = 30, np.linspace(1.0, 2.0, 5)  # burstscan dummy_mot_01 1.0 2.0 4 6


@pytest.fixture(scope="module")
def photon_sample(tmp_path_factory):
    """Events of the demo's photon sample (make_demo's seed) and the dataset."""
    folder = tmp_path_factory.mktemp("demo") / "photon"
    demo_photon.write(folder, np.random.default_rng([0, 1]))
    ds = beamcat.open_dataset(folder)
    return ds, detect(ds.counts, energy_max=1400, roi=PHOTON_ROI).compute()


@pytest.fixture(scope="module")
def femtomax(shared_data):
    """The real recording (detector + motor stream) and its frames in memory."""
    ds = beamcat.open_dataset(sorted((shared_data / "drp_femtomax").iterdir()))
    return ds, ds.counts.values


def _image(fig):
    (ax,) = [a for a in fig.axes if a.get_label() == "image"]
    (image,) = ax.get_images()
    return ax, image


def _gid(ax, gid, kind=object):
    found = [a for a in ax.get_children() if a.get_gid() == gid and isinstance(a, kind)]
    assert len(found) == 1, f"{gid}: {found}"
    return found[0]


def _png_ok(fig, path) -> None:
    (written,) = save_figure(fig, path, dpi=DPI)
    with Image.open(written) as png:
        png.verify()
    with Image.open(written) as png:
        assert png.format == "PNG" and min(png.size) > 50


# --------------------------------------------------------------------------- clean image


def test_clean_image_figure_draws_photons_per_pixel(photon_sample, tmp_path):
    ds, events = photon_sample
    clean = clean_image(events)
    fig = fp.clean_image_figure(clean, pixel_size=ds.attrs["pixel_size"])
    ax, image = _image(fig)
    # +1 at (floor y, floor x) of every event above energy_min (all of them, detect's cut)
    expected = np.zeros((256, 256), np.int64)
    np.add.at(expected, (np.floor(events.y).astype(int), np.floor(events.x).astype(int)), 1)
    np.testing.assert_array_equal(image.get_array(), expected)  # integers: exact
    assert image.get_clim() == (0, expected.max())
    x, y, w, h = PHOTON_ROI  # outlined on the pixel edges
    roi = _gid(ax, "roi", Rectangle)
    assert (roi.get_x(), roi.get_y(), roi.get_width(), roi.get_height()) == (
        x - 0.5,
        y - 0.5,
        w,
        h,
    )
    n = events.sizes["event"]
    assert ax.get_title(loc="left") == f"{n} photons, energy > 1100"
    # 256 px x 12 um = 3.07 mm: a fifth is 614 um -> the round 500 um
    assert _gid(ax, "scale_bar").length_m == pytest.approx(500e-6)
    _png_ok(fig, tmp_path / "clean")


def test_clean_image_without_roi_or_pixel_size_draws_neither():
    clean = xr.DataArray(np.eye(4, dtype=np.int64), dims=("y", "x"), attrs={"roi": [0, 0, 4, 4]})
    ax, image = _image(fp.clean_image_figure(clean))
    assert not [a for a in ax.get_children() if a.get_gid() in ("roi", "scale_bar")]
    assert ax.get_title(loc="left") == "4 photons"


# --------------------------------------------------------------------------- histogram


def _cut_positions(ax) -> dict[str, float]:
    lines = {line.get_gid(): line for line in ax.lines if str(line.get_gid()).startswith("cut:")}
    for line in lines.values():
        assert line.get_xdata()[0] == line.get_xdata()[1]  # vertical
    return {gid: float(line.get_xdata()[0]) for gid, line in lines.items()}


def test_energy_histogram_bars_equal_the_histogram_and_cuts_sit_at_the_energies(
    photon_sample, tmp_path
):
    _, events = photon_sample
    hist = histogram(events, 60)
    fig = fp.energy_histogram_figure(hist)
    (ax,) = fig.axes
    bars = _gid(ax, "histogram", StepPatch)
    edges = np.linspace(1100.0, 3300.0, 61)  # histogram's default range (energy_min, 3 x)
    expected, _ = np.histogram(events.energy.values, edges)
    np.testing.assert_array_equal(bars.get_data().values, expected)
    np.testing.assert_allclose(bars.get_data().edges, edges, rtol=1e-15)
    assert _cut_positions(ax) == {"cut:energy_min": 1100.0, "cut:energy_max": 1400.0}
    labels = {t.get_gid(): t.get_text() for t in ax.texts}
    assert labels["cut_label:energy_min"] == "energy_min = 1100"
    assert labels["cut_label:energy_max"] == "energy_max (pile-up) = 1400"
    # the single-photon peak: the fullest bin below the pile-up cut, near the planted 1250 ADU
    peak = (edges[:-1] + edges[1:])[np.argmax(expected)] / 2
    marker = _gid(ax, "peak")
    assert (marker.get_xdata()[0], marker.get_ydata()[0]) == (peak, expected.max())
    assert abs(peak - demo_photon.PHOTON_ADU) < 40  # within a bin (37 ADU) of the deposit
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["events", f"single-photon peak {peak:.0f}", "pixel threshold 8 ADU"]
    _png_ok(fig, tmp_path / "histogram")


def test_energy_histogram_of_events_starts_below_the_cut_and_log(photon_sample):
    _, events = photon_sample
    fig = fp.energy_histogram_figure(events, bins=50, energy_max=1500.0, log=True)
    (ax,) = fig.axes
    bars = _gid(ax, "histogram", StepPatch)
    edges = np.linspace(880.0, 3300.0, 51)  # (0.8, 3) x energy_min: the cut shows
    np.testing.assert_array_equal(
        bars.get_data().values, np.histogram(events.energy.values, edges)[0]
    )
    assert bars.get_data().values[:4].sum() == 0  # nothing below energy_min = 1100
    assert _cut_positions(ax)["cut:energy_max"] == 1500.0  # a given cut wins over the attrs
    assert ax.get_yscale() == "log"


# --------------------------------------------------------------------------- step means


def _errorbars(ax) -> dict[str, ErrorbarContainer]:
    return {c.get_label(): c for c in ax.containers if isinstance(c, ErrorbarContainer)}


def test_step_means_error_bars_equal_the_table_on_the_real_recording(femtomax, tmp_path):
    ds, frames = femtomax
    table = ds.roi.step_means(ROIS)
    fig = fp.step_means_figure(table)
    (ax,) = fig.axes
    containers = _errorbars(ax)
    assert list(containers) == list(ROIS)
    for name, (x, y, w, h) in ROIS.items():
        line, _, (bars,) = containers[name].lines
        assert line.get_gid() == f"roi:{name}"
        # ground truth from the frames: per-frame ROI means, mean and std (ddof=0) per step
        per_frame = frames[:, y : y + h, x : x + w].astype(np.float64).mean(axis=(1, 2))
        steps = per_frame.reshape(5, 6)
        np.testing.assert_allclose(line.get_xdata(), POSITIONS, rtol=1e-15)
        # float32 pixels summed in float64 in another order: 1e-9 relative
        np.testing.assert_allclose(line.get_ydata(), steps.mean(1), rtol=1e-9)
        assert isinstance(bars, LineCollection)
        segments = np.array(bars.get_segments())  # (step, 2 ends, (x, y))
        np.testing.assert_allclose(segments[:, 0, 1], steps.mean(1) - steps.std(1), rtol=1e-9)
        np.testing.assert_allclose(segments[:, 1, 1], steps.mean(1) + steps.std(1), rtol=1e-9)
        np.testing.assert_allclose(segments[:, 0, 0], POSITIONS, rtol=1e-15)
    assert ax.get_xlabel() == "dummy_mot_01"
    assert ax.get_ylabel() == "ROI mean (counts)"
    _png_ok(fig, tmp_path / "steps")


def test_step_means_without_a_motor_is_against_the_frame_number(shared_data):
    (detector,) = sorted((shared_data / "drp_femtomax").glob("*pilatus-ingester*"))
    table = beamcat.open_dataset(detector).roi.step_means({"ring": ROIS["ring"]})
    (ax,) = fp.step_means_figure(table).axes
    line, _, (bars,) = _errorbars(ax)["ring"].lines
    np.testing.assert_array_equal(line.get_xdata(), np.arange(FRAMES))
    segments = np.array(bars.get_segments())
    np.testing.assert_array_equal(segments[:, 0, 1], segments[:, 1, 1])  # one frame: std 0
    assert ax.get_xlabel() == "Frame"


def test_step_means_motor_units_on_the_axis():
    table = xr.Dataset(
        {"mean": (("roi", "step"), [[1.0, 2.0]]), "std": (("roi", "step"), [[0.1, 0.2]])},
        coords={"roi": ["a"], "step": [0, 1], "theta": ("step", [10.0, 10.1], {"units": "deg"})},
    )
    (ax,) = fp.step_means_figure(table).axes
    assert ax.get_xlabel() == "theta (deg)"
    with pytest.raises(OptionError, match="motor='phi'"):
        fp.step_means_figure(table, motor="phi")


# --------------------------------------------------------------------------- accumulated


def test_accumulated_figure_on_the_real_recording(femtomax, tmp_path):
    ds, frames = femtomax
    acc = accumulate(ds.counts)
    fig = fp.accumulated_figure(acc, pixel_size=ds.attrs["pixel_size"])
    ax, image = _image(fig)
    total = frames.astype(np.float64).sum(axis=0)
    drawn = image.get_array()
    gaps = total < 0  # -1/-2 gap and defect pixels, 30 times
    np.testing.assert_array_equal(drawn.mask, gaps)
    np.testing.assert_allclose(drawn.data[~gaps], total[~gaps], rtol=1e-9)  # summation order
    assert _gid(ax, "count").get_text() == f"{FRAMES} frames"
    # robust limits: 0 to the 99.9th percentile of the non-empty pixels; hot pixels saturate
    positive = total[total > 0]
    assert image.norm.vmin == 0
    assert image.norm.vmax == pytest.approx(np.percentile(positive, 99.9), rel=1e-9)
    assert total.max() > 3 * image.norm.vmax
    # 1475 px x 172 um = 254 mm: a fifth is 51 mm -> the round 50 mm
    assert _gid(ax, "scale_bar").length_m == pytest.approx(0.05)
    _png_ok(fig, tmp_path / "accumulated")


def test_accumulated_downsampling_keeps_block_maxima(femtomax):
    ds, frames = femtomax
    total = frames.astype(np.float64).sum(axis=0)
    acc = xr.Dataset({"sum": (("y", "x"), total), "count": ((), FRAMES)})
    for downsample, factor in ((4, 4), ("auto", math.ceil(1475 / fp.AUTO_PIXELS))):
        ax, image = _image(fp.accumulated_figure(acc, downsample=downsample, log=False))
        # reference: pad to whole blocks with NaN, gaps as NaN, max over each block
        ny, nx = -(-831 // factor) * factor, -(-1475 // factor) * factor
        padded = np.full((ny, nx), np.nan)
        padded[:831, :1475] = np.where(total >= 0, total, np.nan)
        blocks = padded.reshape(ny // factor, factor, nx // factor, factor)
        with np.errstate(invalid="ignore"), pytest.warns(RuntimeWarning, match="All-NaN"):
            expected = np.nanmax(blocks, axis=(1, 3))
        drawn = image.get_array()
        np.testing.assert_array_equal(drawn.filled(np.nan), expected)
        assert drawn.max() == total.max()  # the hottest pixel survives the reduction
        assert image.get_extent() == [-0.5, nx - 0.5, ny - 0.5, -0.5]  # detector pixels
        assert ax.get_xlim() == (-0.5, 1474.5)
        assert image.norm.vmin == 0  # linear scale: the lowest unmasked pixel


def test_accumulated_count_and_negative_values():
    image = xr.DataArray([[-2.0, 0.0], [5.0, 1.0]], dims=("y", "x"))
    ax, drawn = _image(fp.accumulated_figure(image, 1, log=False, mask_negative=False))
    assert _gid(ax, "count").get_text() == "1 frame"
    assert drawn.get_array().mask.sum() == 0 and drawn.norm.vmin == -2.0
    ax, drawn = _image(fp.accumulated_figure(image))  # no count: no text
    assert not [t for t in ax.texts if t.get_gid() == "count"]
    assert drawn.get_array().mask.tolist() == [[True, False], [False, False]]


# --------------------------------------------------------------------------- HoloViews twins


def test_hv_twins_hold_the_same_data(photon_sample, femtomax):
    ds, events = photon_sample
    clean = clean_image(events)
    overlay = fp.clean_image_hv(clean)
    image = overlay.get(0)
    # rows in y order; a point lookup is image[x, y]
    np.testing.assert_array_equal(image.dimension_values("photons", flat=False), clean)
    y, x = np.argwhere(clean.values == clean.values.max())[0]
    assert image[x, y] == clean.values.max()
    rect = overlay.get(1)
    assert tuple(rect.array()[0]) == (19.5, 9.5, 219.5, 239.5)

    hist = histogram(events, 60)
    bars, *cuts = fp.energy_histogram_hv(hist)
    np.testing.assert_array_equal(bars.dimension_values("events"), hist.values)
    assert sorted(c.data for c in cuts) == [1100.0, 1400.0]

    real, frames = femtomax
    table = real.roi.step_means(ROIS).compute()
    plots = list(fp.step_means_hv(table))
    errorbars = plots[0]  # ErrorBars, Curve, Scatter per ROI
    np.testing.assert_array_equal(errorbars.dimension_values(0), POSITIONS)
    np.testing.assert_array_equal(errorbars.dimension_values(1), table["mean"].sel(roi="ring"))
    np.testing.assert_array_equal(errorbars.dimension_values(2), table["std"].sel(roi="ring"))

    acc = accumulate(real.counts)
    element = fp.accumulated_hv(acc)
    assert element.opts.get().kwargs["title"] == f"{FRAMES} frames"
    factor = math.ceil(1475 / fp.AUTO_PIXELS)
    total = frames.astype(np.float64).sum(axis=0)
    expected = block_reduce(np.where(total >= 0, total, np.nan), factor)
    shown = element.dimension_values("sum", flat=False)
    np.testing.assert_allclose(shown, expected, rtol=1e-9)


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: fp.clean_image_figure(np.zeros((2, 2))), "expected a DataArray"),
        (
            lambda: fp.clean_image_figure(
                xr.DataArray(np.zeros((4, 4)), dims=("y", "x")), roi=(2, 2, 4, 4)
            ),
            "outside the 4 x 4 image",
        ),
        (lambda: fp.energy_histogram_figure(xr.DataArray([1, 2], dims="e")), "histogram over"),
        (lambda: fp.step_means_figure(xr.Dataset({"mean": ("step", [1.0])})), "mean and std"),
        (lambda: fp.accumulated_figure(xr.Dataset({"counts": ("x", [1])})), "no 'sum'"),
        (
            lambda: fp.accumulated_figure(
                xr.DataArray(np.ones((2, 2)), dims=("y", "x")), downsample=0
            ),
            "downsample=0",
        ),
    ],
)
def test_bad_input_raises_option_error(make, match):
    with pytest.raises(OptionError, match=match):
        make()
