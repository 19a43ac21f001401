r"""Data augmentation for the Gibbs sampler on data with missing (NaN) entries.

The sampler of :mod:`bayesmix.mcmc._gibbs` runs on the joint posterior of the missing
coordinates, the allocations and the parameters, :math:`p(x_{mis}, z, \theta \mid
x_{obs})`. Each sweep is the complete-data sweep on the *filled* data (the observed
entries and the current draw of the missing ones), followed, once the component
parameters have been drawn, by

.. math:: x_{n,m} \mid x_{n,o}, z_n = k, \mu_k, \Sigma_k \sim
          N\big(\mu_{km} + \Sigma_{kmo}\Sigma_{koo}^{-1}(x_{n,o} - \mu_{ko}),\;
          \Sigma_{kmm} - \Sigma_{kmo}\Sigma_{koo}^{-1}\Sigma_{kom}\big)

for every row n with missing coordinates m (observed o): every step draws from a
conditional of the joint posterior (the collapsed allocation sweeps and the split-merge
moves from :math:`z \mid x_{mis}, x_{obs}` with the parameters integrated out, which are
then drawn given z), so the chain is a valid (partially collapsed) Gibbs sampler and
its :math:`(z, \theta)` margin is the observed-data posterior. Rows are grouped by
missingness pattern and, within a pattern, by component: one Cholesky factorisation of
:math:`\Sigma_{koo}` and one of the conditional covariance per (pattern, component)
pair, the rows of the pair in one matrix product. Every covariance type is served
through the state's full (K, D, D) matrices.

The filled data are per chain: each chain gets its own copy of the sampler's ``_Spec``
with its own ``Xc`` (:func:`chain_spec`), written in place by :func:`impute_missing`.
What else the kernels read from the data is computed once, from the starting fill (the
conditional means under the starting point, :func:`bayesmix.core._missing.conditional_impute`),
and shared: the standardised data ``Xs`` and the split-merge neighbour tables
``sm_order`` / ``sm_launch``. They only choose the split-merge proposal pairs and the
order in which a split allocates the members; they never depend on the chain's state
(allocations, parameters or current missing draws), so every split-merge move stays
reversible for :math:`z \mid x_{mis}, x_{obs}`.

The log-likelihood the sampler records (``sample_stats/loglik``, ``log_likelihood/X``)
is the observed-data one (each row's marginal density of its observed coordinates,
:func:`bayesmix.core._missing.log_joint_missing`), not that of the filled data.
"""

from __future__ import annotations

import dataclasses

import numpy as np

__all__ = ["GapLayout", "chain_spec", "impute_missing"]


@dataclasses.dataclass(frozen=True)
class GapLayout:
    """The missing entries of the sampler's data, grouped by pattern.

    Attributes
    ----------
    groups : tuple of (o, m, rows)
        Per pattern with a gap: observed and missing feature indices and the rows
        (int64 arrays).
    n_missing : int
        The number of missing entries.
    """

    groups: tuple
    n_missing: int

    @classmethod
    def from_data(cls, X):
        """The layout of ``X`` (N, D) with NaN gaps, or None when nothing is missing."""
        from bayesmix.core._missing import missing_patterns

        pats = missing_patterns(X)
        if pats is None:
            return None
        groups = tuple((o, m, rows) for o, m, rows in pats.groups() if m.size)
        return cls(groups=groups, n_missing=pats.n_missing)


def chain_spec(spec):
    """The spec a chain runs on: its own copy of the filled data when there are gaps."""
    if spec.gaps is None:
        return spec
    return dataclasses.replace(spec, Xc=spec.Xc.copy())


def impute_missing(spec, st, rng):
    """Draw every missing block given its row's observed coordinates, allocation and
    the component's current mean and covariance; writes ``spec.Xc`` in place.

    Parameters
    ----------
    spec : _Spec
        The chain's spec (its own ``Xc``, centred at the prior mean) with ``gaps``.
    st : _State
        The chain's state: ``z`` (N,), ``means`` (K, D) centred, ``cov`` (K, D, D).
    rng : numpy.random.Generator
        One standard normal per missing entry, drawn pattern by pattern (rows in
        order), so the draws do not depend on how rows are grouped by component.
    """
    X, z = spec.Xc, st.z
    for o, m, rows in spec.gaps.groups:
        eps = rng.standard_normal((rows.size, m.size))
        zr = z[rows]
        order = np.argsort(zr, kind="stable")
        ks, starts = np.unique(zr[order], return_index=True)
        bounds = np.append(starts, rows.size)
        # the (pattern, component) factorisations, batched over the components present
        S = st.cov[ks]
        Soo = S[:, o[:, None], o[None, :]]
        Som = S[:, o[:, None], m[None, :]]
        A = np.swapaxes(np.linalg.solve(Soo, Som), -1, -2)  # Sigma_mo Sigma_oo^-1 (k, |m|, |o|)
        ccov = S[:, m[:, None], m[None, :]] - A @ Som
        Lc = np.linalg.cholesky(0.5 * (ccov + np.swapaxes(ccov, -1, -2)))
        Xo = X[rows][:, o]
        for j, (k, a, b) in enumerate(zip(ks, bounds[:-1], bounds[1:], strict=True)):
            idx = order[a:b]
            mu = st.means[k]
            vals = mu[m] + (Xo[idx] - mu[o]) @ A[j].T + eps[idx] @ Lc[j].T
            X[rows[idx][:, None], m[None, :]] = vals
