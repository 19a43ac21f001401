"""The input boundary, degenerate data and safe output: a battery of adversarial cases.

Each case states its exact outcome: an exception type and the words its message must
contain (what is wrong, and the fix), a warning class, or a correct result (a European
CSV parses to the right floats, a written pandas index is not fitted as a feature).
Files are generated in ``tmp_path``; no case runs MCMC, CLI cases use ``--no-mcmc``.

The README's "What bad input gets" table is rendered from ``TABLE`` below, and
``test_readme_table_is_generated_from_the_battery`` keeps the two identical: every
row of the table is backed by the cases tagged with its key.
"""

from __future__ import annotations

import importlib.util
import json
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import bayesmix as bm
from bayesmix.core._validation import (
    BayesmixWarning,
    ConvergenceWarning,
    DataFormatWarning,
    DegenerateDataWarning,
    MissingValueError,
    check_data,
    check_degenerate,
)
from bayesmix.workflow._csv import check_columns, read_csv
from bayesmix.workflow._io import MARKER_FILE, load_fit, save_fit

REPO = Path(__file__).resolve().parents[1]


# =========================================================================== helpers
class Err:
    """Expect an exception of ``typ`` whose message contains every fragment."""

    def __init__(self, typ, *fragments):
        self.typ, self.fragments = typ, fragments

    def check(self, fn):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", BayesmixWarning)
            with pytest.raises(self.typ) as info:
                fn()
        msg = str(info.value)
        for frag in self.fragments:
            assert frag in msg, f"{frag!r} not in {msg!r}"
        assert "\n" not in msg.strip(), "one line"
        return info.value


class Warn:
    """Expect a warning of ``category`` containing the fragments; ``then`` checks the result."""

    def __init__(self, category, *fragments, then=None):
        self.category, self.fragments, self.then = category, fragments, then

    def check(self, fn):
        with warnings.catch_warnings(record=True) as rec:
            warnings.simplefilter("always")
            out = fn()
        msgs = [str(w.message) for w in rec if issubclass(w.category, self.category)]
        assert msgs, f"no {self.category.__name__}; got {[str(w.message) for w in rec]}"
        for frag in self.fragments:
            assert any(frag in m for m in msgs), f"{frag!r} not in {msgs!r}"
        if self.then is not None:
            self.then(out)
        return out


class Ok:
    """Expect no bayesmix warning and a result satisfying ``then``."""

    def __init__(self, then):
        self.then = then

    def check(self, fn):
        with warnings.catch_warnings(record=True) as rec:
            warnings.simplefilter("always")
            out = fn()
        ours = [str(w.message) for w in rec if issubclass(w.category, BayesmixWarning)]
        assert not ours, ours
        self.then(out)
        return out


def _values(expected, names=None):
    """Check (X, names) or a DataFrame against expected values (and names)."""

    def then(out):
        X, got_names = (
            (out.to_numpy(dtype=float), list(out.columns)) if hasattr(out, "columns") else out
        )
        np.testing.assert_array_equal(X, np.asarray(expected, dtype=float))
        if names is not None:
            assert list(got_names) == names

    return then


# The README table: key -> (input, what bayesmix does). Every case carries one key.
TABLE = {}


def row(key, what, does):
    TABLE[key] = (what, does)
    return key


# =========================================================================== CSV files
R_SEP = row(
    "csv-dialect",
    "CSV with `;` and decimal commas (European Excel), tab or pipe delimiters, a BOM, CRLF, "
    "a `.` thousands separator; compressed (`.gz`, `.bz2`, `.xz`, `.zip`, `.zst`)",
    "decompressed through pandas, then parsed to the right floats (delimiter and decimal "
    "separator sniffed)",
)
R_CSV_BAD = row(
    "csv-ambiguous",
    "CSV mixing decimal points and commas, ragged lines, an ambiguous `1,5`, duplicate "
    "column names, not text, empty",
    "`ValueError` naming what was seen and the fix (`--sep` / `--decimal`, rename, re-save); "
    "CLI: exit 2, one line",
)
R_CSV_ADJ = row(
    "csv-adjusted",
    "CSV written with its pandas index (`Unnamed: 0` = 0..n-1) or R row names, no header "
    "row, trailing delimiters, not UTF-8",
    "read, with a `DataFormatWarning` saying what was done (index dropped, columns named "
    "`x0, x1, ...`, empty unnamed columns dropped, read as Windows-1252)",
)
R_CSV_COLS = row(
    "csv-columns",
    "CSV with empty, non-numeric or decimal-comma-in-a-comma-file columns",
    "`ValueError` naming the columns (and the decimal commas), fix: `--columns`",
)

CSV_CASES = [
    # (id, text, expectation)
    ("eu", "a;b\n1,5;2,25\n3,0;-4,5\n", Ok(_values([[1.5, 2.25], [3.0, -4.5]], ["a", "b"]))),
    ("eu-exp", "a;b\n1,5e3;2\n3;4,0E-2\n", Ok(_values([[1500, 2], [3, 0.04]], ["a", "b"]))),
    ("eu-thousands", "a;b\n1.234,5;2\n3,0;4\n", Ok(_values([[1234.5, 2], [3, 4]]))),
    ("eu-thousands-only", "a;b\n1.234,5;2\n7.000,25;4\n", Ok(_values([[1234.5, 2], [7000.25, 4]]))),
    ("eu-grouped-int", "a;b\n1.234;2,5\n3;4\n", Ok(_values([[1234, 2.5], [3, 4]]))),
    (
        "eu-exact-floats",
        "a;b\n0,1257302210933933;-0,1321048632913019\n1;2\n",
        Ok(_values([[0.1257302210933933, -0.1321048632913019], [1, 2]])),
    ),
    ("eu-neg", "x;y\n-1,5;+2,5\n-0,5;,5\n", Ok(_values([[-1.5, 2.5], [-0.5, 0.5]]))),
    ("eu-crlf", "a;b\r\n1,5;2\r\n3;4\r\n", Ok(_values([[1.5, 2], [3, 4]]))),
    ("eu-one-col", "a\n1,5\n2,5\n", Ok(_values([[1.5], [2.5]], ["a"]))),
    ("eu-ints", "a;b\n1;2\n3;4\n", Ok(_values([[1, 2], [3, 4]], ["a", "b"]))),
    ("eu-points", "a;b\n1.5;2\n3;4.5\n", Ok(_values([[1.5, 2], [3, 4.5]]))),
    ("eu-quoted", 'a;b\n"1,5";"2"\n"3";"4,5"\n', Ok(_values([[1.5, 2], [3, 4.5]]))),
    ("tab-eu", "a\tb\n1,5\t2\n3\t4,5\n", Ok(_values([[1.5, 2], [3, 4.5]]))),
    ("tab", "a\tb\n1.5\t2\n3\t4.5\n", Ok(_values([[1.5, 2], [3, 4.5]], ["a", "b"]))),
    ("pipe", "a|b\n1.5|2\n3|4.5\n", Ok(_values([[1.5, 2], [3, 4.5]], ["a", "b"]))),
    ("comma", "a,b\n1.5,2\n3,4.5\n", Ok(_values([[1.5, 2], [3, 4.5]], ["a", "b"]))),
    ("bom", "\ufeffa,b\n1,2\n3,4\n", Ok(_values([[1, 2], [3, 4]], ["a", "b"]))),
    ("spaces", "a, b\n1, 2\n3, 4\n", Ok(_values([[1, 2], [3, 4]], ["a", "b"]))),
    ("blank-lines", "a,b\n1,2\n\n3,4\n\n", Ok(_values([[1, 2], [3, 4]]))),
    ("quoted-comma-name", '"a,1",b\n1,2\n3,4\n', Ok(_values([[1, 2], [3, 4]], ["a,1", "b"]))),
    ("sci", "a,b\n1e-3,2E+2\n-3.5e1,4\n", Ok(_values([[1e-3, 200], [-35, 4]]))),
    (
        "mixed-decimals",
        "a;b\n1,5;2.5\n3;4\n",
        Err(ValueError, "mixes decimal points ('2.5') and decimal commas ('1,5')", "decimal"),
    ),
    ("ragged", "a,b\n1,2\n3,4,5\n", Err(ValueError, "same number of fields", "sep")),
    ("ragged-semicolon", "a;b\n1;2\n3;4;5\n", Err(ValueError, "same number of fields")),
    ("ambiguous-1,5", "1,5\n2,5\n", Err(ValueError, "ambiguous", "decimal comma", "header")),
    (
        "ambiguous-sep",
        "a,b;c,d\n1,2;3,4\n5,6;7,8\n",
        Err(ValueError, "delimiter is ambiguous", "sep"),
    ),
    ("dup-names", "a,a\n1,2\n3,4\n", Err(ValueError, "duplicate column names ['a']", "Rename")),
    ("empty", "", Err(ValueError, "is empty")),
    ("blank", "\n\n  \n", Err(ValueError, "is empty")),
    ("header-only", "a,b\n", Err(ValueError, "header but no data rows")),
    (
        "pandas-index",
        ",a,b\n0,1.5,2\n1,3,4.5\n2,5,6\n",
        Warn(
            DataFormatWarning,
            "pandas index",
            "index=False",
            then=_values([[1.5, 2], [3, 4.5], [5, 6]], ["a", "b"]),
        ),
    ),
    (
        "pandas-index-eu",
        ";a;b\n0;1,5;2\n1;3;4,5\n",
        Warn(DataFormatWarning, "pandas index", then=_values([[1.5, 2], [3, 4.5]], ["a", "b"])),
    ),
    (
        "r-rownames",
        '"","a","b"\n"1",1.5,2\n"2",3,4.5\n',
        Warn(DataFormatWarning, "R row names", then=_values([[1.5, 2], [3, 4.5]], ["a", "b"])),
    ),
    (
        "unnamed-not-index",
        ",a\n5,1\n7,2\n",
        Ok(_values([[5, 1], [7, 2]], ["Unnamed: 0", "a"])),
    ),
    (
        "no-header",
        "1.5,2\n3,4.5\n",
        Warn(
            DataFormatWarning,
            "no header row",
            "x0, x1",
            then=_values([[1.5, 2], [3, 4.5]], ["x0", "x1"]),
        ),
    ),
    (
        "no-header-eu",
        "1,5;2\n3;4,5\n",
        Warn(DataFormatWarning, "no header row", then=_values([[1.5, 2], [3, 4.5]])),
    ),
    (
        "trailing-delims",
        "a,b,\n1,2,\n3,4,\n",
        Warn(
            DataFormatWarning,
            "empty column(s) without a header",
            then=_values([[1, 2], [3, 4]], ["a", "b"]),
        ),
    ),
]

CSV_COLUMN_CASES = [
    (
        "empty-named",
        "a,b,c\n1,2,\n3,4,\n",
        Err(ValueError, "column(s) ['c'] are empty", "--columns"),
    ),
    ("text", "a,b\n1,x\n3,4\n", Err(ValueError, "non-numeric column(s) ['b']", "holds 'x'")),
    ("all-text", "a,b\nu,1\nv,2\n", Err(ValueError, "non-numeric column(s) ['a']", "--columns")),
    (
        "decimal-comma-in-comma-file",
        'a,b\n"1,5",2\n"2,5",3\n',
        Err(
            ValueError,
            "['a']",
            "numbers with commas ('1,5': decimal commas",
            "';' as the delimiter",
        ),
    ),
    ("dates", "t,x\n2020-01-01,1\n2020-01-02,2\n", Err(ValueError, "non-numeric column(s) ['t']")),
    ("bools", "a,b\nTrue,1\nFalse,2\n", Err(ValueError, "non-numeric column(s) ['a']")),
]


@pytest.mark.parametrize(("cid", "text", "expect"), CSV_CASES, ids=[c[0] for c in CSV_CASES])
def test_csv(tmp_path, cid, text, expect):
    f = tmp_path / f"{cid}.csv"
    f.write_text(text, newline="")

    def read():
        df, _ = read_csv(f)
        check_columns(df)
        return df

    expect.check(read)


@pytest.mark.parametrize(
    ("cid", "text", "expect"), CSV_COLUMN_CASES, ids=[c[0] for c in CSV_COLUMN_CASES]
)
def test_csv_columns(tmp_path, cid, text, expect):
    f = tmp_path / f"{cid}.csv"
    f.write_text(text)
    expect.check(lambda: check_columns(read_csv(f)[0]))


@pytest.mark.parametrize(
    ("cid", "raw", "expect"),
    [
        ("utf16", "a,b\n1,2\n".encode("utf-16"), Err(ValueError, "not a text file", "UTF-8")),
        ("xlsx-ish", b"PK\x03\x04\x00\x00binary", Err(ValueError, "not a text file")),
        (
            "cp1252",
            "temp\xe9rature;b\n1,5;2\n3;4\n".encode("cp1252"),
            Warn(
                DataFormatWarning,
                "Windows-1252",
                then=_values([[1.5, 2], [3, 4]], ["temp\xe9rature", "b"]),
            ),
        ),
    ],
    ids=["utf16", "xlsx-ish", "cp1252"],
)
def test_csv_bytes(tmp_path, cid, raw, expect):
    f = tmp_path / f"{cid}.csv"
    f.write_bytes(raw)
    expect.check(lambda: read_csv(f)[0])


@pytest.mark.parametrize(
    ("kwargs", "expect"),
    [
        ({"sep": ";;"}, Err(ValueError, "sep must be a single character")),
        ({"decimal": ":"}, Err(ValueError, "decimal must be '.' or ','")),
        ({"sep": ",", "decimal": ","}, Err(ValueError, "cannot equal the delimiter")),
        ({"sep": ";", "decimal": ","}, Ok(_values([[1.5, 2], [3, 4]]))),
    ],
    ids=["sep-2chars", "decimal-colon", "decimal-is-sep", "explicit-eu"],
)
def test_csv_explicit_dialect(tmp_path, kwargs, expect):
    f = tmp_path / "d.csv"
    f.write_text("a;b\n1,5;2\n3;4\n")
    expect.check(lambda: read_csv(f, **kwargs)[0])


def _compress(ext, raw, path):
    import bz2
    import gzip
    import lzma
    import zipfile

    if ext == ".zip":
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("good.csv", raw)
        return
    if ext == ".zst":
        import zstandard

        path.write_bytes(zstandard.ZstdCompressor().compress(raw))
        return
    path.write_bytes({".gz": gzip, ".bz2": bz2, ".xz": lzma}[ext].compress(raw))


@pytest.mark.parametrize("ext", [".gz", ".bz2", ".xz", ".zip", ".zst"])
def test_csv_compressed(tmp_path, ext):
    # pandas reads these from the name; so does read_csv (the dialect is sniffed after)
    f = tmp_path / f"good.csv{ext}"
    if ext == ".zst" and importlib.util.find_spec("zstandard") is None:
        # pandas needs the optional zstandard package: said, with the fix
        f.write_bytes(b"(\xb5/\xfd" + b"\x00" * 8)
        Err(ValueError, "zstd-compressed", "optional package", "zstandard").check(
            lambda: read_csv(f)
        )
        return
    _compress(ext, b"a;b\n1,5;2\n3;4,5\n", f)
    Ok(_values([[1.5, 2], [3, 4.5]], ["a", "b"])).check(lambda: read_csv(f)[0])


@pytest.mark.parametrize(
    ("cid", "name", "raw", "frags"),
    [
        ("gzip-named-csv", "g.csv", __import__("gzip").compress(b"a\n1\n"), ("gzip-compressed",)),
        ("not-gzip", "g.csv.gz", b"a,b\n1,2\n", ("could not be decompressed as gzip",)),
    ],
    ids=["gzip-named-csv", "not-gzip"],
)
def test_csv_compression_mismatch(tmp_path, cid, name, raw, frags):
    f = tmp_path / name
    f.write_bytes(raw)
    Err(ValueError, *frags).check(lambda: read_csv(f))


def test_csv_missing_file_and_folder(tmp_path):
    Err(ValueError, "does not exist").check(lambda: read_csv(tmp_path / "nope.csv"))
    Err(ValueError, "is a folder").check(lambda: read_csv(tmp_path))


# =========================================================================== arrays
R_GAPS = row(
    "gaps",
    "NaN or pandas' `pd.NA` entries (missing values) in `fit_em`, `kmeans` (default "
    '`missing="mar"`) and the PyMC builders; a row with every entry missing, a feature '
    "with no observed value",
    "fitted by the observed-data likelihood (EM; Gibbs, drawing the gaps each sweep) or "
    "the observed coordinates (k-means), nothing dropped; NUTS refuses gaps naming "
    '`sampler="gibbs"`; `ValueError` naming the empty rows or features',
)
R_NAN = row(
    "nan",
    "NaN, inf or pandas' `pd.NA` (nullable `Int64` / `Float64` / `boolean` columns) where "
    'refused (`missing="error"`); inf everywhere',
    "`ValueError`: how many NaN / infinite values, in how many rows, the first row; "
    '"remove or impute" (rows are never dropped)',
)
R_SHAPE = row(
    "shape",
    "1-D array / pandas Series / 1-D `xarray.DataArray`, 3-D, empty",
    "`ValueError`: expected (n_obs, n_features); suggests `X.reshape(-1, 1)`, "
    "`series.to_frame()` or `da.values.reshape(-1, 1)`",
)
R_DTYPE = row(
    "dtype",
    "complex, masked (`numpy.ma` with a mask), datetime / timedelta, non-numeric input; "
    "duplicate DataFrame column names; `None`, a path string, a dict, a generator, a "
    "`scipy.sparse` matrix",
    "`ValueError` naming the dtype or the columns and the explicit conversion "
    "(`X.real`, `X.filled(np.nan)`, `.dt.total_seconds()`, `df.select_dtypes('number')`, "
    "`X.toarray()`, `pandas.DataFrame(X)`; `TypeError` for what is not a table); "
    "never fitted on a silently converted copy",
)
R_SCALE = row(
    "scale",
    "values whose magnitude overflows the arithmetic (`abs(x) > 1e150`) or a feature "
    "varying by less than 1e-100",
    "`ValueError` before fitting, one line naming the feature, its largest value and rows: "
    '"rescale the data first"',
)
R_CONVERT = row(
    "convert",
    "integer, boolean, Fortran-ordered, strided input, lists, a mask-free masked array, "
    "`xarray.DataArray`",
    "converted to a float64 C-contiguous copy; DataFrame columns / DataArray coordinates "
    "become `feature_names`",
)

rng0 = np.random.default_rng(0)
GOOD = rng0.normal(size=(40, 2))


def _nan_frame(dtype):
    vals = [1, None, 3] if dtype != "boolean" else [True, None, False]
    return pd.DataFrame({"a": pd.array(vals, dtype=dtype), "b": [1.0, 2.0, 3.0]})


BAD_ARRAYS = [
    # (id, X, row key, exception, fragments)
    (
        "nan",
        np.array([[1.0, np.nan], [2, 3], [np.nan, 1]]),
        R_NAN,
        ValueError,
        ("2 NaN value(s) in 2 row(s)", "row 0", "impute"),
    ),
    ("inf", np.array([[1.0, 2], [np.inf, 3]]), R_NAN, ValueError, ("1 infinite value(s)", "row 1")),
    ("pd-NA-Int64", _nan_frame("Int64"), R_NAN, ValueError, ("1 NaN value(s)", "row 1")),
    ("pd-NA-Float64", _nan_frame("Float64"), R_NAN, ValueError, ("1 NaN value(s)", "row 1")),
    ("pd-NA-boolean", _nan_frame("boolean"), R_NAN, ValueError, ("1 NaN value(s)", "row 1")),
    (
        "pd-NA-object",
        np.array([[1.0, pd.NA], [2.0, 3.0]], dtype=object),
        R_NAN,
        ValueError,
        ("1 NaN value(s)", "row 0"),
    ),
    (
        "none-list",
        [[1.0, None], [2.0, 3.0], [4.0, 5.0]],
        R_NAN,
        ValueError,
        ("1 NaN value(s)", "row 0"),
    ),
    (
        "nan-dataarray",
        xr.DataArray([[1.0, np.nan], [2.0, 3.0]], dims=("obs", "f")),
        R_NAN,
        ValueError,
        ("1 NaN value(s)",),
    ),
    ("1-D", np.arange(5.0), R_SHAPE, ValueError, ("1-D array", "reshape(-1, 1)")),
    ("series", pd.Series([1.0, 2.0], name="a"), R_SHAPE, ValueError, ("1-D Series", "to_frame")),
    (
        "dataarray-1D",
        xr.DataArray(np.arange(4.0), dims=("obs",)),
        R_SHAPE,
        ValueError,
        ("1-D DataArray", "dim 'obs'", "reshape(-1, 1)"),
    ),
    ("3-D", np.zeros((2, 2, 2)), R_SHAPE, ValueError, ("3-D",)),
    ("0-rows", np.zeros((0, 2)), R_SHAPE, ValueError, ("0 observation",)),
    ("0-features", np.zeros((3, 0)), R_SHAPE, ValueError, ("0 features",)),
    ("scalar", 3.0, R_SHAPE, ValueError, ("2-D",)),
    (
        "complex",
        np.array([[1 + 2j, 0], [1, 1]]),
        R_DTYPE,
        ValueError,
        ("real-valued", "complex", "X.real"),
    ),
    (
        "complex-frame",
        pd.DataFrame({"z": [1 + 1j, 2], "b": [1.0, 2]}),
        R_DTYPE,
        ValueError,
        ("complex columns ['z']", ".real"),
    ),
    (
        "complex-object",
        np.array([[1 + 1j, 1.0]], dtype=object),
        R_DTYPE,
        ValueError,
        ("real-valued",),
    ),
    (
        "masked",
        np.ma.array([[1.0, 2], [3, 4]], mask=[[0, 1], [0, 0]]),
        R_DTYPE,
        ValueError,
        ("masked array with 1 masked value(s) in 1 row(s)", "X.filled(np.nan)"),
    ),
    (
        "datetime64",
        np.array([["2020-01-01"], ["2020-01-05"]], dtype="datetime64[D]"),
        R_DTYPE,
        ValueError,
        ("datetime64[D]", "not turned into numbers silently"),
    ),
    (
        "timedelta64",
        np.array([[1], [2]], dtype="timedelta64[s]"),
        R_DTYPE,
        ValueError,
        ("timedelta64[s]",),
    ),
    (
        "datetime-frame",
        pd.DataFrame({"t": pd.date_range("2020", periods=3), "x": [1.0, 2, 3]}),
        R_DTYPE,
        ValueError,
        ("datetime/timedelta columns ['t']", "total_seconds"),
    ),
    (
        "tz-frame",
        pd.DataFrame({"t": pd.date_range("2020", periods=2, tz="UTC"), "x": [1.0, 2]}),
        R_DTYPE,
        ValueError,
        ("datetime/timedelta columns ['t']",),
    ),
    (
        "timedelta-frame",
        pd.DataFrame({"d": pd.to_timedelta([1, 2], unit="s"), "x": [1.0, 2]}),
        R_DTYPE,
        ValueError,
        ("datetime/timedelta columns ['d']",),
    ),
    (
        "period-frame",
        pd.DataFrame({"p": pd.period_range("2020", periods=2, freq="D")}),
        R_DTYPE,
        ValueError,
        ("datetime/timedelta columns ['p']",),
    ),
    (
        "timestamps-object",
        np.array([[pd.Timestamp("2020")], [pd.Timestamp("2021")]], dtype=object),
        R_DTYPE,
        ValueError,
        ("Timestamp", "not turned into numbers silently"),
    ),
    ("strings", np.array([["a", "b"], ["c", "d"]]), R_DTYPE, ValueError, ("must be numeric",)),
    (
        "text-frame",
        pd.DataFrame({"name": ["u", "v"], "x": [1.0, 2]}),
        R_DTYPE,
        ValueError,
        ("non-numeric columns ['name']", "select_dtypes"),
    ),
    (
        "category-frame",
        pd.DataFrame({"c": pd.Categorical(["a", "b"])}),
        R_DTYPE,
        ValueError,
        ("non-numeric columns ['c']",),
    ),
    ("ragged", [[1.0, 2.0], [3.0]], R_DTYPE, ValueError, ("could not be converted",)),
    (
        "dataset",
        xr.Dataset({"a": ("obs", np.ones(3))}),
        R_DTYPE,
        TypeError,
        ("xarray.Dataset", "to_dataframe"),
    ),
    (
        "duplicate-names",
        pd.DataFrame(np.ones((3, 2)), columns=["a", "a"]),
        R_DTYPE,
        ValueError,
        ("duplicate column names ['a']",),
    ),
    ("none", None, R_DTYPE, TypeError, ("got None",)),
    ("path-string", "data.csv", R_DTYPE, TypeError, ("got a string", "read_csv")),
    ("dict", {"a": [1.0, 2.0]}, R_DTYPE, TypeError, ("got a dict", "pandas.DataFrame(X)")),
    ("generator", (float(i) for i in range(3)), R_DTYPE, TypeError, ("generator",)),
    (
        "sparse",
        __import__("scipy.sparse").sparse.csr_matrix(np.eye(3)),
        R_DTYPE,
        TypeError,
        ("scipy.sparse", "X.toarray()"),
    ),
    (
        "1e200",
        np.array([[1.0, 0], [1e200, 1], [2, 3]]),
        R_SCALE,
        ValueError,
        ("feature 'x0'", "1e+200", "row(s) 1", "Rescale"),
    ),
    (
        "1e300-frame",
        pd.DataFrame({"a": [1.0, 2, 3], "big": [1.0, -1e300, 3]}),
        R_SCALE,
        ValueError,
        ("feature 'big'", "1e+300", "Rescale"),
    ),
    (
        "1e308",
        np.array([[1e308, 0], [-1e308, 1], [0, 2]]),
        R_SCALE,
        ValueError,
        ("rows) 0, 1" if False else "row(s) 0, 1", "overflow"),
    ),
    (
        "tiny-spread",
        np.array([[1e-120, 0], [2e-120, 1], [3e-120, 2]]),
        R_SCALE,
        ValueError,
        ("feature 'x0'", "varies by only", "Rescale"),
    ),
]

ENTRY_POINTS = {
    "check_data": lambda X: check_data(X),
    "fit_em": lambda X: bm.fit_em(X, 2, random_seed=0, missing="error"),
    "kmeans": lambda X: bm.kmeans(X, 2, random_seed=0, missing="error"),
    "GMMPrior.from_data": lambda X: bm.GMMPrior.from_data(X, 2),
}
#: The PyMC builders share check_data: a sample of the cases through them.
BUILDER_SAMPLE = {
    "nan",
    "pd-NA-Int64",
    "complex",
    "masked",
    "datetime-frame",
    "1e200",
    "dataarray-1D",
    "series",
}


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
@pytest.mark.parametrize(
    ("cid", "X", "key", "exc", "fragments"), BAD_ARRAYS, ids=[c[0] for c in BAD_ARRAYS]
)
def test_bad_arrays(entry, cid, X, key, exc, fragments):
    if entry == "GMMPrior.from_data" and key is R_NAN and cid != "inf":
        # the prior of data with gaps (the pipeline's MAP fits on a CSV with empty
        # cells): built from the observed values, nothing dropped or filled in X
        Xf = check_data(X, missing="mar")
        prior = ENTRY_POINTS[entry](X)
        np.testing.assert_allclose(prior.mean, np.nanmean(Xf, axis=0), rtol=1e-12)
        assert np.isnan(Xf).any()
        return
    Err(exc, *fragments).check(lambda: ENTRY_POINTS[entry](X))


GAP_CASES = [
    # (id, X, row key, exception, fragments): through fit_em and kmeans, missing="mar"
    (
        "empty-row",
        np.array([[1.0, 2.0], [np.nan, np.nan], [3.0, np.nan]]),
        R_GAPS,
        ValueError,
        ("1 row(s) with no observed entry", "row(s) 1", "drop it"),
    ),
    (
        "empty-feature",
        pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [np.nan] * 3}),
        R_GAPS,
        ValueError,
        ("feature(s) ['b'] have no observed value", "drop them"),
    ),
    ("inf-with-gaps", np.array([[1.0, np.inf], [np.nan, 1.0]]), R_GAPS, ValueError, ("infinite",)),
]


@pytest.mark.parametrize("entry", ["fit_em", "kmeans"])
@pytest.mark.parametrize(
    ("cid", "X", "key", "exc", "fragments"), GAP_CASES, ids=[c[0] for c in GAP_CASES]
)
def test_gap_arrays(entry, cid, X, key, exc, fragments):
    fn = {"fit_em": bm.fit_em, "kmeans": bm.kmeans}[entry]
    Err(exc, *fragments).check(lambda: fn(X, 1, random_seed=0))


@pytest.mark.parametrize("builder", ["build_gmm", "build_dpgmm"])
@pytest.mark.parametrize(
    ("cid", "X", "key", "exc", "fragments"),
    [c for c in BAD_ARRAYS if c[0] in BUILDER_SAMPLE],
    ids=[c[0] for c in BAD_ARRAYS if c[0] in BUILDER_SAMPLE],
)
def test_bad_arrays_builders(builder, cid, X, key, exc, fragments):
    build = {"build_gmm": lambda: bm.build_gmm(X, 2), "build_dpgmm": lambda: bm.build_dpgmm(X)}
    if key is R_NAN and cid != "inf":
        # gaps are kept by the builders (sampled by Gibbs: tests/test_gibbs_missing.py);
        # these tiny arrays may fail other checks, but never for their NaN
        try:
            build[builder]()
        except ValueError as err:
            assert not isinstance(err, MissingValueError) and "NaN" not in str(err), err
        return
    Err(exc, *fragments).check(build[builder])


GOOD_ARRAYS = [
    ("int32", np.array([[1, 2], [3, 4]], dtype=np.int32), [[1, 2], [3, 4]], ["x0", "x1"]),
    ("bool", np.array([[True, False], [False, True]]), [[1, 0], [0, 1]], None),
    ("fortran", np.asfortranarray(np.arange(6.0).reshape(3, 2)), [[0, 1], [2, 3], [4, 5]], None),
    ("strided", np.arange(12.0).reshape(3, 4)[:, ::2], [[0, 2], [4, 6], [8, 10]], None),
    ("list", [[1, 2.5], [3, 4]], [[1, 2.5], [3, 4]], None),
    ("float32", np.array([[0.5, 1.5]], dtype=np.float32), [[0.5, 1.5]], None),
    ("masked-no-mask", np.ma.array([[1.0, 2], [3, 4]]), [[1, 2], [3, 4]], None),
    ("Int64-complete", pd.DataFrame({"a": pd.array([1, 2], dtype="Int64")}), [[1], [2]], ["a"]),
    (
        "dataarray-coords",
        xr.DataArray([[1.0, 2], [3, 4]], dims=("obs", "feature"), coords={"feature": ["u", "v"]}),
        [[1, 2], [3, 4]],
        ["u", "v"],
    ),
    (
        "dataarray-dims",
        xr.DataArray([[1.0, 2], [3, 4]], dims=("obs", "f")),
        [[1, 2], [3, 4]],
        ["f0", "f1"],
    ),
    ("big-but-fine", np.array([[1e140, 0], [-1e140, 1]]), [[1e140, 0], [-1e140, 1]], None),
    ("numeric-strings", np.array([["1.5", "2"]]), [[1.5, 2]], None),
    (
        "object-frame-of-floats",
        pd.DataFrame({"a": [1.0, None, 3.0], "b": [1, 2, 3]}, dtype=object).fillna(0.5),
        [[1, 1], [0.5, 2], [3, 3]],
        ["a", "b"],
    ),
]


@pytest.mark.parametrize(
    ("cid", "X", "expected", "names"), GOOD_ARRAYS, ids=[c[0] for c in GOOD_ARRAYS]
)
def test_good_arrays_convert(cid, X, expected, names):
    def run():
        out, got = check_data(X, return_names=True)
        assert out.dtype == np.float64 and out.flags.c_contiguous
        return out, got

    Ok(_values(expected, names)).check(run)


def test_dataarray_names_reach_the_fit():
    X = xr.DataArray(GOOD, dims=("obs", "feature"), coords={"feature": ["u", "v"]})
    assert bm.fit_em(X, 1, random_seed=0).feature_names == ["u", "v"]


def test_far_points_are_valid_for_prediction_not_for_fitting():
    Err(ValueError, "Rescale").check(lambda: check_data([[1e200, 0.0], [0.0, 1.0]]))
    out = check_data([[1e200, 0.0]], check_scale=False)
    assert out[0, 0] == 1e200


# =========================================================================== API arguments
R_SEED = row(
    "seed",
    "`random_seed` negative, a float or a bool",
    '`ValueError` / `TypeError` naming `random_seed`: "None, an integer >= 0 or a '
    'numpy.random.Generator"',
)
R_K = row(
    "k",
    "`n_components > n_obs`, `< 1`, not an integer (also in `GMMPrior.from_data`; "
    "`max_clusters` of `point_partition`)",
    '`ValueError` "n_components=K is larger than the number of observations n_obs=N" / '
    '"must be an integer >= 1" (`TypeError` for a non-integer)',
)
R_ARGS = row(
    "args",
    "other arguments out of range or of the wrong type (`tol`, `max_iter`, `reg_covar`, "
    "`init`, `n_init`, `engine`, `prior`, `simulate`'s parameters, a prior dict, a posterior "
    "that is not a DataTree)",
    "`ValueError` / `TypeError` naming the parameter, the expected range or type and what came in",
)
R_COV = row(
    "cov",
    "unknown `covariance`",
    "`ValueError` listing `spherical`, `diag` (alias `diagonal`), `full`, `tied`; "
    "`TypeError` for a non-string",
)
R_PRIOR = row(
    "prior",
    "a prior whose mean / scale does not match the data's D, a scale that is not SPD, "
    "`dof <= D - 1`",
    "`ValueError` naming the data's D and the expected shape (not the scale's shape when "
    "the mean is wrong)",
)


def _sklearn_gm():
    from bayesmix.sklearn import GaussianMixture

    return GaussianMixture(2, random_state=0)


API_CASES = [
    (
        "seed-neg-fit_em",
        lambda: bm.fit_em(GOOD, 2, random_seed=-1),
        R_SEED,
        Err(ValueError, "random_seed must be None, an integer >= 0", "got -1"),
    ),
    (
        "seed-neg-kmeans",
        lambda: bm.kmeans(GOOD, 2, random_seed=-5),
        R_SEED,
        Err(ValueError, "random_seed", "got -5"),
    ),
    (
        "seed-neg-simulate",
        lambda: bm.simulate(10, [1.0], [[0.0]], [[1.0]], random_seed=-1),
        R_SEED,
        Err(ValueError, "random_seed", "got -1"),
    ),
    (
        "seed-float",
        lambda: bm.fit_em(GOOD, 2, random_seed=1.5),
        R_SEED,
        Err(TypeError, "random_seed", "float 1.5"),
    ),
    (
        "seed-bool",
        lambda: bm.kmeans(GOOD, 2, random_seed=True),
        R_SEED,
        Err(TypeError, "random_seed", "bool"),
    ),
    (
        "seed-str",
        lambda: bm.fit_em(GOOD, 2, random_seed="1"),
        R_SEED,
        Err(TypeError, "random_seed", "str"),
    ),
    (
        "k-too-big",
        lambda: bm.fit_em(GOOD[:3], 4),
        R_K,
        Err(ValueError, "n_components=4 is larger than the number of observations n_obs=3"),
    ),
    ("k-0", lambda: bm.fit_em(GOOD, 0), R_K, Err(ValueError, "must be an integer >= 1; got 0")),
    ("k-neg-kmeans", lambda: bm.kmeans(GOOD, -2), R_K, Err(ValueError, ">= 1")),
    ("k-float", lambda: bm.fit_em(GOOD, 2.5), R_K, Err(TypeError, "integer")),
    ("k-bool", lambda: bm.fit_em(GOOD, True), R_K, Err(TypeError, "integer")),
    ("k-str", lambda: bm.kmeans(GOOD, "2"), R_K, Err(TypeError, "integer")),
    (
        "from_data-k0",
        lambda: bm.GMMPrior.from_data(GOOD, 0),
        R_K,
        Err(ValueError, "n_components must be an integer >= 1"),
    ),
    (
        "from_data-kfloat",
        lambda: bm.GMMPrior.from_data(GOOD, 1.5),
        R_K,
        Err(TypeError, "n_components must be an integer"),
    ),
    (
        "build-k-too-big",
        lambda: bm.build_gmm(GOOD[:3], 4),
        R_K,
        Err(ValueError, "larger than the number of observations"),
    ),
    (
        "max_clusters-0",
        lambda: bm.point_partition(np.eye(3), max_clusters=0),
        R_K,
        Err(ValueError, "max_clusters must be an integer >= 1; got 0"),
    ),
    (
        "max_clusters-float",
        lambda: bm.point_partition(np.eye(3), max_clusters=2.5),
        R_K,
        Err(TypeError, "max_clusters must be an integer", "float 2.5"),
    ),
    ("tol-neg", lambda: bm.fit_em(GOOD, 2, tol=-1), R_ARGS, Err(ValueError, "tol must be >= 0")),
    (
        "max_iter-neg",
        lambda: bm.fit_em(GOOD, 2, max_iter=-1),
        R_ARGS,
        Err(ValueError, "max_iter must be an integer >= 0"),
    ),
    (
        "reg_covar-neg",
        lambda: bm.fit_em(GOOD, 2, reg_covar=-1.0),
        R_ARGS,
        Err(ValueError, "reg_covar must be >= 0"),
    ),
    (
        "reg_covar-nan",
        lambda: bm.fit_em(GOOD, 2, reg_covar=float("nan")),
        R_ARGS,
        Err(ValueError, "reg_covar must be finite"),
    ),
    (
        "init-unknown",
        lambda: bm.fit_em(GOOD, 2, init="foo"),
        R_ARGS,
        Err(ValueError, "init must be one of", "got 'foo'"),
    ),
    (
        "init-shape",
        lambda: bm.fit_em(GOOD, 2, init=np.zeros((3, 2))),
        R_ARGS,
        Err(ValueError, "init array has shape (3, 2)"),
    ),
    (
        "n_init-0",
        lambda: bm.fit_em(GOOD, 2, n_init=0),
        R_ARGS,
        Err(ValueError, "n_init must be an integer >= 1"),
    ),
    (
        "engine-gpu",
        lambda: bm.fit_em(GOOD, 2, engine="gpu"),
        R_ARGS,
        Err(ValueError, "engine must be one of", "'gpu'"),
    ),
    (
        "prior-as-dict",
        lambda: bm.fit_em(GOOD, 2, prior={"dof": 3}),
        R_ARGS,
        Err(TypeError, "prior must be a bayesmix.GMMPrior", "got dict"),
    ),
    (
        "kmeans-max_iter-0",
        lambda: bm.kmeans(GOOD, 2, max_iter=0),
        R_ARGS,
        Err(ValueError, "max_iter must be an integer >= 1"),
    ),
    (
        "simulate-weights",
        lambda: bm.simulate(10, [0.5, 0.6], [[0.0], [1.0]], [1.0, 1.0]),
        R_ARGS,
        Err(ValueError, "sum to 1", "sum 1.1"),
    ),
    (
        "simulate-means",
        lambda: bm.simulate(10, [0.5, 0.5], [[0.0], [1.0], [2.0]], [1.0, 1.0]),
        R_ARGS,
        Err(ValueError, "means must have shape (K, D) with K=2"),
    ),
    (
        "simulate-cov",
        lambda: bm.simulate(10, [1.0], [[0.0]], [-1.0]),
        R_ARGS,
        Err(ValueError, "covariances[0] is not symmetric positive definite"),
    ),
    (
        "prior-from_dict-missing",
        lambda: bm.GMMPrior.from_dict({"mean": [0.0]}),
        R_ARGS,
        Err(ValueError, "lacks the required key(s) ['dof', 'scale']"),
    ),
    (
        "prior-from_dict-unknown",
        lambda: bm.GMMPrior.from_dict({"mean": [0.0], "scale": 1.0, "dof": 3.0, "dfo": 1}),
        R_ARGS,
        Err(ValueError, "unknown key(s) ['dfo']"),
    ),
    (
        "bic-wrong-D",
        lambda: bm.fit_em(GOOD, 1).bic(np.zeros((3, 3))),
        R_ARGS,
        Err(ValueError, "X has 3 features but the mixture was fitted on 2"),
    ),
    (
        "relabel-not-a-tree",
        lambda: bm.relabel("x"),
        R_ARGS,
        Err(TypeError, "idata must be an xarray.DataTree"),
    ),
    (
        "loo-not-a-tree",
        lambda: bm.loo(np.zeros(3)),
        R_ARGS,
        Err(TypeError, "idata must be an xarray.DataTree"),
    ),
    ("select_k-empty", lambda: bm.select_k(GOOD, []), R_ARGS, Err(ValueError, "is empty")),
    (
        "select_k-lrt_boot-0",
        lambda: bm.select_k(GOOD, [1, 2], mcmc=False, lrt=True, lrt_boot=0, progress=False),
        R_ARGS,
        Err(ValueError, "lrt_boot=0 is too small", "Use lrt_boot >= 19"),
    ),
    (
        "sklearn-datetime-frame",
        lambda: _sklearn_gm().fit(
            pd.DataFrame({"t": pd.date_range("2020", periods=40), "x": GOOD[:, 0]})
        ),
        R_DTYPE,
        Err(ValueError, "datetime/timedelta columns ['t']", "total_seconds"),
    ),
    (
        "cov-typo",
        lambda: bm.fit_em(GOOD, 2, covariance="ful"),
        R_COV,
        Err(ValueError, "got 'ful'", "spherical", "tied"),
    ),
    ("cov-int", lambda: bm.fit_em(GOOD, 2, covariance=3), R_COV, Err(TypeError, "string")),
    (
        "cov-build",
        lambda: bm.build_gmm(GOOD, 2, covariance="diagonals"),
        R_COV,
        Err(ValueError, "got 'diagonals'"),
    ),
    (
        "prior-mean-3-on-D2",
        lambda: bm.GMMPrior.from_data(GOOD, 2, mean=[0.0, 0.0, 0.0]),
        R_PRIOR,
        Err(ValueError, "prior mean", "(D=2)", "length 2"),
    ),
    (
        "prior-scale-3x3-on-D2",
        lambda: bm.GMMPrior.from_data(GOOD, 2, scale=np.eye(3)),
        R_PRIOR,
        Err(ValueError, "prior scale", "D=2", "(3, 3)"),
    ),
    (
        "prior-mean-vs-scale",
        lambda: bm.GMMPrior(mean=[0.0] * 3, scale=np.eye(2), dof=4.0),
        R_PRIOR,
        Err(ValueError, "D=3 entries", "(2, 2)"),
    ),
    (
        "prior-D3-on-data-D2",
        lambda: bm.fit_em(GOOD, 2, prior=bm.GMMPrior(mean=[0.0] * 3, scale=np.eye(3), dof=5.0)),
        R_PRIOR,
        Err(ValueError, "prior has 3 features but X has 2"),
    ),
    (
        "prior-not-spd",
        lambda: bm.GMMPrior(mean=[0.0, 0.0], scale=[[1, 2], [2, 1]], dof=4.0),
        R_PRIOR,
        Err(ValueError, "symmetric positive definite"),
    ),
    (
        "prior-dof",
        lambda: bm.GMMPrior(mean=[0.0, 0.0], scale=np.eye(2), dof=0.5),
        R_PRIOR,
        Err(ValueError, "dof must be > D - 1 = 1"),
    ),
    (
        "prior-shrinkage-0",
        lambda: bm.GMMPrior(mean=[0.0], scale=1.0, dof=3.0, mean_shrinkage=0.0),
        R_PRIOR,
        Err(ValueError, "mean_shrinkage must be > 0"),
    ),
    (
        "prior-mean-nan",
        lambda: bm.GMMPrior(mean=[np.nan], scale=1.0, dof=3.0),
        R_PRIOR,
        Err(ValueError, "finite"),
    ),
]


@pytest.mark.parametrize(("cid", "fn", "key", "expect"), API_CASES, ids=[c[0] for c in API_CASES])
def test_api_arguments(cid, fn, key, expect):
    expect.check(fn)


# =========================================================================== degenerate data
R_DEGEN = row(
    "degenerate",
    "fewer distinct points than components, all features constant, collinear columns "
    "(e.g. °C and °F), fewer than D + 1 distinct points (full / tied)",
    "before any model is built or sampled (`build_gmm`, `build_dpgmm`, `sample`, the CLI): "
    "`ValueError` naming the problem and the columns (`f = 1.8 * c + 32`); with a prior of "
    "your own, a `DegenerateDataWarning` and the fit. EM keeps its finite fit with warnings",
)

_c = np.random.default_rng(3).normal(20, 8, size=60)
_k = np.random.default_rng(4).normal(size=60)
DEGEN_CASES = [
    (
        "identical-rows",
        np.ones((50, 2)),
        2,
        "full",
        Err(ValueError, "1 distinct point(s) but n_components=2", "Every feature"),
    ),
    (
        "two-rows",
        np.array([[0.0, 1], [2, 5]]),
        2,
        "full",
        Err(ValueError, "2 distinct point(s) for D=2 features", "D + 1 = 3"),
    ),
    ("two-rows-diag", np.array([[0.0, 1], [2, 5]]), 2, "diag", Ok(lambda r: None)),
    (
        "celsius-fahrenheit",
        np.c_[_c, 1.8 * _c + 32],
        2,
        "full",
        Err(ValueError, "columns ['c', 'f'] are collinear (f = 1.8 * c + 32)", "rank 1 of 2"),
    ),
    (
        "celsius-fahrenheit-tied",
        np.c_[_c, 1.8 * _c + 32],
        2,
        "tied",
        Err(ValueError, "collinear", "covariance='diag'"),
    ),
    ("celsius-fahrenheit-diag", np.c_[_c, 1.8 * _c + 32], 2, "diag", Ok(lambda r: None)),
    (
        "three-collinear",
        np.c_[_c, _k, _c + _k],
        2,
        "full",
        Err(ValueError, "columns ['c', 'f', 'k'] are collinear (linearly dependent)"),
    ),
    (
        "constant-feature",
        np.c_[_c, np.full(60, 3.0)],
        2,
        "full",
        Warn(DegenerateDataWarning, "feature(s) ['f'] of X are constant"),
    ),
    (
        "duplicates-fewer-than-K",
        np.repeat(GOOD[:2], 10, axis=0),
        3,
        "diag",
        Err(ValueError, "2 distinct point(s) but n_components=3"),
    ),
    ("fine", GOOD, 2, "full", Ok(lambda r: None)),
]


@pytest.mark.parametrize(
    ("cid", "X", "K", "cov", "expect"), DEGEN_CASES, ids=[c[0] for c in DEGEN_CASES]
)
def test_degenerate_data(cid, X, K, cov, expect):
    names = ["c", "f", "k"][: X.shape[1]]
    expect.check(lambda: check_degenerate(X, K, names, covariance=cov))


_CF = np.c_[_c, 1.8 * _c + 32]
_USER_PRIOR = bm.GMMPrior(mean=[1.0, 1.0], scale=np.eye(2), dof=4.0)
BUILDER_DEGEN = [
    (
        "gmm-identical-rows",
        lambda: bm.build_gmm(np.ones((50, 2)), 2),
        Err(ValueError, "1 distinct point(s) but n_components=2"),
    ),
    (
        "gmm-two-rows",
        lambda: bm.build_gmm(np.array([[0.0, 0.0], [1.0, 1.0]]), 2),
        Err(ValueError, "2 distinct point(s) for D=2 features"),
    ),
    (
        "gmm-celsius-fahrenheit",
        lambda: bm.build_gmm(pd.DataFrame({"c": _c, "f": 1.8 * _c + 32}), 2),
        Err(ValueError, "columns ['c', 'f'] are collinear (f = 1.8 * c + 32)"),
    ),
    ("gmm-cf-diag", lambda: bm.build_gmm(_CF, 2, covariance="diag"), Ok(lambda m: None)),
    (
        "dp-identical-rows",
        lambda: bm.build_dpgmm(np.ones((50, 2)), truncation=5),
        Err(ValueError, "Every feature of X is constant"),
    ),
    ("dp-collinear", lambda: bm.build_dpgmm(_CF, truncation=5), Err(ValueError, "collinear")),
    (
        "gmm-identical-user-prior",
        lambda: bm.build_gmm(np.ones((50, 2)), 2, prior=_USER_PRIOR),
        Warn(
            DegenerateDataWarning,
            "1 distinct point(s)",
            "The prior keeps the fit well-defined",
            then=lambda m: None,
        ),
    ),
]


@pytest.mark.parametrize(("cid", "fn", "expect"), BUILDER_DEGEN, ids=[c[0] for c in BUILDER_DEGEN])
def test_degenerate_data_in_builders(cid, fn, expect):
    expect.check(fn)


def test_sampler_breakdown_becomes_a_valueerror(monkeypatch):
    import pymc as pm

    def boom(*args, **kwargs):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(pm, "sample", boom)
    model = bm.build_gmm(GOOD[:20, :1], 1)
    Err(ValueError, "sampling failed", "ZeroDivisionError", "20 distinct point(s)").check(
        lambda: bm.sample(
            model, draws=30, tune=10, chains=1, random_seed=0, progressbar=False, sampler="nuts"
        )
    )


def test_degenerate_under_a_users_prior_is_a_warning():
    X = np.c_[_c, 1.8 * _c + 32]
    Warn(DegenerateDataWarning, "collinear", "The prior keeps the fit well-defined").check(
        lambda: check_degenerate(X, 2, ["c", "f"], prior_given=True)
    )


# =========================================================================== save / load
R_SAVE = row(
    "save",
    "`save_fit` into a folder it did not write (e.g. holding your `config.json`), into its "
    "own earlier save, an empty path, a file; a CLI `--out` folder holding your own "
    "`report.md`, `report.html`, `figures/` or `fits/`",
    "`ValueError` (CLI: exit 2 before any fit); nothing is deleted or overwritten. Its own "
    "folder is replaced only with `overwrite=True`, and then only the files its marker lists "
    "(the CLI reruns into its own report folder)",
)
R_LOAD = row(
    "load",
    "`load_fit` on a corrupt or edited file (invalid JSON, missing keys, wrong types or "
    "shapes, a damaged Zarr store)",
    "one `ValueError` naming the file and what is wrong: save the fit again",
)


@pytest.fixture(scope="module")
def em_small():
    return bm.fit_em(GOOD, 2, random_seed=0)


@pytest.fixture(scope="module")
def tree():
    from bayesmix.mcmc._trace import from_arrays

    return from_arrays(
        np.full((1, 3, 1), 1.0),
        np.zeros((1, 3, 1, 1)),
        np.ones((1, 3, 1, 1, 1)),
        np.zeros((4, 1)),
    )


def _user_file(folder, name="config.json", text='{"mine": true}'):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)
    return folder / name


@pytest.mark.parametrize(
    "user_file", ["config.json", "em.json", "notes.txt", ".hidden", "posterior.zarr"]
)
@pytest.mark.parametrize("overwrite", [False, True])
def test_save_never_touches_a_users_folder(tmp_path, em_small, user_file, overwrite):
    f = _user_file(tmp_path / "out", user_file)
    Err(ValueError, "not empty", "was not written by bayesmix.save_fit", "new or empty").check(
        lambda: save_fit(tmp_path / "out", em_result=em_small, config={"K": 2}, overwrite=overwrite)
    )
    assert f.read_text() == '{"mine": true}'
    assert not (tmp_path / "out" / MARKER_FILE).exists()


@pytest.mark.parametrize(
    ("path", "exc", "frag"),
    [
        ("", ValueError, "empty string"),
        ("   ", ValueError, "empty string"),
        (None, TypeError, "str or pathlib.Path"),
        (3, TypeError, "str or pathlib.Path"),
    ],
    ids=["empty", "blank", "none", "int"],
)
def test_save_bad_paths(tmp_path, monkeypatch, em_small, path, exc, frag):
    monkeypatch.chdir(tmp_path)
    Err(exc, frag).check(lambda: save_fit(path, em_result=em_small))
    assert list(tmp_path.iterdir()) == []


def test_save_onto_a_file(tmp_path, em_small):
    f = _user_file(tmp_path, "x")
    Err(ValueError, "exists and is a file").check(lambda: save_fit(f, em_result=em_small))
    assert f.read_text() == '{"mine": true}'


def test_resave_needs_overwrite_and_keeps_user_files(tmp_path, em_small, tree):
    out = save_fit(tmp_path / "fit", em_result=em_small, idata=tree, config={"K": 2})
    Err(ValueError, "already holds a fit", "overwrite=True").check(
        lambda: save_fit(out, config={"K": 3})
    )
    mine = _user_file(out, "my_notes.txt", "keep me")
    save_fit(out, config={"K": 3}, overwrite=True)
    loaded = load_fit(out)
    assert loaded.config == {"K": 3} and loaded.em_result is None and loaded.idata is None
    assert mine.read_text() == "keep me"


def test_damaged_marker_is_not_trusted(tmp_path, em_small):
    out = save_fit(tmp_path / "fit", em_result=em_small)
    (out / MARKER_FILE).write_text(json.dumps({"files": ["../../etc", "em.json"]}))
    Err(ValueError, "damaged or edited", "will not delete").check(
        lambda: save_fit(out, em_result=em_small, overwrite=True)
    )
    assert (out / "em.json").exists()


def _edit_em(d, key, value):
    d = json.loads(json.dumps(d))
    if value is _DELETE:
        del d["em"][key]
    else:
        d["em"][key] = value
    return json.dumps(d)


_DELETE = object()


def _deleter(key):
    return lambda t: _edit_em(json.loads(t), key, _DELETE)


EM_EDITS = (
    [
        ("truncated", lambda t: t[: len(t) // 2], ("invalid JSON",)),
        ("not-json", lambda t: "hello", ("invalid JSON",)),
        ("empty", lambda t: "", ("invalid JSON",)),
        ("a-list", lambda t: "[1, 2]", ("not a bayesmix EM result file",)),
        ("no-format", lambda t: json.dumps({"em": json.loads(t)["em"]}), ("not a bayesmix EM",)),
        (
            "em-null",
            lambda t: json.dumps({**json.loads(t), "em": None}),
            ("'em' holds a NoneType",),
        ),
        ("latin1-bytes", None, ("not UTF-8",)),
    ]
    + [
        (
            f"missing-{k}",
            _deleter(k),
            (f"'em.{k}' is missing",),
        )
        for k in (
            "weights",
            "means",
            "covariances",
            "covariance",
            "log_likelihood",
            "n_iter",
            "converged",
            "history",
            "n_obs",
            "feature_names",
        )
    ]
    + [
        (
            "weights-str",
            lambda t: _edit_em(json.loads(t), "weights", "0.5"),
            ("'em.weights' holds str",),
        ),
        (
            "n_iter-float",
            lambda t: _edit_em(json.loads(t), "n_iter", 3.5),
            ("'em.n_iter' holds float",),
        ),
        (
            "n_obs-bool",
            lambda t: _edit_em(json.loads(t), "n_obs", True),
            ("'em.n_obs' holds bool",),
        ),
        ("converged-str", lambda t: _edit_em(json.loads(t), "converged", "yes"), ("em.converged",)),
        (
            "weights-short",
            lambda t: _edit_em(json.loads(t), "weights", [1.0]),
            ("shapes do not agree",),
        ),
        (
            "means-ragged",
            lambda t: _edit_em(json.loads(t), "means", [[0, 1], [2]]),
            ("not numeric arrays",),
        ),
        (
            "weights-sum",
            lambda t: _edit_em(json.loads(t), "weights", [0.7, 0.7]),
            ("not a probability vector",),
        ),
        (
            "weights-neg",
            lambda t: _edit_em(json.loads(t), "weights", [1.5, -0.5]),
            ("not a probability vector",),
        ),
        (
            "means-nan",
            lambda t: _edit_em(json.loads(t), "means", [[0, "NaN"], [1, 1]]),
            ("non-finite values",),
        ),
        (
            "cov-not-spd",
            lambda t: _edit_em(json.loads(t), "covariances", [[[1, 2], [2, 1]], [[1, 0], [0, 1]]]),
            ("em.json",),
        ),
        (
            "names-short",
            lambda t: _edit_em(json.loads(t), "feature_names", ["a"]),
            ("shapes do not agree",),
        ),
        ("unknown-key", lambda t: _edit_em(json.loads(t), "surprise", 1), ("TypeError",)),
        (
            "bad-covariance-name",
            lambda t: _edit_em(json.loads(t), "covariance", "fool"),
            ("'em.covariance' is 'fool'",),
        ),
    ]
)


@pytest.mark.parametrize(("cid", "edit", "frags"), EM_EDITS, ids=[c[0] for c in EM_EDITS])
def test_load_edited_em_json(tmp_path, em_small, cid, edit, frags):
    out = save_fit(tmp_path / "fit", em_result=em_small)
    f = out / "em.json"
    if edit is None:
        f.write_bytes("caf\xe9".encode("latin-1"))
    else:
        f.write_text(edit(f.read_text()))
    Err(ValueError, "em.json", "cannot be read back", *frags).check(lambda: load_fit(out))


@pytest.mark.parametrize(
    ("cid", "text", "frag"),
    [
        ("truncated", '{"K": ', "invalid JSON"),
        ("list", "[1, 2]", "holds a list, not a dict"),
        ("string", '"K"', "holds a str"),
    ],
    ids=["truncated", "list", "string"],
)
def test_load_edited_config(tmp_path, cid, text, frag):
    out = save_fit(tmp_path / "fit", config={"K": 2})
    (out / "config.json").write_text(text)
    Err(ValueError, "config.json", frag).check(lambda: load_fit(out))


@pytest.mark.parametrize("damage", ["zarr.json-garbage", "zarr.json-deleted", "store-is-file"])
def test_load_damaged_zarr(tmp_path, tree, damage):
    out = save_fit(tmp_path / "fit", idata=tree)
    store = out / "posterior.zarr"
    if damage == "zarr.json-garbage":
        (store / "zarr.json").write_text("{not json")
    elif damage == "zarr.json-deleted":
        for f in store.rglob("zarr.json"):
            f.unlink()
    else:
        import shutil

        shutil.rmtree(store)
        store.write_text("not a store")
    Err(ValueError, "posterior.zarr", "Zarr store does not open").check(lambda: load_fit(out))


def test_load_round_trip_still_exact(tmp_path, em_small, tree):
    out = save_fit(tmp_path / "fit", em_result=em_small, idata=tree, config={"K": 2})
    back = load_fit(out)
    assert back.em_result.to_dict() == em_small.to_dict()
    np.testing.assert_array_equal(back.idata["posterior"]["weights"], tree["posterior"]["weights"])


# =========================================================================== EM and models
R_SINGULAR = row(
    "singular",
    "singular covariance with `reg_covar=0` (full/tied; e.g. K = n), or under a prior that "
    "cannot regularise it (MAP on near-collinear columns)",
    "`ValueError` (`SingularCovarianceError`): ill-defined covariance; decrease K, increase "
    "`reg_covar`, standardize, or use a prior (MAP). Under a prior: the collinear or constant "
    "columns named, and no advice to use a prior",
)
R_CONST = row(
    "constant",
    "constant feature (EM)",
    "`DegenerateDataWarning` naming the feature(s): their variance is set by `reg_covar` (ML) "
    'or the prior (MAP); "drop them". With `reg_covar=0` and no prior: `ValueError`',
)
R_COLLAPSE = row(
    "collapse",
    "duplicated points, a single point per component, K = n (EM)",
    'finite fit; `DegenerateDataWarning` "k component(s) collapsed"; `EMResult.collapsed` '
    "lists them; the advice names a prior only when none is in use",
)
R_FAR = row(
    "far",
    "far points (1e3 sd in the data; 1e200 away at prediction)",
    "densities and responsibilities in log space: finite `score_samples` / `predict_proba` "
    "however far",
)
R_ITER = row(
    "iter",
    "`max_iter` reached",
    '`ConvergenceWarning`: "increase max_iter or tol, or standardize the data"',
)
R_DRAWS = row(
    "draws",
    "`loo` on fewer than 25 draws; DP `truncation < 2` or `> N`",
    "`ValueError`: PSIS needs at least 25 draws, sample more or use `bayesmix.waic`; "
    "truncation named with its range",
)

_rng5 = np.random.default_rng(5)
BLOBS = np.concatenate(
    [_rng5.normal(size=(20, 2)), _rng5.normal(size=(20, 2)) + np.array([8.0, 0.0])]
)


def _finite_em(res):
    assert np.isfinite(res.means).all() and np.isfinite(res.covariances).all()
    assert np.isfinite(res.log_likelihood)


def _tiny_tree(draws):
    from bayesmix.mcmc._trace import from_arrays

    r = np.random.default_rng(0)
    return from_arrays(
        np.ones((1, draws, 1)),
        r.normal(0, 0.1, (1, draws, 1, 1)),
        np.ones((1, draws, 1, 1, 1)),
        r.normal(size=(10, 1)),
    )


def _nan_tree():
    """30 draws x 2 chains, one of them (chain 1, draw 7) with a NaN log-likelihood."""
    tree = _chains_tree(2, 30)
    tree["log_likelihood"]["X"].values[1, 7, 3] = np.nan
    return tree


R_DIAG = row(
    "diag",
    "one chain; too few effective draws",
    '`diagnostics` / `sample`: "R-hat needs at least two chains" (ESS still computed); '
    '"min bulk ESS 155 is below the threshold of 100 per chain (100 x 2 chains = 200)"',
)


def _chains_tree(chains, draws):
    from bayesmix.mcmc._trace import from_arrays

    r = np.random.default_rng(1)
    w = r.dirichlet([5.0, 5.0], size=(chains, draws))
    m = r.normal(0, 0.1, (chains, draws, 2, 1)) + np.array([[-2.0], [2.0]])
    c = np.exp(r.normal(0, 0.1, (chains, draws, 2, 1, 1)))
    tree = from_arrays(w, m, c, r.normal(size=(12, 1)))
    tree.attrs["relabelled"] = 1
    return tree


def _rhat_nan_ess_finite(table):
    assert len(table) and table["rhat"].isna().all()
    assert np.isfinite(table["ess_bulk"]).all()


def _diagnose(chains, draws):
    from types import SimpleNamespace

    from bayesmix.mcmc import _sample as sampling

    sampling._diagnose(_chains_tree(chains, draws), SimpleNamespace(model="dpgmm"), None)


EM_CASES = [
    (
        "diagnostics-1-chain",
        lambda: bm.diagnostics(_chains_tree(1, 40)),
        R_DIAG,
        Warn(
            BayesmixWarning,
            "R-hat needs at least two chains",
            then=_rhat_nan_ess_finite,
        ),
    ),
    (
        "sample-1-chain",
        lambda: _diagnose(1, 40),
        R_DIAG,
        Warn(BayesmixWarning, "R-hat needs at least two chains", "chains >= 2"),
    ),
    (
        "ess-threshold",
        lambda: _diagnose(2, 30),
        R_DIAG,
        Warn(BayesmixWarning, "is below the threshold of 100 per chain (100 x 2 chains = 200)"),
    ),
    (
        "singular-K=n",
        lambda: bm.fit_em(BLOBS[:4], 4, reg_covar=0.0, random_seed=0),
        R_SINGULAR,
        Err(ValueError, "ill-defined empirical covariance", "reg_covar"),
    ),
    (
        "singular-tied",
        lambda: bm.fit_em(
            np.repeat(BLOBS[:2], 3, axis=0), 2, covariance="tied", reg_covar=0.0, random_seed=0
        ),
        R_SINGULAR,
        Err(ValueError, "reg_covar"),
    ),
    (
        "constant-ml",
        lambda: bm.fit_em(np.c_[BLOBS[:, 0], np.ones(40)], 2, random_seed=0),
        R_CONST,
        Warn(DegenerateDataWarning, "['x1'] are constant", "reg_covar", then=_finite_em),
    ),
    (
        "constant-map",
        lambda: bm.fit_em(
            np.c_[BLOBS[:, 0], np.ones(40)],
            2,
            random_seed=0,
            prior=bm.GMMPrior.from_data(np.c_[BLOBS[:, 0], np.ones(40)], 2),
        ),
        R_CONST,
        Warn(DegenerateDataWarning, "the prior", then=_finite_em),
    ),
    (
        "constant-reg0",
        lambda: bm.fit_em(np.c_[BLOBS[:, 0], np.ones(40)], 2, reg_covar=0.0),
        R_CONST,
        Err(ValueError, "constant and reg_covar=0"),
    ),
    (
        "duplicates",
        lambda: bm.fit_em(np.repeat(BLOBS[:5], 10, axis=0), 3, covariance="diag", random_seed=0),
        R_COLLAPSE,
        Warn(DegenerateDataWarning, "collapsed", "a prior", then=_finite_em),
    ),
    (
        "k=n",
        lambda: bm.fit_em(BLOBS[:6], 6, random_seed=0),
        R_COLLAPSE,
        Warn(DegenerateDataWarning, "collapsed", then=_finite_em),
    ),
    (
        "outlier-1e3",
        lambda: bm.fit_em(np.vstack([BLOBS, [[1e3, 1e3]]]), 3, random_seed=0),
        R_FAR,
        Warn(DegenerateDataWarning, "collapsed", then=_finite_em),
    ),
    (
        "max_iter",
        lambda: bm.fit_em(BLOBS, 3, max_iter=1, tol=0.0, init="random", random_seed=0),
        R_ITER,
        Warn(
            ConvergenceWarning,
            "max_iter=1",
            "Increase max_iter",
        ),
    ),
    ("loo-10-draws", lambda: bm.loo(_tiny_tree(10)), R_DRAWS, Err(ValueError, "25", "waic")),
    (
        "select_k-10-draws",
        lambda: bm.select_k(BLOBS, [1, 2], draws=10, progress=False, random_seed=0),
        R_DRAWS,
        Err(ValueError, "draws=10 x chains=2 = 20", "pass draws=13 or more", "mcmc=False"),
    ),
    (
        "loo-nan-draw",
        lambda: bm.loo(_nan_tree()),
        R_DRAWS,
        Err(ValueError, "1 of 60 draw(s)", "chain 1 draw 7", "sample again"),
    ),
    (
        "from_dict-not-spd",
        lambda: bm.EMResult.from_dict(
            {
                **bm.fit_em(BLOBS, 2, random_seed=0).to_dict(),
                "covariances": [[[1.0, 2.0], [2.0, 1.0]], [[1.0, 0.0], [0.0, 1.0]]],
            }
        ),
        R_LOAD,
        Err(ValueError, "covariance of component 0", "not symmetric positive definite", "edited"),
    ),
    (
        "dp-truncation-1",
        lambda: bm.build_dpgmm(BLOBS, truncation=1),
        R_DRAWS,
        Err(ValueError, "truncation"),
    ),
    (
        "dp-truncation-big",
        lambda: bm.build_dpgmm(BLOBS[:5], truncation=6),
        R_DRAWS,
        Err(ValueError, "truncation"),
    ),
]


@pytest.mark.parametrize(("cid", "fn", "key", "expect"), EM_CASES, ids=[c[0] for c in EM_CASES])
def test_em_and_models(cid, fn, key, expect):
    expect.check(fn)


# =========================================================================== README table
def render_table():
    lines = ["| input | what bayesmix does |", "|---|---|"]
    lines += [f"| {what} | {does} |" for what, does in TABLE.values()]
    return "\n".join(lines)


def test_readme_table_is_generated_from_the_battery():
    text = (REPO / "README.md").read_text()
    m = re.search(r"## What bad input gets\n(.*?)(?=\n## |\Z)", text, re.S)
    assert m, "README has no 'What bad input gets' section"
    assert render_table() in m.group(1), (
        "README table out of date; regenerate with: python tests/test_boundary.py"
    )


if __name__ == "__main__":
    print(render_table())


# =========================================================================== specs and CLI
R_CLI_OUT = row(
    "cli-out",
    "`--out` an existing file, under a file, or not writable; `--k 1-100000000`, a K above n; "
    "`--draws 10 --chains 1`",
    "exit code 2 and one short line before the first fit (the K range is never expanded: "
    "rejected in well under a second), naming the option and the fix",
)
R_CLI_CSV = row(
    "cli-csv",
    "CSV with infinite values, non-numeric or empty columns, or a value of 1e308 (CLI, with "
    "or without `--standardize`; empty cells are missing values, kept: see the gaps row)",
    'exit code 2, one line: "N row(s) have infinite values (CSV lines ...); replace them ... or '
    'pass --dropna"; the columns named: "select numeric columns with --columns"; "rescale"',
)
R_CLI_DEGEN = row(
    "cli-degenerate",
    "collinear columns (°C and °F), identical rows through the CLI",
    "exit code 2 naming the collinear columns and their relation (or that every feature is "
    "constant); `--covariance diag` fits collinear columns",
)
R_SPEC = row(
    "spec",
    'a spec value of the wrong type or range (`seed = "1"`, `draws = 2.5`, '
    '`columns = [1]`, `k = "1-100000000"`, an unknown key); a spec file that is not TOML '
    "or not UTF-8",
    "`SpecError` (a `ValueError`) naming the key, what was expected and what came in; CLI exit 2",
)
R_PREDICT = row(
    "predict-columns",
    "`EMResult.predict` / `predict_proba` / `score_samples` with a DataFrame whose columns are "
    "reordered, missing or extra",
    "columns matched by name (reordered: same labels); a missing column is a `ValueError` "
    "naming it",
)


def _csv(tmp_path, text, name="d.csv"):
    f = tmp_path / name
    f.write_text(text)
    return str(f)


def _two_blobs_csv(sep=",", decimal=".", index=False):
    r = np.random.default_rng(7)
    X = np.r_[r.normal(size=(25, 2)), r.normal(size=(25, 2)) + 6.0]
    df = pd.DataFrame(X, columns=["a", "b"])
    return df, df.to_csv(sep=sep, decimal=decimal, index=index)


def _cli(args, tmp_path, capsys):
    from bayesmix.workflow._cli import main

    rc = main([*args, "--quiet"] if "--quiet" not in args else args)
    err = capsys.readouterr().err.strip()
    return rc, err


CLI_FAIL = [
    # (id, args builder(tmp_path) -> list, key, stderr fragments)
    (
        "out-empty",
        lambda p: ["fit", "--no-mcmc", "--k", "1", "--out", ""],
        R_CLI_OUT,
        ("--out is empty", "--out results/mine"),
    ),
    (
        "run-a-folder",
        lambda p: ["run", str(p), "--no-mcmc", "--out", str(p / "o")],
        R_SPEC,
        ("is a folder", "expects a TOML spec file"),
    ),
    (
        "out-is-file",
        lambda p: ["fit", "--no-mcmc", "--k", "1", "--out", _csv(p, "x", "f.txt")],
        R_CLI_OUT,
        ("--out", "is an existing file"),
    ),
    (
        "out-under-file",
        lambda p: ["fit", "--no-mcmc", "--k", "1", "--out", _csv(p, "x", "f.txt") + "/sub"],
        R_CLI_OUT,
        ("is a file, not a folder",),
    ),
    (
        "k-huge",
        lambda p: ["fit", "--no-mcmc", "--k", "1-100000000", "--out", str(p / "o")],
        R_CLI_OUT,
        ("--k", "1000"),
    ),
    (
        "k-above-n",
        lambda p: ["fit", "--no-mcmc", "--k", "1-300", "--out", str(p / "o")],
        R_CLI_OUT,
        ("--k", "K=[273, 274, ..., 300] (28 values) exceed the number of observations n=272"),
    ),
    (
        "k-zero",
        lambda p: ["fit", "--no-mcmc", "--k", "0", "--out", str(p / "o")],
        R_CLI_OUT,
        ("--k", ">= 1"),
    ),
    (
        "k-text",
        lambda p: ["fit", "--no-mcmc", "--k", "two", "--out", str(p / "o")],
        R_CLI_OUT,
        ("--k must look like",),
    ),
    (
        "draws-10-chains-1",
        lambda p: ["fit", "--k", "1-2", "--draws", "10", "--chains", "1", "--out", str(p / "o")],
        R_CLI_OUT,
        ("--draws 10 x --chains 1 = 10", "at least 25"),
    ),
    (
        "csv-infinite-value",  # an empty cell is a gap (tests/test_cli.py), inf the error
        lambda p: [
            "fit",
            _csv(p, "a,b\n1,2\n3,inf\n4,5\n5,6\n"),
            "--no-mcmc",
            "--k",
            "1",
            "--out",
            str(p / "o"),
        ],
        R_CLI_CSV,
        ("1 row(s) have infinite values", "CSV lines 3", "--dropna"),
    ),
    (
        "csv-non-numeric",
        lambda p: [
            "fit",
            _csv(p, "a,b\n1,x\n3,y\n4,z\n"),
            "--no-mcmc",
            "--k",
            "1",
            "--out",
            str(p / "o"),
        ],
        R_CLI_CSV,
        ("non-numeric column(s) ['b']", "--columns"),
    ),
    (
        "csv-empty-column",
        lambda p: [
            "fit",
            _csv(p, "a,b,c\n1,2,\n3,4,\n5,7,\n"),
            "--no-mcmc",
            "--k",
            "1",
            "--out",
            str(p / "o"),
        ],
        R_CLI_CSV,
        ("['c'] are empty",),
    ),
    (
        "csv-1e308-standardize",
        lambda p: [
            "fit",
            _csv(p, "a,b\n1,1e308\n2,-1e308\n3,4\n5,1\n"),
            "--no-mcmc",
            "--k",
            "1",
            "--standardize",
            "--out",
            str(p / "o"),
        ],
        R_CLI_CSV,
        ("'b'", "Rescale"),
    ),
    (
        "csv-mixed-decimals",
        lambda p: [
            "fit",
            _csv(p, "a;b\n1,5;2.5\n3;4\n5;6\n"),
            "--no-mcmc",
            "--k",
            "1",
            "--out",
            str(p / "o"),
        ],
        R_CSV_BAD,
        ("mixes decimal points",),
    ),
    (
        "csv-missing-file",
        lambda p: ["fit", str(p / "nope.csv"), "--no-mcmc", "--out", str(p / "o")],
        R_CLI_CSV,
        ("does not exist",),
    ),
    (
        "csv-unknown-column",
        lambda p: [
            "fit",
            _csv(p, "a,b\n1,2\n3,4\n5,5\n"),
            "--columns",
            "z",
            "--no-mcmc",
            "--out",
            str(p / "o"),
        ],
        R_CLI_CSV,
        ("['z'] not in the data",),
    ),
    (
        "celsius-fahrenheit",
        lambda p: [
            "fit",
            _csv(p, pd.DataFrame({"c": _c, "f": 1.8 * _c + 32}).to_csv(index=False)),
            "--no-mcmc",
            "--k",
            "1-2",
            "--out",
            str(p / "o"),
        ],
        R_CLI_DEGEN,
        ("columns ['c', 'f'] are collinear (f = 1.8 * c + 32)",),
    ),
    (
        "identical-rows",
        lambda p: [
            "fit",
            _csv(p, "a,b\n" + "1,2\n" * 30),
            "--no-mcmc",
            "--k",
            "1-2",
            "--out",
            str(p / "o"),
        ],
        R_CLI_DEGEN,
        ("Every feature of data is constant", "['a', 'b']"),
    ),
]


@pytest.mark.parametrize(("cid", "args", "key", "frags"), CLI_FAIL, ids=[c[0] for c in CLI_FAIL])
def test_cli_rejects(tmp_path, capsys, monkeypatch, cid, args, key, frags):
    import time

    monkeypatch.chdir(tmp_path)  # a default report folder would land here
    t0 = time.perf_counter()
    rc, err = _cli(args(tmp_path), tmp_path, capsys)
    elapsed = time.perf_counter() - t0
    assert rc == 2, err
    line = err.splitlines()[-1]
    for frag in frags:
        assert frag in line, f"{frag!r} not in {line!r}"
    assert len(line) < 600
    # nothing was fitted: no report folder (checks run before the first fit); the bound is
    # generous for a loaded CI machine, a fit plus report takes several seconds
    assert not (tmp_path / "o" / "fits").exists()
    assert not (tmp_path / "bayesmix-report").exists()
    assert elapsed < 20


def test_cli_out_not_writable(tmp_path, capsys, monkeypatch):
    from bayesmix.workflow import _preflight

    monkeypatch.setattr(_preflight.os, "access", lambda *a, **k: False)
    rc, err = _cli(["fit", "--no-mcmc", "--k", "1", "--out", str(tmp_path / "o")], tmp_path, capsys)
    assert rc == 2 and "is not writable" in err


def test_cli_huge_k_range_is_rejected_at_once(tmp_path, capsys):
    import time

    from bayesmix.workflow._spec import parse_k

    t0 = time.perf_counter()
    with pytest.raises(ValueError, match="1000"):
        parse_k("1-100000000", name="--k")
    assert time.perf_counter() - t0 < 0.5


@pytest.mark.parametrize(
    ("cid", "make", "names", "warn_frag"),
    [
        ("european", lambda: _two_blobs_csv(sep=";", decimal=","), ["a", "b"], None),
        ("pandas-index", lambda: _two_blobs_csv(index=True), ["a", "b"], "pandas index"),
        ("tab", lambda: _two_blobs_csv(sep="\t"), ["a", "b"], None),
    ],
    ids=["european", "pandas-index", "tab"],
)
def test_cli_reads_csv_dialects_correctly(tmp_path, capsys, cid, make, names, warn_frag):
    df, text = make()
    path = _csv(tmp_path, text)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        rc, err = _cli(
            ["fit", path, "--no-mcmc", "--k", "1", "--out", str(tmp_path / "o")], tmp_path, capsys
        )
    assert rc == 0, err
    fit = load_fit(tmp_path / "o" / "fits" / "full_K1").em_result
    assert fit.feature_names == names
    # K=1: the fitted mean is the data mean (MAP shrinkage kappa0 = 0.01 towards the data
    # mean itself), to rounding of the CSV's 16-17 significant digits
    np.testing.assert_allclose(fit.means[0], df.mean().to_numpy(), rtol=1e-9)
    said = err + " ".join(str(w.message) for w in rec)
    if warn_frag:
        assert warn_frag in said


def test_cli_collinear_with_diag_fits(tmp_path, capsys):
    path = _csv(tmp_path, pd.DataFrame({"c": _c, "f": 1.8 * _c + 32}).to_csv(index=False))
    rc, err = _cli(
        [
            "fit",
            path,
            "--no-mcmc",
            "--k",
            "1",
            "--covariance",
            "diag",
            "--out",
            str(tmp_path / "o"),
        ],
        tmp_path,
        capsys,
    )
    assert rc == 0, err


SPEC_CASES = [
    ({"seed": "1"}, ("seed", "integer >= 0", "'1'")),
    ({"seed": -1}, ("seed", "-1")),
    ({"sampler": {"draws": 2.5}}, ("sampler.draws", "2.5")),
    ({"sampler": {"chains": 0}}, ("sampler.chains", ">= 1")),
    ({"sampler": {"draws": 10, "chains": 1}}, ("sampler.draws", "at least 25")),
    ({"sampler": {"mcmc": "yes"}}, ("sampler.mcmc", "true or false")),
    ({"data": {"source": "csv", "path": "x.csv", "columns": [1, 2]}}, ("data.columns",)),
    ({"data": {"standardize": "yes"}}, ("data.standardize",)),
    ({"data": {"columns": ["a", "b", "a"]}}, ("data.columns", "['a'] more than once")),
    ({"data": {"source": "csv"}}, ("data.path",)),
    ({"data": {"source": "csv", "path": 3}}, ("data.path",)),
    ({"data": {"source": "csv", "path": "x.csv", "sep": ";;"}}, ("data.sep",)),
    ({"data": {"source": "csv", "path": "x.csv", "decimal": ":"}}, ("data.decimal",)),
    ({"data": {"source": "excel"}}, ("data.source",)),
    ({"model": {"k": "1-100000000"}}, ("model.k", "1000")),
    ({"model": {"k": [1, "2"]}}, ("model.k",)),
    ({"model": {"k": "3-1"}}, ("model.k", "empty")),
    ({"model": {"covariance": "fool"}}, ("model.covariance", "'fool'")),
    ({"model": {"estimate": 1}}, ("model.estimate",)),
    ({"model": {"truncation": 1}}, ("model.truncation", ">= 2")),
    ({"model": {"kind": ["dp"]}}, ("model.kind",)),
    ({"prior": {"dof": -1}}, ("prior.dof", "positive")),
    ({"prior": {"mean": "zero"}}, ("prior.mean",)),
    ({"prior": {"scale": [[1, 0]]}}, ("prior.scale",)),
    ({"prior": {"dp_concentration": [1]}}, ("prior.dp_concentration",)),
    ({"surprise": 1}, ("unknown key(s) ['surprise']",)),
    ({"model": {"kk": 1}}, ("unknown key(s) ['kk']", "[model]")),
    ({"output": 3}, ("output",)),
    ({"name": "a b"}, ("name",)),
    ({"sampler": {"mcmc_k": [5]}, "model": {"k": [1, 2]}}, ("sampler.mcmc_k", "K=[5]")),
    (
        {
            "data": {
                "source": "simulate",
                "simulate": {"n_obs": 50, "weights": "abc", "means": [[0.0]], "covariances": [1]},
            }
        },
        ("data.simulate.weights must be", "got 'abc'"),
    ),
]


@pytest.mark.parametrize(("d", "frags"), SPEC_CASES, ids=[str(i) for i in range(len(SPEC_CASES))])
def test_spec_values_named(d, frags):
    from bayesmix.workflow._spec import SpecError, spec_from_dict

    Err(SpecError, *frags).check(lambda: spec_from_dict(d))


@pytest.fixture(scope="module")
def em_ab():
    r = np.random.default_rng(11)
    df = pd.DataFrame(
        np.r_[r.normal(size=(30, 2)), r.normal(size=(30, 2)) + np.array([6.0, -3.0])],
        columns=["a", "b"],
    )
    return bm.fit_em(df, 2, random_seed=0), df


@pytest.mark.parametrize("method", ["predict", "predict_proba", "score_samples"])
def test_predict_matches_columns_by_name(em_ab, method):
    fit, df = em_ab
    same = getattr(fit, method)(df)
    swapped = getattr(fit, method)(df[["b", "a"]])
    np.testing.assert_array_equal(same, swapped)


@pytest.mark.parametrize("method", ["predict", "predict_proba", "score_samples"])
@pytest.mark.parametrize(
    ("cols", "frag"),
    [(["a", "c"], "missing column(s) ['b']"), (["a"], "missing column(s) ['b']")],
    ids=["renamed", "dropped"],
)
def test_predict_missing_column_named(em_ab, method, cols, frag):
    fit, df = em_ab
    X = df.rename(columns={"b": "c"})[cols] if "c" in cols else df[cols]
    Err(ValueError, frag, "['a', 'b']").check(lambda: getattr(fit, method)(X))


@pytest.mark.parametrize("method", ["predict_proba", "score_samples"])
@pytest.mark.parametrize("cov", ["full", "diag", "spherical", "tied"])
@pytest.mark.parametrize("far", [1e200, -1e250, 1e300])
def test_predict_far_points_finite(method, cov, far):
    fit = bm.fit_em(BLOBS, 2, covariance=cov, random_seed=0)
    P = np.array([[far, 0.0], [0.0, far], [far, far]])
    out = getattr(fit, method)(P)
    assert np.isfinite(out).all()
    if method == "predict_proba":
        np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-12)


@pytest.mark.parametrize("cov", ["full", "diag", "spherical", "tied"])
def test_far_point_labels_are_the_limit_of_moderately_far_ones(cov):
    # beyond ~1e154 the squared distance overflows and the point is evaluated at 1e8
    # Mahalanobis units along its ray; at 1e6 units nothing overflows and the labels
    # (and the one-hot probabilities) already are the limiting ones, for a tied
    # covariance too, where the linear term decides
    fit = bm.fit_em(BLOBS, 2, covariance=cov, random_seed=0)
    c = fit.means.mean(axis=0)
    dirs = np.array([[1.0, 0.0], [-1.0, 0.0], [0.6, 0.8], [-0.3, -1.0], [0.0, 1.0]])
    far = c + 1e200 * dirs
    near = c + 1e6 * dirs
    np.testing.assert_array_equal(fit.predict(far), fit.predict(near))
    np.testing.assert_allclose(fit.predict_proba(far), fit.predict_proba(near), atol=1e-12)
    # the log density keeps decreasing with distance (saturating near -1e300, finite)
    assert np.all(fit.score_samples(far) < fit.score_samples(near))
    assert np.all(np.isfinite(fit.score_samples(far)))


def test_map_collapse_advice_does_not_ask_for_a_prior():
    # MAP fit (a prior in use) on collinear columns with K=3: a component collapses onto
    # ~1 point; the advice must not be "use a prior"
    prior = bm.GMMPrior.from_data(_CF, 3)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        fit = bm.fit_em(_CF, 3, prior=prior, random_seed=0)
    msgs = [str(w.message) for w in rec if issubclass(w.category, DegenerateDataWarning)]
    assert fit.collapsed and msgs
    assert all("a prior (prior=" not in m for m in msgs)
    assert any("the prior in use does not prevent it" in m for m in msgs)
    # the same collapse without a prior does advise one
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        bm.fit_em(np.repeat(BLOBS[:5], 10, axis=0), 3, covariance="diag", random_seed=0)
    assert any("a prior (prior=" in str(w.message) for w in rec)


def _cases_per_row():
    """How many cases of the battery back each README row."""
    count = dict.fromkeys(TABLE, 0)
    for _, _, expect in CSV_CASES:
        key = {Ok: R_SEP, Err: R_CSV_BAD, Warn: R_CSV_ADJ}[type(expect)]
        count[key] += 1
    count[R_CSV_COLS] += len(CSV_COLUMN_CASES)
    for cases, pos in (
        (BAD_ARRAYS, 2),
        (GAP_CASES, 2),
        (API_CASES, 2),
        (EM_CASES, 2),
        (CLI_FAIL, 2),
    ):
        for case in cases:
            count[case[pos]] += 1
    count[R_CONVERT] += len(GOOD_ARRAYS)
    count[R_DEGEN] += len(DEGEN_CASES) + len(BUILDER_DEGEN)
    count[R_SAVE] += 5 * 2 + 4 + 3 + 5  # folders x overwrite, paths, file/resave/marker, CLI
    count[R_LOAD] += len(EM_EDITS) + 3 + 3
    count[R_SPEC] += len(SPEC_CASES) + len(SPEC_FILES)
    count[R_PREDICT] += 3 + 3 * 2
    count[R_FAR] += 2 * 4 * 3 + 4
    return count


def test_every_readme_row_is_backed_by_cases():
    count = _cases_per_row()
    assert all(n >= 1 for n in count.values()), {k: n for k, n in count.items() if n < 1}


def test_cli_explicit_dialect_resolves_an_ambiguous_file(tmp_path, capsys):
    # "1,5" on every line: two integer columns or one decimal-comma column; sniffing
    # refuses to guess, --sep/--decimal decide
    path = _csv(tmp_path, "1,5\n2,5\n3,5\n")
    rc, err = _cli(
        ["fit", path, "--no-mcmc", "--k", "1", "--out", str(tmp_path / "a")], tmp_path, capsys
    )
    assert rc == 2 and "ambiguous" in err and "--sep/--decimal" in err
    rc, err = _cli(
        [
            "fit",
            path,
            "--no-mcmc",
            "--k",
            "1",
            "--sep",
            ";",
            "--decimal",
            ",",
            "--out",
            str(tmp_path / "b"),
        ],
        tmp_path,
        capsys,
    )
    assert rc == 0, err
    assert "no header row" in err  # said even with --quiet
    fit = load_fit(tmp_path / "b" / "fits" / "full_K1").em_result
    assert fit.feature_names == ["x0"]
    np.testing.assert_allclose(fit.means[0], [2.5], rtol=1e-12)


def test_map_singular_covariance_names_the_columns_not_a_prior():
    # °F = 1.8 °C + 32 up to 1e-9 noise: the default prior (from these data) is itself
    # near singular, so the MAP covariance is not positive definite. The error names
    # the collinear columns; "use a prior" would be wrong advice (one is in use)
    r = np.random.default_rng(0)
    c = r.normal(20, 8, 80)
    X = pd.DataFrame({"c": c, "f": 1.8 * c + 32 + r.normal(0, 1e-9, 80)})
    err = Err(
        ValueError,
        "although a prior is in use",
        "columns ['c', 'f'] are collinear",
        "covariance='diag'",
    ).check(lambda: bm.fit_em(X, 2, prior=bm.GMMPrior.from_data(X, 2), random_seed=0))
    assert "GMMPrior.from_data" not in str(err)


SPEC_FILES = [
    ("invalid-toml", b"[model\nk = 1\n", ("not valid TOML",)),
    ("not-utf8", "name = 'caf\xe9'\n".encode("latin-1"), ("not a text (UTF-8) file",)),
    ("csv-missing", b"[data]\nsource = 'csv'\npath = 'nope.csv'\n", ("does not exist",)),
    ("csv-is-folder", b"[data]\nsource = 'csv'\npath = '.'\n", ("is a folder",)),
    ("draws-too-few", b"[sampler]\ndraws = 5\nchains = 2\n", ("sampler.draws 5", "at least 25")),
    ("k-huge", b"[model]\nk = '1-100000000'\n", ("model.k", "1000")),
    ("sep-wrong", b"[data]\nsource = 'csv'\npath = 'x.csv'\nsep = 'ab'\n", ("data.sep",)),
    ("mcmc-yes", b"[sampler]\nmcmc = 'yes'\n", ("sampler.mcmc must be true or false", "'yes'")),
    (
        "weight-concentration-map",
        b"[prior]\nweight_concentration = 0.5\n",
        ("prior.weight_concentration = 0.5", "needs weight_concentration >= 1", "'ml'"),
    ),
]


@pytest.mark.parametrize(("cid", "raw", "frags"), SPEC_FILES, ids=[c[0] for c in SPEC_FILES])
def test_spec_files_through_the_cli(tmp_path, capsys, cid, raw, frags):
    spec = tmp_path / "spec.toml"
    spec.write_bytes(raw)
    # --no-mcmc keeps the other cases fast; it also switches the MCMC-settings checks off
    # (nothing is sampled: test_cli.py::test_run_no_mcmc_skips_the_mcmc_settings_checks)
    no_mcmc = [] if cid == "draws-too-few" else ["--no-mcmc"]
    rc, err = _cli(["run", str(spec), *no_mcmc, "--out", str(tmp_path / "o")], tmp_path, capsys)
    assert rc == 2, err
    line = err.splitlines()[-1]
    for frag in frags:
        assert frag in line, (frag, line)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("mine", ["report.md", "report.html", "figures", "fits"])
def test_cli_never_overwrites_a_users_report_files(tmp_path, capsys, mine):
    out = tmp_path / "o"
    out.mkdir()
    target = out / mine
    if mine in ("figures", "fits"):
        target.mkdir()
        (target / "x.png").write_text("mine")
    else:
        target.write_text("my own notes")
    rc, err = _cli(["fit", "--no-mcmc", "--k", "1", "--out", str(out)], tmp_path, capsys)
    assert rc == 2 and "bayesmix did not write" in err and mine in err
    if target.is_dir():
        assert (target / "x.png").read_text() == "mine"
    else:
        assert target.read_text() == "my own notes"


def test_cli_reruns_into_its_own_report_folder(tmp_path, capsys):
    out = tmp_path / "o"
    for _ in range(2):
        rc, err = _cli(["fit", "--no-mcmc", "--k", "1", "--out", str(out)], tmp_path, capsys)
        assert rc == 0, err
    assert (out / ".bayesmix-report").exists() and (out / "fits" / "full_K1" / MARKER_FILE).exists()
