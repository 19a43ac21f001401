"""The streaming tail quantiles equal numpy.quantile (method "linear") exactly."""

from __future__ import annotations

import numpy as np
import pytest

from bayesmix.core._quantile_kernels import TAIL_MAX, quantiles_axis0


@pytest.mark.parametrize("S", [7, 100, 1000, 1001])
@pytest.mark.parametrize("q", [[0.03, 0.97], [0.0, 1.0], [0.025, 0.975], [0.1], [0.5]])
def test_equals_numpy_quantile(S, q):
    rng = np.random.default_rng(S)
    a = rng.random((S, 3, 5))
    a[:, 0, 0] = 0.5  # a constant column (ties everywhere)
    a[: S // 2, 1, 1] = 1e-300  # half the draws tied at a tiny value
    a[:, 2, :] = np.round(a[:, 2, :], 1)  # many ties
    expected = np.quantile(a, q, axis=0)
    got = quantiles_axis0(a, q)
    assert got.shape == expected.shape
    # the same order statistics and numpy's own interpolation formula: bit-identical
    np.testing.assert_array_equal(got, expected)


def test_falls_back_to_numpy():
    rng = np.random.default_rng(0)
    a = rng.random((1000, 4))
    # the median's order statistics are far from the tails (buffer > TAIL_MAX)
    assert (1000 // 2) > TAIL_MAX
    np.testing.assert_array_equal(quantiles_axis0(a, [0.5]), np.quantile(a, [0.5], axis=0))
    a[3, 1] = np.nan  # numpy propagates NaN: so does the fallback
    np.testing.assert_array_equal(
        quantiles_axis0(a, [0.03, 0.97]), np.quantile(a, [0.03, 0.97], axis=0)
    )
