"""Per-pixel-label reduction: kernel vs its np.bincount twin, laziness, chunks, weights, errors."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import xarray as xr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from beamcat.analyses.labels import (
    KERNELS,
    TABLE_KERNELS,
    known_sums,
    label_stats,
    label_sums_reference,
    label_table,
    split_table,
    table_sums,
)
from beamcat.analyses.roi import roi_means
from beamcat.errors import OptionError

DTYPES = [np.uint8, np.int16, np.uint16, np.int32, np.float32, np.float64]


def _inputs(dtype, shape=(4, 12, 10), n_labels=5, seed=0):
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        frames = rng.normal(100.0, 10.0, shape).astype(dtype)
        frames[0, 0, :3] = [np.nan, np.inf, -np.inf]  # skipped, not counted
    else:
        low = -2000 if np.dtype(dtype).kind == "i" else 0  # negative counts of signed types
        frames = rng.integers(low, 4000, shape).astype(dtype)
    labels = rng.integers(-1, n_labels, shape[-2:])
    weights = rng.uniform(0.5, 2.0, shape[-2:])
    return frames, labels, weights


@pytest.mark.parametrize("kernel", list(KERNELS), ids=lambda k: k.__name__)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("weighted", [False, True])
def test_kernel_equals_bincount_twin(kernel, dtype, weighted):
    # the KERNELS table (kernel -> twin) drives this test and benchmarks/labels.py.
    # Both add the same float64 values in pixel order, so they agree to the last bit.
    frames, labels, weights = _inputs(dtype)
    w = weights if weighted else None
    got = kernel(frames, labels, w, 6)  # label 5 has no pixel: zeros
    np.testing.assert_array_equal(got, KERNELS[kernel](frames, labels, w, 6))
    assert got.shape == (4, 6, 3) and (got[:, 5] == 0).all()


def test_twin_against_plain_numpy_masks():
    # an independent check of the twin: boolean masks per label, float64 sums
    frames, labels, weights = _inputs(np.float32)
    got = label_sums_reference(frames, labels, weights, 5)
    values = frames.astype(np.float64) * weights
    for b in range(5):
        v = values[:, labels == b]
        ok = np.isfinite(v)
        # sums of <= 120 values of ~1e2 in another order: relative error ~1e-15
        np.testing.assert_allclose(got[:, b, 0], np.where(ok, v, 0).sum(-1), rtol=1e-12)
        np.testing.assert_allclose(got[:, b, 1], np.where(ok, v * v, 0).sum(-1), rtol=1e-12)
        np.testing.assert_array_equal(got[:, b, 2], ok.sum(-1))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    frame_chunk=st.integers(1, 4),
    y_chunk=st.integers(1, 12),
    x_chunk=st.integers(1, 10),
    dtype=st.sampled_from(DTYPES),
)
def test_any_chunking_gives_the_twin_numbers(frame_chunk, y_chunk, x_chunk, dtype):
    # whole frames per task whatever the input chunking: the same pixel order, bit-identical
    frames, labels, weights = _inputs(dtype, seed=1)
    arr = xr.DataArray(
        da.from_array(frames, chunks=(frame_chunk, y_chunk, x_chunk)), dims=("frame", "y", "x")
    )
    out = label_stats(arr, labels, weights=weights).compute()
    want = label_sums_reference(frames, labels, weights, 5)
    np.testing.assert_array_equal(out["sum"].values, want[..., 0])
    np.testing.assert_array_equal(out["sum_sq"].values, want[..., 1])
    np.testing.assert_array_equal(out["count"].values, want[..., 2])


def test_mean_and_variance_match_numpy_per_label():
    frames, labels, _ = _inputs(np.float64, seed=2)
    out = label_stats(xr.DataArray(frames, dims=("frame", "y", "x")), labels, n_labels=7)
    for b in range(5):
        v = frames[:, labels == b]
        v = np.where(np.isfinite(v), v, np.nan)
        # sum/sum_sq formulas vs two-pass NumPy on values ~1e2 +- 10: ~1e-12 relative
        np.testing.assert_allclose(out["mean"][:, b], np.nanmean(v, -1), rtol=1e-12)
        np.testing.assert_allclose(out["variance"][:, b], np.nanvar(v, -1), rtol=1e-9)
    assert np.isnan(out["mean"][:, 5:]).all() and (out["count"][:, 5:] == 0).all()


def test_lazy_over_any_leading_dims(raise_if_dask_computes):
    rng = np.random.default_rng(3)
    data = rng.normal(size=(2, 3, 8, 9))
    scan = xr.DataArray(
        da.from_array(data, chunks=(1, 2, 4, 9)),
        dims=("scan_y", "scan_x", "y", "x"),
        coords={"scan_x": [0.0, 0.5, 1.0]},
        attrs={"units": "counts", "source": "scan.mib"},
    )
    labels = np.arange(72).reshape(8, 9) % 4
    with raise_if_dask_computes():
        out = label_stats(scan, labels, dim="radius")
    assert all(isinstance(out[v].data, da.Array) for v in out.data_vars)
    assert out["mean"].dims == ("scan_y", "scan_x", "radius")
    assert out["scan_x"].values.tolist() == [0.0, 0.5, 1.0]
    assert out.attrs["source"] == "scan.mib" and out["sum_sq"].attrs["units"] == "(counts)^2"
    want = label_sums_reference(data, labels, None, 4)
    np.testing.assert_array_equal(out["sum"].values, want[..., 0])  # same order: exact


def test_weights_multiply_each_value():
    frames = np.ones((1, 2, 3))
    labels = np.array([[0, 0, 1], [1, 1, -1]])
    weights = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 100.0]])
    out = label_stats(xr.DataArray(frames, dims=("frame", "y", "x")), labels, weights=weights)
    assert out["sum"].values.tolist() == [[3.0, 12.0]]  # the -1 pixel (weight 100) is out
    assert out["sum_sq"].values.tolist() == [[5.0, 50.0]]
    assert out["count"].values.tolist() == [[2.0, 3.0]]


def test_a_masked_roi_statistic_is_this_reduction():
    # a boolean mask is label 0 everywhere it is true: the same mean as roi_means
    rng = np.random.default_rng(4)
    frames = xr.DataArray(rng.normal(50, 5, (3, 10, 11)), dims=("frame", "y", "x"))
    mask = rng.random((10, 11)) < 0.4
    out = label_stats(frames, np.where(mask, 0, -1))
    # float64 means of ~45 values by two different summation orders
    np.testing.assert_allclose(
        out["mean"][:, 0], roi_means(frames, {"m": mask})["mean"][0], rtol=1e-12
    )


@pytest.mark.parametrize(
    ("labels", "kwargs", "match"),
    [
        (
            np.full((4, 5), 3),
            {"n_labels": 3},
            r"20 labels outside -1 \.\. 2 \(first at y=0, x=0: 3\)",
        ),
        (np.full((4, 5), -2), {"n_labels": 3}, "labels outside -1"),
        (np.zeros((4, 4), int), {}, r"label map of shape \(4, 4\), expected .* \(4, 5\)"),
        (np.zeros((4, 5)), {}, "expected integers"),
        (np.zeros((4, 5), int), {"n_labels": 0}, "n_labels=0"),
        (np.zeros((4, 5), int), {"weights": np.ones(3)}, "weights of shape"),
    ],
)
def test_bad_labels_raise_option_errors_naming_the_source(labels, kwargs, match):
    frames = xr.DataArray(np.ones((2, 4, 5)), dims=("frame", "y", "x"), attrs={"source": "f.tif"})
    with pytest.raises(OptionError, match=match) as err:
        label_stats(frames, labels, **kwargs)
    assert "f.tif" in str(err.value)


def test_frames_need_pixel_dims_last():
    with pytest.raises(OptionError, match=r"dims \(\.\.\., 'y', 'x'\)"):
        label_stats(
            xr.DataArray(np.ones((4, 5, 2)), dims=("y", "x", "frame")), np.zeros((5, 2), int)
        )


# --------------------------------------------------------------------------- CSR tables


def _split_table(rng, shape, n_bins, flip=False, band=False):
    """A random pixel splitting: 0-3 bins per pixel with random fractions; consecutive
    bins (a band; a pixel with one bin at the last bin shifts its band's start) or any
    bins (slots, repeats allowed)."""
    counts = rng.integers(0, 4, shape[0] * shape[1])
    indptr = np.r_[0, np.cumsum(counts)].astype(np.int32)
    if band:
        first = rng.integers(0, n_bins - counts + 1)
        bins = np.concatenate([np.arange(f, f + n) for f, n in zip(first, counts, strict=True)])
    else:
        bins = rng.integers(0, n_bins, indptr[-1])
    fractions = rng.uniform(0.0, 1.0, indptr[-1]).astype(np.float32)
    return split_table(indptr, bins, fractions, n_bins, flip=flip)


# 15 draws of 360 combinations per run (each new one compiles a kernel: ~1.5 s); the
# draws differ from run to run, so the combinations are covered over the runs
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**16),
    layout=st.sampled_from(["labels", "band", "slots"]),
    flip=st.booleans(),
    error_model=st.sampled_from([None, "poisson", "variance", "azimuthal", "squares"]),
    dummy=st.sampled_from([None, -1.0]),
    dtype=st.sampled_from(DTYPES),
)
def test_table_kernel_equals_its_bincount_twin(seed, layout, flip, error_model, dummy, dtype):
    # the kernel adds in pixel order (bottom-up rows for a flipped table's azimuthal
    # model), the twin with np.bincount / running sums: equal to rounding
    rng = np.random.default_rng(seed)
    frames, labels, _ = _inputs(dtype, seed=seed)
    frames[..., 1, 1:3] = 0 if frames.dtype.kind == "u" else -1  # the dummy, where set
    if layout == "labels":
        table = label_table(labels, 5, flip=flip)
    else:
        table = _split_table(rng, frames.shape[1:], 6, flip, band=layout == "band")
        assert isinstance(table.bins, np.ndarray) == (layout == "band")
    norm = rng.uniform(0.5, 2.0, frames.shape[1:]).astype(np.float32)
    norm[0, 3] = 0.0  # a pixel no frame may use
    options = {"error_model": error_model, "dummy": dummy}
    if error_model == "variance":
        options["variance"] = rng.uniform(1, 10, frames.shape)
    (kernel,) = TABLE_KERNELS
    got = kernel(frames, table, norm, **options)
    want = TABLE_KERNELS[kernel](frames, table, norm, **options)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)
    if error_model != "azimuthal":  # known norm, count, Σc²ω²: signal and variance added
        fast = kernel(
            frames, table, norm, known=known_sums(table, norm, frames.shape[1:]), **options
        )
        np.testing.assert_allclose(fast, want, rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("layout", ["labels", "band", "slots"])
@pytest.mark.parametrize("n_frames", [1, 3])
def test_threads_share_the_work_to_rounding(layout, n_frames):
    # blocks of frames give each frame's sums exactly; blocks of rows of one frame add
    # their own sums at the end, so they differ by rounding only
    rng = np.random.default_rng(5)
    frames, labels, _ = _inputs(np.float64, shape=(n_frames, 12, 10))
    if layout == "labels":
        table = label_table(labels, 5)
    else:
        table = _split_table(rng, frames.shape[1:], 6, band=layout == "band")
    norm = rng.uniform(0.5, 2.0, frames.shape[1:])
    known = known_sums(table, norm, frames.shape[1:])
    for options in ({"error_model": "poisson"}, {"known": known}):
        serial = table_sums(frames, table, norm, **options)
        shared = table_sums(frames, table, norm, threads=2, **options)
        if n_frames > 1:
            np.testing.assert_array_equal(shared, serial)
        else:
            np.testing.assert_allclose(shared, serial, rtol=1e-13, atol=1e-12)
