"""The small dense Cholesky helpers of the line fitter against numpy, one matrix and in lanes."""

from __future__ import annotations

import numpy as np

from beamcat.analyses._cholesky import cholesky, inverse, inverse_lanes, solve


def _normal_matrices(n, lanes, seed=0):
    """JᵀJ of random Jacobians with columns of very different scales (as peak vs width)."""
    rng = np.random.default_rng(seed)
    jac = rng.normal(size=(lanes, 50, n)) * rng.uniform(1e-2, 1e2, (lanes, 1, n))
    return np.einsum("lti,ltj->lij", jac, jac)


def test_solve_and_inverse_equal_numpys():
    # Well-conditioned after scaling, so 1e-10 relative is loose for double precision
    a = _normal_matrices(10, 1)[0]
    b = np.arange(10.0)
    factor = a.copy()
    assert cholesky(factor, 10)
    z = b.copy()
    solve(factor, z, 10)
    np.testing.assert_allclose(z, np.linalg.solve(a, b), rtol=1e-10)
    work, out = np.empty((10, 10)), np.empty((10, 10))
    inverse(factor, 10, work, out)
    np.testing.assert_allclose(out, np.linalg.inv(a), rtol=1e-10, atol=1e-10 * np.abs(out).max())


def test_inverse_lanes_is_the_single_inverse_bit_for_bit_and_flags_singular_lanes():
    # Lane by lane the same operations in the same order as cholesky + inverse, so the
    # results are equal to the bit; a rank-deficient, a zero-column and a NaN lane are
    # refused exactly where cholesky refuses them
    n, lanes = 10, 32
    mats = _normal_matrices(n, lanes)
    mats[3, 4, :] = mats[3, :, 4] = 0.0  # a parameter the model does not depend on
    v = np.random.default_rng(1).normal(size=(60, n))
    v[:, 7] = v[:, 2]  # two identical columns: singular
    mats[5] = v.T @ v
    mats[9, 0, 0] = np.nan
    lane_a = np.ascontiguousarray(np.moveaxis(mats, 0, -1))
    work, diag, ok = np.empty_like(lane_a), np.empty((n, lanes)), np.empty(lanes, bool)
    inverse_lanes(lane_a, n, work, diag, ok)
    for lane in range(lanes):
        factor = mats[lane].copy()
        assert ok[lane] == cholesky(factor, n), lane
        if ok[lane]:
            single, scratch = np.empty((n, n)), np.empty((n, n))
            inverse(factor, n, scratch, single)
            np.testing.assert_array_equal(lane_a[:, :, lane], single)
    assert not ok[[3, 5, 9]].any() and ok.sum() == lanes - 3
