import numpy as np
import pytest

import bayesmix as bm


def test_old_faithful_shape_and_values():
    df = bm.load_old_faithful()
    assert df.shape == (272, 2)
    assert list(df.columns) == ["eruptions", "waiting"]
    # first rows of R's datasets::faithful
    np.testing.assert_allclose(df.iloc[0].to_numpy(), [3.6, 79.0])
    np.testing.assert_allclose(df.iloc[1].to_numpy(), [1.8, 54.0])
    # summary values of the classic data set
    assert df["waiting"].min() == 43 and df["waiting"].max() == 96
    np.testing.assert_allclose(df["eruptions"].mean(), 3.487783, atol=1e-6)


def test_simulate_moments_match_truth():
    # 20,000 draws: the sample mean of each component is within ~4/sqrt(n_k) sd of the truth
    weights = [0.3, 0.7]
    means = [[0.0, 0.0], [5.0, -2.0]]
    covs = [[[1.0, 0.5], [0.5, 2.0]], [[0.5, 0.0], [0.0, 0.25]]]
    X, z = bm.simulate(20_000, weights, means, covs, random_seed=1)
    assert X.shape == (20_000, 2)
    for k in range(2):
        Xk = X[z == k]
        n_k = len(Xk)
        np.testing.assert_allclose(n_k / len(X), weights[k], atol=4 * np.sqrt(0.21 / 20_000))
        sd = np.sqrt(np.diag(covs[k]))
        np.testing.assert_allclose(Xk.mean(0), means[k], atol=4 * sd.max() / np.sqrt(n_k))
        np.testing.assert_allclose(np.cov(Xk.T), covs[k], atol=0.1 * max(sd) ** 2)


def test_simulate_reproducible_and_shorthand_covariances():
    a = bm.simulate(10, [0.5, 0.5], [[0], [1]], [1.0, 2.0], random_seed=3)
    b = bm.simulate(10, [0.5, 0.5], [[0], [1]], [[[1.0]], [[2.0]]], random_seed=3)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(weights=[0.5, 0.6]), "sum to 1"),
        (dict(means=[[0.0, 0.0]]), "K=2 rows"),
        (dict(covariances=np.ones((2, 3, 3))), "covariances must have shape"),
        (
            dict(covariances=np.array([[[1.0, 2.0], [2.0, 1.0]]] * 2)),
            "not symmetric positive definite",
        ),
    ],
)
def test_simulate_bad_input(kwargs, match):
    args = dict(weights=[0.5, 0.5], means=[[0.0, 0.0], [1.0, 1.0]], covariances=[1.0, 1.0])
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        bm.simulate(10, args["weights"], args["means"], args["covariances"])
