r"""Parametric bootstrap likelihood-ratio test for the number of components.

McLachlan (1987), as mclust's ``mclustBootstrapLRT``: for K against K + 1 components
the statistic is :math:`\mathrm{LRT} = 2(\ell_{K+1} - \ell_K)` of the two
maximum-likelihood (or MAP) fits. Its null distribution is not chi-squared (the
K-component model lies on the boundary of the (K+1)-component one, and the parameters
are not identified there), so it is simulated: data of the same size are drawn from the
fitted K-component mixture, both models are refitted to each simulated data set with
the same settings, and the bootstrap p-value is

.. math:: p = \frac{1 + \#\{b : \mathrm{LRT}_b \ge \mathrm{LRT}_{obs}\}}{B + 1},

which is a valid (slightly conservative) p-value for any number of replicates ``B``;
the smallest it can be is ``1 / (B + 1)``.
"""

from __future__ import annotations

import itertools
import sys
import warnings

import numpy as np

from bayesmix.core._validation import (
    check_covariance_type,
    check_data,
    check_int,
    check_random_state,
)

__all__ = ["add_lrt", "bootstrap_lrt", "check_n_boot"]

#: the smallest number of bootstrap replicates: p-values are multiples of 1 / (B + 1), so
#: with fewer than 19 the test could never reject at the 5% level
_MIN_BOOT = 19


def _check_ks(ks, n_obs):
    """The K's as a list of increasing positive ints with K + 1 <= n_obs."""
    if isinstance(ks, (int, np.integer)) and not isinstance(ks, bool):
        ks = [int(ks)]
    try:
        vals = list(ks)
    except TypeError:
        raise TypeError(
            f"ks must be an int or a sequence of ints (the K's to test against K + 1); "
            f"got {type(ks).__name__} {ks!r}."
        ) from None
    if not vals:
        raise ValueError("ks is empty; give the K's to test against K + 1, e.g. ks=[1, 2, 3].")
    out = [check_int(k, "ks", minimum=1) for k in vals]
    if any(b <= a for a, b in itertools.pairwise(out)):
        raise ValueError(
            f"ks must be strictly increasing integers; got {vals}. Sort them and drop repeats."
        )
    if out[-1] + 1 > n_obs:
        raise ValueError(
            f"ks contains K={out[-1]}, but K + 1 = {out[-1] + 1} components need at least "
            f"{out[-1] + 1} observations and X has {n_obs}. Test smaller K."
        )
    return out


def _simulate(fit, n_obs, rng):
    """``n_obs`` draws from a fitted mixture (EMResult)."""
    K, D = fit.means.shape
    w = np.asarray(fit.weights, dtype=float)
    z = rng.choice(K, size=n_obs, p=w / w.sum())
    L = np.linalg.cholesky(fit.covariances)
    eps = rng.standard_normal((n_obs, D))
    return fit.means[z] + np.einsum("nij,nj->ni", L[z], eps)


def _lrt(X, K, fit_kw, rng):
    """``(statistic, fit K, fit K + 1)``: both fits from the same initialisation strategy."""
    from bayesmix.em import fit_em

    f0 = fit_em(X, K, random_seed=rng, **fit_kw)
    f1 = fit_em(X, K + 1, random_seed=rng, **fit_kw)
    return 2.0 * (f1.log_likelihood - f0.log_likelihood), f0, f1


class _Counter:
    """A plain stderr progress counter (no extra dependency)."""

    def __init__(self, total, enabled):
        self.total, self.enabled, self.done = total, enabled, 0

    def step(self, label):
        self.done += 1
        if self.enabled:
            end = "\n" if self.done == self.total else ""
            print(f"\rbootstrap_lrt: {label} {self.done}/{self.total}", end=end, file=sys.stderr)
            sys.stderr.flush()


def check_n_boot(n_boot, name="n_boot"):
    """The number of bootstrap replicates: an integer >= 19 (``name`` as the caller spells it).

    Examples
    --------
    >>> check_n_boot(99)
    99
    >>> check_n_boot(0, name="lrt_boot")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: lrt_boot=0 is too small: ... Use lrt_boot >= 19 (99 or more for p-values near 0.01).
    """
    n_boot = check_int(n_boot, name, minimum=0)
    if n_boot < _MIN_BOOT:
        raise ValueError(
            f"{name}={n_boot} is too small: the smallest p-value it could report is "
            f"1/({name}+1) = {1.0 / (n_boot + 1):.3g}, so the test could never reject at the 5% "
            f"level. Use {name} >= {_MIN_BOOT} (99 or more for p-values near 0.01)."
        )
    return n_boot


def bootstrap_lrt(
    X,
    ks,
    *,
    covariance="full",
    n_boot=99,
    random_seed=None,
    prior=None,
    progressbar=True,
    n_init=1,
):
    r"""Bootstrap likelihood-ratio test of K against K + 1 components (mclustBootstrapLRT).

    For every K in ``ks``: fit K and K + 1 components by EM, take
    ``LRT = 2 (loglik_{K+1} - loglik_K)``, simulate ``n_boot`` data sets of the same size
    from the fitted K-component mixture, refit both models to each with the same
    settings, and report the bootstrap p-value
    ``(1 + #{LRT_b >= LRT}) / (n_boot + 1)`` (McLachlan 1987).

    Parameters
    ----------
    X : array_like or pandas.DataFrame, shape (N, D)
        Data.
    ks : int or sequence of int
        The null K's, strictly increasing, each with ``K + 1 <= N``.
    covariance : {"full", "diag", "spherical", "tied"}, default "full"
        Covariance type of both models.
    n_boot : int, default 99
        Bootstrap replicates per K, at least 19 (the smallest p-value is
        ``1 / (n_boot + 1)``, so 19 replicates can just reach 0.05).
    random_seed : int or numpy.random.Generator, optional
        Seeds the fits and the simulations.
    prior : GMMPrior, optional
        Fit by MAP (as :func:`bayesmix.fit_em`); the statistic still uses the
        log-likelihoods. ``None``: maximum likelihood.
    progressbar : bool, default True
        A counter of the refitted replicates on stderr.
    n_init : int, default 1
        EM restarts per fit (the same for the observed and the bootstrap fits).

    Returns
    -------
    pandas.DataFrame
        One row per K (index ``K``) with columns ``K_alt`` (K + 1), ``lrt`` (the
        observed statistic), ``p_value``, ``n_boot``, ``log_likelihood_K`` and
        ``log_likelihood_K_alt``.

    Raises
    ------
    ValueError
        ``n_boot < 19`` (naming the smallest p-value it could report), ``ks`` not
        strictly increasing positive integers, ``K + 1 > N``, bad data or covariance.

    Notes
    -----
    A local optimum of the (K+1)-component fit makes the statistic too small, which
    makes the test conservative; use ``n_init > 1`` for data with many local optima.
    The test's size is checked by simulation in ``tests/test_lrt.py`` (slow test).

    Examples
    --------
    >>> import numpy as np
    >>> import bayesmix as bm
    >>> X, _ = bm.simulate(60, [0.5, 0.5], [[0.0], [6.0]], [[1.0], [1.0]], random_seed=0)
    >>> tab = bm.bootstrap_lrt(X, [1], n_boot=19, random_seed=0, progressbar=False)
    >>> float(tab.loc[1, "p_value"])
    0.05
    """
    import pandas as pd

    X = check_data(X)
    N = X.shape[0]
    n_boot = check_n_boot(n_boot)
    ks = _check_ks(ks, N)
    fit_kw = dict(covariance=check_covariance_type(covariance), prior=prior, n_init=n_init)
    rng = check_random_state(random_seed)
    counter = _Counter(len(ks) * n_boot, progressbar)
    rows = []
    for K in ks:
        obs, f0, f1 = _lrt(X, K, fit_kw, rng)
        exceed = 0
        for _ in range(n_boot):
            Xb = _simulate(f0, N, rng)
            with warnings.catch_warnings():
                # convergence / collapse warnings of the refits concern simulated data
                warnings.simplefilter("ignore")
                stat_b = _lrt(Xb, K, fit_kw, rng)[0]
            exceed += stat_b >= obs
            counter.step(f"K={K} vs {K + 1}")
        rows.append(
            {
                "K": K,
                "K_alt": K + 1,
                "lrt": obs,
                "p_value": (1.0 + exceed) / (n_boot + 1.0),
                "n_boot": n_boot,
                "log_likelihood_K": f0.log_likelihood,
                "log_likelihood_K_alt": f1.log_likelihood,
            }
        )
    return pd.DataFrame(rows).set_index("K")


def add_lrt(df, data, covariance, prior, n_boot, rng, progress, recommended, rules):
    """:func:`bayesmix.select_k`'s bootstrap LRT columns and recommendation (in place)."""
    ks = sorted(int(k) for k in df["K"])
    tab = bootstrap_lrt(
        data,
        ks,
        covariance=covariance,
        n_boot=n_boot,
        random_seed=rng,
        prior=prior,
        progressbar=progress,
    )
    df["lrt"] = [float(tab.loc[int(k), "lrt"]) for k in df["K"]]
    df["lrt_p_value"] = [float(tab.loc[int(k), "p_value"]) for k in df["K"]]
    kept = [k for k in ks if tab.loc[k, "p_value"] > 0.05]
    recommended["lrt"] = kept[0] if kept else ks[-1]
    rules["lrt"] = "smallest K not rejected against K + 1 by the bootstrap LRT at 5%"
