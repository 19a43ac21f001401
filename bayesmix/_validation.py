"""Input validation: the one place where user input is checked and converted.

Every public function calls these helpers so that bad input gets the same clear
message everywhere: what the parameter is, what was expected, what came in, and
how to fix it. Nothing the user gave is silently dropped or changed: data are
converted to a float64 copy only when they are not float64 already, and rows or
columns are never removed here.
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np

__all__ = [
    "COVARIANCE_TYPES",
    "BayesmixWarning",
    "ConvergenceWarning",
    "DegenerateDataWarning",
    "check_covariance_type",
    "check_data",
    "check_int",
    "check_n_components",
    "check_positive",
    "check_random_state",
]

#: Canonical covariance type names, and the aliases accepted for them.
COVARIANCE_TYPES = ("spherical", "diag", "full", "tied")
_COVARIANCE_ALIASES = {
    "spherical": "spherical",
    "diag": "diag",
    "diagonal": "diag",
    "full": "full",
    "tied": "tied",
}


class BayesmixWarning(UserWarning):
    """Base class of the warnings bayesmix emits."""


class ConvergenceWarning(BayesmixWarning):
    """An iterative fit stopped before its convergence criterion was met."""


class DegenerateDataWarning(BayesmixWarning):
    """The data make a fit ill-posed (constant features, collapsed components...)."""


def check_covariance_type(covariance, *, allowed=COVARIANCE_TYPES, name="covariance"):
    """Return the canonical name of a covariance type.

    Parameters
    ----------
    covariance : str
        ``"spherical"``, ``"diag"`` (alias ``"diagonal"``), ``"full"`` or ``"tied"``.
    allowed : tuple of str
        The canonical names the caller supports.
    name : str
        Parameter name used in the error message.

    Returns
    -------
    str
        The canonical name.

    Examples
    --------
    >>> check_covariance_type("diagonal")
    'diag'
    """
    if not isinstance(covariance, str):
        raise TypeError(
            f"{name} must be a string, one of {list(allowed)}; got {type(covariance).__name__} "
            f"{covariance!r}."
        )
    canonical = _COVARIANCE_ALIASES.get(covariance.lower())
    if canonical is None or canonical not in allowed:
        raise ValueError(
            f"{name} must be one of {list(allowed)}"
            + (" ('diagonal' is accepted for 'diag')" if "diag" in allowed else "")
            + f"; got {covariance!r}."
        )
    return canonical


def check_n_components(n_components, n_obs=None, *, name="n_components"):
    """Check a number of mixture components against the number of observations.

    Parameters
    ----------
    n_components : int
        Number of components, at least 1.
    n_obs : int, optional
        Number of observations; ``n_components`` may not exceed it.
    name : str
        Parameter name used in the error message.

    Returns
    -------
    int
    """
    n_components = check_int(n_components, name, minimum=1)
    if n_obs is not None and n_components > n_obs:
        raise ValueError(
            f"{name}={n_components} is larger than the number of observations n_obs={n_obs}: "
            f"a mixture cannot have more components than data points. Use {name} <= {n_obs} "
            "or provide more data."
        )
    return n_components


def check_int(value, name, *, minimum=0, hint=""):
    """Check an integer argument and return it as ``int``.

    The one integer check of the package: a non-integer (``bool`` included) is a
    ``TypeError``, an integer below ``minimum`` a ``ValueError``; both name the
    parameter, what was expected and what came in. ``hint`` (the fix, or what the
    parameter means) is appended to the ``ValueError`` message.

    Examples
    --------
    >>> check_int(3, "n_init", minimum=1)
    3
    >>> check_int(0, "n_init", minimum=1)
    Traceback (most recent call last):
    ...
    ValueError: n_init must be an integer >= 1; got 0.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(
            f"{name} must be an integer >= {minimum}; got {type(value).__name__} {value!r}."
        )
    value = int(value)
    if value < minimum:
        raise ValueError(
            f"{name} must be an integer >= {minimum}; got {value}." + (hint and f" {hint}")
        )
    return value


def check_positive(value, name, *, strict=True, allow_inf=False):
    """Check that a scalar is a finite positive (or non-negative) number and return it as float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number; got {type(value).__name__} {value!r}.")
    value = float(value)
    if np.isnan(value) or (np.isinf(value) and not allow_inf):
        raise ValueError(f"{name} must be finite; got {value}.")
    if (strict and value <= 0) or (not strict and value < 0):
        raise ValueError(f"{name} must be {'>' if strict else '>='} 0; got {value}.")
    return value


def check_random_state(random_seed):
    """Return a :class:`numpy.random.Generator` from ``None``, an int or a Generator.

    Examples
    --------
    >>> rng = check_random_state(0)
    >>> check_random_state(rng) is rng
    True
    """
    if isinstance(random_seed, np.random.Generator):
        return random_seed
    if random_seed is None or (
        isinstance(random_seed, numbers.Integral) and not isinstance(random_seed, bool)
    ):
        return np.random.default_rng(random_seed)
    if isinstance(random_seed, np.random.SeedSequence):
        return np.random.default_rng(random_seed)
    raise TypeError(
        "random_seed must be None, an int or a numpy.random.Generator; "
        f"got {type(random_seed).__name__} {random_seed!r}."
    )


def check_data(X, *, name="X", min_obs=1, return_names=False, copy=False):
    """Validate data and return a float64 array of shape (n_obs, n_features).

    Parameters
    ----------
    X : array_like or pandas.DataFrame, shape (n_obs, n_features)
        The data. Integer and boolean input are converted to float64 (a copy); a
        DataFrame keeps its column names as feature names.
    name : str
        Parameter name used in error messages.
    min_obs : int
        Minimum number of rows required.
    return_names : bool
        Also return the feature names (DataFrame columns, or ``x0, x1, ...``).
    copy : bool
        Always return a copy.

    Returns
    -------
    X : ndarray of float64, shape (n_obs, n_features)
        C-contiguous.
    feature_names : list of str
        Only when ``return_names`` is true.

    Raises
    ------
    ValueError
        On 1-D or >2-D input, empty input, NaN or infinite values (with their count
        and the first offending row), or non-numeric columns.

    Examples
    --------
    >>> X = check_data([[1, 2], [3, 4]])
    >>> X.dtype, X.shape
    (dtype('float64'), (2, 2))
    """
    X, feature_names = _unwrap_pandas(X, name)
    arr = _numeric_array(X, name)
    if np.iscomplexobj(arr):
        raise ValueError(f"{name} must be real-valued; got complex dtype {arr.dtype}.")
    if arr.ndim == 1:
        raise ValueError(
            f"{name} must be 2-D with shape (n_obs, n_features); got a 1-D array of shape "
            f"{arr.shape}. Use X.reshape(-1, 1) for a single feature or X.reshape(1, -1) for "
            "a single observation."
        )
    if arr.ndim != 2:
        raise ValueError(
            f"{name} must be 2-D with shape (n_obs, n_features); got {arr.ndim}-D array of "
            f"shape {arr.shape}."
        )
    n_obs, n_features = arr.shape
    if n_features == 0:
        raise ValueError(f"{name} has 0 features (shape {arr.shape}); at least 1 is required.")
    if n_obs < min_obs:
        raise ValueError(
            f"{name} has {n_obs} observation(s) (shape {arr.shape}); at least {min_obs} required."
        )
    out = np.array(arr, dtype=np.float64, order="C", copy=True if copy else None)
    _check_finite(out, name)
    if feature_names is None:
        feature_names = [f"x{j}" for j in range(n_features)]
    if return_names:
        return out, feature_names
    return out


def _unwrap_pandas(X, name):
    """``(values, column names)`` of a DataFrame; ``(X, None)`` for anything else.

    pandas is optional at this layer: a DataFrame is detected by duck typing.
    """
    if hasattr(X, "columns") and hasattr(X, "dtypes") and hasattr(X, "to_numpy"):
        feature_names = [str(c) for c in X.columns]
        bad = [str(c) for c, dt in zip(X.columns, X.dtypes, strict=True) if not _numeric_dtype(dt)]
        if bad:
            raise ValueError(
                f"{name} has non-numeric columns {bad}; bayesmix fits numeric data only. "
                "Drop or encode these columns (for example select numeric columns with "
                "df.select_dtypes('number'))."
            )
        return X.to_numpy(), feature_names
    if hasattr(X, "to_numpy") and hasattr(X, "name") and hasattr(X, "dtype"):
        # a pandas Series: one feature
        raise ValueError(
            f"{name} must be 2-D with shape (n_obs, n_features); got a 1-D Series of length "
            f"{len(X)}. Use series.to_frame() for a single feature."
        )
    return X, None


def _numeric_array(X, name):
    """``X`` as a numpy array of a numeric dtype (object arrays converted to float64)."""
    try:
        arr = np.asarray(X)
    except Exception as exc:  # ragged lists and the like
        raise ValueError(f"{name} could not be converted to a numeric array: {exc}") from exc
    if arr.dtype == object or not _numeric_dtype(arr.dtype):
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"{name} must be numeric; got an array of dtype {arr.dtype} that cannot be "
                f"converted to float ({exc}). Encode or drop non-numeric values first."
            ) from exc
    return arr


def _check_finite(out, name):
    """Reject NaN and infinite values, with their count and the first offending row."""
    finite = np.isfinite(out)
    if finite.all():
        return
    bad_rows = np.flatnonzero(~finite.all(axis=1))
    n_nan = int(np.isnan(out).sum())
    n_inf = int(np.isinf(out).sum())
    raise nonfinite_error(name, n_nan, n_inf, bad_rows.size, int(bad_rows[0]))


def nonfinite_error(name, n_nan, n_inf, n_bad_rows, first_row):
    """The ValueError for NaN/infinite data (shared by the numpy and the Dask paths)."""
    what = " and ".join(
        s for s in (f"{n_nan} NaN" if n_nan else "", f"{n_inf} infinite" if n_inf else "") if s
    )
    return ValueError(
        f"{name} contains {what} value(s) in {n_bad_rows} row(s); the first is row "
        f"{first_row}. Remove or impute missing values before fitting (bayesmix never "
        "drops rows silently)."
    )


def _numeric_dtype(dtype):
    try:
        dtype = np.dtype(dtype)
    except TypeError:  # pandas extension dtypes
        kind = getattr(dtype, "kind", "O")
        return kind in "biuf"
    return dtype.kind in "biuf"


def warn(message, category=BayesmixWarning, stacklevel=3):
    """Emit a bayesmix warning pointing at the caller's caller."""
    warnings.warn(message, category, stacklevel=stacklevel)
