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

from bayesmix.core._mclust_models import MCLUST_ALIASES, NEW_MODELS
from bayesmix.core._missing import check_gaps, check_missing

__all__ = [
    "COVARIANCE_TYPES",
    "BayesmixWarning",
    "ConvergenceWarning",
    "DataFormatWarning",
    "DegenerateDataWarning",
    "check_covariance_type",
    "check_data",
    "check_int",
    "check_missing",
    "check_n_components",
    "check_positive",
    "check_random_state",
    "check_sample_weight",
    "match_columns",
]

#: Canonical covariance type names, and the aliases accepted for them.
COVARIANCE_TYPES = ("spherical", "diag", "full", "tied")
EM_COVARIANCE_TYPES = (*COVARIANCE_TYPES, *NEW_MODELS)  # what fit_em takes
_COVARIANCE_ALIASES = {
    "spherical": "spherical",
    "diag": "diag",
    "diagonal": "diag",
    "full": "full",
    "tied": "tied",
    **MCLUST_ALIASES,  # mclust's 14 names (EM takes the ten others: EM_COVARIANCE_TYPES)
}


class BayesmixWarning(UserWarning):
    """Base class of the warnings bayesmix emits."""


class ConvergenceWarning(BayesmixWarning):
    """An iterative fit stopped before its convergence criterion was met."""


class DegenerateDataWarning(BayesmixWarning):
    """The data make a fit ill-posed (constant features, collapsed components...)."""


class DataFormatWarning(BayesmixWarning):
    """A data file was read with an adjustment (no header row, an index column dropped...)."""


def check_covariance_type(covariance, *, allowed=COVARIANCE_TYPES, name="covariance"):
    """Return the canonical name of a covariance type.

    Parameters
    ----------
    covariance : str
        ``"spherical"``, ``"diag"`` (``"diagonal"``), ``"full"``, ``"tied"``, an mclust name.
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


def check_random_state(random_seed, name="random_seed"):
    """Return a :class:`numpy.random.Generator` from ``None``, an int >= 0 or a Generator.

    Examples
    --------
    >>> rng = check_random_state(0)
    >>> check_random_state(rng) is rng
    True
    >>> check_random_state(-1)
    Traceback (most recent call last):
    ...
    ValueError: random_seed must be None, an integer >= 0 or a numpy.random.Generator; got -1.
    """
    if isinstance(random_seed, np.random.Generator):
        return random_seed
    if random_seed is None or isinstance(random_seed, np.random.SeedSequence):
        return np.random.default_rng(random_seed)
    if isinstance(random_seed, numbers.Integral) and not isinstance(random_seed, bool):
        if random_seed < 0:
            raise ValueError(
                f"{name} must be None, an integer >= 0 or a numpy.random.Generator; "
                f"got {random_seed}."
            )
        return np.random.default_rng(int(random_seed))
    raise TypeError(
        f"{name} must be None, an integer >= 0 or a numpy.random.Generator; "
        f"got {type(random_seed).__name__} {random_seed!r}."
    )


def check_data(
    X,
    *,
    name="X",
    min_obs=1,
    return_names=False,
    copy=False,
    check_scale=True,
    missing="error",
):
    """Validate data and return a float64 array of shape (n_obs, n_features).

    The one input boundary of the package: arrays, lists, pandas DataFrames (nullable
    ``Int64`` / ``Float64`` / ``boolean`` columns included: ``pd.NA`` counts as missing)
    and 2-D :class:`xarray.DataArray` objects.

    Parameters
    ----------
    X : array_like, pandas.DataFrame or xarray.DataArray, shape (n_obs, n_features)
        The data. Integer and boolean input are converted to float64 (a copy); a
        DataFrame keeps its column names as feature names, a DataArray the coordinate
        values (or ``<dim><j>``) of its second dimension.
    name : str
        Parameter name used in error messages.
    min_obs : int
        Minimum number of rows required.
    return_names : bool
        Also return the feature names (DataFrame columns, or ``x0, x1, ...``).
    copy : bool
        Always return a copy.
    check_scale : bool
        Reject values whose magnitude overflows (or underflows) the squares the fits
        compute (``|x| > 1e150``, or a feature whose spread is below ``1e-100``).
        Prediction on new points passes ``False``: a far point is valid there.
    missing : {"error", "mar"}, default "error"
        ``"error"``: NaN (and ``pd.NA``) is refused. ``"mar"``: NaN entries are kept as
        missing values (missing at random); infinite values are still refused, and so
        is a row with no observed entry and, with ``check_scale`` (the fits), a feature
        with no observed value (naming them). Callers that handle gaps pass ``"mar"``.

    Returns
    -------
    X : ndarray of float64, shape (n_obs, n_features)
        C-contiguous.
    feature_names : list of str
        Only when ``return_names`` is true.

    Raises
    ------
    ValueError
        On complex, datetime/timedelta or masked input (with the explicit conversion
        that would make it valid); on 1-D or >2-D input, empty input, missing (NaN,
        ``pd.NA``) or infinite values (with their count and the first offending row),
        non-numeric columns, or values too large / too small for the arithmetic
        (naming the feature and the fix).

    Examples
    --------
    >>> X = check_data([[1, 2], [3, 4]])
    >>> X.dtype, X.shape
    (dtype('float64'), (2, 2))
    >>> check_data([[1 + 2j, 0.0]])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: X must be real-valued; got complex values (dtype complex128). ...
    """
    arr, feature_names = _unwrap(X, name)
    arr = _as_float_array(arr, name)
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
    if feature_names is None:
        feature_names = [f"x{j}" for j in range(n_features)]
    if check_missing(missing) == "mar":
        check_gaps(out, name, feature_names, empty_features=check_scale)
    else:
        _check_finite(out, name)
    if check_scale:
        _check_scale(out, name, feature_names)
    if return_names:
        return out, feature_names
    return out


def _unwrap(X, name):
    """Turn containers (DataFrame, DataArray, masked array) into an array and names."""
    _reject_containers(X, name)
    if isinstance(X, np.ma.MaskedArray):
        mask = np.ma.getmaskarray(X)
        if mask.any():
            rows = np.flatnonzero(mask.reshape(mask.shape[0], -1).any(axis=1))
            raise ValueError(
                f"{name} is a masked array with {int(mask.sum())} masked value(s) in "
                f"{len(rows)} row(s); bayesmix would lose the mask. Remove or impute the "
                f"masked rows first (for example X[~X.mask.any(axis=1)].data), or pass "
                "X.filled(np.nan) to see them reported as missing."
            )
        return np.ma.getdata(X), None
    if hasattr(X, "data_vars") and hasattr(X, "coords"):
        raise TypeError(
            f"{name} is an xarray.Dataset; pass a 2-D DataArray (ds.to_array(dim='feature')"
            ".T) or a DataFrame (ds.to_dataframe()) with one column per feature."
        )
    if hasattr(X, "dims") and hasattr(X, "coords") and hasattr(X, "values"):
        return _unwrap_dataarray(X, name)
    if hasattr(X, "columns") and hasattr(X, "dtypes") and hasattr(X, "to_numpy"):
        return _unwrap_dataframe(X, name)
    if hasattr(X, "to_numpy") and hasattr(X, "name") and hasattr(X, "dtype"):
        # a pandas Series: one feature
        raise ValueError(
            f"{name} must be 2-D with shape (n_obs, n_features); got a 1-D Series of length "
            f"{len(X)}. Use series.to_frame() for a single feature."
        )
    return X, None


def _reject_containers(X, name):
    """Inputs that are not a table of numbers, with the conversion that makes them one."""
    fixes = [
        (X is None, "None", "pass the data (an array of shape (n_obs, n_features))"),
        (isinstance(X, (str, bytes)), "a string", "read the file first (pandas.read_csv)"),
        (isinstance(X, dict), "a dict", "pass pandas.DataFrame(X) (one column per feature)"),
        (
            hasattr(X, "toarray") and hasattr(X, "nnz"),
            "a scipy.sparse matrix",
            "pass X.toarray() (a mixture needs dense data)",
        ),
        (
            hasattr(X, "__next__") or isinstance(X, (set, frozenset)),
            f"an unordered or one-pass {type(X).__name__}",
            "pass a list or an array",
        ),
    ]
    for bad, what, fix in fixes:
        if bad:
            raise TypeError(
                f"{name} must be an array-like of shape (n_obs, n_features); got {what}: {fix}."
            )


def _unwrap_dataarray(X, name):
    if X.ndim == 1:
        raise ValueError(
            f"{name} must be 2-D with shape (n_obs, n_features); got a 1-D DataArray of "
            f"length {X.size} (dim {X.dims[0]!r}). Use da.values.reshape(-1, 1) (or "
            "da.expand_dims('feature', axis=-1)) for a single feature."
        )
    if X.ndim != 2:
        return X.values, None
    dim = X.dims[1]
    if dim in X.coords:
        names = [str(v) for v in np.asarray(X.coords[dim].values).tolist()]
    else:
        names = [f"{dim}{j}" for j in range(X.shape[1])]
    return X.values, names


def _unwrap_dataframe(X, name):
    names = [str(c) for c in X.columns]
    twice = sorted({c for c in names if names.count(c) > 1})
    if twice:
        raise ValueError(
            f"{name} has duplicate column names {twice}; features are matched by name, so "
            "rename them (df.columns = [...]) or drop the copies."
        )
    check_frame_dtypes(X, name)
    # nullable extension columns (Int64, Float64, boolean) hold pd.NA: NaN here
    return X.to_numpy(dtype=np.float64, na_value=np.nan), names


def check_frame_dtypes(X, name="X"):
    """Datetime, complex and non-numeric DataFrame columns: one error naming them.

    The column check of :func:`check_data`, for callers that convert a DataFrame
    themselves (the scikit-learn adapter); ``X`` without ``dtypes`` passes.

    Examples
    --------
    >>> import pandas as pd
    >>> check_frame_dtypes(pd.DataFrame({"t": pd.date_range("2020", periods=2)}))
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: X has datetime/timedelta columns ['t']; ...
    """
    if not (hasattr(X, "columns") and hasattr(X, "dtypes")):
        return
    timelike = [str(c) for c, dt in zip(X.columns, X.dtypes, strict=True) if _timelike(dt)]
    if timelike:
        raise ValueError(
            f"{name} has datetime/timedelta columns {timelike}; bayesmix fits numeric "
            "features only and does not turn dates into numbers silently. Convert them "
            "explicitly (for example (df[c] - df[c].min()).dt.total_seconds()) or drop them."
        )
    cplx = [str(c) for c, dt in zip(X.columns, X.dtypes, strict=True) if _kind(dt) == "c"]
    if cplx:
        raise ValueError(
            f"{name} has complex columns {cplx}; bayesmix fits real data only. Pass their "
            ".real (or abs) explicitly if that is what you mean to fit."
        )
    bad = [
        str(c)
        for j, (c, dt) in enumerate(zip(X.columns, X.dtypes, strict=True))
        if not _numeric_dtype(dt) and not _numbers_as_objects(X.iloc[:, j])
    ]
    if bad:
        raise ValueError(
            f"{name} has non-numeric columns {bad}; bayesmix fits numeric data only. "
            "Drop or encode these columns (for example select numeric columns with "
            "df.select_dtypes('number'))."
        )


def _numbers_as_objects(col):
    """An object column holding real numbers only (missing values allowed)."""
    if getattr(col.dtype, "kind", "") != "O":
        return False
    vals = [v for v in col.tolist() if v is not None and type(v).__name__ != "NAType"]
    return all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in vals)


def _as_float_array(X, name):
    try:
        arr = np.asarray(X)
    except Exception as exc:  # ragged lists and the like
        raise ValueError(f"{name} could not be converted to a numeric array: {exc}") from exc
    if arr.dtype.kind == "c" or (arr.dtype == object and _any(arr, complex)):
        raise ValueError(
            f"{name} must be real-valued; got complex values (dtype {arr.dtype}). Pass "
            "X.real (or np.abs(X)) explicitly if that is what you mean to fit."
        )
    if arr.dtype.kind in "mM":
        raise ValueError(
            f"{name} has dtype {arr.dtype}: datetime/timedelta values are not turned into "
            "numbers silently. Convert them explicitly (for example "
            "(t - t.min()) / np.timedelta64(1, 's') for seconds)."
        )
    if _numeric_dtype(arr.dtype):
        return arr
    try:
        return arr.astype(np.float64)
    except (TypeError, ValueError) as exc:
        if arr.dtype == object:  # pd.NA -> NaN; dates named
            fixed = _object_na_to_nan(arr, name)
            try:
                return fixed.astype(np.float64)
            except (TypeError, ValueError):
                pass
        raise ValueError(
            f"{name} must be numeric; got an array of dtype {arr.dtype} that cannot be "
            f"converted to float ({exc}). Encode or drop non-numeric values first."
        ) from exc


def _any(arr, typ):
    return any(isinstance(v, typ) and not isinstance(v, numbers.Real) for v in arr.flat)


def _object_na_to_nan(arr, name):
    """pandas' ``pd.NA`` / ``NaT`` in an object array become NaN (missing)."""
    out = arr.copy()
    for idx, v in np.ndenumerate(arr):
        if type(v).__name__ in ("NAType", "NaTType"):
            out[idx] = np.nan
        elif isinstance(v, (np.datetime64, np.timedelta64)) or hasattr(v, "isoformat"):
            raise ValueError(
                f"{name} holds a {type(v).__name__} value at index {idx}: dates and durations "
                "are not turned into numbers silently. Convert them explicitly (for "
                "example to seconds) or drop them."
            )
    return out


def _check_finite(out, name):
    finite = np.isfinite(out)
    if finite.all():
        return
    bad_rows = np.flatnonzero(~finite.all(axis=1))
    n_nan = int(np.isnan(out).sum())
    n_inf = int(np.isinf(out).sum())
    raise nonfinite_error(name, n_nan, n_inf, bad_rows.size, int(bad_rows[0]))


class MissingValueError(ValueError):
    """Data hold NaN (missing) values where the caller refuses them (a ValueError)."""


def nonfinite_error(name, n_nan, n_inf, n_bad_rows, first_row):
    """The ValueError for NaN/infinite data (shared by the numpy and the Dask paths);
    a :class:`MissingValueError` when every offending value is NaN."""
    what = " and ".join(
        s for s in (f"{n_nan} NaN" if n_nan else "", f"{n_inf} infinite" if n_inf else "") if s
    )
    cls = MissingValueError if n_nan and not n_inf else ValueError
    return cls(
        f"{name} contains {what} value(s) in {n_bad_rows} row(s); the first is row "
        f"{first_row}. Remove or impute missing values before fitting (bayesmix never "
        "drops rows silently)."
    )


#: Largest |x| the fits accept: squared distances and scatter sums over n rows and
#: D features stay far below float64's maximum (1.8e308) up to n * D ~ 1e8.
MAX_ABS_VALUE = 1e150
#: Smallest non-zero spread of a feature: its variance (spread**2 = 1e-200) and the
#: determinant of a covariance of a few such features stay above float64's minimum.
MIN_SPREAD = 1e-100


def _check_scale(X, name, feature_names):
    """One-line error naming a feature whose magnitude breaks float64 arithmetic."""
    limit = scale_limit(*X.shape)
    gaps = np.isnan(X).any()
    big = np.nanmax(np.abs(X), axis=0) if gaps else np.abs(X).max(axis=0)
    rows = [np.flatnonzero(np.abs(X[:, j]) > limit) for j in np.flatnonzero(big > limit)[:1]]
    with np.errstate(over="ignore"):  # +-1e308: the spread overflows, but big > limit
        # is reported first then
        spread = (
            np.nanmax(X, axis=0) - np.nanmin(X, axis=0) if gaps else X.max(axis=0) - X.min(axis=0)
        )
    err = scale_error(name, feature_names, limit, big, rows, spread)
    if err is not None:
        raise err


def scale_limit(n_obs, n_features):
    """The largest ``|x|`` the fits accept for data of shape ``(n_obs, n_features)``."""
    return min(MAX_ABS_VALUE, float(np.sqrt(np.finfo(np.float64).max / (4.0 * n_obs * n_features))))


def scale_error(name, feature_names, limit, big, rows, spread):
    """The ValueError for data beyond float64's range, or None (shared by the numpy and the
    Dask paths): per feature the largest ``|x|`` (``big``) and ``max - min`` (``spread``);
    ``rows[0]`` the rows beyond ``limit`` of the first feature with ``big > limit``."""
    for j in np.flatnonzero(big > limit)[:1]:
        r = np.asarray(rows[0])
        return ValueError(
            f"{name} feature {feature_names[j]!r} holds values up to |x| = {big[j]:.3g} "
            f"(row(s) {', '.join(map(str, r[:5]))}{' ...' if r.size > 5 else ''}), "
            f"beyond {limit:.3g}, where squared distances and variances overflow float64. "
            "Rescale the data first (divide the feature by a power of ten, or standardize)."
        )
    for j in np.flatnonzero((spread > 0) & (spread < MIN_SPREAD))[:1]:
        return ValueError(
            f"{name} feature {feature_names[j]!r} varies by only {spread[j]:.3g}, below "
            f"{MIN_SPREAD:.0e}, where variances underflow float64. Rescale the data first "
            "(multiply the feature by a power of ten, or standardize)."
        )
    return None


def _kind(dtype):
    try:
        return np.dtype(dtype).kind
    except TypeError:  # pandas extension dtypes
        return getattr(dtype, "kind", "O")


def _timelike(dtype):
    return _kind(dtype) in "mM" or "datetime" in str(dtype) or "period" in str(dtype)


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


def check_sample_weight(sample_weight, n_obs, *, name="sample_weight", check_values=True):
    """Validate per-observation weights; return them as a float64 array, or None.

    Weights are frequency (case) weights: a weight of 3 counts the row three times, so
    integer weights give exactly the fit of the data with the rows duplicated. Zero
    weights are allowed (those rows do not enter the fit); at least one must be positive.

    Parameters
    ----------
    sample_weight : array_like, shape (n_obs,), or None
        Non-negative finite numbers (a list, ndarray or pandas Series).
    n_obs : int
        The number of rows of the data.
    name : str
        The caller's parameter name, used in the messages.
    check_values : bool, default True
        ``False``: check the type and the shape only (the Dask path checks the values
        in its first pass over the data, after the data's own checks).

    Returns
    -------
    ndarray of float64, shape (n_obs,), or None
        ``None`` when ``sample_weight`` is None.

    Raises
    ------
    ValueError
        Non-numeric, not 1-D, wrong length, negative, NaN or infinite, or all zero.

    Examples
    --------
    >>> check_sample_weight([1, 0, 2], 3)
    array([1., 0., 2.])
    >>> try:
    ...     check_sample_weight([1, -1], 2)
    ... except ValueError as err:
    ...     print(str(err)[:39])
    sample_weight must be non-negative; got
    """
    if sample_weight is None:
        return None
    raw = getattr(sample_weight, "to_numpy", lambda: sample_weight)()
    try:
        w = np.asarray(raw)
        kind = w.dtype
        ok = w.dtype.kind in "biuf"
    except (TypeError, ValueError):
        kind, ok = type(raw).__name__, False
    if not ok:
        raise ValueError(
            f"{name} must be numeric (one non-negative number per observation); got {kind}. "
            "Convert the weights to numbers."
        )
    w = w.astype(np.float64)
    check_weight_shape(w, n_obs, name)
    if not check_values:
        return np.ascontiguousarray(w)
    nonfinite = ~np.isfinite(w)
    err = weight_value_error(
        name,
        int(nonfinite.sum()),
        int((w < 0).sum()),
        float(w[~nonfinite].min(initial=np.inf)),
        int((w > 0).sum()),
    )
    if err is not None:
        raise err
    return np.ascontiguousarray(w)


def check_weight_shape(w, n_obs, name="sample_weight"):
    """The numeric-type and shape checks of :func:`check_sample_weight` for an array with
    ``dtype`` and ``shape`` (a numpy or a Dask array: no values are read)."""
    if w.dtype.kind not in "biuf":
        raise ValueError(
            f"{name} must be numeric (one non-negative number per observation); got {w.dtype}. "
            "Convert the weights to numbers."
        )
    if w.ndim != 1 or w.shape[0] != n_obs:
        raise ValueError(
            f"{name} must have shape (n_obs,) = ({n_obs},), one weight per row of X; got shape "
            f"{w.shape}. Pass a 1-D array with one entry per observation."
        )


def weight_value_error(name, n_nonfinite, n_negative, w_min, n_positive):
    """The ValueError for bad weight values, or None (shared by the numpy and the Dask
    paths): counts of NaN/inf, of negative and of positive weights, and the smallest
    finite weight."""
    if n_nonfinite:
        return ValueError(
            f"{name} must be finite; got {n_nonfinite} NaN or infinite "
            "value(s). Replace them (0 drops a row from the fit)."
        )
    if n_negative:
        return ValueError(
            f"{name} must be non-negative; got {n_negative} negative value(s) "
            f"(min {w_min:g}). Give frequency weights >= 0 (0 drops a row from the fit)."
        )
    if not n_positive:
        return ValueError(
            f"{name} is all zero, so no observation would enter the fit; give at least one "
            "positive weight (or sample_weight=None for equal weights)."
        )
    return None


def degenerate_report(X, feature_names=None):
    """What makes data degenerate for a Gaussian mixture: a dict of findings.

    Parameters
    ----------
    X : ndarray, shape (n_obs, n_features)
        Validated data (see :func:`check_data`).
    feature_names : list of str, optional

    Returns
    -------
    dict
        ``n_distinct`` (distinct rows), ``constant`` (names of constant features),
        ``collinear`` (list of groups of feature names whose standardised columns are
        linearly dependent, each with a description such as ``"f = 1.8 * c + 32"``),
        ``rank`` (rank of the centred data among non-constant features).

    Examples
    --------
    >>> import numpy as np
    >>> c = np.array([0.0, 10.0, 25.0, 40.0])
    >>> degenerate_report(np.c_[c, 1.8 * c + 32], ["c", "f"])["collinear"]
    [(['c', 'f'], 'f = 1.8 * c + 32')]
    """
    n, D = X.shape
    names = list(feature_names) if feature_names is not None else [f"x{j}" for j in range(D)]
    n_distinct = int(np.unique(X, axis=0).shape[0]) if n < 2_000_000 else n
    sd = X.std(axis=0)
    scale = np.maximum(np.abs(X).max(axis=0), np.finfo(float).tiny)
    const = sd <= 1e-13 * scale
    out = {"n_distinct": n_distinct, "constant": [names[j] for j in np.flatnonzero(const)]}
    keep = np.flatnonzero(~const)
    out["collinear"], out["rank"] = [], int(keep.size)
    if keep.size < 2 or n < 3:
        return out
    Z = (X[:, keep] - X[:, keep].mean(axis=0)) / sd[keep]
    _, s, Vt = np.linalg.svd(Z / np.sqrt(n), full_matrices=False)
    null = Vt[s < 1e-7 * max(s[0], 1.0)]
    out["rank"] = int(keep.size - null.shape[0])
    if not null.shape[0] or n_distinct <= keep.size:
        return out
    out["collinear"] = _collinear_groups(X, Z, null, keep, names)
    return out


def _collinear_groups(X, Z, null, keep, names):
    """Groups of collinear columns: perfectly correlated pairs first, then the rest."""
    corr = (Z.T @ Z) / Z.shape[0]
    parent = list(range(keep.size))

    def root(i):
        while parent[i] != i:
            i = parent[i]
        return i

    for i, j in zip(*np.nonzero(np.triu(np.abs(corr) >= 1.0 - 1e-10, 1)), strict=True):
        parent[root(int(j))] = root(int(i))
    found = {}
    for i in range(keep.size):
        found.setdefault(root(i), []).append(i)
    groups = [g for g in found.values() if len(g) > 1]
    if sum(len(g) - 1 for g in groups) < null.shape[0]:  # dependencies beyond pairs
        groups.append([int(i) for i in np.flatnonzero((np.abs(null) > 1e-6).any(axis=0))])
    out = []
    for g in groups:
        cols = [int(keep[i]) for i in g]
        out.append(([names[j] for j in cols], _relation(X, cols, names)))
    return out


def _relation(X, cols, names):
    """'b = 1.8 * a + 32' for two collinear columns, 'linearly dependent' otherwise."""
    if len(cols) != 2:
        return "linearly dependent"
    a, b = cols
    slope, icpt = np.polyfit(X[:, a], X[:, b], 1)
    if abs(icpt) < 1e-9 * (np.abs(X[:, b]).max() + abs(slope) * np.abs(X[:, a]).max()):
        return f"{names[b]} = {slope:.6g} * {names[a]}"
    return f"{names[b]} = {slope:.6g} * {names[a]} {'+' if icpt >= 0 else '-'} {abs(icpt):.6g}"


def check_degenerate(
    X,
    n_components,
    feature_names=None,
    *,
    covariance="full",
    prior_given=False,
    name="X",
    how="",
):
    """Refuse (or, under an explicit prior, warn about) data a mixture cannot be fitted to.

    Run before a model is built or sampled. Without an explicit prior these are
    ``ValueError``: fewer distinct points than ``n_components``; all features constant;
    for ``full``/``tied`` covariances, collinear columns or fewer distinct points than
    ``D + 1``. Constant features (some, not all) are a ``DegenerateDataWarning``. With
    ``prior_given=True`` (a prior the user chose keeps the posterior proper) every finding
    is a ``DegenerateDataWarning``.

    Parameters
    ----------
    X : ndarray, shape (n_obs, n_features)
    n_components : int
    feature_names : list of str, optional
    covariance : str
        The covariance type to be fitted.
    prior_given : bool
        Whether the user passed a prior of their own.
    name : str
        How messages refer to the data.
    how : str
        How to drop columns in the caller's interface, e.g. ``" with --columns"``.

    Returns
    -------
    dict
        The :func:`degenerate_report`.

    Examples
    --------
    >>> import numpy as np
    >>> check_degenerate(np.ones((5, 2)), 2)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: X has 1 distinct point(s) but n_components=2: ...
    """
    rep = degenerate_report(X, feature_names)
    D = X.shape[1]
    errors, warns = [], []
    if rep["n_distinct"] < n_components:
        errors.append(
            f"{name} has {rep['n_distinct']} distinct point(s) but n_components={n_components}: "
            f"a component needs points of its own. Use n_components <= {rep['n_distinct']}."
        )
    if len(rep["constant"]) == D:
        errors.append(
            f"Every feature of {name} is constant ({rep['constant']}): there is nothing to "
            "cluster. Check the data (wrong columns or file?)."
        )
    elif rep["constant"]:
        warns.append(
            f"feature(s) {rep['constant']} of {name} are constant; they carry no information "
            f"about the components. Drop them{how}."
        )
    full = check_covariance_type(covariance) in ("full", "tied")
    if full and not errors and rep["n_distinct"] <= D:
        errors.append(
            f"{name} has {rep['n_distinct']} distinct point(s) for D={D} features: a "
            f"{covariance} covariance needs at least D + 1 = {D + 1}. Add data, use fewer "
            "features, or covariance='diag'."
        )
    elif full and rep["collinear"]:
        desc = "; ".join(f"columns {g} are collinear ({rel})" for g, rel in rep["collinear"])
        errors.append(
            f"{desc}: the data covariance is singular (rank {rep['rank']} of "
            f"{D - len(rep['constant'])}), so a {covariance} covariance is ill-defined. Keep "
            f"one column of each group{how}, or use covariance='diag'."
        )
    if prior_given:
        warns, errors = warns + errors, []
    for msg in warns:
        warn(
            msg + (" The prior keeps the fit well-defined." if prior_given else ""),
            DegenerateDataWarning,
            stacklevel=3,
        )
    if errors:
        raise ValueError(" ".join(errors))
    return rep


def match_columns(X, feature_names, what="the mixture"):
    """A DataFrame's columns matched to the fitted feature names (reordered by name).

    Arrays, and DataFrames when the fit saw an array (names ``x0, x1, ...``), pass
    through unchanged (matched by position).

    Examples
    --------
    >>> import pandas as pd
    >>> match_columns(pd.DataFrame({"b": [1.0], "a": [2.0]}), ["a", "b"]).columns.tolist()
    ['a', 'b']
    """
    if not (hasattr(X, "columns") and hasattr(X, "dtypes")):
        return X
    cols = [str(c) for c in X.columns]
    if cols == list(feature_names):
        return X
    if list(feature_names) == [f"x{j}" for j in range(len(feature_names))]:
        return X  # fitted on an array: columns are matched by position
    missing = [n for n in feature_names if n not in cols]
    extra = [c for c in cols if c not in feature_names]
    if missing or extra:
        raise ValueError(
            f"X has columns {cols} but {what} was fitted on {list(feature_names)}"
            + (f": missing column(s) {missing}" if missing else "")
            + (f"{';' if missing else ':'} unexpected column(s) {extra}" if extra else "")
            + ". Pass a DataFrame with the fitted columns (any order), e.g. "
            f"X[{list(feature_names)}], or an array in that order."
        )
    return X.iloc[:, [cols.index(n) for n in feature_names]]
