"""Fixtures shared by several test files.

Old Faithful is the package's built-in data set; tests use it as a DataFrame (feature
names) or as a float64 array. Module scope, as the fixtures it replaces: each test file
gets its own copy, so an accidental in-place change cannot leak between files.
"""

from __future__ import annotations

import numpy as np
import pytest

import bayesmix as bm


@pytest.fixture(scope="module")
def faithful_df():
    """Old Faithful as a pandas DataFrame, columns ``eruptions`` and ``waiting``, shape (272, 2)."""
    return bm.load_old_faithful()


@pytest.fixture(scope="module")
def faithful(faithful_df):
    """Old Faithful as a float64 array, shape (272, 2)."""
    return faithful_df.to_numpy(dtype=np.float64)
