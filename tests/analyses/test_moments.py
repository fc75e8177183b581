"""The shared reduction convention: partials merged in any split equal one pass over the values."""

from __future__ import annotations

import dask.array as da
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from beamcat.analyses.moments import combine, finalise, merge, sum_frames


def _partials(values: np.ndarray) -> np.ndarray:
    """count, mean, M2 of one piece (two passes, float64)."""
    if values.size == 0:
        return np.zeros(3)
    mean = values.mean()
    return np.array([values.size, mean, ((values - mean) ** 2).sum()])


@settings(max_examples=50, deadline=None)
@given(
    cuts=st.lists(st.integers(0, 40), max_size=5),
    offset=st.sampled_from([0.0, 1e6]),
    seed=st.integers(0, 2**16),
)
def test_merged_partials_equal_one_pass(cuts, offset, seed):
    # any split of 40 values (empty pieces included) merges to NumPy's mean and std
    values = offset + np.random.default_rng(seed).normal(0, 1, 40)
    pieces = np.split(values, sorted(cuts))
    parts = np.stack([_partials(p) for p in pieces])[:, None, :]  # (pieces, k=1, 3)
    mean, std, count = combine(*parts)[0]
    assert count == 40
    # Chan's merge in float64: ~1e-16 relative of the mean, ~1e-9 of a std at offset 1e6
    np.testing.assert_allclose(mean, values.mean(), rtol=1e-13)
    np.testing.assert_allclose(std, values.std(), rtol=1e-9)


def test_nothing_counted_finalises_to_nan():
    out = finalise(np.array([0.0, 2.0]), np.array([0.0, 3.0]), np.array([0.0, 2.0]))
    assert np.isnan(out[0, :2]).all() and out[0, 2] == 0
    assert out[1].tolist() == [3.0, 1.0, 2.0]
    total, mean, m2 = merge(np.array([[[1.0, 5.0, 0.0]], [[1.0, 7.0, 0.0]]]), axis=0)
    assert (total.tolist(), mean.tolist(), m2.tolist()) == ([2.0], [6.0], [2.0])


@settings(max_examples=25, deadline=None)
@given(chunk=st.integers(1, 9), dtype=st.sampled_from(["uint16", "int32", "float32"]))
def test_frame_sums_equal_numpy_bit_for_bit_under_any_chunking(chunk, dtype):
    # frames added in order, partial sums added in order: NumPy's outer-axis sum exactly
    frames = np.random.default_rng(1).normal(500, 100, (9, 5, 6)).astype(dtype)
    want_dtype = np.float64 if dtype == "float32" else np.int64
    want = frames.sum(axis=0, dtype=want_dtype)
    got = sum_frames(da.from_array(frames, chunks=(chunk, 5, 3)), dtype=want_dtype).compute()
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(sum_frames(frames, dtype=want_dtype), want)
    np.testing.assert_array_equal(sum_frames(frames, axis=1), frames.sum(axis=1, dtype=np.float64))
