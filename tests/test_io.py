"""Round trip of saved fits: what load_fit returns equals what save_fit was given."""

import json

import numpy as np
import pytest
import xarray as xr

import bayesmix as bm
from bayesmix.mcmc._trace import from_arrays
from bayesmix.workflow._io import load_fit, save_fit


@pytest.fixture
def synthetic_tree():
    rng = np.random.default_rng(1)
    C, S, K, D, N = 2, 7, 3, 2, 15
    w = rng.dirichlet(np.ones(K), size=(C, S))
    m = rng.normal(size=(C, S, K, D))
    A = rng.normal(size=(C, S, K, D, D))
    cov = A @ np.swapaxes(A, -1, -2) + np.eye(D)
    X = rng.normal(size=(N, D))
    prior = bm.GMMPrior.from_data(X, K)
    return from_arrays(
        w,
        m,
        cov,
        X,
        feature_names=["eruptions", "waiting"],
        attrs={"model": "gmm", "covariance": "full", "prior": prior.to_json(), "relabelled": 1},
        extra={"concentration": rng.gamma(1.0, size=(C, S))},
        sample_stats={"diverging": rng.random((C, S)) < 0.1, "lp": rng.normal(size=(C, S))},
    )


def _assert_tree_identical(a, b):
    assert set(a.children) == set(b.children)
    assert a.attrs == b.attrs
    for name in a.children:
        xr.testing.assert_identical(a[name].to_dataset(), b[name].to_dataset())
        # values bit for bit, dtypes included
        for var in a[name].data_vars:
            assert a[name][var].dtype == b[name][var].dtype
            np.testing.assert_array_equal(a[name][var].values, b[name][var].values)


def test_posterior_and_config_round_trip(tmp_path, synthetic_tree):
    config = {"K": 3, "covariance": "full", "draws": [1, 2], "prior": {"dof": 4.0}, "x": None}
    folder = save_fit(tmp_path / "fit", idata=synthetic_tree, config=config)
    loaded = load_fit(folder)
    assert loaded.em_result is None
    assert loaded.config == config
    _assert_tree_identical(synthetic_tree, loaded.idata)
    # the prior stored in attrs reads back to the same object
    assert bm.GMMPrior.from_dict(json.loads(loaded.idata.attrs["prior"])) == bm.GMMPrior.from_dict(
        json.loads(synthetic_tree.attrs["prior"])
    )


def test_resave_removes_stale_parts(tmp_path, synthetic_tree):
    save_fit(tmp_path, idata=synthetic_tree, config={"a": 1})
    save_fit(tmp_path, config={"a": 2}, overwrite=True)
    loaded = load_fit(tmp_path)
    assert loaded.idata is None and loaded.config == {"a": 2}


def test_loaded_tree_is_in_memory(tmp_path, synthetic_tree):
    import shutil

    save_fit(tmp_path / "f", idata=synthetic_tree)
    loaded = load_fit(tmp_path / "f")
    shutil.rmtree(tmp_path / "f")
    assert float(loaded.idata["posterior"]["weights"].sum()) == pytest.approx(2 * 7)


def test_em_result_round_trip(tmp_path):
    X = bm.load_old_faithful()
    em = bm.fit_em(X, 2, random_seed=0)
    save_fit(tmp_path, em_result=em, config={"K": 2})
    back = load_fit(tmp_path).em_result
    for attr in ("weights", "means", "covariances"):
        np.testing.assert_array_equal(getattr(em, attr), getattr(back, attr))
    assert back.log_likelihood == em.log_likelihood
    Xa = X.to_numpy(dtype=float)
    np.testing.assert_array_equal(em.predict_proba(Xa), back.predict_proba(Xa))
    assert back.to_dict() == em.to_dict()


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        ({}, ValueError, "at least one"),
        ({"idata": np.zeros(3)}, TypeError, r"idata must be an xarray\.DataTree"),
        ({"config": {"a": np.zeros(2)}}, TypeError, r"config\['a'\]"),
        ({"config": [1]}, TypeError, "config must be a dict"),
        ({"em_result": object()}, TypeError, "em_result must be"),
    ],
)
def test_save_errors(tmp_path, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        save_fit(tmp_path, **kwargs)


def test_load_errors(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_fit(tmp_path / "nope")
    with pytest.raises(ValueError, match=r"not written by bayesmix\.save_fit"):
        load_fit(tmp_path)
