"""ROI and grid means vs NumPy twins, the original's grid rule, laziness, memory, ROI files."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import dask
import dask.array as da
import numpy as np
import pytest
import xarray as xr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from beamcat.analyses.region_stats import KERNELS, plan, roi_stats_stack
from beamcat.analyses.roi import grid_edges, grid_means, roi_means
from beamcat.catalog import demo
from beamcat.catalog.catalogs import open_catalog
from beamcat.errors import FormatError, OptionError, SourceNotFoundError
from beamcat.rois import Rect, load_rois, save_rois

# float64 accumulation of <= 1e5 float32/uint16 values: relative error ~1e-12; 1e-9 leaves room
RTOL = 1e-9


def _frames(data, chunks=None, dims=("frame", "y", "x")) -> xr.DataArray:
    data = da.from_array(data, chunks=chunks) if chunks else data
    return xr.DataArray(data, dims=dims)


def _twin(frames: np.ndarray, rect) -> tuple[np.ndarray, np.ndarray]:
    """Plain NumPy per frame, what the original scripts do: mean (and std) of the slice."""
    x, y, w, h = rect
    block = frames[..., y : y + h, x : x + w].astype(np.float64)
    return block.mean(axis=(-2, -1)), block.std(axis=(-2, -1))


@pytest.fixture(scope="module")
def stack():
    rng = np.random.default_rng(3)
    data = rng.normal(1000.0, 30.0, (12, 48, 64)).astype(np.float32)
    return data


# ------------------------------------------------------------------- kernel vs twin

KERNEL_CASES = {
    "uint16": lambda rng: rng.integers(0, 65535, (5, 30, 40), dtype=np.uint16),
    "float32 with NaN/inf": lambda rng: (
        np.where(rng.random((5, 30, 40)) < 0.1, np.nan, rng.normal(0.5, 0.1, (5, 30, 40)))
        .astype(np.float32)
        .clip(-np.inf, 0.7)
        * np.where(rng.random((5, 30, 40)) < 0.02, np.inf, 1)
    ),
    "float64": lambda rng: rng.normal(1e6, 1.0, (5, 30, 40)),
}


@pytest.mark.parametrize("kernel", list(KERNELS), ids=lambda k: k.__name__)
@pytest.mark.parametrize("case", sorted(KERNEL_CASES))
def test_kernel_equals_numpy_twin_on_rectangles_and_masks(case, kernel):
    # the KERNELS table (kernel -> twin) drives this test and the radiography benchmark
    rng = np.random.default_rng(0)
    frames = KERNEL_CASES[case](rng)
    mask = rng.random((30, 40)) < 0.3
    rois = [Rect(0, 0, 40, 30), Rect(3, 5, 7, 2), Rect(39, 29, 1, 1), mask]
    got, want = kernel(frames, rois), KERNELS[kernel](frames, rois)
    np.testing.assert_array_equal(got[..., 0], want[..., 0])  # counts are exact
    np.testing.assert_allclose(got[..., 1:], want[..., 1:], rtol=RTOL)
    # the kernel entry is the numba stack kernel over one block's plan
    blocked = plan(rois, slice(0, 30), slice(0, 40))
    out = np.empty((5, len(rois), 3))
    roi_stats_stack(frames, blocked.boxes, blocked.masks, blocked.offsets, out)
    np.testing.assert_array_equal(out, got)


def test_std_stays_exact_for_a_large_offset():
    # 1e8 + noise of 1e-3: sum-of-squares formulas lose every digit here; two passes do not
    rng = np.random.default_rng(1)
    frames = 1e8 + rng.normal(0.0, 1e-3, (3, 20, 20))
    out = roi_means(_frames(frames, chunks=(1, 7, 20)), {"all": (0, 0, 20, 20)}).compute()
    want = frames.std(axis=(1, 2))
    # spatial chunks merged with Chan's formula: agreement to ~1e-9 relative of a 1e-3 std
    np.testing.assert_allclose(out["std"].values[0], want, rtol=1e-6)


# ------------------------------------------------------------------- roi_means


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    frame_chunk=st.integers(1, 12),
    y_chunk=st.integers(5, 48),
    x_chunk=st.integers(5, 64),
    rect=st.tuples(st.integers(0, 63), st.integers(0, 47), st.integers(1, 64), st.integers(1, 48)),
)
def test_any_chunking_and_rectangle_matches_numpy(stack, frame_chunk, y_chunk, x_chunk, rect):
    x, y, w, h = rect
    w, h = min(w, 64 - x), min(h, 48 - y)
    frames = _frames(stack, chunks=(frame_chunk, y_chunk, x_chunk))
    out = roi_means(frames, {"r": (x, y, w, h)}).compute()
    mean, std = _twin(stack, (x, y, w, h))
    np.testing.assert_allclose(out["mean"].values[0], mean, rtol=RTOL)
    np.testing.assert_allclose(out["std"].values[0], std, rtol=1e-7, atol=1e-9)
    np.testing.assert_array_equal(out["count"].values[0], w * h)


def test_result_layout_coords_and_attrs(stack):
    times = np.datetime64("2024-12-13T14:00", "ns") + np.arange(12) * np.timedelta64(62, "s")
    frames = _frames(stack, chunks=(5, 48, 64)).assign_coords(
        time=("frame", times), elapsed=("frame", np.arange(12) * 62.0)
    )
    frames.attrs.update(units="counts", source="/data/run", history="opened")
    mask = np.zeros((48, 64), bool)
    mask[10:20, 5] = True
    out = roi_means(frames, {"bed": (3, 4, 10, 5), "line": mask})
    assert out["mean"].dims == ("roi", "frame")
    assert out["roi"].values.tolist() == ["bed", "line"]
    assert out["roi_x"].values.tolist() == [3, -1]  # masks have no rectangle
    assert out["roi_pixels"].values.tolist() == [50, 10]
    assert out["time"].dims == ("frame",) and (out["time"].values == times).all()
    assert "elapsed" in out.coords
    assert out["mean"].attrs["units"] == "counts" and out["count"].attrs["units"] == "1"
    assert out.attrs["source"] == "/data/run" and out.attrs["signal"] == "mean"
    assert out.attrs["history"].splitlines() == ["opened", "roi_means: 2 ROIs (bed, line)"]
    want = stack[:, 10:20, 5].mean(axis=1, dtype=float)
    np.testing.assert_allclose(out["mean"].values[1], want, rtol=RTOL)


def test_any_leading_dims_and_numpy_input():
    rng = np.random.default_rng(2)
    data = rng.random((3, 4, 10, 12))
    frames = xr.DataArray(data, dims=("scan_y", "scan_x", "y", "x"))
    out = roi_means(frames, [(1, 2, 5, 6), (0, 0, 12, 10)])
    assert out["mean"].dims == ("roi", "scan_y", "scan_x")
    assert out["roi"].values.tolist() == ["ROI 1", "ROI 2"]  # the original's column names
    np.testing.assert_allclose(out["mean"].values[0], _twin(data, (1, 2, 5, 6))[0], rtol=RTOL)
    lazy = roi_means(frames.chunk({"scan_y": 1, "x": 5}), [(1, 2, 5, 6), (0, 0, 12, 10)])
    xr.testing.assert_allclose(lazy.compute(), out, rtol=RTOL)


def test_nan_pixels_are_skipped_and_counted():
    data = np.ones((2, 4, 4))
    data[0, 1, 1] = np.nan  # one NaN in frame 0 (safe division in a calibration)
    data[1] = np.nan  # no finite pixel at all in frame 1
    out = roi_means(_frames(data, chunks=(1, 2, 2)), {"a": (0, 0, 4, 4)}).compute()
    assert out["count"].values.tolist() == [[15, 0]]
    assert out["mean"].values[0, 0] == 1.0 and np.isnan(out["mean"].values[0, 1])
    assert out["std"].values[0, 0] == 0.0 and np.isnan(out["std"].values[0, 1])


def test_overlapping_rois_each_get_all_their_pixels(stack):
    out = roi_means(_frames(stack), {"big": (0, 0, 64, 48), "inner": (10, 10, 5, 5)})
    np.testing.assert_allclose(out["mean"].values[1], _twin(stack, (10, 10, 5, 5))[0], rtol=RTOL)
    assert out["count"].values[:, 0].tolist() == [64 * 48, 25]


def test_non_integral_rectangles_are_cut_like_the_original(stack):
    # roi_to_slice: slice(int(y), int(y + h)), slice(int(x), int(x + w))
    out = roi_means(_frames(stack), {"r": (2.7, 1.2, 3.6, 4.9)})
    want = stack[:, 1:6, 2:6].astype(np.float64).mean(axis=(1, 2))
    np.testing.assert_allclose(out["mean"].values[0], want, rtol=RTOL)


@pytest.mark.parametrize(
    ("roi", "match"),
    [
        ((60, 0, 10, 5), r"'bad'.*outside the image of shape \(y, x\) = \(48, 64\)"),
        ((-1, 0, 10, 5), "outside the image"),
        ((0, 0, 0, 5), "'bad'.*covers no pixel"),
        ((0, 0, 5, -2), "covers no pixel"),
        (np.zeros((48, 64), bool), "'bad': the mask selects no pixel"),
        (np.ones((4, 4), bool), r"mask of shape \(4, 4\), expected the image shape \(48, 64\)"),
        ((1, 2, 3), "'bad'"),
        ("abcd", "'bad'"),
        ((0, 0, np.nan, 1), "non-finite"),
    ],
)
def test_bad_rois_raise_naming_roi_and_shape(stack, roi, match):
    with pytest.raises(OptionError, match=match):
        roi_means(_frames(stack), {"bad": roi})


def test_bad_frames_and_empty_roi_set(stack):
    with pytest.raises(OptionError, match=r"dims \(\.\.\., 'y', 'x'\)"):
        roi_means(xr.DataArray(stack, dims=("frame", "x", "y")), {"a": (0, 0, 1, 1)})
    with pytest.raises(OptionError, match="no ROI"):
        roi_means(_frames(stack), {})


# ------------------------------------------------------------------- grid


def _original_grid(im: np.ndarray, region, rows: int, cols: int) -> np.ndarray:
    """03_Image_Processing.py's grid, transcribed: float cell corners, int() at each slice."""
    width, height = region[2] / cols, region[3] / rows
    out = np.empty((rows, cols))
    for r in range(rows):
        for c in range(cols):
            col = (region[0] + c * width, region[1] + r * height, width, height)
            bottomright = (col[0] + col[2], col[1] + col[3])
            roi = im[int(col[1]) : int(bottomright[1]), int(col[0]) : int(bottomright[0])]
            out[r, c] = np.mean(roi)
    return out


@pytest.mark.parametrize(
    ("region", "rows", "cols"),
    [
        ((0, 0, 16, 24), 9, 6),
        ((3, 5, 24, 29), 6, 9),
        ((1, 0, 60, 47), 7, 8),
        ((0, 0, 64, 48), 8, 8),
    ],
)
def test_grid_original_edges_reproduce_the_original_loop(stack, region, rows, cols):
    out = grid_means(
        _frames(stack, chunks=(4, 20, 30)), rows, cols, region=region, edges="original"
    )
    want = np.stack([_original_grid(im.astype(np.float64), region, rows, cols) for im in stack], -1)
    np.testing.assert_allclose(out["mean"].values, want, rtol=RTOL)


@pytest.mark.parametrize(("size", "n"), [(16, 6), (24, 9), (29, 6), (1024, 8), (100, 3), (7, 7)])
def test_grid_even_edges_tile_the_region_exactly(size, n):
    starts, stops = grid_edges(5, size, n)
    assert starts[0] == 5 and stops[-1] == 5 + size
    np.testing.assert_array_equal(starts[1:], stops[:-1])  # no gap, no overlap
    assert np.ptp(stops - starts) <= 1
    # edges are round(i * size / n), halves up
    np.testing.assert_array_equal(starts - 5, np.floor(np.arange(n) * size / n + 0.5))


def test_grid_original_edges_can_drop_a_pixel_column():
    # documented example: 16 px in 6 cells, the last cell ends at int(15.999...) = 15
    starts, stops = grid_edges(0, 16, 6, edges="original")
    assert stops.tolist() == [2, 5, 8, 10, 13, 15]
    assert starts.tolist() == [0, 2, 5, 8, 10, 13]


def test_grid_means_cells_match_numpy_and_cover_every_pixel(stack):
    region = (3, 2, 50, 41)
    out = grid_means(_frames(stack, chunks=(5, 13, 17)), 5, 7, region=region).compute()
    assert out["mean"].dims == ("row", "col", "frame")
    assert out["count"].values[..., 0].sum() == 50 * 41  # every region pixel in one cell
    for r in range(5):
        for c in range(7):
            x, w = int(out.roi_x[c]), int(out.roi_w[c])
            y, h = int(out.roi_y[r]), int(out.roi_h[r])
            mean, std = _twin(stack, (x, y, w, h))
            np.testing.assert_allclose(out["mean"].values[r, c], mean, rtol=RTOL)
            np.testing.assert_allclose(out["std"].values[r, c], std, rtol=1e-7)
    np.testing.assert_array_equal(out.roi_x, grid_edges(3, 50, 7)[0])


def test_grid_defaults_to_the_whole_image(stack):
    out = grid_means(_frames(stack), 2, 2)
    np.testing.assert_allclose(
        out["mean"].values[1, 1], _twin(stack, (32, 24, 32, 24))[0], rtol=RTOL
    )


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        ((0, 3), {}, "rows=0"),
        ((2, 2.5), {}, "cols=2.5"),
        ((2, 2), {"region": (0, 0, 100, 10)}, "'grid region'.*outside the image"),
        ((20, 2), {"region": (0, 0, 10, 10)}, "leave empty cells"),
        ((2, 2), {"edges": "floor"}, "edges='floor'"),
    ],
)
def test_grid_bad_options(stack, args, kwargs, match):
    with pytest.raises(OptionError, match=match):
        grid_means(_frames(stack), *args, **kwargs)


# ------------------------------------------------------------------- laziness, graph, memory


def test_building_results_computes_nothing(stack, raise_if_dask_computes):
    frames = _frames(stack, chunks=(3, 20, 64))
    with raise_if_dask_computes():
        rois = roi_means(frames, {"a": (0, 0, 5, 5), "b": np.ones((48, 64), bool)})
        grid = grid_means(frames, 4, 4)
    for ds in (rois, grid):
        for name in ("mean", "std", "count"):
            assert isinstance(ds[name].data, da.Array), name


def test_results_computed_together_keep_their_own_numbers(stack):
    # two reductions of one input in one dask.compute must not share graph keys
    frames = _frames(stack, chunks=(4, 48, 64))
    rois, grid = dask.compute(roi_means(frames, {"a": (1, 1, 3, 3)}), grid_means(frames, 2, 2))
    np.testing.assert_allclose(rois["mean"].values[0], _twin(stack, (1, 1, 3, 3))[0], rtol=RTOL)
    np.testing.assert_allclose(
        grid["mean"].values[0, 0], _twin(stack, (0, 0, 32, 24))[0], rtol=RTOL
    )


def test_tiles_without_roi_pixels_are_never_computed(stack):
    # frames tiled 24 x 32: a tile outside every ROI raises if dask ever computes it
    def tile(block, block_info=None):
        (f0, f1), (y0, y1), (x0, x1) = block_info[0]["array-location"]
        if (y0, x0) == (24, 32):
            raise AssertionError("tile (24, 32) has no ROI pixel and must not be computed")
        return block

    frames = _frames(da.from_array(stack, chunks=(4, 24, 32)).map_blocks(tile, dtype=stack.dtype))
    out = roi_means(frames, {"a": (30, 20, 4, 3), "b": (0, 0, 5, 5)}).compute()
    np.testing.assert_allclose(out["mean"].values[0], _twin(stack, (30, 20, 4, 3))[0], rtol=RTOL)
    with pytest.raises(AssertionError, match="must not be computed"):
        roi_means(frames, {"c": (60, 40, 2, 2)}).compute()


def test_one_small_task_per_chunk_whatever_the_grid_size():
    # a 2000-frame 1024^2 stack never materialised: the graph alone is inspected
    frames = _frames(da.zeros((2000, 1024, 1024), np.uint16, chunks=(8, 1024, 1024)))
    layers = {}
    for n in (2, 16):
        out = grid_means(frames, n, n)["mean"].data
        graph = out.__dask_graph__()
        stats = [k for k in graph.layers if k.startswith("roi-stats")]
        assert len(stats) == 1
        layers[n] = len(graph.layers[stats[0]])
        # the results, a few numbers per frame, are merged into one chunk (dask's
        # usual chunk size holds them): a few tasks, not several per input chunk
        assert out.chunks[-1] == (2000,)
    assert layers[2] == layers[16] == 250  # one task per chunk, not one slice per cell


def test_peak_memory_is_bounded_by_chunks_not_the_stack(tmp_path):
    # 2 GiB of float64 frames made chunk by chunk; peak RSS growth must stay far below it.
    # What this proves: the threaded scheduler never holds more than a few chunks
    # (4 MiB each) plus the small per-frame results, for a stack 8x larger than the bound.
    script = textwrap.dedent(
        """
        import resource, numpy as np, dask.array as da, xarray as xr
        from beamcat.analyses.roi import roi_means, grid_means
        def block(block_info=None):
            loc = block_info[None]["array-location"][0]
            return np.full(block_info[None]["chunk-shape"], float(loc[0]))
        n = 4096
        data = da.map_blocks(block, chunks=((8,) * (n // 8), (256,), (256,)), dtype=float)
        frames = xr.DataArray(data, dims=("frame", "y", "x"))
        small = roi_means(frames[:8], {"a": (0, 0, 10, 10)}).compute()  # compile, warm up
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        out = grid_means(frames, 8, 8).compute()
        assert np.allclose(out["mean"].values[0, 0], np.arange(n) // 8 * 8)
        print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) // 1024)
        """
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    growth_mib = int(run.stdout.strip().splitlines()[-1])
    assert growth_mib < 256, f"peak RSS grew {growth_mib} MiB for a 2048 MiB stack"


# ------------------------------------------------------------------- demo run


def test_demo_run_truth_rois_match_numpy(demo_dir):
    scalars, arrays = demo.read_truth(demo_dir / "radiography")
    run = open_catalog(demo_dir / demo.CATALOG_NAME)["imat_run"].read()
    counts = run[run.attrs["signal"]]
    out = roi_means(counts, scalars["rois"])
    assert out["roi"].values.tolist() == list(scalars["rois"])
    assert "time" in out.coords and out["mean"].dims == ("roi", "frame")
    values = counts.values
    for name, rect in scalars["rois"].items():
        mean, std = _twin(values, rect)
        np.testing.assert_allclose(out["mean"].sel(roi=name).values, mean, rtol=RTOL)
        np.testing.assert_allclose(out["std"].sel(roi=name).values, std, rtol=1e-7)
        assert (out["count"].sel(roi=name) == rect[2] * rect[3]).all()
    # raw counts follow the truth: (bed - dark) / (air - dark) cancels the source drift and
    # is proportional to T_bed / T_air, so relative to frame 0 it is the true relative T
    dark = scalars["dark_level"]
    ratio = (out["mean"].sel(roi="bed_top") - dark) / (out["mean"].sel(roi="air") - dark)
    truth = arrays["transmission"][:, scalars["regions"].index("bed_top")]
    # 0.5 %: Poisson noise of ~1500-pixel means (~0.05 %) plus the dark pattern's spread
    np.testing.assert_allclose(ratio / ratio[0], truth / truth[0], rtol=5e-3)


# ------------------------------------------------------------------- files


def test_json_round_trip_with_masks(tmp_path):
    mask = np.zeros((8, 9), bool)
    mask[2:5, 3] = True
    rois = {"bed top": Rect(1, 2, 3, 4), "odd": (0.5, 1, 2.5, 3), "mask": mask}
    path = save_rois(rois, tmp_path / "rois.json")
    doc = json.loads(path.read_text())
    assert doc["rois"]["bed top"] == {"x": 1, "y": 2, "w": 3, "h": 4}
    assert doc["rois"]["mask"] == {"mask": "rois.masks.npz"}
    back = load_rois(path)
    assert list(back) == list(rois)
    assert back["bed top"] == Rect(1, 2, 3, 4) and back["odd"] == Rect(0.5, 1, 2.5, 3)
    np.testing.assert_array_equal(back["mask"], mask)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rois.json", "rois.masks.npz"]


def test_csv_round_trip_and_original_list_style(tmp_path):
    rois = [(850, 800, 330, 60), (850, 890, 330, 60)]  # the original cfg.roi_groups style
    path = save_rois(rois, tmp_path / "rois.csv")
    assert path.read_text().splitlines()[:2] == ["name,x,y,w,h", "ROI 1,850,800,330,60"]
    assert load_rois(path) == {"ROI 1": Rect(850, 800, 330, 60), "ROI 2": Rect(850, 890, 330, 60)}
    (tmp_path / "cfg.json").write_text(json.dumps(rois))
    assert load_rois(tmp_path / "cfg.json") == load_rois(path)


def test_failed_save_keeps_the_old_file(tmp_path):
    path = save_rois({"a": (0, 0, 1, 1)}, tmp_path / "rois.json")
    before = path.read_bytes()
    with pytest.raises(OptionError, match="CSV holds rectangles only"):
        save_rois({"m": np.ones((2, 2), bool)}, tmp_path / "rois.csv")
    with pytest.raises(OptionError, match="'b'.*covers no pixel"):
        save_rois({"b": (0, 0, 0, 1)}, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rois.json"]


@pytest.mark.parametrize(
    ("name", "text", "error", "match"),
    [
        ("a.json", "{not json", FormatError, "a.json: not JSON"),
        ("b.json", '{"rois": {"x": {"x": 1, "y": 2}}}', FormatError, "b.json: ROI 'x'"),
        ("c.json", '{"rois": {}}', FormatError, "c.json: expected"),
        ("d.json", '{"rois": {"m": {"mask": "none.npz"}}}', SourceNotFoundError, "none.npz"),
        ("e.csv", "name,x,y\na,1,2\n", FormatError, "e.csv: header"),
        ("f.csv", "name,x,y,w,h\na,1,2,3,4\nb,1,two,3,4\n", FormatError, "f.csv: row 3"),
        ("g.csv", "name,x,y,w,h\n", FormatError, "g.csv: no ROI rows"),
    ],
)
def test_bad_roi_files(tmp_path, name, text, error, match):
    (tmp_path / name).write_text(text)
    with pytest.raises(error, match=match):
        load_rois(tmp_path / name)


def test_missing_roi_file(tmp_path):
    with pytest.raises(SourceNotFoundError, match="no such ROI file"):
        load_rois(tmp_path / "nope.json")


def test_synchronous_and_threaded_schedulers_agree(stack):
    frames = _frames(stack, chunks=(2, 48, 64))
    with dask.config.set(scheduler="synchronous"):
        a = grid_means(frames, 3, 3).compute()
    xr.testing.assert_identical(a, grid_means(frames, 3, 3).compute(scheduler="threads"))
