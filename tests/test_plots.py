"""Plots produce non-blank images with the artists they promise (synthetic posteriors)."""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PathCollection
from matplotlib.image import AxesImage

import bayesmix as bm
from bayesmix.mcmc._trace import from_arrays
from bayesmix.workflow import _plots as plots

W = np.array([0.6, 0.4])
M = np.array([[0.0, 0.0], [4.0, 3.0]])
COV = np.array([[[1.0, 0.5], [0.5, 1.0]], [[1.0, -0.3], [-0.3, 0.5]]])


@pytest.fixture(scope="module")
def fit():
    rng = np.random.default_rng(0)
    X, z = bm.simulate(200, W, M, COV, random_seed=1)
    C, S = 2, 40
    w = rng.dirichlet(W * 200, size=(C, S))
    m = M + 0.1 * rng.normal(size=(C, S, 2, 2))
    c = np.broadcast_to(COV, (C, S, 2, 2, 2)) * rng.uniform(0.9, 1.1, size=(C, S, 2, 1, 1))
    dt = from_arrays(w, m, c, X, feature_names=["a", "b"])
    em = SimpleNamespace(weights=W, means=M, covariances=COV)
    return X, z, em, dt


def _pixels(fig):
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3]


def _assert_not_blank(fig, min_colors=20):
    img = _pixels(fig)
    # a blank figure is one colour; a drawn one has many distinct colours
    assert len(np.unique(img.reshape(-1, 3), axis=0)) >= min_colors
    # and a sizeable share of non-white pixels
    assert (img.min(axis=-1) < 200).mean() > 0.01


def test_ellipses_draw_em_and_posterior(fit, tmp_path):
    X, _, em, dt = fit
    fig = plots.plot_ellipses(X, em, dt, n_draws=10)
    ax = fig.axes[0]
    lines = ax.get_lines()
    # 2 components x (1 sd + 2 sd + mean marker) for EM, plus 10 draws x 2 components
    assert len(lines) == 2 * 3 + 10 * 2
    assert ax.get_xlabel() == "a" and ax.get_ylabel() == "b"
    # the 1-sd ellipse really is at Mahalanobis distance 1 from the EM mean
    em_1sd = [ln for ln in lines if ln.get_linewidth() == 1.8 and ln.get_linestyle() == "-"]
    xy = em_1sd[0].get_xydata()
    d = xy - M[0]
    maha = np.einsum("ni,ij,nj->n", d, np.linalg.inv(COV[0]), d)
    np.testing.assert_allclose(maha, 1.0, rtol=1e-10)
    _assert_not_blank(fig)
    fig.savefig(tmp_path / "e.png")
    assert (tmp_path / "e.png").stat().st_size > 10_000


def test_plot_fit_dimensions(fit):
    X, _, em, dt = fit
    assert len(plots.plot_fit(X, em, dt).axes) == 1
    rng = np.random.default_rng(3)
    X3 = rng.normal(size=(50, 3))
    em3 = SimpleNamespace(weights=W, means=np.zeros((2, 3)), covariances=np.stack([np.eye(3)] * 2))
    fig3 = plots.plot_fit(X3, em3)
    assert len(fig3.axes) == 3  # lower triangle of a 2x2 grid
    assert "3 features" in fig3.get_suptitle()
    X6 = rng.normal(size=(50, 6))
    em6 = SimpleNamespace(weights=W, means=np.zeros((2, 6)), covariances=np.stack([np.eye(6)] * 2))
    fig6 = plots.plot_fit(X6, em6)
    assert len(fig6.axes) == 1 and "first two of 6" in fig6.get_suptitle()
    em1 = SimpleNamespace(weights=W, means=M[:, :1], covariances=COV[:, :1, :1])
    fig1 = plots.plot_fit(X[:, :1], em1)
    _assert_not_blank(fig1)


def test_membership_summary_matches_em_and_tree(fit):
    X, z, _, dt = fit
    labels, u = plots.membership_summary(dt)
    assert labels.shape == (200,) and np.all((u >= 0) & (u <= 0.5))
    # well-separated simulated clusters: posterior labels recover the truth (up to naming)
    agreement = max(np.mean(labels == z), np.mean(labels != z))
    assert agreement > 0.95
    em = SimpleNamespace(predict_proba=lambda X: np.tile([0.7, 0.3], (len(X), 1)))
    lab_em, u_em = plots.membership_summary(em, X)
    np.testing.assert_allclose(u_em, 0.3)
    assert np.all(lab_em == 0)
    with pytest.raises(ValueError, match="needs X"):
        plots.membership_summary(em)


def test_uncertainty_sizes_follow_uncertainty(fit):
    X, z, _, _ = fit
    u = np.linspace(0.0, 0.5, len(X))
    fig = plots.plot_uncertainty(X, z, u)
    coll = next(c for c in fig.axes[0].collections if isinstance(c, PathCollection))
    sizes = coll.get_sizes()
    assert np.all(np.diff(sizes) > 0)  # bigger marker for more uncertain points
    _assert_not_blank(fig)
    with pytest.raises(ValueError, match="labels and uncertainty"):
        plots.plot_uncertainty(X, z[:5], u)


def test_selection_panels():
    t = pd.DataFrame(
        {
            "covariance": ["full"] * 3,
            "K": [1, 2, 3],
            "bic": [10.0, 8.0, 9.0],
            "icl": [10.0, 8.5, 9.9],
            "elpd_loo": [-5.0, -4.0, -4.2],
            "elpd_loo_se": [0.3, 0.2, 0.25],
        }
    )
    fig = plots.plot_selection(t, chosen=2)
    assert len(fig.axes) == 2
    # ELPD error bars carry the SEs
    ax = fig.axes[1]
    caps = [ln for ln in ax.get_lines() if ln.get_marker() == "_"]
    assert caps, "error bar caps expected"
    assert len(plots.plot_selection(t.drop(columns=["elpd_loo", "elpd_loo_se"])).axes) == 1
    with pytest.raises(ValueError, match="'K' column"):
        plots.plot_selection(t.drop(columns=["K"]))


def test_true_components_drawn_when_given():
    X = np.random.default_rng(3).normal(size=(40, 2))
    truth = {
        "weights": [0.5, 0.5],
        "means": [[0.0, 0.0], [3.0, 1.0]],
        "covariances": [np.eye(2), [[2.0, 0.5], [0.5, 1.0]]],
        "labels": np.zeros(40, int),
    }
    ax = plots.plot_ellipses(X, truth=truth).axes[0]
    dotted = [ln for ln in ax.get_lines() if ln.get_linestyle() == ":"]
    assert len(dotted) == 4  # 1 and 2 sd for each of the two components
    # the 1-sd ellipse of component 1 passes through mean + sqrt(cov) along feature 0
    xy = np.column_stack(dotted[2].get_data())
    d = xy - [3.0, 1.0]
    maha = np.einsum("ni,ij,nj->n", d, np.linalg.inv(truth["covariances"][1]), d)
    np.testing.assert_allclose(maha, 1.0, rtol=1e-9)
    assert "truth 1 and 2 sd" in [t.get_text() for t in ax.get_legend().get_texts()]
    # one feature: the true density
    ax = plots.plot_fit(
        X[:, :1], truth={**truth, "means": [[0.0], [3.0]], "covariances": [[[1.0]], [[2.0]]]}
    ).axes[0]
    assert any(ln.get_label() == "truth" for ln in ax.get_lines())


def test_selection_elpd_axis_not_stretched_by_a_far_worse_k():
    # Old Faithful-like: K=1 150 nats below K=2..4, which differ by a few nats
    t = pd.DataFrame(
        {
            "K": [1, 2, 3, 4],
            "bic": [2608.0, 2323.0, 2345.0, 2366.0],
            "elpd_loo": [-1294.0, -1141.0, -1139.0, -1138.0],
            "elpd_loo_se": [11.6, 17.0, 17.3, 17.1],
        }
    )
    ax = plots.plot_selection(t, chosen=2).axes[1]
    lo, hi = ax.get_ylim()
    # every competitive model with its full error bar is inside, K=1 is not
    assert lo < -1141.0 - 17.0 and hi > -1138.0 + 17.1 and lo > -1294.0
    assert hi - lo < 80  # a few-nat difference is a visible fraction of the axis
    texts = [tx.get_text() for tx in ax.texts]
    assert any("K=1: -1294" in tx for tx in texts)
    # nothing far off: the default limits (no note)
    ax = plots.plot_selection(t[t.K > 1], chosen=2).axes[1]
    assert not ax.texts


def test_rank_plot_rows_and_flat_histograms(fit):
    _, _, _, dt = fit
    fig = plots.plot_rank(dt, var_names=["weights", "means"], max_params=5)
    assert len(fig.axes) == 10
    assert fig.axes[0].get_ylabel() == "weights[0]"
    _assert_not_blank(fig)
    with pytest.raises(ValueError, match="var_names"):
        plots.plot_rank(dt, var_names=["nothing"])


def test_coclustering_ordering(fit):
    _, z, _, _ = fit
    P = (z[:, None] == z[None, :]).astype(float)
    fig = plots.plot_coclustering(P, z)
    img = next(a for a in fig.axes[0].get_children() if isinstance(a, AxesImage)).get_array()
    # ordered by cluster: block diagonal, the largest cluster first
    n0 = np.bincount(z).max()
    assert img[:n0, :n0].min() == 1.0 and img[:n0, n0:].max() == 0.0
    with pytest.raises(ValueError, match="square"):
        plots.plot_coclustering(P[:, :3], z)


# ---------------------------------------------------------------------------- feature names
def test_axis_labels_from_dataframe_em_result_and_posterior(fit):
    """Without feature_names, axes take the DataFrame's columns, then the EM result's
    names, then the posterior's feature coordinate; never x0/x1 when real names exist."""
    X, z, em, dt = fit
    df = pd.DataFrame(X, columns=["eruptions", "waiting"])
    for fig in (plots.plot_fit(df, em), plots.plot_ellipses(df, em)):
        ax = fig.axes[0]
        assert (ax.get_xlabel(), ax.get_ylabel()) == ("eruptions", "waiting")
    ax = plots.plot_uncertainty(df, z, np.zeros(len(z))).axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("eruptions", "waiting")
    # a real EMResult fitted on the DataFrame carries the names to plain-array plots
    em_df = bm.fit_em(df, 2, random_seed=0)
    ax = plots.plot_fit(X, em_df).axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("eruptions", "waiting")
    # the posterior's coordinate ("a", "b") when nothing else names the features
    ax = plots.plot_fit(X, em, dt).axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("a", "b")
    # one feature: the histogram's x axis
    ax = plots.plot_fit(df[["waiting"]]).axes[0]
    assert ax.get_xlabel() == "waiting"
    # explicit names win; a wrong number of them is an error naming the parameter
    ax = plots.plot_fit(df, em, feature_names=["u", "v"]).axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("u", "v")
    with pytest.raises(ValueError, match="feature_names must name each of the data's 2"):
        plots.plot_fit(df, em, feature_names=["u"])


def test_pairs_grid_labels_from_dataframe():
    rng = np.random.default_rng(3)
    df = pd.DataFrame(rng.normal(size=(60, 3)), columns=["p", "q", "r"])
    em = SimpleNamespace(weights=np.ones(1), means=np.zeros((1, 3)), covariances=np.eye(3)[None])
    fig = plots.plot_fit(df, em)
    labels = {(ax.get_xlabel(), ax.get_ylabel()) for ax in fig.axes}
    assert labels == {("p", "q"), ("p", "r"), ("q", "r")}


def test_uncertainty_legends_name_components_with_counts(fit):
    from matplotlib.legend import Legend

    X, z, _, _ = fit
    ax = plots.plot_uncertainty(X, z, np.linspace(0, 0.5, len(z))).axes[0]
    legends = {leg.get_title().get_text(): leg for leg in ax.findobj(Legend)}
    assert set(legends) == {"uncertainty", "component (n)"}
    texts = [t.get_text() for t in legends["component (n)"].texts]
    assert texts == [f"{k} ({int((z == k).sum())})" for k in np.unique(z)]


# ---------------------------------------------------------------------------- large data
N_BIG = 100_000


@pytest.fixture(scope="module")
def big():
    """1e5 observations of three well-separated clusters in D = 3, and their truth."""
    W3 = np.array([0.5, 0.3, 0.2])
    M3 = np.array([[0.0, 0.0, 0.0], [4.0, 3.0, 1.0], [-3.0, 4.0, -2.0]])
    C3 = np.stack([np.eye(3)] * 3)
    X, z = bm.simulate(N_BIG, W3, M3, C3, random_seed=1)
    em = SimpleNamespace(weights=W3, means=M3, covariances=C3)
    return X, z, em


def _n_points_drawn(ax):
    """Markers in the axes' scatter collections (the hexbin's PolyCollection excluded)."""
    return sum(len(c.get_offsets()) for c in ax.collections if isinstance(c, PathCollection))


def _hexbins(ax):
    from matplotlib.collections import PolyCollection

    return [c for c in ax.collections if type(c) is PolyCollection]


def _legend_texts(ax):
    from matplotlib.legend import Legend

    return [t.get_text() for leg in ax.findobj(Legend) for t in leg.texts]


def test_large_data_fit_is_a_hexbin_of_all_points_under_the_ellipses(big):
    import time

    X, _, em = big
    t0 = time.perf_counter()
    fig = plots.plot_fit(X, em)
    _pixels(fig)  # rendering included
    # the 1e5 points as one collection of at most a few thousand hexagons; on the 2 shared
    # cores of the test machine this takes about 1 s, a scatter of 1e5 points several
    elapsed = time.perf_counter() - t0
    assert elapsed < 20.0
    assert "100,000 points as hexagon counts (log scale)" in fig.get_suptitle()
    for ax in fig.axes:
        assert _n_points_drawn(ax) == 0
        (hb,) = _hexbins(ax)
        counts = hb.get_array()
        assert len(counts) < 10_000  # hexagons, not points
        assert counts.sum() == N_BIG  # every observation is counted
        assert hb.norm.__class__.__name__ == "LogNorm"
        # the ellipses (3 components x 1 and 2 sd + mean) are drawn on top of the density
        assert len(ax.get_lines()) == 3 * 3
        assert min(ln.get_zorder() for ln in ax.get_lines()) > hb.get_zorder()
    # one legend (the figure's, in the empty upper triangle), one entry per kind of
    # artist, not per point
    assert not any(_legend_texts(ax) for ax in fig.axes)
    (legend,) = fig.legends
    texts = [t.get_text() for t in legend.texts]
    assert texts == ["data (100,000, hexbin, log counts)", "EM 1 sd", "EM 2 sd"]
    _assert_not_blank(fig)


def test_large_data_subsample_is_seeded_and_stated(big):
    X, _, em = big
    em2 = SimpleNamespace(
        weights=em.weights, means=em.means[:, :2], covariances=em.covariances[:, :2, :2]
    )
    figs = [
        plots.plot_ellipses(X[:, :2], em2, large="subsample", max_points=3000, random_seed=s)
        for s in (5, 5, 6)
    ]
    ax = figs[0].axes[0]
    assert ax.get_title() == "3,000 of 100,000 points shown (random subsample, seed 5)"
    assert _n_points_drawn(ax) == 3000 and not _hexbins(ax)
    offsets = [f.axes[0].collections[0].get_offsets() for f in figs]
    np.testing.assert_array_equal(offsets[0], offsets[1])  # same seed, same points
    assert not np.array_equal(offsets[0], offsets[2])
    # the points drawn are rows of X (a subsample, not a transformation)
    rows = {tuple(r) for r in X[:, :2]}
    assert all(tuple(p) in rows for p in np.asarray(offsets[0][:50]))
    # smaller, fainter markers than at small n
    coll = ax.collections[0]
    assert coll.get_sizes()[0] < 9 and coll.get_alpha() < 0.7
    assert "data (3,000 of 100,000)" in _legend_texts(ax)
    # max_points=None: every point, as before
    ax_all = plots.plot_ellipses(X[:20_000, :2], em2, max_points=None).axes[0]
    assert _n_points_drawn(ax_all) == 20_000 and ax_all.get_title() == ""


def test_small_data_unchanged_by_the_large_n_rule(fit):
    X, z, em, dt = fit
    ax = plots.plot_ellipses(X, em, dt).axes[0]
    assert _n_points_drawn(ax) == len(X) and not _hexbins(ax) and ax.get_title() == ""
    coll = next(c for c in ax.collections if isinstance(c, PathCollection))
    assert coll.get_sizes()[0] == 9 and coll.get_alpha() == 0.7
    u = np.linspace(0.0, 0.5, len(X))
    ax = plots.plot_uncertainty(X, z, u).axes[0]
    coll = next(c for c in ax.collections if isinstance(c, PathCollection))
    np.testing.assert_allclose(coll.get_sizes(), 6.0 + 400.0 * u)
    np.testing.assert_array_equal(coll.get_offsets(), X)  # every point, in order
    assert "\n" not in ax.get_title()


def test_large_data_uncertainty_draws_a_seeded_subsample(big):
    X, z, _ = big
    u = np.random.default_rng(2).uniform(0.0, 0.5, N_BIG)
    fig = plots.plot_uncertainty(X, z, u, random_seed=3)
    ax = fig.axes[0]
    assert ax.get_title().endswith("\n5,000 of 100,000 points shown (random subsample, seed 3)")
    coll = next(c for c in ax.collections if isinstance(c, PathCollection))
    assert len(coll.get_offsets()) == 5000
    same = plots.plot_uncertainty(X, z, u, random_seed=3).axes[0].collections[0]
    np.testing.assert_array_equal(coll.get_offsets(), same.get_offsets())
    # the most uncertain points drawn last (on top), sizes scaled down with n
    sizes = coll.get_sizes()
    assert np.all(np.diff(sizes) >= 0) and sizes.max() < 6.0 + 400.0 * 0.5
    # legends per component (counts of all observations) and per size, never per point
    texts = _legend_texts(ax)
    assert len(texts) == 3 + 3
    assert [f"{k} ({int((z == k).sum()):,})" for k in range(3)] == texts[3:]
    _assert_not_blank(fig)


def test_max_points_is_checked():
    X = np.zeros((10, 2))
    with pytest.raises(ValueError, match="max_points must be at least 1"):
        plots.plot_ellipses(X, max_points=0)
    with pytest.raises(TypeError, match="max_points must be a positive int or None"):
        plots.plot_uncertainty(X, np.zeros(10, int), np.zeros(10), max_points=2.5)
    with pytest.raises(ValueError, match="large must be one of"):
        plots.plot_fit(X, large="dots")


def test_coclustering_of_a_subset_of_observations():
    import xarray as xr

    rng = np.random.default_rng(4)
    N = 9000
    z = rng.integers(0, 3, N)
    obs = np.sort(rng.choice(N, 1500, replace=False))  # a subset with its indices
    P = (z[obs, None] == z[None, obs]).astype(float)
    da = xr.DataArray(P, dims=("obs", "obs2"), coords={"obs": obs, "obs2": obs})
    ax = plots.plot_coclustering(da, z).axes[0]  # the partition of all N
    assert ax.get_title() == (
        "co-clustering, 3 clusters in the point partition\n"
        "1,500 of 9,000 observations shown (random subset)"
    )
    img = next(a for a in ax.get_children() if isinstance(a, AxesImage)).get_array()
    # block diagonal: the partition was matched to the rows through obs, not position
    n0 = np.bincount(z[obs]).max()
    assert img.shape == (1500, 1500)
    assert img[:n0, :n0].min() == 1.0 and img[:n0, n0:].max() == 0.0
    # the partition of the subset itself works too
    assert plots.plot_coclustering(da, z[obs]).axes[0].get_title().count("\n") == 0
    # a plain array needs a partition of its own rows
    with pytest.raises(ValueError, match="without an obs coordinate"):
        plots.plot_coclustering(P, z)
    with pytest.raises(ValueError, match="outside the partition's 5000 observations"):
        plots.plot_coclustering(da, z[:5000])


def test_coclustering_heatmap_shows_at_most_max_points():
    z = np.repeat([0, 1], [1800, 1200])
    P = (z[:, None] == z[None, :]).astype(float)
    ax = plots.plot_coclustering(P, z, random_seed=1).axes[0]
    img = next(a for a in ax.get_children() if isinstance(a, AxesImage)).get_array()
    assert img.shape == (2000, 2000)
    assert ax.get_title().endswith("\n2,000 of 3,000 observations shown (random subset)")
    assert img[:1000, :1000].min() == 1.0  # the larger cluster (about 1200 of 2000) first
    full = plots.plot_coclustering(P, z, max_points=None).axes[0]
    assert next(a for a in full.get_children() if isinstance(a, AxesImage)).get_array().shape == (
        3000,
        3000,
    )


def test_ppc_plot_overlays_observed_and_replicate_densities(fit, tmp_path):
    from scipy.stats import gaussian_kde

    from bayesmix.posterior._ppc import _bandwidth

    X, _, _, dt = fit
    table = bm.ppc_statistics(dt, statistics=["sd", "max"], n_draws=10, random_seed=0)
    fig = plots.plot_ppc(dt, n_replicates=12, table=table, random_seed=1)
    _assert_not_blank(fig)
    assert len(fig.axes) == 2
    for j, ax in enumerate(fig.axes):
        lines = ax.get_lines()
        # 12 replicates, their mean and the observed density
        assert len(lines) == 12 + 2
        assert ax.get_xlabel() == ["a", "b"][j]
        observed = lines[-1]
        assert observed.get_label() == "observed"
        grid, dens = observed.get_xydata().T
        # the binned density is the Gaussian KDE with Silverman's bandwidth (256 bins over
        # a range of ~12 bandwidths: the binning shifts points by < 0.03 h; 2 % of the peak)
        h = _bandwidth(X[:, j])
        ref = gaussian_kde(X[:, j], bw_method=h / X[:, j].std(ddof=1))(grid)
        np.testing.assert_allclose(dens, ref, atol=0.02 * ref.max())
        texts = [t.get_text() for t in ax.texts]
        assert any("p(sd) = " in t and "p(max) = " in t for t in texts)
    path = tmp_path / "ppc.png"
    fig.savefig(path, dpi=60)
    assert path.stat().st_size > 5_000
    # a posterior_predictive group already there is used as it is
    pp = bm.posterior_predictive(dt, n_draws=3, random_seed=0)
    fig = plots.plot_ppc(pp, n_replicates=100, features=["b"])
    assert len(fig.axes[0].get_lines()) == 2 * 3 + 2
    with pytest.raises(ValueError, match="features"):
        plots.plot_ppc(dt, features=["nope"])
