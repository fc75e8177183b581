"""The vectorisable exp of the line fitter against numpy's."""

from __future__ import annotations

import numpy as np

from beamcat.analyses._fast_exp import FLOOR, exp_into


def test_exp_into_is_within_one_ulp_of_numpy():
    # the whole normal range, dense near 0 where the Gaussians live, and the ends
    rng = np.random.default_rng(0)
    z = np.concatenate(
        [np.linspace(FLOOR, 709, 200_001), -rng.exponential(5, 100_000), [0.0, -0.0, FLOOR]]
    )
    out, bits = np.empty_like(z), np.empty(z.size, np.int64)
    exp_into(z, out, bits, bits.view(np.float64), z.size)
    reference = np.exp(z)
    # 2**-52: one unit in the last place (numpy's exp itself is within ~0.5 ulp)
    assert np.max(np.abs(out - reference) / reference) <= 2.0**-52
    assert out[-3] == 1.0 and out[-2] == 1.0


def test_exp_into_is_zero_below_the_normal_numbers_and_keeps_nan():
    z = np.array([FLOOR - 1e-9, -745.2, -1e300, -np.inf, np.nan, -1.0])
    out, bits = np.full(z.size, 7.0), np.empty(z.size, np.int64)
    exp_into(z, out, bits, bits.view(np.float64), 5)  # only the first m = 5 values are written
    np.testing.assert_array_equal(out, [0.0, 0.0, 0.0, 0.0, np.nan, 7.0])
