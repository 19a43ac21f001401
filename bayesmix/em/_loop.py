"""The EM iterations behind :func:`bayesmix.fit_em`: one run to the tolerance stop, the
restarts, the start portfolio of ``init="auto"`` (short runs from every start, the best
continued), and the check for collapsed components.

A run works on a :class:`_Model` (weights, means, the covariance type's native
parameters and their precision Cholesky factors) and alternates the E-step of the
density backend (numpy, or the fused numba pass on large data) with the M-step of
:mod:`bayesmix.core._covariance`, ML or MAP.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass

import numpy as np

from bayesmix.core import _covariance as cv
from bayesmix.core import _gaussian as gs
from bayesmix.core import _mclust_models as mm
from bayesmix.em import _missing
from bayesmix.em._starts import (
    initial_labels,
    initial_resp,
    nearest,
    one_hot,
    stats_from_labels,
    stats_from_resp,
)

#: init="auto": EM updates of the short run from every start of the portfolio ...
_AUTO_SHORT_ITER = 20
#: ... and how many of the best short runs are then run to convergence (the
#: hierarchical start, mclust's, always is)
_AUTO_FINALISTS = 2
#: ... except on small data (n_obs x n_components up to this), where every start runs to
#: convergence: it costs milliseconds, and a ridge that 20 updates have not climbed yet
#: cannot hide the best mode (Old Faithful, full, K=3, MAP: a finalist-only portfolio
#: stopped at log posterior -1158.87 where another start reaches -1155.23)
_AUTO_ALL_FINAL_WORK = 100_000
_HC = "hierarchical"
_ENGINES = ("auto", "numpy", "numba")
#: data with at least this many (observation x component) pairs use the numba pass
_NUMBA_MIN_WORK = 20_000
#: a component is flagged as collapsed when an eigenvalue of its covariance, relative
#: to the data covariance in the same direction, falls below this (a standard
#: deviation 1e-4 times the data's), ...
_COLLAPSE_REL_EIG = 1e-8
#: ... or when its effective number of points is below this
_COLLAPSE_MIN_NK = 1.0
# =========================================================================== helpers
_logsumexp_rows = gs.logsumexp_rows


def _stats_from_resp(X, covariance, resp, n_gauss=None, sample_weight=None):
    """Weighted ``nk`` (all columns, noise last) and ``sx``, ``sxx`` of the Gaussian columns."""
    n_gauss = resp.shape[1] if n_gauss is None else n_gauss
    if sample_weight is not None:
        resp = resp * sample_weight[:, None]
    rg = np.ascontiguousarray(resp[:, :n_gauss])
    if covariance == "tied" and (sample_weight is not None or resp.shape[1] > n_gauss):
        sxx = np.ascontiguousarray((X * rg.sum(1)[:, None]).T) @ X
    else:
        sxx = cv.SECOND_MOMENTS[covariance](X, rg)
    return resp.sum(0), np.ascontiguousarray(rg.T) @ X, sxx


class _Model:
    """Parameters in the fitting frame (data centred at the data mean)."""

    __slots__ = ("cov", "means", "prec_chol", "state", "weights")

    def __init__(self, weights, means, cov, prec_chol, state=None):
        self.weights, self.means, self.cov, self.prec_chol = weights, means, cov, prec_chol
        self.state = state  # what an iterative mclust M-step carries to the next one


def _m_step(nk, sx, sxx, covariance, n_obs, reg_covar, map_prior, state=None):
    """The M-step; ``covariance`` is a native type or one of mclust's ten other models
    (``_RunSettings.m_key``), whose M-step may start from the previous one's ``state``."""
    K = sx.shape[0]
    weights, means = cv.m_step_weights_means(nk[:K], sx, n_obs, map_prior)
    if nk.shape[0] > K:  # a noise component: K + 1 weights (a Dirichlet over K + 1 for MAP)
        weights = cv.m_step_weights_means(nk, np.zeros((K + 1, sx.shape[1])), n_obs, map_prior)[0]
    if covariance in mm.MODEL_M_STEP:
        # a collapsed component (zero determinant) gives inf/NaN covariances, which the
        # precision factor below turns into the usual SingularCovarianceError
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            try:
                step = mm.MODEL_M_STEP[covariance]
                cov, state = step(nk[:K], sx, sxx, reg_covar, state, map_prior)
            except np.linalg.LinAlgError:  # an SVD / eigen-decomposition of NaN
                cov = np.nan
        if map_prior is not None and covariance in mm.UNSHRUNK_MEANS:
            means = sx / (nk[:K] + cv.NK_EPS)[:, None]  # mclust's meeeip shrinks no mean
        if not np.all(np.isfinite(cov)):
            raise gs.singular_covariance_error("covariances", reg_covar)
        covariance = mm.BASE_TYPE[covariance]
    else:
        cov = cv.M_STEP[covariance](nk[:K], sx, sxx, n_obs, reg_covar, map_prior)
    prec = cv.PRECISION_CHOLESKY[covariance](cov, reg_covar)
    return _Model(weights, means, cov, prec, state)


def _init_array(init, X, n_components):
    """Classify an array init: (N, K) responsibilities or (K, D) means."""
    N, D = X.shape
    K = n_components
    arr = np.asarray(init, dtype=float)
    if arr.ndim != 2 or not np.all(np.isfinite(arr)):
        raise ValueError(
            f"init array must be finite and 2-D: responsibilities of shape (N, K)=({N}, {K}) "
            f"or means of shape (K, D)=({K}, {D}); got shape {arr.shape}."
        )
    is_resp_shape = arr.shape == (N, K)
    is_means_shape = arr.shape == (K, D)
    looks_like_resp = (
        is_resp_shape and np.all(arr >= 0) and np.allclose(arr.sum(1), 1.0, rtol=0, atol=1e-8)
    )
    if looks_like_resp:
        return "resp", arr
    if is_means_shape:
        return "means", arr
    if is_resp_shape:
        raise ValueError(
            "init responsibilities of shape (N, K) must be non-negative with rows summing to 1; "
            f"row sums range over [{arr.sum(1).min():.3g}, {arr.sum(1).max():.3g}]."
        )
    raise ValueError(
        f"init array has shape {arr.shape}; expected responsibilities (N, K)=({N}, {K}) or "
        f"means (K, D)=({K}, {D})."
    )


def _initial_resp(init, X, K, rng, covariance="full", sample_weight=None):
    """Initial responsibilities (N, K), or (labels-based resp, means override)."""
    if isinstance(init, str):
        return initial_resp(init, X, K, rng, covariance, sample_weight), None
    kind, arr = init
    if kind == "resp":
        return arr, None
    return one_hot(nearest(X, arr), K), arr


# =========================================================================== the EM loop
@dataclass(frozen=True, eq=False)
class _RunSettings:
    """What every EM run of one :func:`fit_em` call shares (the fitting frame is centred)."""

    covariance: str
    n_components: int
    max_iter: int
    tol: float
    reg_covar: float
    engine: str
    progress: bool
    prior: object  # GMMPrior or None (maximum likelihood)
    shift: np.ndarray  # the data mean: original coordinates = fitting frame + shift
    map_prior: object  # the prior in the fitting frame (cv.MapPrior), or None
    sample_weight: np.ndarray | None = None  # frequency weights (N,), or None
    n_eff: float | None = None  # the sum of the weights (N unweighted)
    log_noise: float | None = None  # -log(noise volume) with a noise component, else None
    missing: object = None  # MissingPatterns when X has NaN (bayesmix.em._missing), else None
    noise_log_sides: np.ndarray | None = None  # the noise box's log sides (D,), with gaps
    model_name: str | None = None  # mclust's name of the model ("VVV" for "full", "VEV"...)

    @property
    def m_key(self):
        """The M-step's key: the native type, or the mclust model it stands for when that
        is not the type's own model (``covariance="full"``, ``model_name="VEV"``)."""
        if self.model_name is None or mm.MODEL_OF_TYPE.get(self.covariance) == self.model_name:
            return self.covariance
        return self.model_name

    def start_data(self, X):
        """The data the starts and the first M-step see: gaps filled by 0 (the observed
        feature means in the centred frame); ``X`` itself without gaps."""
        return X if self.missing is None else _missing.filled(X)

    def n_obs(self, X):
        """The number of observations the M-step and the tolerance use (sum of weights)."""
        return X.shape[0] if self.n_eff is None else self.n_eff

    def to_full(self, model):
        """Full covariance matrices (K, D, D) of a model."""
        return cv.TO_FULL[self.covariance](model.cov, self.n_components, self.shift.size)

    def objective(self, ll, model):
        """The log-likelihood (ML) or the log posterior up to the evidence (MAP)."""
        if self.prior is None:
            return ll
        K = self.n_components
        w = model.weights
        lp = self.prior.log_prior(
            w[:K] / w[:K].sum(), model.means + self.shift, self.to_full(model), self.covariance
        )
        if self.log_noise is not None:  # the Dirichlet is over the K + 1 weights
            a = self.prior.weight_concentration
            lp += _dirichlet_logpdf(w, a) - _dirichlet_logpdf(w[:K] / w[:K].sum(), a)
        return ll + lp


@dataclass(frozen=True, eq=False)
class _RunResult:
    """The outcome of one EM run, in the fitting frame."""

    model: _Model
    log_likelihood: float
    objective: float
    history: tuple
    n_iter: int
    converged: bool
    labels: np.ndarray
    nk: np.ndarray
    stats: tuple = ()  # (nk, sx, sxx) of the last E-step, to continue the run
    strategy: str | None = None  # the initialisation strategy of the run


def _dirichlet_logpdf(w, a):
    """Symmetric Dirichlet(a) log density of the weights ``w`` (K,)."""
    from scipy.special import gammaln

    K = w.shape[0]
    return float(
        gammaln(K * a) - K * gammaln(a) + (a - 1.0) * np.log(np.clip(w, 1e-300, None)).sum()
    )


#: initial responsibility of the noise class (every point), as a starting weight
_NOISE_INIT = 0.1


def _run_em(X, resp, means_init, cfg, label="", max_iter=None, stats=None):
    """One EM run from initial responsibilities (or their statistics ``stats``), and
    optionally initial means."""
    N = cfg.n_obs(X)
    K = cfg.n_components
    if stats is None:
        if cfg.log_noise is not None and resp.shape[1] == K:
            resp = np.column_stack([(1.0 - _NOISE_INIT) * resp, np.full(X.shape[0], _NOISE_INIT)])
        stats = _stats_from_resp(cfg.start_data(X), cfg.covariance, resp, K, cfg.sample_weight)
    nk, sx, sxx = stats
    model = _m_step(nk, sx, sxx, cfg.m_key, N, cfg.reg_covar, cfg.map_prior)
    if means_init is not None:
        model.means = np.array(means_init, dtype=float)
    return _em_loop(X, model, cfg, [], cfg.max_iter if max_iter is None else max_iter, label)


def _continue_em(X, run, cfg, label=""):
    """Continue a run stopped before convergence, up to ``cfg.max_iter`` updates in all."""
    if run.converged or run.n_iter >= cfg.max_iter:
        return run
    model = _m_step(
        *run.stats, cfg.m_key, cfg.n_obs(X), cfg.reg_covar, cfg.map_prior, run.model.state
    )
    out = _em_loop(X, model, cfg, list(run.history), cfg.max_iter - run.n_iter - 1, label)
    return dataclasses.replace(out, strategy=run.strategy)


def _em_loop(X, model, cfg, history, max_iter, label):
    """E-step / M-step updates from ``model``; ``history`` holds the earlier objectives."""
    # one E-step pass (log-likelihood, sufficient statistics, labels) of the density
    # backend: numpy, or the numba kernels of bayesmix.core._estep_kernels
    estep = gs.backend("numpy" if cfg.engine == "numpy" else "numba").estep
    labels = np.empty(X.shape[0], dtype=np.int64)
    if cfg.missing is not None:  # data with gaps: the expected statistics
        e_gaps = _missing.missing_estep(X, cfg, labels)
        return _iterate(e_gaps, model, cfg, cfg.n_obs(X), history, max_iter, label, labels)

    def e_step(m):
        return estep(
            X,
            cfg.covariance,
            m.weights,
            m.means,
            m.prec_chol,
            labels,
            cfg.sample_weight,
            cfg.log_noise,
        )

    return _iterate(e_step, model, cfg, cfg.n_obs(X), history, max_iter, label, labels)


def _iterate(e_step, model, cfg, N, history, max_iter, label, labels=None):
    """The EM iterations given an E-step ``e_step(model) -> (ll, nk, sx, sxx)``: the
    in-memory pass here, a Dask reduction in :mod:`bayesmix.em._dask` (one loop, one
    convergence rule)."""
    converged = False
    for it in range(max_iter + 1):
        ll, nk, sx, sxx = e_step(model)
        obj = cfg.objective(ll, model)
        history.append(obj)
        if cfg.progress and (it % 10 == 0):
            print(f"[fit_em{label}] iteration {it}: objective {obj:.10g}", file=sys.stderr)
        if len(history) > 1 and abs(obj - history[-2]) <= cfg.tol * N:
            converged = True
            break
        if it == max_iter:
            break
        model = _m_step(nk, sx, sxx, cfg.m_key, N, cfg.reg_covar, cfg.map_prior, model.state)
    return _RunResult(
        model=model,
        log_likelihood=ll,
        objective=obj,
        history=tuple(history),
        n_iter=len(history) - 1,
        converged=converged,
        labels=labels,
        nk=nk,
        stats=(nk, sx, sxx),
    )


def _best_of_restarts(Xc, init, cfg, n_init, rng):
    """``n_init`` EM runs from independent initialisations; the highest objective wins."""
    best = None
    for run in range(n_init):
        if cfg.progress:
            print(f"[fit_em] run {run + 1}/{n_init}", file=sys.stderr)
        resp, init_means = _initial_resp(
            init, cfg.start_data(Xc), cfg.n_components, rng, cfg.covariance, cfg.sample_weight
        )
        out = _run_em(Xc, resp, init_means, cfg, f" run {run + 1}" if n_init > 1 else "")
        if best is None or out.objective > best.objective:
            best = out
    name = init if isinstance(init, str) else f"array ({init[0]})"
    return dataclasses.replace(best, strategy=name)


def _portfolio(n_init, n_components):
    """The starts of init="auto", in the order they are drawn (one for K=1: all agree)."""
    if n_components == 1:
        return [_HC]
    return [_HC] + ["kmeans-standardized", "kmeans"] * n_init + ["random"]


def _start(name, Xc, cfg, rng):
    """``(None, statistics)`` of the first M-step of a start, computed without the dense
    products of ``_stats_from_resp`` (by groups for a hard partition), which on large
    data cost more than an E-step."""
    K = cfg.n_components
    w = cfg.sample_weight
    Xc = cfg.start_data(Xc)
    labels = initial_labels(name, Xc, K, rng, cfg.covariance, w)
    resp = initial_resp(name, Xc, K, rng, cfg.covariance, w) if labels is None else None
    if w is not None or cfg.log_noise is not None:  # weighted or noise: the general path
        return (one_hot(labels, K) if resp is None else resp), None
    if resp is not None:
        return None, stats_from_resp(Xc, cfg.covariance, resp)
    return None, stats_from_labels(Xc, cfg.covariance, labels, K)


def _best_of_portfolio(Xc, cfg, n_init, rng):
    """init="auto": short EM runs from every start, the best ones run to convergence."""
    short = []
    failure = None
    for name in _portfolio(n_init, cfg.n_components):
        label = f" {name} start"
        if cfg.progress:
            print(f"[fit_em] short run from a {name} start", file=sys.stderr)
        try:
            resp, stats = _start(name, Xc, cfg, rng)
            n_short = min(_AUTO_SHORT_ITER, cfg.max_iter)
            out = _run_em(Xc, resp, None, cfg, label, n_short, stats=stats)
        except cv.SingularCovarianceError as err:  # only with reg_covar=0: try the others
            failure = err
            continue
        short.append(dataclasses.replace(out, strategy=name))
    if not short:
        raise failure
    # the best short runs, and always mclust's own start, the hierarchical one, continue
    score = [r.objective if np.isfinite(r.objective) else -np.inf for r in short]
    order = sorted(range(len(short)), key=lambda i: -score[i])
    small = Xc.shape[0] * cfg.n_components <= _AUTO_ALL_FINAL_WORK
    n_final = len(short) if small else _AUTO_FINALISTS
    keep = set(order[:n_final]) | {i for i, r in enumerate(short) if r.strategy == _HC}
    finals = []
    for i in sorted(keep):
        try:
            finals.append(_continue_em(Xc, short[i], cfg, f" {short[i].strategy} start"))
        except cv.SingularCovarianceError as err:
            failure = err
    if not finals:
        raise failure
    return max(finals, key=lambda r: r.objective if np.isfinite(r.objective) else -np.inf)


_numba_available = gs.numba_available


def _collapse_check(model_full_cov, nk, covariance, data_cov, reg_covar):
    """Indices of collapsed components (see EMResult.collapsed) and a reason for each."""
    D = data_cov.shape[0]
    var = np.diag(data_cov)
    keep = var > 0  # constant features are reported separately
    found = []
    if not keep.any():
        return found
    # work in correlation units (same generalised eigenvalues) with a 1e-12 jitter, so a
    # rank-deficient data covariance (fewer distinct points than features, collinear
    # features) does not make the Cholesky factorisation fail
    s = np.sqrt(var[keep])
    ss = np.outer(s, s)
    C = data_cov[np.ix_(keep, keep)] / ss
    L = np.linalg.cholesky(C + 1e-12 * np.eye(C.shape[0]))
    for k in range(model_full_cov.shape[0]):
        if nk[k] < _COLLAPSE_MIN_NK:
            found.append((k, f"only {nk[k]:.3g} effective points"))
            continue
        S = model_full_cov[k][np.ix_(keep, keep)]
        # a data variance near the underflow limit (1e-286) against reg_covar overflows
        # the ratio: such a component is far from collapsed (rel = inf, not flagged)
        with np.errstate(over="ignore", invalid="ignore"):
            Z = np.linalg.solve(L, np.linalg.solve(L, S / ss).T)
            rel = (
                float(np.linalg.eigvalsh(0.5 * (Z + Z.T)).min()) if np.isfinite(Z).all() else np.inf
            )
        eig_abs = float(np.linalg.eigvalsh(S).min())
        if rel < _COLLAPSE_REL_EIG:
            found.append((k, f"covariance eigenvalue {rel:.2g} x the data variance"))
        elif reg_covar > 0 and eig_abs <= 2.0 * reg_covar:
            found.append((k, f"covariance eigenvalue {eig_abs:.2g} set by reg_covar={reg_covar:g}"))
    del D
    return found
