"""Input validation: every bad input gets a clear error naming the problem and the fix."""

import numpy as np
import pandas as pd
import pytest

from bayesmix.core._validation import (
    check_covariance_type,
    check_data,
    check_n_components,
    check_positive,
    check_random_state,
)


def test_check_data_converts_int_and_keeps_values():
    X_int = np.array([[1, 2], [3, 4]], dtype=np.int32)
    out = check_data(X_int)
    assert out.dtype == np.float64
    assert out.flags.c_contiguous
    np.testing.assert_array_equal(out, X_int)


def test_check_data_fortran_and_noncontiguous():
    X = np.asfortranarray(np.arange(12.0).reshape(4, 3))
    np.testing.assert_array_equal(check_data(X), X)
    assert check_data(X).flags.c_contiguous
    Y = np.arange(24.0).reshape(4, 6)[:, ::2]
    np.testing.assert_array_equal(check_data(Y), Y)


def test_check_data_does_not_modify_input():
    X = np.array([[1.0, 2.0], [3.0, 4.0]])
    out = check_data(X, copy=True)
    out[0, 0] = 99.0
    assert X[0, 0] == 1.0


def test_dataframe_keeps_feature_names():
    df = pd.DataFrame({"a": [1.0, 2.0], "b": [3, 4]})
    X, names = check_data(df, return_names=True)
    assert names == ["a", "b"]
    np.testing.assert_array_equal(X, [[1.0, 3.0], [2.0, 4.0]])


def test_default_feature_names():
    _, names = check_data(np.zeros((3, 2)), return_names=True)
    assert names == ["x0", "x1"]


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (
            np.array([[1.0, np.nan], [2.0, 3.0], [np.nan, 1.0]]),
            "2 NaN value(s) in 2 row(s); the first is row 0",
        ),
        (
            np.array([[1.0, 2.0], [np.inf, 3.0]]),
            "1 infinite value(s) in 1 row(s); the first is row 1",
        ),
    ],
)
def test_nonfinite_errors_count_and_first_row(value, fragment):
    with pytest.raises(ValueError, match="X contains") as info:
        check_data(value)
    assert fragment in str(info.value)


def test_1d_suggests_reshape():
    with pytest.raises(ValueError, match=r"reshape\(-1, 1\)"):
        check_data(np.arange(5.0))


def test_3d_rejected():
    with pytest.raises(ValueError, match="3-D"):
        check_data(np.zeros((2, 2, 2)))


def test_non_numeric_dataframe_columns_named():
    df = pd.DataFrame({"x": [1.0, 2.0], "name": ["a", "b"]})
    with pytest.raises(ValueError, match=r"non-numeric columns \['name'\]"):
        check_data(df)


def test_non_numeric_array():
    with pytest.raises(ValueError, match="must be numeric"):
        check_data(np.array([["a", "b"], ["c", "d"]]))


def test_empty():
    with pytest.raises(ValueError, match="0 observation"):
        check_data(np.zeros((0, 2)))
    with pytest.raises(ValueError, match="0 features"):
        check_data(np.zeros((3, 0)))


def test_series_rejected_with_fix():
    with pytest.raises(ValueError, match="to_frame"):
        check_data(pd.Series([1.0, 2.0]))


def test_n_components():
    assert check_n_components(3, 10) == 3
    assert check_n_components(np.int64(2)) == 2
    with pytest.raises(ValueError, match=">= 1"):
        check_n_components(0)
    with pytest.raises(ValueError, match="larger than the number of observations n_obs=4"):
        check_n_components(5, 4)
    with pytest.raises(TypeError, match="integer"):
        check_n_components(2.5)
    with pytest.raises(TypeError, match="integer"):
        check_n_components(True)


def test_covariance_type_aliases_and_errors():
    assert check_covariance_type("diagonal") == "diag"
    assert check_covariance_type("FULL") == "full"
    with pytest.raises(ValueError, match="got 'ful'"):
        check_covariance_type("ful")
    with pytest.raises(ValueError, match="one of"):
        check_covariance_type("tied", allowed=("full", "diag"))
    with pytest.raises(TypeError):
        check_covariance_type(3)


def test_random_state():
    a = check_random_state(1).standard_normal(3)
    b = check_random_state(1).standard_normal(3)
    np.testing.assert_array_equal(a, b)
    rng = np.random.default_rng(0)
    assert check_random_state(rng) is rng
    with pytest.raises(TypeError, match="random_seed"):
        check_random_state("seed")


def test_check_positive():
    assert check_positive(2, "x") == 2.0
    with pytest.raises(ValueError, match="x must be > 0"):
        check_positive(0, "x")
    with pytest.raises(ValueError, match="finite"):
        check_positive(float("nan"), "x")
