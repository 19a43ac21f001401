"""Model comparison and the choice of the number of components.

* :func:`loo`: PSIS-LOO via :func:`arviz_stats.loo` on the ``log_likelihood`` group
  (the pointwise marginal mixture density, label-invariant), with the Pareto k
  diagnostic checked.
* :func:`waic`: the widely applicable information criterion (Watanabe 2010), which
  ArviZ 1.x dropped. With ``l_si = log p(y_i | theta_s)`` over S draws,

  - ``lppd_i = log( (1/S) sum_s exp(l_si) )``
  - ``p_waic_i = Var_s(l_si)`` (sample variance, divisor S - 1, as Gelman, Hwang &
    Vehtari 2014 and the old ``arviz.waic``)
  - ``elpd_waic_i = lppd_i - p_waic_i``; ``elpd_waic = sum_i elpd_waic_i``;
    ``p_waic = sum_i p_waic_i``
  - ``se = sqrt(N * Var_i(elpd_waic_i))`` (divisor N - 1).

  A warning is emitted when any ``p_waic_i > 0.4`` (the old ArviZ rule: WAIC is then
  unreliable; prefer LOO). The result is an :class:`ELPDDataWAIC`, a subclass of
  ArviZ's :class:`arviz_stats.ELPDData` (``elpd``, ``se``, ``p``, ``elpd_i``), so it
  prints and reads like ``arviz_stats.loo``'s result.
* :func:`select_k`: one table over a grid of K: BIC and ICL from EM, ELPD-LOO and
  ELPD-WAIC from MCMC, with the recommended K per criterion.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import xarray as xr
from arviz_stats import ELPDData
from scipy.special import logsumexp

from bayesmix._validation import BayesmixWarning

__all__ = ["ELPDDataWAIC", "loo", "waic"]

#: Pareto k above which the PSIS estimate of an observation is unreliable.
PARETO_K_MAX = 0.7
#: Pointwise WAIC penalty above which WAIC is flagged unreliable (old ArviZ rule).
P_WAIC_I_MAX = 0.4


@dataclass(kw_only=True)
class ELPDDataWAIC(ELPDData):
    """WAIC result: ``elpd`` (= elpd_waic), ``se``, ``p`` (= p_waic), pointwise values.

    Attributes beyond :class:`arviz_stats.ELPDData`: ``lppd_i`` and ``p_waic_i``
    (DataArrays over ``obs``), ``n_high_variance`` (points with ``p_waic_i > 0.4``).
    ``good_k`` carries the 0.4 threshold on ``p_waic_i``.
    """

    lppd_i: xr.DataArray = None
    p_waic_i: xr.DataArray = None
    n_high_variance: int = 0

    _kind: ClassVar[str | None] = "waic"
    _display_kind: ClassVar[str | None] = "waic"

    @property
    def elpd_waic(self):
        """Alias of ``elpd``."""
        return self.elpd

    @property
    def p_waic(self):
        """Alias of ``p``."""
        return self.p

    def _footer(self):
        if not self.warning:
            return ""
        return (
            f"\n\nThere has been a warning during the calculation: {self.n_high_variance} "
            f"observation(s) have p_waic_i > {P_WAIC_I_MAX}; WAIC may be unreliable, use loo."
        )


def _log_likelihood(idata, var_name="X"):
    """The pointwise log-likelihood (chain, draw, obs) DataArray, or a clear error."""
    if not isinstance(idata, xr.DataTree):
        raise TypeError(
            f"idata must be an xarray.DataTree from bayesmix.sample; got {type(idata).__name__}."
        )
    if "log_likelihood" not in idata.children or var_name not in idata["log_likelihood"]:
        raise ValueError(
            f"idata has no log_likelihood/{var_name}: LOO and WAIC need the pointwise "
            "log-likelihood of every observation per draw. bayesmix.sample adds it; for a trace "
            "built elsewhere use bayesmix.from_arrays(weights, means, covariances, X) (which "
            "computes it), or pymc.compute_log_likelihood(idata, model=model)."
        )
    da = idata["log_likelihood"][var_name]
    missing = [d for d in ("chain", "draw") if d not in da.dims]
    if missing:
        raise ValueError(
            f"log_likelihood/{var_name} must have dims ('chain', 'draw', ...); got {da.dims}."
        )
    return da


def loo(idata, *, var_name="X", pointwise=True, **kwargs):
    """PSIS leave-one-out cross-validation (arviz_stats.loo) with the Pareto k check.

    Parameters
    ----------
    idata : xarray.DataTree
        A bayesmix posterior with a ``log_likelihood`` group.
    var_name : str
        The log-likelihood variable (``"X"`` in bayesmix traces).
    pointwise : bool
        Keep pointwise ``elpd_i`` and ``pareto_k`` (needed for the k check).
    **kwargs
        Passed to :func:`arviz_stats.loo` (``reff``, ``moment_match`` ...).

    Returns
    -------
    arviz_stats.ELPDDataLOO
        ``elpd``, ``se``, ``p`` (p_loo), ``pareto_k`` (obs) ...

    Warns
    -----
    BayesmixWarning
        When any Pareto k exceeds 0.7, naming the observations.

    Examples
    --------
    >>> import numpy as np
    >>> from bayesmix._trace import from_arrays
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(20, 1))
    >>> dt = from_arrays(np.ones((2, 100, 1)), rng.normal(0, 0.2, (2, 100, 1, 1)),
    ...                  np.ones((2, 100, 1, 1, 1)), X)
    >>> round(float(loo(dt).p), 1) < 3
    True
    """
    da = _log_likelihood(idata, var_name)
    with warnings.catch_warnings():
        # arviz warns about large k itself; ours below says what to do
        warnings.filterwarnings("ignore", message=".*[Pp]areto.*")
        result = __import__("arviz_stats").loo(
            idata, pointwise=pointwise, var_name=var_name, **kwargs
        )
    if pointwise and result.pareto_k is not None:
        k = np.asarray(result.pareto_k).ravel()
        bad = np.flatnonzero(k > PARETO_K_MAX)
        if bad.size:
            obs = (da["obs"].values[bad] if "obs" in da.coords else bad).tolist()
            warnings.warn(
                f"loo: {bad.size} observation(s) have Pareto k > {PARETO_K_MAX} (max "
                f"{k.max():.2f}; obs {list(obs[:10])}{' ...' if bad.size > 10 else ''}): the PSIS "
                "estimate is unreliable for them. Try more draws, "
                "arviz_stats.loo_moment_match / reloo, K-fold CV (arviz_stats.loo_kfold), or check "
                "these observations (outliers a component fits alone; consider fewer components "
                "or heavier tails).",
                BayesmixWarning,
                stacklevel=2,
            )
    return result


def _waic_arrays(ll):
    """WAIC from a (S, N) log-likelihood matrix: elpd_i, lppd_i, p_waic_i."""
    S = ll.shape[0]
    lppd_i = logsumexp(ll, axis=0) - np.log(S)
    p_i = np.var(ll, axis=0, ddof=1) if S > 1 else np.zeros(ll.shape[1])
    return lppd_i - p_i, lppd_i, p_i


def waic(idata, *, var_name="X"):
    """Widely applicable information criterion (formulas in the module docstring).

    Parameters
    ----------
    idata : xarray.DataTree
        A bayesmix posterior with a ``log_likelihood`` group.
    var_name : str
        The log-likelihood variable (``"X"`` in bayesmix traces).

    Returns
    -------
    ELPDDataWAIC
        ``elpd`` (elpd_waic, log scale, higher is better), ``se``, ``p`` (p_waic),
        ``elpd_i``, ``lppd_i``, ``p_waic_i`` over ``obs``; ``warning`` true when some
        ``p_waic_i > 0.4``.

    Warns
    -----
    BayesmixWarning
        When any ``p_waic_i > 0.4``.

    Examples
    --------
    >>> import numpy as np
    >>> from bayesmix._trace import from_arrays
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(20, 1))
    >>> dt = from_arrays(np.ones((2, 100, 1)), rng.normal(0, 0.2, (2, 100, 1, 1)),
    ...                  np.ones((2, 100, 1, 1, 1)), X)
    >>> w = waic(dt)
    >>> bool(abs(w.elpd - float(w.elpd_i.sum())) < 1e-9)
    True
    """
    da = _log_likelihood(idata, var_name)
    obs_dims = [d for d in da.dims if d not in ("chain", "draw")]
    da = da.transpose("chain", "draw", *obs_dims)
    obs_shape = da.shape[2:]
    ll = da.values.reshape(da.shape[0] * da.shape[1], -1)
    if not np.all(np.isfinite(ll)):
        raise ValueError(
            f"log_likelihood/{var_name} contains non-finite values; WAIC is undefined. Check the "
            "model (a draw giving zero density to an observation)."
        )
    S, N = ll.shape
    elpd_i, lppd_i, p_i = _waic_arrays(ll)
    se = float(np.sqrt(N * np.var(elpd_i, ddof=1))) if N > 1 else float("nan")
    n_high = int((p_i > P_WAIC_I_MAX).sum())
    if n_high:
        warnings.warn(
            f"waic: {n_high} of {N} observation(s) have a posterior variance of the "
            f"log-likelihood p_waic_i > {P_WAIC_I_MAX}; WAIC may be unreliable. Use "
            "bayesmix.loo (PSIS-LOO with its Pareto k diagnostic) instead.",
            BayesmixWarning,
            stacklevel=2,
        )
    coords = {d: da.coords[d] for d in obs_dims if d in da.coords}

    def _wrap(v):
        return xr.DataArray(v.reshape(obs_shape), dims=obs_dims, coords=coords)

    return ELPDDataWAIC(
        elpd=float(elpd_i.sum()),
        se=se,
        p=float(p_i.sum()),
        n_samples=S,
        n_data_points=N,
        scale="log",
        warning=bool(n_high),
        good_k=P_WAIC_I_MAX,
        elpd_i=_wrap(elpd_i),
        lppd_i=_wrap(lppd_i),
        p_waic_i=_wrap(p_i),
        n_high_variance=n_high,
    )
