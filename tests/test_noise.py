"""The uniform noise component (Banfield & Raftery 1993; mclust's EMclustN)."""

from __future__ import annotations

import numpy as np
import pytest

import bayesmix as bm

S1 = np.array([[1.0, 0.5], [0.5, 1.0]])
S2 = np.array([[1.0, -0.3], [-0.3, 0.5]])
N_PER = 500


@pytest.fixture(scope="module")
def outliers():
    """Two Gaussians (500 points each) and 53 uniform outliers (5.0% of the data)."""
    rng = np.random.default_rng(0)
    X = np.vstack(
        [rng.multivariate_normal([0, 0], S1, N_PER), rng.multivariate_normal([6, 0], S2, N_PER)]
    )
    out = rng.uniform([-8, -8], [14, 8], size=(53, 2))
    return X, np.vstack([X, out])


def _sorted(res):
    o = np.argsort(res.means[:, 0])
    return res.means[o], res.covariances[o]


def test_noise_recovers_gaussians_plain_fit_inflates(outliers):
    """Compared with the fit to the clean data (what the outliers should not change).

    Standard errors of the clean-data ML estimates: sd/sqrt(n) for a mean and
    sqrt((S_ii S_jj + S_ij^2)/n) for a covariance entry (normal theory, n = 500 per
    component). The noise fit must be within 1 SE of the clean fit in every entry
    (measured: at most 0.46 SE), while the plain fit's variances are inflated by more
    than 5 SE (measured: 9.9 to 28 SE): a fixed seed, with wide margins both ways.
    """
    X, Xa = outliers
    clean = bm.fit_em(X, 2, random_seed=0)
    noisy = bm.fit_em(Xa, 2, noise=True, random_seed=0)
    plain = bm.fit_em(Xa, 2, random_seed=0)
    mc, cc = _sorted(clean)
    se_cov = np.stack(
        [np.sqrt((np.outer(np.diag(S), np.diag(S)) + S**2) / N_PER) for S in (S1, S2)]
    )
    se_mean = np.stack([np.sqrt(np.diag(S) / N_PER) for S in (S1, S2)])
    mn, cn = _sorted(noisy)
    assert np.all(np.abs(mn - mc) < se_mean)
    assert np.all(np.abs(cn - cc) < se_cov)
    # 53 of 1053 points are outliers; a few fall inside the clusters and stay there
    assert noisy.noise_weight == pytest.approx(53 / 1053, abs=0.01)
    _, cp = _sorted(plain)
    diag = np.arange(2)
    assert np.all((cp - cc)[:, diag, diag] / se_cov[:, diag, diag] > 5)


@pytest.fixture(scope="module")
def small():
    rng = np.random.default_rng(1)
    X = np.vstack([rng.normal(size=(60, 2)), rng.normal(size=(60, 2)) + 5])
    return np.vstack([X, rng.uniform(-5, 10, size=(8, 2))])


@pytest.mark.parametrize("covariance", ["full", "diag", "spherical", "tied"])
def test_noise_result_api(small, covariance):
    res = bm.fit_em(small, 2, covariance=covariance, noise=True, random_seed=0)
    V = np.prod(np.ptp(small, axis=0))
    assert res.noise_volume == pytest.approx(V)
    assert res.weights.sum() + res.noise_weight == pytest.approx(1.0)
    P = res.predict_proba(small)
    assert P.shape == (len(small), 3)
    np.testing.assert_allclose(P.sum(1), 1.0)
    labels = res.predict(small)
    np.testing.assert_array_equal(labels, np.where(P.argmax(1) == 2, -1, P.argmax(1)))
    np.testing.assert_array_equal(labels, res.labels)
    assert (labels == -1).any()
    # score_samples includes w0 / V
    from scipy.stats import multivariate_normal

    dens = sum(
        w * multivariate_normal(m, c).pdf(small)
        for w, m, c in zip(res.weights, res.means, res.covariances, strict=True)
    )
    np.testing.assert_allclose(res.score_samples(small), np.log(dens + res.noise_weight / V))
    assert res.log_likelihood == pytest.approx(res.score_samples(small).sum(), rel=1e-10)
    plain = bm.fit_em(small, 2, covariance=covariance, random_seed=0)
    assert res.n_parameters == plain.n_parameters + 1
    assert res.bic(small) == pytest.approx(
        -2 * res.log_likelihood + res.n_parameters * np.log(len(small))
    )
    back = bm.EMResult.from_dict(res.to_dict())
    assert back.noise_weight == res.noise_weight and back.noise_volume == res.noise_volume
    np.testing.assert_allclose(back.score_samples(small), res.score_samples(small))


@pytest.mark.parametrize("covariance", ["full", "diag", "tied"])
def test_noise_numba_matches_numpy(small, covariance):
    kw = dict(covariance=covariance, noise=True, random_seed=0, tol=1e-10)
    a = bm.fit_em(small, 2, engine="numpy", **kw)
    b = bm.fit_em(small, 2, engine="numba", **kw)
    assert a.log_likelihood == pytest.approx(b.log_likelihood, rel=1e-10)
    assert a.noise_weight == pytest.approx(b.noise_weight, rel=1e-8)
    np.testing.assert_allclose(a.covariances, b.covariances, atol=1e-8)


def test_noise_user_volume_weights_and_map(small):
    res = bm.fit_em(small, 2, noise=1e4, random_seed=0)
    assert res.noise_volume == 1e4
    # a larger volume makes the noise density smaller: fewer noise points
    res_big = bm.fit_em(small, 2, noise=1e8, random_seed=0)
    assert (res_big.labels == -1).sum() <= (res.labels == -1).sum()
    # noise with integer weights equals duplicated rows
    w = np.random.default_rng(0).integers(1, 3, size=len(small))
    R = np.random.default_rng(1).uniform(size=(len(small), 2))
    R /= R.sum(1, keepdims=True)
    a = bm.fit_em(small, 2, noise=1e3, init=R, sample_weight=w, tol=1e-10)
    b = bm.fit_em(np.repeat(small, w, 0), 2, noise=1e3, init=np.repeat(R, w, 0), tol=1e-10)
    assert a.log_likelihood == pytest.approx(b.log_likelihood, rel=1e-10)
    assert a.noise_weight == pytest.approx(b.noise_weight, rel=1e-8)
    # MAP: Dirichlet over the K + 1 weights; the objective never decreases
    mp = bm.fit_em(small, 2, noise=True, prior=bm.GMMPrior.from_data(small, 2), random_seed=0)
    assert mp.noise_weight > 0 and mp.log_posterior is not None
    assert np.all(np.diff(mp.history) > -1e-8 * abs(mp.history[-1]))


@pytest.mark.parametrize("bad", [0.0, -1.0, np.nan, np.inf])
def test_noise_bad_volume(small, bad):
    with pytest.raises(ValueError, match="noise"):
        bm.fit_em(small, 2, noise=bad)


def test_noise_bad_type_and_degenerate(small):
    with pytest.raises(TypeError, match="noise"):
        bm.fit_em(small, 2, noise="yes")
    X = np.column_stack([small[:, 0], np.ones(len(small))])
    with pytest.raises(ValueError, match="noise=True"):
        bm.fit_em(X, 2, noise=True)


# --------------------------------------------------------------------------- PyMC model
def test_build_gmm_noise_logp(small):
    """The observed term equals sum_n log(sum_k w_k N(x_n) + w_0 / V) at a point."""
    from scipy.stats import multivariate_normal

    model = bm.build_gmm(small, 2, noise=True)
    V = np.prod(np.ptp(small, axis=0))
    assert model.bayesmix_config.noise_volume == pytest.approx(V)
    assert {"weights_noise", "means", "covariances"} <= {v.name for v in model.free_RVs}
    rng = np.random.default_rng(0)
    point = {k: v + 0.1 * rng.normal(size=np.shape(v)) for k, v in model.initial_point().items()}
    # the deterministic and free variables as functions of the value variables
    outs = model.replace_rvs_by_values(
        [model["weights"], model["noise_weight"], model["means"], model["covariances"]]
    )
    fn = model.compile_fn([model.logp(vars=[model["X"]]), *outs], mode="FAST_COMPILE")
    lp, w, w0, m, c = fn(point)
    assert w.sum() + w0 == pytest.approx(1.0)
    dens = sum(
        wk * multivariate_normal(mk, ck).pdf(small) for wk, mk, ck in zip(w, m, c, strict=True)
    )
    assert lp == pytest.approx(np.log(dens + w0 / V).sum(), rel=1e-10)


def test_build_gmm_noise_bad_volume(small):
    with pytest.raises(ValueError, match="noise"):
        bm.build_gmm(small, 2, noise=-3.0)


# --------------------------------------------------------------------------- membership, plots
def test_membership_noise_column(small):
    from bayesmix.mcmc._trace import from_arrays

    res = bm.fit_em(small, 2, noise=True, random_seed=0)
    # a "posterior" of 3 identical draws at the EM fit
    w = np.broadcast_to(res.weights, (1, 3, 2))
    m = np.broadcast_to(res.means, (1, 3, 2, 2))
    c = np.broadcast_to(res.covariances, (1, 3, 2, 2, 2))
    dt = from_arrays(
        w,
        m,
        c,
        small,
        extra={"noise_weight": np.full((1, 3), res.noise_weight)},
        attrs={"noise_volume": res.noise_volume},
    )
    mem = bm.membership(dt, relabel=False)
    P = res.predict_proba(small)
    np.testing.assert_allclose(mem["noise_probability"].values, P[:, 2], atol=1e-10)
    np.testing.assert_allclose(mem["probability"].values, P[:, :2], atol=1e-10)
    np.testing.assert_array_equal(mem["label"].values, res.predict(small))


def test_plots_noise_points_grey(small):
    import matplotlib

    matplotlib.use("Agg")
    from bayesmix.workflow._plots import _NOISE_GREY, membership_summary, plot_uncertainty

    res = bm.fit_em(small, 2, noise=True, random_seed=0)
    labels, unc = membership_summary(res, small)
    assert (labels == -1).any()
    fig = plot_uncertainty(small, labels, unc)
    face = fig.axes[0].collections[0].get_facecolors()
    grey = np.isclose(face[:, :3], _NOISE_GREY[:3]).all(1)
    np.testing.assert_array_equal(grey, labels == -1)
    texts = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert any(t.startswith("noise") for t in texts)


# --------------------------------------------------------------------------- specs and CLI
def test_spec_and_cli_noise():
    from bayesmix.workflow._cli import _build_parser, _fit_spec
    from bayesmix.workflow._spec import SpecError, spec_from_dict

    assert spec_from_dict({"model": {"noise": True}}).noise is True
    assert spec_from_dict({"model": {"noise": 50.0}}).noise == 50.0
    assert spec_from_dict({}).noise is False
    for bad in (-1.0, 0, "yes"):
        with pytest.raises(SpecError, match=r"model\.noise"):
            spec_from_dict({"model": {"noise": bad}})
    args = _build_parser().parse_args(["fit", "--noise", "--no-mcmc"])
    assert _fit_spec(args).noise is True
