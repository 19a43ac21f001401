"""EM, k-means and the model grid on Dask (issue 14) against the in-memory results.

The reference for every chunked fit is the in-memory fit of the same data from the same
start (the same initial means): EM and Lloyd's algorithm are deterministic from there,
and the chunked passes only sum the same per-row terms in another order, so the results
agree to rounding (log-likelihood to 1e-10 relative, parameters to 1e-8 absolute).
"""

import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest

import bayesmix as bm

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")

TYPES = ["full", "diag", "spherical", "tied"]
#: uneven row chunks, including a chunk of a single row
CHUNKS = ((1, 29, 44, 46), (3,))


@pytest.fixture(autouse=True)
def _synchronous():
    with dask.config.set(scheduler="synchronous"):
        yield


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return np.vstack(
        [
            rng.normal([0, 0, 0], 1.0, (50, 3)),
            rng.normal([4, 1, 0], 0.7, (40, 3)),
            rng.normal([0, 4, 3], 1.2, (30, 3)),
        ]
    )


def _close_fits(a, b):
    assert b.n_iter == a.n_iter and b.converged == a.converged
    assert b.log_likelihood == pytest.approx(a.log_likelihood, rel=1e-10, abs=0)
    if a.log_posterior is not None:
        assert b.log_posterior == pytest.approx(a.log_posterior, rel=1e-10, abs=0)
    for name in ("weights", "means", "covariances"):
        np.testing.assert_allclose(getattr(b, name), getattr(a, name), rtol=0, atol=1e-8)
    np.testing.assert_allclose(b.history, a.history, rtol=1e-10, atol=0)


@pytest.mark.parametrize("covariance", TYPES)
@pytest.mark.parametrize("estimate", ["ml", "map"])
def test_fit_em_equals_in_memory(data, covariance, estimate):
    prior = bm.GMMPrior.from_data(data, 3) if estimate == "map" else None
    init = data[[0, 60, 100]]
    a = bm.fit_em(data, 3, covariance=covariance, prior=prior, init=init, engine="numba")
    b = bm.fit_em(da.from_array(data, chunks=CHUNKS), 3, covariance=covariance, prior=prior,
                  init=init)  # fmt: skip
    _close_fits(a, b)
    assert isinstance(b.labels, da.Array)
    np.testing.assert_array_equal(b.labels.compute(), a.labels)


def test_single_chunk_and_numpy_engine(data):
    init = data[[0, 60, 100]]
    a = bm.fit_em(data, 3, init=init, engine="numpy")
    b = bm.fit_em(da.from_array(data, chunks=-1), 3, init=init, engine="numpy", persist=False)
    _close_fits(a, b)


def test_responsibility_init(data):
    resp = np.random.default_rng(1).dirichlet(np.ones(2), size=data.shape[0])
    a = bm.fit_em(data, 2, covariance="diag", init=resp, engine="numba")
    b = bm.fit_em(da.from_array(data, chunks=CHUNKS), 2, covariance="diag", init=resp)
    _close_fits(a, b)


def test_kmeans_equals_in_memory(data):
    c0 = data[[0, 1, 2]]  # a poor start: several Lloyd iterations
    a = bm.kmeans(data, 3, init=c0)
    b = bm.kmeans(da.from_array(data, chunks=CHUNKS), 3, init=c0)
    assert b.n_iter == a.n_iter > 2
    assert b.inertia == pytest.approx(a.inertia, rel=1e-10, abs=0)
    np.testing.assert_allclose(b.centers, a.centers, rtol=0, atol=1e-8)
    assert isinstance(b.labels, da.Array)
    np.testing.assert_array_equal(b.labels.compute(), a.labels)
    np.testing.assert_array_equal(b.predict(da.from_array(data, chunks=50)).compute(), a.labels)


def test_kmeans_empty_cluster_relocation_equals_in_memory(data):
    # a centre far from every point gets no points: both re-seed it with the farthest point
    c0 = np.vstack([data[[0, 60]], [[100.0, 100.0, 100.0]]])
    a = bm.kmeans(data, 3, init=c0)
    b = bm.kmeans(da.from_array(data, chunks=CHUNKS), 3, init=c0)
    assert b.inertia == pytest.approx(a.inertia, rel=1e-10, abs=0)
    np.testing.assert_allclose(b.centers, a.centers, rtol=0, atol=1e-8)
    assert np.abs(b.centers).max() < 20


def test_kmeans_parallel_seeding_finds_the_clusters():
    # three clusters 20 sd apart: any sensible seeding ends at the same partition as the
    # in-memory k-means++, so the inertias agree to rounding
    X, z = bm.simulate(
        400, [0.3, 0.3, 0.4], [[0, 0], [20, 0], [0, 20]], [np.eye(2)] * 3, random_seed=3
    )
    b = bm.kmeans(da.from_array(X, chunks=77), 3, random_seed=0, n_init=1)
    a = bm.kmeans(X, 3, random_seed=0)
    assert b.inertia == pytest.approx(a.inertia, rel=1e-10)
    from bayesmix.posterior._compare import adjusted_rand_index

    assert adjusted_rand_index(b.labels.compute(), z) == 1.0


def test_em_default_init_on_dask(data):
    # k-means|| then Lloyd, then EM: the same optimum as the in-memory default here
    a = bm.fit_em(data, 3, random_seed=0)
    b = bm.fit_em(da.from_array(data, chunks=CHUNKS), 3, random_seed=0)
    assert b.log_likelihood == pytest.approx(a.log_likelihood, rel=1e-6)
    r = bm.fit_em(da.from_array(data, chunks=CHUNKS), 3, random_seed=0, init="random")
    assert np.isfinite(r.log_likelihood)


def test_nan_error_same_as_numpy(data):
    bad = data.copy()
    bad[70, 1] = np.nan
    bad[90, :2] = np.nan
    with pytest.raises(ValueError) as ref:
        bm.fit_em(bad, 2, missing="error")
    with pytest.raises(ValueError) as got:
        bm.fit_em(da.from_array(bad, chunks=CHUNKS), 2, missing="error")
    assert str(got.value) == str(ref.value)
    assert "3 NaN value(s) in 2 row(s); the first is row 70" in str(got.value)
    # the default, missing="mar", is in-memory only: a Dask array with gaps names the fix
    with pytest.raises(NotImplementedError, match=r"does not handle missing.*X.compute"):
        bm.fit_em(da.from_array(bad, chunks=CHUNKS), 2)


def test_feature_axis_chunks_warn_and_fit(data):
    init = data[[0, 60, 100]]
    a = bm.fit_em(data, 3, init=init, engine="numba")
    with pytest.warns(UserWarning, match="chunked along the feature axis"):
        b = bm.fit_em(da.from_array(data, chunks=(40, 2)), 3, init=init)
    _close_fits(a, b)


def test_predict_on_dask_is_lazy_and_equal(data):
    res = bm.fit_em(data, 3, init=data[[0, 60, 100]])
    Xd = da.from_array(data, chunks=CHUNKS)
    for method in ("predict", "predict_proba", "score_samples"):
        out = getattr(res, method)(Xd)
        assert isinstance(out, da.Array)
        ref = getattr(res, method)(data)
        if method == "predict":
            np.testing.assert_array_equal(out.compute(), ref)
        else:
            np.testing.assert_allclose(out.compute(), ref, rtol=1e-12, atol=1e-300)


def test_xarray_and_zarr_input(data, tmp_path):
    xr = pytest.importorskip("xarray")
    pytest.importorskip("zarr")
    path = str(tmp_path / "x.zarr")
    da.from_array(data, chunks=(37, 3)).to_zarr(path)
    Xz = da.from_zarr(path)
    arr = xr.DataArray(Xz, dims=("obs", "feature"), coords={"feature": ["a", "b", "c"]})
    init = data[[0, 60, 100]]
    b = bm.fit_em(arr, 3, init=init)
    _close_fits(bm.fit_em(data, 3, init=init, engine="numba"), b)
    assert b.feature_names == ["a", "b", "c"]


def test_numpy_path_does_not_import_dask():
    code = (
        "import sys, numpy as np, bayesmix as bm\n"
        "X = bm.load_old_faithful()\n"
        "r = bm.fit_em(X, 2, random_seed=0); r.predict(X); bm.kmeans(X, 2, random_seed=0)\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=_repo_root())


def _repo_root():
    import pathlib

    return str(pathlib.Path(bm.__file__).resolve().parents[1])


def test_distributed_grid_equals_serial():
    distributed = pytest.importorskip("distributed")
    X, _ = bm.simulate(200, [0.5, 0.5], [[0, 0], [6, 0]], [np.eye(2)] * 2, random_seed=1)
    kw = dict(mcmc=False, n_init=2, random_seed=0, progress=False)
    serial = bm.select_k(X, range(1, 4), **kw)
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0"
        ) as lc,
        distributed.Client(lc) as client,
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore", DeprecationWarning)
        grid = bm.select_k(X, range(1, 4), client=client, **kw)
    pd.testing.assert_frame_equal(grid, serial)
    assert grid.attrs["recommended"] == serial.attrs["recommended"]


def test_cli_unreachable_scheduler_exits_2(capsys):
    from bayesmix.workflow._cli import main

    rc = main(["fit", "--no-mcmc", "--k", "1-2", "--quiet", "--scheduler", "tcp://127.0.0.1:9"])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1 and "cannot reach the Dask scheduler" in err


def test_spec_cluster_table():
    from bayesmix.workflow._spec import SpecError, spec_from_dict

    assert spec_from_dict({"cluster": {"workers": 2}}).workers == 2
    s = spec_from_dict({"cluster": {"scheduler": "tcp://h:8786"}})
    assert s.scheduler == "tcp://h:8786" and s.workers is None
    with pytest.raises(SpecError, match="not both"):
        spec_from_dict({"cluster": {"workers": 2, "scheduler": "tcp://h:8786"}})
    with pytest.raises(SpecError, match=r"cluster\.workers"):
        spec_from_dict({"cluster": {"workers": 0}})


def test_pipeline_em_grid_on_a_cluster_equals_serial(monkeypatch, tmp_path):
    distributed = pytest.importorskip("distributed")
    from bayesmix.workflow._pipeline import run_experiment
    from bayesmix.workflow._spec import spec_from_dict

    real = distributed.LocalCluster

    def threads_only(env=None, **kw):  # the same scheduler, without worker processes
        return real(**{**kw, "processes": False})  # (env: a process setting)

    monkeypatch.setattr(distributed, "LocalCluster", threads_only)
    d = {"model": {"k": "1-2", "covariance": "full,diag"}, "sampler": {"mcmc": False}}
    serial = run_experiment(spec_from_dict(d), out=tmp_path / "a", quiet=True, report=False)
    d["cluster"] = {"workers": 2}
    lines = []
    grid = run_experiment(spec_from_dict(d), out=tmp_path / "b", stream=_Lines(lines), report=False)
    pd.testing.assert_frame_equal(grid.table, serial.table)
    assert sum("EM " in line and " done" in line for line in lines) == 4


class _Lines:
    def __init__(self, lines):
        self.lines = lines

    def write(self, text):
        self.lines.extend(t for t in text.splitlines() if t.strip())

    def flush(self):
        pass


# --------------------------------------------------------------------------- weights
@pytest.fixture(scope="module")
def weights(data):
    """Integer frequency weights 0..3, zero on row 0 (the one-row chunk of CHUNKS: a
    chunk of zero weight) and on a few other rows."""
    w = np.random.default_rng(5).integers(0, 4, size=data.shape[0]).astype(float)
    w[0] = 0.0
    return w


@pytest.mark.parametrize("covariance", TYPES)
@pytest.mark.parametrize("estimate", ["ml", "map"])
def test_weighted_fit_em_equals_in_memory(data, weights, covariance, estimate):
    prior = bm.GMMPrior.from_data(data, 3) if estimate == "map" else None
    init = data[[0, 60, 100]]
    kw = dict(covariance=covariance, prior=prior, init=init)
    a = bm.fit_em(data, 3, sample_weight=weights, engine="numba", **kw)
    wd = da.from_array(weights, chunks=50)  # chunked unlike X: rechunked to X's rows
    b = bm.fit_em(da.from_array(data, chunks=CHUNKS), 3, sample_weight=wd, **kw)
    _close_fits(a, b)
    assert b.total_weight == a.total_weight == weights.sum()
    assert b.n_obs == a.n_obs == data.shape[0]
    np.testing.assert_array_equal(b.labels.compute(), a.labels)


@pytest.mark.parametrize("covariance", ["full", "tied"])
def test_integer_weights_equal_repeated_rows_on_dask(data, weights, covariance):
    # an independent reference: the unweighted in-memory fit of the rows repeated w times
    init = data[[0, 60, 100]]
    rep = np.repeat(data, weights.astype(int), axis=0)
    a = bm.fit_em(rep, 3, covariance=covariance, init=init, engine="numba")
    b = bm.fit_em(da.from_array(data, chunks=CHUNKS), 3, covariance=covariance, init=init,
                  sample_weight=da.from_array(weights, chunks=CHUNKS[0]))  # fmt: skip
    _close_fits(a, b)
    assert b.total_weight == rep.shape[0]
    # BIC with n = sum(w): that of the repeated data
    assert b.bic(data, weights) == pytest.approx(a.bic(rep), rel=1e-10)


def test_numpy_weights_on_dask_equal_dask_weights(data, weights):
    X = da.from_array(data, chunks=CHUNKS)
    init = data[[0, 60, 100]]
    a = bm.fit_em(X, 3, init=init, sample_weight=weights, persist=False)
    wd = da.from_array(weights, chunks=40)
    wd = wd[wd >= 0]  # unknown chunk sizes (NaN): computed, then rechunked
    b = bm.fit_em(X, 3, init=init, sample_weight=wd)
    assert b.history == a.history
    np.testing.assert_array_equal(b.covariances, a.covariances)
    xr = pytest.importorskip("xarray")
    wx = xr.DataArray(da.from_array(weights, chunks=60), dims=("obs",))
    c = bm.fit_em(X, 3, init=init, sample_weight=wx)
    assert c.history == a.history


def test_unit_weights_on_dask_equal_unweighted(data):
    init = data[[0, 60, 100]]
    X = da.from_array(data, chunks=CHUNKS)
    a = bm.fit_em(X, 3, init=init)
    b = bm.fit_em(X, 3, init=init, sample_weight=np.ones(data.shape[0]))
    _close_fits(a, b)


def test_weighted_kmeans_equals_in_memory(data, weights):
    c0 = data[[0, 1, 2]]  # a poor start: several Lloyd iterations
    a = bm.kmeans(data, 3, init=c0, sample_weight=weights)
    b = bm.kmeans(da.from_array(data, chunks=CHUNKS), 3, init=c0,
                  sample_weight=da.from_array(weights, chunks=33))  # fmt: skip
    assert b.n_iter == a.n_iter > 2
    assert b.inertia == pytest.approx(a.inertia, rel=1e-10, abs=0)
    np.testing.assert_allclose(b.centers, a.centers, rtol=0, atol=1e-8)
    np.testing.assert_array_equal(b.labels.compute(), a.labels)
    # integer weights: the centres of the repeated rows (an independent reference)
    r = bm.kmeans(np.repeat(data, weights.astype(int), axis=0), 3, init=c0)
    np.testing.assert_allclose(b.centers, r.centers, rtol=0, atol=1e-8)
    assert b.inertia == pytest.approx(r.inertia, rel=1e-10)


def test_weighted_kmeans_relocation_skips_zero_weight_rows(data, weights):
    # an empty cluster is re-seeded with the farthest point of positive weight: the
    # outlier at 50 has weight 0, so both paths must pass it over
    X = np.vstack([data, [[50.0, 50.0, 50.0]]])
    w = np.append(weights, 0.0)
    c0 = np.vstack([data[[0, 60]], [[100.0, 100.0, 100.0]]])
    a = bm.kmeans(X, 3, init=c0, sample_weight=w)
    b = bm.kmeans(da.from_array(X, chunks=((*CHUNKS[0][:-1], 47), 3)), 3, init=c0,
                  sample_weight=w)  # fmt: skip
    assert b.inertia == pytest.approx(a.inertia, rel=1e-10, abs=0)
    np.testing.assert_allclose(b.centers, a.centers, rtol=0, atol=1e-8)
    assert np.abs(b.centers).max() < 20


def test_weighted_kmeans_parallel_seeding_ignores_zero_weight_points():
    # four groups 20 sd apart, one of them with weight 0: K=3 weighted k-means|| must
    # seed on the three weighted groups (a zero-weight point is never a candidate's
    # draw), ending at the in-memory weighted partition, so the inertias agree
    X, z = bm.simulate(
        400, [0.25] * 4, [[0, 0], [20, 0], [0, 20], [20, 20]], [np.eye(2)] * 4, random_seed=3
    )
    w = np.where(z == 3, 0.0, 1.0 + (np.arange(400) % 3))
    a = bm.kmeans(X, 3, random_seed=0, sample_weight=w)
    for seed in range(3):
        b = bm.kmeans(da.from_array(X, chunks=77), 3, random_seed=seed, n_init=1,
                      sample_weight=da.from_array(w, chunks=77))  # fmt: skip
        assert b.inertia == pytest.approx(a.inertia, rel=1e-10)
        labels = b.labels.compute()
        from bayesmix.posterior._compare import adjusted_rand_index

        assert adjusted_rand_index(labels[z != 3], z[z != 3]) == 1.0


def test_weighted_kmeans_parallel_candidates(monkeypatch):
    # k-means|| with weights: the first centre and every sampled candidate are points of
    # positive weight (probability ~ w * d^2), and each candidate weighs the total weight
    # of the points nearest to it (so the candidate weights sum to sum(w))
    from bayesmix.cluster import _dask as _dask_kmeans
    from bayesmix.core import _dask as _dask_base

    X, z = bm.simulate(
        400, [0.25] * 4, [[0, 0], [20, 0], [0, 20], [20, 20]], [np.eye(2)] * 4, random_seed=3
    )
    w = np.where(z == 3, 0.0, 1.0 + (np.arange(400) % 3))
    Xd, wd = da.from_array(X, chunks=77), da.from_array(w, chunks=77)
    mom = _dask_base.moments(Xd, w=wd)
    ctx = _dask_base._Context(Xd, mom.mean, "numpy", mom.var, w=wd)
    seen = []
    real = _dask_kmeans._weighted_lloyd
    monkeypatch.setattr(
        _dask_kmeans, "_weighted_lloyd", lambda C, cw, c0: seen.append((C, cw)) or real(C, cw, c0)
    )
    for seed in range(5):
        _dask_kmeans.kmeans_parallel(ctx, 3, np.random.default_rng(seed))
    for C, cw in seen:
        C = C + mom.mean
        assert not np.any((C[:, 0] > 10) & (C[:, 1] > 10))  # none in the zero-weight group
        assert cw.sum() == pytest.approx(w.sum(), rel=1e-12)


def test_weighted_kmeans_tiny_data_fills_up_with_weighted_rows():
    # one distinct point of positive weight: k-means|| stops at phi = 0 with 1 < K
    # candidates and fills up with rows drawn by weight, never the zero-weight ones
    X = np.array([[0.0, 0.0], [0.0, 0.0], [5.0, 5.0], [9.0, 9.0]])
    w = np.array([1.0, 2.0, 0.0, 0.0])
    for seed in range(3):
        res = bm.kmeans(da.from_array(X, chunks=2), 2, sample_weight=w, random_seed=seed)
        np.testing.assert_array_equal(res.centers, np.zeros((2, 2)))
        assert res.inertia == 0.0


def test_weighted_em_default_init_on_dask():
    # weighted k-means|| then Lloyd, then EM. Three clusters 10 sd apart: any sensible
    # seeding gives the true partition, and EM from it the in-memory weighted optimum (on
    # the overlapping `data` fixture a start can lead EM to a component collapsed on a
    # heavily weighted point: a valid, spurious, local optimum, not a comparison)
    X, _ = bm.simulate(
        300, [0.3, 0.3, 0.4], [[0, 0], [10, 0], [0, 10]], [np.eye(2)] * 3, random_seed=4
    )
    w = 1.0 + np.arange(300) % 3
    a = bm.fit_em(X, 3, sample_weight=w, random_seed=0)
    b = bm.fit_em(da.from_array(X, chunks=70), 3, sample_weight=w, random_seed=0)
    # both converge (tol=1e-6 per unit weight) to the same optimum: 1e-6 relative
    assert b.log_likelihood == pytest.approx(a.log_likelihood, rel=1e-6)


BAD_WEIGHTS = {
    "negative": lambda n: np.r_[-1.0, np.ones(n - 1)],
    "nan": lambda n: np.r_[np.ones(n - 2), np.nan, np.inf],
    "all zero": lambda n: np.zeros(n),
    "wrong length": lambda n: np.ones(n - 1),
    "2-D": lambda n: np.ones((n, 1)),
    "non-numeric": lambda n: np.array(["a"] * n),
}


@pytest.mark.parametrize("kind", list(BAD_WEIGHTS))
@pytest.mark.parametrize("fit", ["fit_em", "kmeans"])
def test_bad_weights_on_dask_same_errors_as_numpy(data, kind, fit):
    w = BAD_WEIGHTS[kind](data.shape[0])
    fn = getattr(bm, fit)
    with pytest.raises(ValueError) as ref:
        fn(data, 2, sample_weight=w, random_seed=0)
    X = da.from_array(data, chunks=CHUNKS)
    as_dask = [w] if kind == "non-numeric" else [w, da.from_array(w, chunks=50)]
    for wi in as_dask:
        with pytest.raises(ValueError) as got:
            fn(X, 2, sample_weight=wi, random_seed=0)
        assert str(got.value) == str(ref.value)


def test_weights_checked_after_the_data_and_k_against_positive_weights(data):
    # the numpy path's order: NaN data first, then the weights; then K <= #(w > 0)
    bad = data.copy()
    bad[70, 1] = np.nan
    w = np.r_[-1.0, np.ones(data.shape[0] - 1)]
    for wi in (w, da.from_array(w)):
        with pytest.raises(ValueError, match="1 NaN value"):
            bm.fit_em(da.from_array(bad, chunks=CHUNKS), 2, sample_weight=wi, missing="error")
    w2 = np.zeros(data.shape[0])
    w2[[3, 80]] = 1.0
    for fn in (bm.fit_em, bm.kmeans):
        with pytest.raises(ValueError) as ref:
            fn(data, 3, sample_weight=w2)
        with pytest.raises(ValueError) as got:
            fn(da.from_array(data, chunks=CHUNKS), 3, sample_weight=da.from_array(w2))
        assert str(got.value) == str(ref.value)


# ------------------------------------------------------------------ validation (issue 27)
def _error(fn, *args):
    """The ValueError text of ``fn(*args)`` (computed when it returns a Dask array)."""
    with pytest.raises(ValueError) as err:
        out = fn(*args)
        if isinstance(out, da.Array):
            out.compute()
    return str(err.value)


@pytest.fixture(scope="module")
def fits(data):
    em = bm.fit_em(data, 3, init=data[[0, 60, 100]])
    km = bm.kmeans(data, 3, init=data[[0, 60, 100]])
    return {
        "predict": em.predict,
        "predict_proba": em.predict_proba,
        "score_samples": em.score_samples,
        "kmeans predict": km.predict,
    }


@pytest.mark.parametrize("method", ["predict", "predict_proba", "score_samples", "kmeans predict"])
def test_prediction_nan_inf_on_dask_same_error_as_in_memory(data, fits, method):
    bad = data.copy()
    bad[40, 1] = np.nan  # both in the chunk of rows 30..73
    bad[45, :2] = np.inf
    fn = fits[method]
    out = fn(da.from_array(bad, chunks=CHUNKS))  # lazy: the error comes on compute
    assert isinstance(out, da.Array)
    got = _error(lambda: out)
    assert got == _error(fn, bad)
    # NaN is a gap (marginalised over), inf an error: the inf row is the one named
    assert "2 infinite value(s) in 1 row(s); the first is row 45" in got
    only_gap = data.copy()
    only_gap[40, 1] = np.nan
    lazy = fn(da.from_array(only_gap, chunks=CHUNKS)).compute()
    np.testing.assert_allclose(lazy, fn(only_gap), rtol=1e-12)


@pytest.mark.parametrize("method", ["predict", "predict_proba", "score_samples"])
def test_em_prediction_of_far_points_on_dask_equals_in_memory(data, fits, method):
    # in memory a far point is valid (check_scale=False, the far-point densities)
    far = data * 1e200
    fn = fits[method]
    ref = fn(far)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = fn(da.from_array(far, chunks=CHUNKS)).compute()
    assert np.isfinite(got).all()
    if method == "predict":
        np.testing.assert_array_equal(got, ref)
    else:
        np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-300)


def test_kmeans_predict_on_dask_scale_error_same_as_in_memory(data, fits):
    fn = fits["kmeans predict"]
    big = data.copy()
    big[[35, 50], 2] *= 1e200  # both in one chunk
    got = _error(fn, da.from_array(big, chunks=CHUNKS))
    assert got == _error(fn, big)
    assert "feature 'x2'" in got and "row(s) 35, 50)" in got and "Rescale" in got
    tiny = np.c_[data[:, :2], np.where(np.arange(data.shape[0]) == 60, 1e-120, 0.0)]
    got = _error(fn, da.from_array(tiny, chunks=CHUNKS))
    assert got == _error(fn, tiny)
    assert "varies by only 1e-120" in got


def test_kmeans_predict_on_dask_checks_the_column_count(data, fits):
    fn = fits["kmeans predict"]
    got = _error(fn, da.from_array(data[:, :2], chunks=50))  # eager: before any compute
    assert got == _error(fn, data[:, :2])
    assert "X has 2 features but the centres have 3" in got


@pytest.mark.parametrize("fit", ["fit_em", "kmeans"])
@pytest.mark.parametrize("scale", [1e200, 1e-120])
def test_fit_on_dask_scale_error_same_as_in_memory_without_warnings(data, fit, scale):
    fn = getattr(bm, fit)
    X = pd.DataFrame(data * scale, columns=["a", "b", "c"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning before the error
        ref = _error(fn, X, 2)
        xr = pytest.importorskip("xarray")
        Xd = xr.DataArray(da.from_array(X.to_numpy(), chunks=CHUNKS), dims=("obs", "feature"),
                          coords={"feature": ["a", "b", "c"]})  # fmt: skip
        got = _error(fn, Xd, 2)
        w = np.ones(data.shape[0])
        w[0] = -1.0  # the data's check comes before the weights'
        got_w = _error(lambda: fn(da.from_array(X.to_numpy(), chunks=CHUNKS), 2, sample_weight=w))
    assert got == ref
    assert "feature 'a'" in got and "Rescale" in got
    assert got_w == _error(fn, X.to_numpy(), 2)


def test_em_prediction_with_noise_on_dask_equals_in_memory(data):
    res = bm.fit_em(data, 3, init=data[[0, 60, 100]], noise=True)
    far = np.vstack([data, [[30.0, -30.0, 30.0]]])
    Xd = da.from_array(far, chunks=((1, 29, 44, 47), (3,)))
    labels = res.predict(Xd).compute()
    np.testing.assert_array_equal(labels, res.predict(far))
    assert labels[-1] == -1
    proba = res.predict_proba(Xd)
    assert proba.shape == (far.shape[0], 4)
    np.testing.assert_allclose(proba.compute(), res.predict_proba(far), rtol=1e-12, atol=1e-300)


def test_dask_fit_on_plus_minus_1e308_names_the_feature_as_in_memory():
    # +-1e308 in one feature: max - min overflows; both paths must still give the one
    # scale error (RuntimeWarnings from bayesmix are errors in this suite)
    X = np.random.default_rng(0).normal(size=(100, 2))
    X[3, 0], X[5, 0] = 1e308, -1e308
    with pytest.raises(ValueError) as mem:
        bm.fit_em(X, 2)
    with pytest.raises(ValueError) as lazy:
        bm.fit_em(da.from_array(X, chunks=50), 2)
    assert "Rescale" in str(mem.value) and str(lazy.value) == str(mem.value)
