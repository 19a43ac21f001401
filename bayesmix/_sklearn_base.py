"""What the scikit-learn estimators of :mod:`bayesmix.sklearn` share: the guarded
scikit-learn import, input validation, seeds, per-type shapes, the density base class."""

from __future__ import annotations

import numbers

import numpy as np

from bayesmix.core._validation import check_frame_dtypes

try:
    from sklearn.base import (
        BaseEstimator,
        ClassNamePrefixFeaturesOutMixin,
        ClusterMixin,
        DensityMixin,
        TransformerMixin,
    )
    from sklearn.utils.validation import check_is_fitted, validate_data
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "bayesmix.sklearn needs scikit-learn >= 1.6, which is not installed. Install it with "
        "pip install 'bayesmix[sklearn]' (or pip install scikit-learn)."
    ) from exc

#: the scikit-learn names the estimators' module takes from here (after the guarded import)
__all__ = [
    "BaseEstimator",
    "ClassNamePrefixFeaturesOutMixin",
    "ClusterMixin",
    "DensityMixin",
    "TransformerMixin",
    "check_is_fitted",
    "validate_data",
]

#: observations per block when averaging densities over posterior draws
_CHUNK_BYTES = 64e6


# =========================================================================== helpers
def _validate(estimator, X, *, reset, min_samples=1):
    # estimators whose tags allow NaN (missing values, fitted by the observed-data
    # likelihood) keep it; infinite values are refused either way
    """scikit-learn's validation, once: float64 C-ordered (no copy for such input).

    A DataFrame's columns are checked first as :func:`bayesmix.fit_em` checks them
    (datetime, complex and text columns named, with the fix), not left to numpy's
    dtype promotion errors.
    """
    check_frame_dtypes(X)
    nan = getattr(estimator, "_allow_nan", False)
    return validate_data(
        estimator,
        X,
        reset=reset,
        dtype=np.float64,
        order="C",
        ensure_min_samples=min_samples,
        ensure_all_finite="allow-nan" if nan else True,
    )


class _AllowNaN:
    """Mixin: NaN entries are missing values (scikit-learn's ``allow_nan`` input tag)."""

    _allow_nan = True

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags


def _validate_fitted(estimator, X):
    """``X`` validated against a fitted estimator (its features), for predict/score."""
    check_is_fitted(estimator)
    return _validate(estimator, X, reset=False)


def _seed(random_state):
    """scikit-learn's ``random_state`` as a bayesmix ``random_seed``.

    ``None``, an int and a ``numpy.random.Generator`` pass through; a legacy
    ``RandomState`` gives an int drawn from it (as scikit-learn does for its own
    sub-estimators).
    """
    if random_state is None or isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        return int(random_state)
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(np.iinfo(np.int32).max))
    raise TypeError(
        "random_state must be None, an int, a numpy.random.RandomState or a "
        f"numpy.random.Generator; got {type(random_state).__name__} {random_state!r}."
    )


_INIT_PARAMS = ("kmeans", "k-means++", "random", "random_from_data")


def _check_covariance_type(value, em=False):
    """The canonical covariance type, with errors naming ``covariance_type``; ``em``: also
    mclust's models that only EM fits (``"VEV"`` ...)."""
    from bayesmix.core._validation import (
        COVARIANCE_TYPES,
        EM_COVARIANCE_TYPES,
        check_covariance_type,
    )

    allowed = EM_COVARIANCE_TYPES if em else COVARIANCE_TYPES
    return check_covariance_type(value, allowed=allowed, name="covariance_type")


def _native_covariances(cov_full, covariance_type):
    """scikit-learn's per-type covariance shapes from (K, D, D) full matrices."""
    if covariance_type == "full":
        return np.array(cov_full)
    if covariance_type == "tied":
        return np.array(cov_full[0])
    var = np.diagonal(cov_full, axis1=-2, axis2=-1)
    return var.copy() if covariance_type == "diag" else var.mean(-1)


def _native_precisions(em, covariance_type):
    """``(precisions_, precisions_cholesky_)`` in scikit-learn's per-type shapes."""
    if covariance_type in ("full", "tied"):
        pc = np.array(em.precisions_cholesky)
        if covariance_type == "tied":
            pc = pc[0]
        return pc @ np.swapaxes(pc, -1, -2), pc
    var = _native_covariances(em.covariances, covariance_type)
    return 1.0 / var, 1.0 / np.sqrt(var)


def _rows_per_chunk(n_draws, n_components):
    return max(1, int(_CHUNK_BYTES // max(1, 8 * 3 * n_draws * n_components)))


# =========================================================================== mixtures, shared
class _DensityEstimator(DensityMixin, BaseEstimator):
    """What :class:`GaussianMixture` and :class:`BayesianGaussianMixture` share."""

    def score(self, X, y=None):
        """Mean of :meth:`score_samples` over the rows (scikit-learn's ``score``).

        Parameters
        ----------
        X : array_like, shape (N, D)
        y : None
            Ignored (scikit-learn's API).

        Returns
        -------
        float
        """
        return float(self.score_samples(X).mean())


def _draw_mixture(rng, n_samples, weights, means, covariances):
    """``(X (n, D), y (n,))``: ``n_samples`` draws of a Gaussian mixture, grouped by
    component as scikit-learn's ``sample`` (multinomial counts, then each component's)."""
    counts = rng.multinomial(n_samples, weights)
    chol = np.linalg.cholesky(covariances)
    D = means.shape[1]
    X = np.concatenate(
        [means[k] + rng.standard_normal((n, D)) @ chol[k].T for k, n in enumerate(counts)]
    )
    return X, np.repeat(np.arange(means.shape[0]), counts)
