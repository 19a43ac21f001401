"""How long the pipeline runs a model sampled by Gibbs: the default draws and burn-in
sweeps when the spec leaves ``gibbs_draws`` / ``gibbs_tune`` unset, the cap from the
log-likelihood array's size, and the draws of the one repeat of a run that failed its
diagnostics (:mod:`bayesmix.workflow._fitchecks`)."""

from __future__ import annotations

__all__ = [
    "GIBBS_DRAWS",
    "GIBBS_LOGLIK_ENTRIES",
    "GIBBS_MFM_DRAWS",
    "GIBBS_RETRY_FACTOR",
    "GIBBS_TUNE",
    "gibbs_draws",
    "gibbs_retry_draws",
    "gibbs_tune",
]

#: draws per chain of a model sampled by Gibbs when the spec leaves ``gibbs_draws``
#: unset. On Old Faithful (4 chains after 200 burn-in sweeps, seeds 1-3) 2000 draws gave
#: the finite fits a min bulk ESS of 872-1240 (K = 3, the slowest) and the MFM an ESS of
#: its P(K = k) of 1060-1218 in about 25 s of sampling in all; 1000 draws take half that
#: and give about half the ESS, still above the report's threshold of 100 per chain on
#: these runs. A fit that misses R-hat < 1.01, 100 x chains bulk ESS or (MFM) 100 x
#: chains ESS of its P(K = k) is sampled again with ``GIBBS_RETRY_FACTOR`` times the
#: draws (:func:`gibbs_retry_draws`; the report says so)
GIBBS_DRAWS = 1000
#: ... and for the mixture of finite mixtures, whose P(K = k) mix more slowly than the
#: finite fits' weights and means (1000 draws: ESS 417-530 on seeds 1-3, against a
#: threshold of 400)
GIBBS_MFM_DRAWS = 1500
#: the draws of the one repeat of an automatic Gibbs run that failed its diagnostics
GIBBS_RETRY_FACTOR = 2
#: ... but at most this many log-likelihood entries (chains x draws x N, 8 bytes each:
#: 400 MB), and never fewer draws than NUTS's ``draws``
GIBBS_LOGLIK_ENTRIES = 50_000_000


#: burn-in sweeps of a model sampled by Gibbs when the spec leaves ``gibbs_tune`` unset
#: (``tune`` is NUTS's step-size and mass-matrix adaptation, which Gibbs does not do).
#: Every chain starts at an EM fit; on Old Faithful (finite K = 2..4 and the MFM, 4 x
#: 2000 draws, seeds 1-3) 200 burn-in sweeps give finite fits a max R-hat <= 1.005
#: (as 500 do) and the MFM a min ESS of its P(K = k) of 932-1026
GIBBS_TUNE = 200


def gibbs_tune(spec):
    """Burn-in sweeps per chain for a model sampled by Gibbs (``spec.gibbs_tune`` if set)."""
    return GIBBS_TUNE if spec.gibbs_tune is None else spec.gibbs_tune


def gibbs_draws(spec, n_obs, mfm=False):
    """Draws per chain for a model sampled by Gibbs (``spec.gibbs_draws`` if set;
    ``mfm``: the mixture of finite mixtures' default)."""
    if spec.gibbs_draws is not None:
        return spec.gibbs_draws
    cap = GIBBS_LOGLIK_ENTRIES // (spec.chains * max(n_obs, 1))
    return max(spec.draws, min(GIBBS_MFM_DRAWS if mfm else GIBBS_DRAWS, cap))


def gibbs_retry_draws(spec, n_obs, mfm=False):
    """Draws per chain of the one repeat of a Gibbs run whose diagnostics failed, or
    None: not when ``spec.gibbs_draws`` is set (the user's choice is kept), nor when the
    log-likelihood cap leaves no room for more draws than :func:`gibbs_draws`."""
    if spec.gibbs_draws is not None:
        return None
    first = gibbs_draws(spec, n_obs, mfm)
    cap = GIBBS_LOGLIK_ENTRIES // (spec.chains * max(n_obs, 1))
    more = min(GIBBS_RETRY_FACTOR * first, max(cap, spec.draws))
    return more if more > first else None
