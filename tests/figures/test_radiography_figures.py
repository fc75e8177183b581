"""Radiography figures: files are valid, and what is drawn is the data (lines, patches, bars)."""

from __future__ import annotations

import dask.array as da
import holoviews as hv
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from PIL import Image

from beamcat.analyses.roi import grid_means
from beamcat.errors import OptionError
from beamcat.figures import difference as difference_module
from beamcat.figures import grid as grid_module
from beamcat.figures import radiography as fr
from beamcat.figures import save_figure, save_frames

T0 = np.datetime64("2024-12-13T14:00:00", "ns")
DPI = 40  # small renders: the tests check geometry and data, not looks


def _times(n, step_s=60.0, start=T0):
    return start + (np.arange(n) * step_s * 1e9).astype("timedelta64[ns]")


def _means(n=20, rois=("a", "b"), start=T0, seed=0):
    rng = np.random.default_rng(seed)
    values = 0.8 + 0.05 * rng.random((len(rois), n))
    return xr.Dataset(
        {"mean": (("roi", "time"), values, {"units": "1"})},
        coords={"roi": list(rois), "time": _times(n, start=start)},
        attrs={"signal": "mean"},
    )


def _logs():
    """A mass-spec log starting 10 min before the run and a temperature log, both longer."""
    t = _times(200, 15.0, T0 - np.timedelta64(600, "s"))
    ms = xr.Dataset(
        {
            "Hydrogen": ("time", np.linspace(1e-8, 1e-6, t.size), {"units": "Torr"}),
            "Argon": ("time", np.full(t.size, 2e-7), {"units": "Torr"}),
        },
        coords={"time": t},
    )
    temp = xr.Dataset(
        {"Temp2": ("time", np.linspace(150, 160, t.size), {"units": "degC"})}, coords={"time": t}
    )
    return ms, temp


def _axes(fig, label):
    (ax,) = [a for a in fig.axes if a.get_label() == label]
    return ax


def _lines(ax, gid):
    return [line for line in ax.lines if line.get_gid() == gid]


# ------------------------------------------------------------------ files


@pytest.mark.parametrize(
    ("fmt", "magic"), [("png", b"\x89PNG\r\n\x1a\n"), ("pdf", b"%PDF-"), ("svg", b"<?xml")]
)
def test_save_figure_writes_valid_files_atomically(tmp_path, fmt, magic):
    fig = Figure(figsize=(4, 3))
    fig.add_subplot().plot([0, 1], [0, 1])
    (path,) = save_figure(fig, tmp_path / "f.png", formats=(fmt,), dpi=50, tight=False)
    assert path == tmp_path / f"f.{fmt}"
    assert path.read_bytes().startswith(magic)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary left behind
    if fmt == "png":
        assert Image.open(path).size == (200, 150)  # 4 x 3 in at 50 dpi, not cropped


def test_save_figure_rejects_unknown_format(tmp_path):
    with pytest.raises(OptionError, match="jpeg"):
        save_figure(Figure(), tmp_path / "f", formats=("jpeg",))


# ------------------------------------------------------------------ double plot


def test_double_plot_draws_the_roi_means_and_logs_on_one_elapsed_axis():
    means = _means()
    ms, temp = _logs()
    switch = pd.Timestamp(T0 + np.timedelta64(300, "s"))
    fig = fr.double_plot(
        means, massspec=ms, temperature=temp, normalise=False, events={"switch": switch}
    )
    ax_n, ax_ms, ax_t = _axes(fig, "n"), _axes(fig, "ms"), _axes(fig, "temperature")
    minutes = np.arange(20.0)  # frames 60 s apart, elapsed from the first frame
    for roi in ("a", "b"):
        (line,) = _lines(ax_n, f"roi:{roi}")
        np.testing.assert_array_equal(line.get_ydata(), means["mean"].sel(roi=roi).values)
        np.testing.assert_allclose(line.get_xdata(), minutes)
    assert ax_ms.get_yscale() == "log"
    (h2,) = _lines(ax_ms, "species:Hydrogen")
    # the logs are cropped to the run's span, on the same elapsed axis
    x = h2.get_xdata()
    assert x.min() >= 0 and x.max() <= 19
    inside = (ms.time >= means.time[0]) & (ms.time <= means.time[-1])
    np.testing.assert_array_equal(h2.get_ydata(), ms.Hydrogen.values[inside.values])
    np.testing.assert_allclose(x, (ms.time.values[inside.values] - T0) / np.timedelta64(60, "s"))
    (t_line,) = _lines(ax_t, "temperature")
    assert t_line.get_linestyle() == "--"
    (event,) = _lines(ax_n, "event:switch")
    assert event.get_xdata()[0] == pytest.approx(5.0)  # 300 s after the first frame


def test_double_plot_several_runs_normalised_to_the_first_frame_of_the_first_run():
    run1 = _means(10, seed=1)
    run2 = _means(10, start=T0 + np.timedelta64(1200, "s"), seed=2)
    fig = fr.double_plot({"r1": run1, "r2": run2}, time_axis="s")
    ax = _axes(fig, "n")
    first = run1["mean"].isel(time=0)
    for roi in ("a", "b"):
        seg1, seg2 = _lines(ax, f"roi:{roi}")  # one line per run, same colour
        assert seg1.get_color() == seg2.get_color()
        np.testing.assert_allclose(seg1.get_ydata(), run1["mean"].sel(roi=roi) / first.sel(roi=roi))
        np.testing.assert_allclose(seg2.get_ydata(), run2["mean"].sel(roi=roi) / first.sel(roi=roi))
        np.testing.assert_allclose(seg2.get_xdata(), 1200 + 60 * np.arange(10))
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a", "b"]


def test_double_plot_panel_letters_sit_outside_the_data_area():
    # the issue: the letters sat on the curves; now they are in the left margin, so no
    # curve can pass under them whatever the data (checked on the drawn extents)
    ms, temp = _logs()
    fig = fr.double_plot(_means(), massspec=ms, temperature=temp)
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    letters = {t.get_gid(): t for ax in fig.axes for t in ax.texts if t.get_gid()}
    assert sorted(letters) == ["panel:a", "panel:b"]
    for gid, label in (("panel:a", "ms"), ("panel:b", "n")):
        box = letters[gid].get_window_extent(renderer)
        ax = _axes(fig, label)
        for other in fig.axes:  # no data area, twin axes included
            assert not box.overlaps(other.get_window_extent(renderer)), (gid, other.get_label())
        for text in [ax.yaxis.label, *ax.get_yticklabels()]:
            if text.get_text():
                assert not box.overlaps(text.get_window_extent(renderer)), (gid, text)
        # at the top of its panel: its top within a letter's height of the axes' top
        top = ax.get_window_extent(renderer).y1
        assert abs(box.y1 - top) <= box.height


def test_double_plot_errors_name_the_problem():
    ms, _ = _logs()
    with pytest.raises(OptionError, match="Oxygen"):
        fr.double_plot(_means(), massspec=ms, species=["Oxygen"])
    with pytest.raises(OptionError, match=r"\(roi, time\)"):
        fr.double_plot(xr.DataArray(np.ones(3), dims="time", coords={"time": _times(3)}))
    far = ms.assign_coords(time=ms.time + np.timedelta64(3, "D"))
    with pytest.raises(OptionError, match="do not overlap"):
        fr.double_plot(_means(), massspec=far)
    with pytest.raises(OptionError, match="time_axis"):
        fr.double_plot(_means(), time_axis="days")


def test_double_plot_hv_curves_hold_the_same_data():
    means = _means()
    ms, temp = _logs()
    layout = fr.double_plot_hv(means, massspec=ms, temperature=temp, normalise=False)
    top, bottom = layout
    curves = {c.label: c for c in bottom}
    np.testing.assert_array_equal(curves["a"].dimension_values(1), means["mean"].sel(roi="a"))
    np.testing.assert_allclose(curves["a"].dimension_values(0), np.arange(20.0))
    assert {c.label for c in top} == {"Hydrogen", "Argon", "Temperature"}
    hv.render(layout, backend="bokeh")  # builds the bokeh models (multi y axis) without error


# ------------------------------------------------------------------ ROI image, scale bar


def _reference(ny=60, nx=80, pixel_size=None):
    image = np.linspace(0.2, 1.0, ny * nx, dtype=np.float32).reshape(ny, nx)
    attrs = {"pixel_size": pixel_size} if pixel_size else {}
    return xr.DataArray(image, dims=("y", "x"), attrs=attrs)


def test_roi_image_draws_each_roi_on_its_pixel_edges():
    rois = {"bed": (10, 5, 20, 12), "wall": (50, 0, 4, 60)}
    mask = np.zeros((60, 80), bool)
    mask[40:50, 60:70] = True
    fig = fr.roi_image(_reference(), {**rois, "blob": mask})
    ax = _axes(fig, "image")
    patches = {p.get_gid(): p for p in ax.patches}
    for name, (x, y, w, h) in rois.items():
        rect = patches[f"roi:{name}"]
        # pixel centres are at integers, so the ROI's outer edges are half a pixel out
        assert rect.get_xy() == (x - 0.5, y - 0.5)
        assert (rect.get_width(), rect.get_height()) == (w, h)
    assert patches["roi:bed"].get_edgecolor() != patches["roi:wall"].get_edgecolor()
    assert [t.get_text() for t in ax.texts] == ["bed", "wall", "blob"]
    assert len(ax.collections) == 1  # the mask's contour


def test_roi_outlines_show_on_a_dark_and_on_a_bright_background(tmp_path):
    # the issue: the first ROI colour (black, the original's) vanished on the black bed; each
    # outline now has a halo of the contrasting grey: white behind dark, black behind light
    image = np.zeros((60, 80), np.float32)
    image[:, 40:] = 1.0  # dark bed on the left, bright flat on the right
    rois = {"bed": (8, 10, 20, 30), "flat": (50, 10, 20, 30)}
    fig = fr.roi_image(
        xr.DataArray(image, dims=("y", "x")), rois, colours=("black", "gold"), width=8.0
    )
    # drawn at 8 in and 80 dpi: 8 output pixels per image pixel (the axes fill the figure)
    (png,) = save_figure(fig, tmp_path / "rois", dpi=80, tight=False)
    grey = np.asarray(Image.open(png).convert("L"), dtype=float)
    assert grey.shape == (480, 640)

    def left_edge(x, y, w, h):  # the outline's left side, +-4 output pixels around it
        return grey[8 * y + 16 : 8 * (y + h) - 16, 8 * x - 4 : 8 * x + 4]

    # on the black bed the white halo shows where a black line alone would not
    assert left_edge(*rois["bed"]).max() > 128
    flat_edge = left_edge(*rois["flat"])  # on the white flat the black halo shows
    assert flat_edge.min() < 128  # the black halo shows where a gold line is faint


def test_scale_bar_is_its_physical_length_in_pixels(tmp_path):
    # 320 px wide at 200 um: a fifth is 12.8 mm, so the bar is 10 mm = 50 px
    image = np.zeros((256, 320), np.float32)
    image[:64, :64] = 1.0  # bright elsewhere, dark at the bar: the bar is drawn white
    display = xr.DataArray(image, dims=("y", "x"))
    fig = fr.difference_frame(display, timestamp="3 min", pixel_size=2e-4)
    (bar,) = [a for a in fig.axes[0].artists if a.get_gid() == "scale_bar"]
    assert bar.length_m == pytest.approx(1e-2)
    assert bar.size_bar.get_children()[0].get_width() == pytest.approx(50.0)
    # and so it is drawn: 5 in at 64 dpi is one output pixel per image pixel
    (png,) = save_figure(fig, tmp_path / "d", dpi=64, tight=False)
    rgb = np.asarray(Image.open(png).convert("L"))
    assert rgb.shape == (256, 320)
    lower_right = rgb[200:, 160:] > 128  # black image: the bar is white there
    assert abs(lower_right.sum(axis=1).max() - 50) <= 1
    assert "10 mm" in [t.get_text() for t in bar.txt_label.get_children()]


def test_scale_bar_length_given_and_bad_pixel_size():
    fig = fr.roi_image(_reference(), {"a": (1, 1, 5, 5)}, pixel_size=1e-4, scale_bar_length=2e-3)
    (bar,) = [a for a in fig.axes[0].artists if a.get_gid() == "scale_bar"]
    assert bar.size_bar.get_children()[0].get_width() == pytest.approx(20.0)
    with pytest.raises(OptionError, match="pixel_size"):
        fr.roi_image(_reference(), {"a": (1, 1, 5, 5)}, pixel_size=-1.0)


def test_roi_image_hv_rectangles():
    overlay = fr.roi_image_hv(_reference(), {"bed": (10, 5, 20, 12)})
    rects = overlay.Rectangles.I
    np.testing.assert_array_equal(
        [rects.dimension_values(d)[0] for d in ("x0", "y0", "x1", "y1")], [9.5, 4.5, 29.5, 16.5]
    )


# ------------------------------------------------------------------ grid heat maps


def _grid_values(n=3):
    """Reduced-transmission-like grid values (row, col, time) with grid_means' cell coords."""
    frames = xr.DataArray(
        np.random.default_rng(3).random((n, 60, 80)),
        dims=("time", "y", "x"),
        coords={"time": _times(n)},
    )
    cells = grid_means(frames, 3, 4, region=(8, 6, 50, 40))
    return cells["mean"].assign_attrs(long_name="reduced transmission", units="%")


def test_grid_heatmap_colours_each_cell_with_its_value():
    values = _grid_values()
    fig = fr.grid_heatmap(values.isel(time=1), _reference(), timestamp="1.0 min")
    ax = _axes(fig, "image")
    (cells,) = [c for c in ax.collections if c.get_gid() == "cells"]
    np.testing.assert_array_equal(cells.get_array(), values.isel(time=1).values.ravel())
    # first cell: even edges of 50 px in 4 columns -> 13 px, 40 px in 3 rows -> 13 px
    first = cells.get_paths()[0].get_extents()
    np.testing.assert_allclose([first.x0, first.y0, first.width, first.height], [7.5, 5.5, 13, 13])
    assert fig.axes[1].get_ylabel() == "Reduced transmission (%)"


def test_save_grid_frames_writes_a_sequence_and_a_gif(tmp_path):
    values = _grid_values(3)
    out = fr.save_grid_frames(
        values, _reference(), tmp_path, name="g", formats=("png", "svg"), dpi=DPI, time_unit="s"
    )
    assert [p.name for p in out["frames"]] == [
        f"g_{i:04d}.{fmt}" for i in range(3) for fmt in ("png", "svg")
    ]
    sizes = {Image.open(p).size for p in out["frames"] if p.suffix == ".png"}
    assert len(sizes) == 1  # every frame the same size (one layout, no tight crop)
    (gif,) = out["animation"]
    assert gif == tmp_path / "g.gif"
    with Image.open(gif) as im:
        assert im.format == "GIF" and im.n_frames == 3
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("which", ["grid", "difference"])
def test_blitted_frames_equal_whole_redraws(tmp_path, which):
    # save_frames draws only the changing artists over a once-rendered background (the fast
    # path); each PNG frame must be what a whole redraw of the same figure gives, pixel for
    # pixel up to antialiasing rounding (<= 2 of 255 levels on a few edge pixels)
    if which == "grid":
        values = _grid_values(3)
        fig = grid_module._GridFigure(
            _reference(),
            grid_module._cells(values),
            norm=Normalize(0, 1),
            cmap="inferno",
            alpha=0.7,
            label="v",
            pixel_size=1e-4,
            width=4.0,
        )

        def update(i):
            fig.show(values.isel(time=i).values, f"{i} min")

    else:
        display = _display(3)
        fig = difference_module._DifferenceFigure(
            (30, 40),
            pixel_size=1e-4,
            scale_bar_length=None,
            location="lower right",
            width=4.0,
            first=display[0].values,
        )

        def update(i):
            fig.show(display[i].values, f"{i} min")

    kwargs = {"name": which, "dpi": 50, "animation": "gif"}
    fast = save_frames(fig.fig, update, 3, tmp_path / "fast", animated=fig.animated, **kwargs)
    whole = save_frames(fig.fig, update, 3, tmp_path / "whole", **kwargs)
    for a, b in zip(fast["frames"], whole["frames"], strict=True):
        pa, pb = (np.asarray(Image.open(p).convert("RGB"), dtype=int) for p in (a, b))
        assert pa.shape == pb.shape
        assert np.abs(pa - pb).max() <= 2
    for out in (fast, whole):
        with Image.open(out["animation"][0]) as gif:
            assert gif.n_frames == 3


def test_save_frames_mp4_needs_ffmpeg(tmp_path, monkeypatch):
    from matplotlib.animation import FFMpegWriter

    monkeypatch.setattr(FFMpegWriter, "isAvailable", classmethod(lambda cls: False))
    with pytest.raises(OptionError, match="ffmpeg"):
        save_frames(Figure(), lambda i: None, 1, tmp_path, name="x", animation="mp4")


def test_grid_heatmap_hv_has_one_frame_per_time():
    values = _grid_values(3)
    holomap = fr.grid_heatmap_hv(values, _reference(), time_unit="s")
    assert list(holomap.keys()) == [0.0, 60.0, 120.0]
    cells = holomap[60.0].Rectangles.I
    np.testing.assert_array_equal(
        cells.dimension_values("value"), values.isel(time=1).values.ravel()
    )


def test_figures_take_the_datasets_the_accessors_return():
    # calibrate/roi.grid return Datasets naming their signal: a figure given the Dataset
    # draws exactly what it draws from the signal DataArray (same cells, same image)
    values, reference = _grid_values(3), _reference()
    dataset = values.to_dataset(name="mean").assign_attrs(signal="mean")
    image = reference.to_dataset(name="transmission").assign_attrs(signal="transmission")
    from_arrays = fr.grid_heatmap_hv(values, reference, time_unit="s")[60.0]
    from_datasets = fr.grid_heatmap_hv(dataset, image, time_unit="s")[60.0]
    for element in ("Rectangles", "Image"):
        a, b = getattr(from_arrays, element).I, getattr(from_datasets, element).I
        for i in range(len(a.dimensions())):
            np.testing.assert_array_equal(a.dimension_values(i), b.dimension_values(i))
    fig = fr.grid_heatmap(dataset.isel(time=1), image, timestamp="1.0 min")
    (cells,) = [c for c in _axes(fig, "image").collections if c.get_gid() == "cells"]
    np.testing.assert_array_equal(cells.get_array(), values.isel(time=1).values.ravel())
    with pytest.raises(OptionError, match="grid means"):
        fr.grid_heatmap_hv(dataset.rename(mean="other"), image)


# ------------------------------------------------------------------ difference frames


def _display(n=6, chunk=2):
    data = da.from_array(
        np.random.default_rng(4).random((n, 30, 40)).astype(np.float32), chunks=(chunk, -1, -1)
    )
    return xr.DataArray(data, dims=("time", "y", "x"), coords={"time": _times(n)})


def test_save_difference_frames_computes_one_chunk_at_a_time(tmp_path, raise_if_dask_computes):
    display = _display()
    with raise_if_dask_computes(max_computes=3):  # 6 frames in chunks of 2
        out = fr.save_difference_frames(
            display, tmp_path, formats=("png",), dpi=DPI, animation=None, pixel_size=1e-4
        )
    assert len(out["frames"]) == 6 and out["animation"] == []
    # the frames hold the data: one output pixel per image pixel at 8 dpi (5 in wide)
    fig = fr.difference_frame(display.isel(time=4), timestamp="4 min")
    (png,) = save_figure(fig, tmp_path / "one", dpi=8, tight=False)
    grey = np.asarray(Image.open(png).convert("L"), dtype=float) / 255
    np.testing.assert_allclose(grey[5:25, 5:35], display[4].values[5:25, 5:35], atol=0.01)


def test_difference_hv_shows_the_frame_of_a_time():
    display = _display()
    dmap = fr.difference_hv(display, time_unit="s")
    assert dmap.kdims[0].values == [0.0, 60.0, 120.0, 180.0, 240.0, 300.0]
    image = dmap[120.0]
    # rows as in the array (y ascending downwards: the plot inverts the y axis)
    np.testing.assert_array_equal(image.dimension_values(2, flat=False), display[2].values)
