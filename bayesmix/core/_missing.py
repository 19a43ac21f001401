r"""Gaussian mixtures on data with missing entries (NaN): the observed-data layer.

NaN entries are missing at random (MAR). A row's likelihood is the marginal density of
its observed coordinates ``o``: component k contributes ``N(x_o | mu_ko, Sigma_koo)``,
and the missing coordinates ``m`` have the conditional Gaussian

.. math:: x_m \mid x_o, k \sim N\big(\mu_{km} + \Sigma_{kmo}\Sigma_{koo}^{-1}(x_o - \mu_{ko}),
          \; \Sigma_{kmm} - \Sigma_{kmo}\Sigma_{koo}^{-1}\Sigma_{kom}\big).

EM (Ghahramani & Jordan 1994) weights the *expected* sufficient statistics by the
observed-data responsibilities: ``E[x | x_o, k]`` is the row with its gaps filled by the
conditional mean, and ``E[x x^T | x_o, k]`` adds the conditional covariance on the
missing block. These statistics feed the unchanged M-step of
:mod:`bayesmix.core._covariance` (``M_STEP``), so every covariance type of that table
gets the exact EM: the complete-data log-likelihood is linear in them. Components are
evaluated through their full (K, D, D) covariances (``TO_FULL``), whatever the type.

Rows are grouped by missingness pattern (:class:`MissingPatterns`), so each (pattern,
component) pair needs one Cholesky factorisation of its observed block. The numpy
functions here are the reference; :func:`expected_stats` runs the numba kernel
:func:`bayesmix.core._missing_kernels.pass_missing` (``engine="numba"``).

A noise component (a uniform density on a box with sides ``s_j``) has the marginal
``prod_{j in o} 1 / s_j`` on a row's observed coordinates.
"""

from __future__ import annotations

import numpy as np

from bayesmix.core._constants import LOG_2PI

__all__ = [
    "MissingPatterns",
    "check_gaps",
    "check_missing",
    "conditional_impute",
    "expected_stats",
    "expected_stats_numpy",
    "log_joint_missing",
    "log_joint_missing_draws",
    "missing_patterns",
    "second_moment_kind",
]

#: rows per work item of the numba kernel
_ITEM_ROWS = 1024


class MissingPatterns:
    """Rows of ``X`` grouped by missingness pattern.

    Attributes
    ----------
    observed : ndarray of bool, shape (N, D)
        True where ``X`` is observed.
    patterns : ndarray of bool, shape (P, D)
        The distinct patterns (True = observed).
    inverse : ndarray of int, shape (N,)
        The pattern of each row.
    order : ndarray of int, shape (N,)
        Rows sorted by pattern (stable).
    starts : ndarray of int, shape (P + 1,)
        Pattern p's rows are ``order[starts[p]:starts[p + 1]]``.
    n_missing : int
        The number of missing entries.
    """

    def __init__(self, X):
        obs = ~np.isnan(X)
        self.observed = obs
        self.n_missing = int(obs.size - np.count_nonzero(obs))
        packed = np.packbits(obs, axis=1)
        uniq, inverse = np.unique(packed, axis=0, return_inverse=True)
        inverse = inverse.reshape(-1)
        self.patterns = np.unpackbits(uniq, axis=1, count=X.shape[1]).astype(bool)
        self.inverse = inverse
        self.order = np.argsort(inverse, kind="stable")
        self.starts = np.concatenate([[0], np.cumsum(np.bincount(inverse, minlength=len(uniq)))])
        self._kernel_inputs = None

    @property
    def n_patterns(self):
        """The number of distinct patterns P."""
        return self.patterns.shape[0]

    def groups(self):
        """``(observed indices, missing indices, rows)`` for every pattern."""
        for p in range(self.n_patterns):
            o = np.flatnonzero(self.patterns[p])
            m = np.flatnonzero(~self.patterns[p])
            yield o, m, self.order[self.starts[p] : self.starts[p + 1]]

    def kernel_inputs(self, X, sample_weight):
        """Sorted rows, sorted weights, work items, pattern indices (cached)."""
        if self._kernel_inputs is None:
            P, D = self.patterns.shape
            pat_idx = np.empty((P, D), dtype=np.int64)
            for p in range(P):
                pat_idx[p] = np.concatenate(
                    [np.flatnonzero(self.patterns[p]), np.flatnonzero(~self.patterns[p])]
                )
            items = [
                (p, a, min(a + _ITEM_ROWS, self.starts[p + 1]))
                for p in range(P)
                for a in range(self.starts[p], self.starts[p + 1], _ITEM_ROWS)
            ]
            Xs = np.ascontiguousarray(X[self.order])
            ws = np.ones(X.shape[0]) if sample_weight is None else sample_weight[self.order]
            self._kernel_inputs = (
                Xs,
                np.ascontiguousarray(ws, dtype=np.float64),
                np.asarray(items, dtype=np.int64).reshape(-1, 3),
                pat_idx,
                self.patterns.sum(1).astype(np.int64),
            )
        return self._kernel_inputs


def check_gaps(out, name, feature_names, empty_features=True, offset=0):
    """The data check of ``check_data(..., missing="mar")``: NaN allowed (missing); inf,
    rows with no observed entry and features with no observed value refused (rows
    numbered from ``offset``: a Dask chunk's first row)."""
    n_inf = int(np.isinf(out).sum())
    if n_inf:
        bad_rows = offset + np.flatnonzero(np.isinf(out).any(axis=1))
        raise ValueError(
            f"{name} contains {n_inf} infinite value(s) in {bad_rows.size} row(s); the first is "
            f"row {int(bad_rows[0])}. Infinite values are not missing values: replace them "
            "(with NaN to treat them as missing, or with finite numbers)."
        )
    obs = ~np.isnan(out)
    if obs.all():
        return
    empty = offset + np.flatnonzero(~obs.any(axis=1))
    if empty.size:
        raise ValueError(
            f"{name} has {empty.size} row(s) with no observed entry (every value NaN): "
            f"row(s) {', '.join(map(str, empty[:10]))}{' ...' if empty.size > 10 else ''}. "
            "Such a row carries no information about the mixture; drop it (for example "
            "X[~np.isnan(X).all(axis=1)])."
        )
    cols = np.flatnonzero(~obs.any(axis=0)) if empty_features else ()
    if len(cols):
        raise ValueError(
            f"{name} feature(s) {[feature_names[j] for j in cols]} have no observed value "
            "(every entry NaN); drop them."
        )


#: the values of ``missing``: NaN entries are missing at random, or an error
MISSING_MODES = ("mar", "error")


def check_missing(missing, name="missing"):
    """Check a ``missing`` argument: ``"mar"`` (NaN entries are missing at random) or
    ``"error"`` (NaN is refused).

    Examples
    --------
    >>> check_missing("error")
    'error'
    """
    if not isinstance(missing, str) or missing not in MISSING_MODES:
        raise ValueError(
            f"{name} must be one of {list(MISSING_MODES)} ('mar': NaN entries are missing at "
            f"random and handled by the observed-data likelihood; 'error': refuse NaN); got "
            f"{missing!r}."
        )
    return missing


def missing_patterns(X):
    """The :class:`MissingPatterns` of ``X``, or None when ``X`` has no NaN."""
    if not np.isnan(X).any():
        return None
    return MissingPatterns(X)


def second_moment_kind(second_moments, n_features):
    """How a covariance type's ``SECOND_MOMENTS`` entry lays out ``Sxx``.

    ``"full"``: per component (K, D, D); ``"total"``: summed over components (D, D);
    ``"diag"``: per-component diagonals (K, D). Found by calling it on one row with
    ``K = D + 1`` components, so that the three shapes differ; any table entry (the
    mclust models included) is served.
    """
    D = n_features
    s = np.asarray(second_moments(np.ones((1, D)), np.ones((1, D + 1))))
    if s.shape == (D + 1, D, D):
        return "full"
    if s.shape == (D, D):
        return "total"
    if s.shape == (D + 1, D):
        return "diag"
    raise ValueError(f"unknown second-moment layout of shape {s.shape} for D={D}")


def _reduce_sxx(sxx_full, kind):
    if kind == "full":
        return sxx_full
    if kind == "total":
        return sxx_full.sum(0)
    return np.diagonal(sxx_full, axis1=1, axis2=2).copy()


def _noise_pattern_const(patterns, log_w_noise, noise_log_sides):
    """Per pattern: the noise's log weight plus its log density on the observed sides."""
    return log_w_noise - patterns.astype(float) @ noise_log_sides


def _pattern_pass(Xp, o, m, means, cov):
    """Per component k: log N(x_o | mu_ko, Sigma_koo) (n, K), conditional means of the
    missing block (K, n, |m|) and conditional covariances (K, |m|, |m|)."""
    from scipy.linalg import solve_triangular  # lazy: check_data imports this module

    K = means.shape[0]
    n = Xp.shape[0]
    logp = np.empty((n, K))
    cmean = np.empty((K, n, m.size))
    ccov = np.empty((K, m.size, m.size))
    Xo = Xp[:, o]
    for k in range(K):
        S = cov[k]
        L = np.linalg.cholesky(S[np.ix_(o, o)])
        z = solve_triangular(L, (Xo - means[k, o]).T, lower=True)  # (|o|, n)
        logp[:, k] = (
            -0.5 * (o.size * LOG_2PI + np.einsum("ij,ij->j", z, z)) - np.log(np.diag(L)).sum()
        )
        Wm = solve_triangular(L, S[np.ix_(o, m)], lower=True)  # (|o|, |m|)
        cmean[k] = means[k, m] + z.T @ Wm
        ccov[k] = S[np.ix_(m, m)] - Wm.T @ Wm
    return logp, cmean, ccov


def log_joint_missing(X, pats, weights, means, cov, noise=None):
    """``log w_k + log N(x_o | mu_ko, Sigma_koo)`` (N, K) on each row's observed coordinates.

    ``noise``: ``(log w_noise, noise_log_sides (D,))`` appends the noise column.
    """
    N = X.shape[0]
    K = means.shape[0]
    out = np.empty((N, K if noise is None else K + 1))
    with np.errstate(divide="ignore"):
        logw = np.log(weights[:K])
    for o, m, rows in pats.groups():
        logp, _, _ = _pattern_pass(X[rows], o, m, means, cov)
        out[rows, :K] = logp + logw
    if noise is not None:
        out[:, K] = _noise_pattern_const(pats.patterns, noise[0], noise[1])[pats.inverse]
    return out


def log_joint_missing_draws(X, weights, means, cov):
    """``log w_sk + log N(x_no | mu_sko, Sigma_skoo)`` (S, N, K) for S parameter sets.

    The observed-data log joint of each row under each of a batch of mixtures (posterior
    draws): per missingness pattern, one batched Cholesky factorisation of the observed
    blocks of all (draw, component) pairs. Fully observed data give the ordinary
    mixture log joint.

    Parameters
    ----------
    X : ndarray, shape (N, D)
        NaN where missing (no row entirely NaN).
    weights : ndarray, shape (S, K)
    means : ndarray, shape (S, K, D)
    cov : ndarray, shape (S, K, D, D)

    Returns
    -------
    ndarray, shape (S, N, K)

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0.0, np.nan]])
    >>> lj = log_joint_missing_draws(X, np.ones((1, 1)), np.zeros((1, 1, 2)),
    ...                              np.eye(2)[None, None])
    >>> round(float(lj[0, 0, 0]), 6)  # log N(0 | 0, 1)
    -0.918939
    """
    X = np.asarray(X, dtype=float)
    weights = np.asarray(weights, dtype=float)
    means = np.asarray(means, dtype=float)
    cov = np.asarray(cov, dtype=float)
    S, K = weights.shape
    pats = MissingPatterns(X)
    out = np.empty((S, X.shape[0], K))
    with np.errstate(divide="ignore"):
        logw = np.log(weights)
    for o, _, rows in pats.groups():
        L = np.linalg.cholesky(cov[:, :, o[:, None], o[None, :]])  # (S, K, |o|, |o|)
        diff = X[rows][:, o][None, None] - means[:, :, None, o]  # (S, K, n, |o|)
        y = np.linalg.solve(L, np.swapaxes(diff, -1, -2))  # (S, K, |o|, n)
        half_logdet = np.log(np.diagonal(L, axis1=-2, axis2=-1)).sum(-1)  # (S, K)
        lp = -0.5 * (o.size * LOG_2PI + (y * y).sum(-2)) - half_logdet[..., None]
        out[:, rows, :] = np.swapaxes(lp, 1, 2) + logw[:, None, :]
    return out


def _logsumexp(a):
    mx = a.max(axis=1)
    return mx + np.log(np.exp(a - mx[:, None]).sum(axis=1))


def expected_stats_numpy(X, pats, weights, means, cov, labels, sample_weight=None, noise=None):
    """The EM pass on data with gaps (numpy reference).

    Parameters
    ----------
    X : ndarray, shape (N, D), NaN where missing
    pats : MissingPatterns
    weights : ndarray, shape (K,) or (K + 1,) with noise (last)
    means : ndarray, shape (K, D)
    cov : ndarray, shape (K, D, D)
        Full covariance matrices.
    labels : ndarray of int64, shape (N,)
        Written with the most probable component of each row (``K`` for noise).
    sample_weight : ndarray, shape (N,), optional
    noise : ndarray, shape (D,), optional
        The noise box's log side lengths (with a noise component).

    Returns
    -------
    ll, nk (K or K + 1,), sx (K, D), sxx (K, D, D)
        Observed-data log-likelihood and the expected sufficient statistics.
    """
    _N, D = X.shape
    K = means.shape[0]
    with np.errstate(divide="ignore"):
        logw = np.log(weights)
    nconst = None if noise is None else _noise_pattern_const(pats.patterns, logw[K], noise)
    ll, nk = 0.0, np.zeros(weights.shape[0])
    sx, sxx = np.zeros((K, D)), np.zeros((K, D, D))
    for p, (o, m, rows) in enumerate(pats.groups()):
        Xp = X[rows]
        logp, cmean, ccov = _pattern_pass(Xp, o, m, means, cov)
        lj = logp + logw[:K]
        if nconst is not None:
            lj = np.column_stack([lj, np.full(rows.size, nconst[p])])
        lse = _logsumexp(lj)
        r = np.exp(lj - lse[:, None])
        labels[rows] = np.argmax(lj, axis=1)
        wp = np.ones(rows.size) if sample_weight is None else sample_weight[rows]
        ll += float(wp @ lse)
        r *= wp[:, None]
        nk += r.sum(0)
        for k in range(K):
            xh = Xp.copy()
            xh[:, m] = cmean[k]
            rk = r[:, k]
            sx[k] += rk @ xh
            sxx[k] += (xh * rk[:, None]).T @ xh
            sxx[k][np.ix_(m, m)] += rk.sum() * ccov[k]
    return ll, nk, sx, sxx


def expected_stats(
    X, pats, weights, means, cov, labels, sample_weight=None, noise=None, kind="full"
):
    """The EM pass of :func:`expected_stats_numpy` through the numba kernel.

    ``kind`` (:func:`second_moment_kind`): ``"diag"`` accumulates diagonals only. Returns
    ``(ll, nk, sx, sxx)`` with ``sxx`` full (K, D, D), or (K, D) for ``"diag"``.
    """
    from bayesmix.core import _missing_kernels  # deliberately lazy: numba is heavy

    Xs, ws, items, pat_idx, pat_nobs = pats.kernel_inputs(X, sample_weight)
    K, D = means.shape
    with np.errstate(divide="ignore"):
        logw = np.log(weights)
    nconst = (
        np.empty(0)
        if noise is None
        else np.ascontiguousarray(_noise_pattern_const(pats.patterns, logw[K], noise))
    )
    lab = np.empty(X.shape[0], dtype=np.int64)
    a_ll, a_n, a_x, a_xx, flag = _missing_kernels.pass_missing(
        Xs,
        ws,
        items,
        pat_idx,
        pat_nobs,
        np.ascontiguousarray(means, dtype=np.float64),
        np.ascontiguousarray(cov, dtype=np.float64),
        np.ascontiguousarray(logw[:K]),
        nconst,
        kind == "diag",
        lab,
    )
    if flag.any():
        raise np.linalg.LinAlgError("an observed block of a covariance is not positive definite")
    labels[pats.order] = lab
    sxx = a_xx.sum(0)
    if kind != "diag":
        full = np.empty((K, D, D))
        iu = np.triu_indices(D)
        full[:, iu[0], iu[1]] = sxx
        full[:, iu[1], iu[0]] = sxx
        sxx = full
    return float(a_ll.sum()), a_n.sum(0), a_x.sum(0), sxx


def conditional_impute(X, pats, weights, means, cov, *, rng=None, n_draws=None):
    """Fill the gaps of ``X`` from the mixture's conditional distribution given ``x_o``.

    Without ``rng``: the conditional mean ``sum_k r_k(x_o) E[x_m | x_o, k]``, shape (N, D).
    With ``rng`` and ``n_draws``: ``n_draws`` draws (n_draws, N, D), each row's component
    drawn from its responsibilities and its missing block from that component's
    conditional Gaussian. Observed entries are copied unchanged. ``weights`` are those of
    the Gaussian components (a noise component is left out: the gaps are filled given
    that the row is not noise).
    """
    K = means.shape[0]
    with np.errstate(divide="ignore"):
        logw = np.log(weights[:K])
    draws = n_draws is not None
    out = np.repeat(X[None], n_draws if draws else 1, axis=0)
    for o, m, rows in pats.groups():
        if not m.size:
            continue
        logp, cmean, ccov = _pattern_pass(X[rows], o, m, means, cov)
        lj = logp + logw
        r = np.exp(lj - _logsumexp(lj)[:, None])  # (n, K)
        if not draws:
            out[0][np.ix_(rows, m)] = np.einsum("nk,knj->nj", r, cmean)
            continue
        chol = np.linalg.cholesky(ccov + 1e-300 * np.eye(m.size))  # (K, |m|, |m|)
        cum = np.cumsum(r, axis=1)
        for s in range(n_draws):
            u = rng.random(rows.size)
            z = np.minimum((cum < u[:, None]).sum(1), K - 1)
            eps = rng.standard_normal((rows.size, m.size))
            vals = cmean[z, np.arange(rows.size)] + np.einsum("nij,nj->ni", chol[z], eps)
            out[s][np.ix_(rows, m)] = vals
    return out if draws else out[0]
