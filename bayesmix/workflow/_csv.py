"""Reading a data CSV without misreading it.

:func:`read_csv` sniffs what spreadsheet programs and pandas write and either parses
it correctly or stops with an error that names what it saw and the fix:

* the delimiter (``,``, ``;`` as European Excel writes, tab, ``|``) and the decimal
  separator (``.`` or ``,``, with a ``.`` thousands separator such as ``1.234,5``);
  a file mixing decimal points and decimal commas is an error naming both values;
* a header row that is missing (the first line is numeric): read as data, columns
  named ``x0, x1, ...``, with a :class:`DataFormatWarning` saying so;
* a pandas index written by ``DataFrame.to_csv()`` (an unnamed first column holding
  0..n-1, or R's ``write.csv`` row names 1..n): dropped, with a warning;
* empty columns without a header (trailing delimiters): dropped with a warning;
  empty columns with a name are reported by :func:`check_columns`;
* duplicate column names (pandas would rename them ``a.1`` silently): an error;
* a compressed file (``.gz``, ``.bz2``, ``.xz``, ``.zip``, ``.zst``, as pandas infers
  from the name): decompressed through pandas, then read as above.

Nothing is dropped or converted without a warning that says what was done.
"""

from __future__ import annotations

import csv
import io
import itertools
import lzma
import re
import zipfile
from pathlib import Path

import numpy as np

from bayesmix.core._validation import DataFormatWarning, warn

__all__ = ["check_columns", "read_csv"]

_DELIMITERS = (",", ";", "\t", "|")
_DELIM_NAMES = {",": "comma ','", ";": "semicolon ';'", "\t": "tab", "|": "pipe '|'"}
_EXP = r"(?:[eE][+-]?\d+)?"
_DEC_POINT = re.compile(rf"^[+-]?(?:\d+\.\d*|\.\d+){_EXP}$")
_DEC_COMMA = re.compile(rf"^[+-]?(?:\d+,\d*|,\d+){_EXP}$")
_THOUSANDS_DOT = re.compile(rf"^[+-]?\d{{1,3}}(?:\.\d{{3}})+(?:,\d*)?{_EXP}$")
_INT = re.compile(rf"^[+-]?\d+{_EXP}$")
_SNIFF_LINES = 2000


def read_csv(path, *, sep=None, decimal=None, name="data file"):
    """Read a numeric data table from a CSV file, sniffing its dialect.

    Parameters
    ----------
    path : str or pathlib.Path
        The file; a name ending in ``.gz``, ``.bz2``, ``.xz``, ``.zip`` (one file inside)
        or ``.zst`` (needs the ``zstandard`` package) is decompressed first, as
        ``pandas.read_csv`` does.
    sep : str, optional
        The delimiter; sniffed among ``,``, ``;``, tab and ``|`` when not given.
    decimal : {".", ","}, optional
        The decimal separator; sniffed when not given.
    name : str
        How errors refer to the file.

    Returns
    -------
    df : pandas.DataFrame, shape (n_rows, n_columns)
        One column per field; numeric columns are float or int.
    info : dict
        ``delimiter``, ``decimal``, ``thousands``, ``header`` (bool), ``encoding``,
        ``dropped`` (columns dropped, with the reason).

    Raises
    ------
    ValueError
        On an empty file, an ambiguous or inconsistent delimiter, mixed decimal
        separators or duplicate column names, naming what was seen and the fix.

    Examples
    --------
    >>> import tempfile, os
    >>> f = os.path.join(tempfile.mkdtemp(), "eu.csv")
    >>> _ = open(f, "w").write("a;b\\n1,5;2\\n3,25;4\\n")
    >>> df, info = read_csv(f)
    >>> df["a"].tolist(), info["delimiter"], info["decimal"]
    ([1.5, 3.25], ';', ',')
    """
    import pandas as pd

    text, encoding = _read_text(Path(path), name)
    lines = [ln for ln in itertools.islice(io.StringIO(text), _SNIFF_LINES) if ln.strip()]
    lines = [ln.rstrip("\r\n") for ln in lines]
    if not lines:
        raise ValueError(f"{name} {str(path)!r} is empty; expected a header row and data.")
    sep = _check_or_sniff_sep(lines, sep, name, path)
    rows = _split(lines, sep)
    decimal, thousands = _sniff_decimal(rows[1:] or rows, sep, decimal, name, path)
    header = not all(_is_number(f, decimal, thousands) for f in rows[0] if f.strip())
    if header:
        _check_header(rows[0], name, path)
    parse_text, parse_decimal = text, decimal
    if decimal == "," and thousands is None:
        # pandas' parser for decimal="," is not correctly rounded (1 ulp off for ~10% of
        # values); its "." parser is. The comma is not the delimiter here, so in the
        # data lines it can only be a decimal separator (or sit in text columns, which
        # are reported as non-numeric either way).
        head = re.match(r"(?:[ \t]*\r?\n)*[^\n]*\n?", text).group(0) if header else ""
        parse_text, parse_decimal = head + text[len(head) :].replace(",", "."), "."
    try:
        df = pd.read_csv(
            io.StringIO(parse_text),
            sep=sep,
            decimal=parse_decimal,
            thousands=thousands,
            header=0 if header else None,
            skipinitialspace=True,
            skip_blank_lines=True,
        )
    except pd.errors.EmptyDataError:
        raise ValueError(
            f"{name} {str(path)!r} is empty; expected a header row and data."
        ) from None
    except (pd.errors.ParserError, ValueError) as exc:
        msg = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise ValueError(
            f"could not read {name} {str(path)!r} as a {_DELIM_NAMES.get(sep, repr(sep))}-"
            f"delimited CSV: {msg}. Every line must have the same number of fields."
        ) from None
    if df.shape[0] == 0:
        raise ValueError(f"{name} {str(path)!r} has a header but no data rows.")
    info = {
        "delimiter": sep,
        "decimal": decimal,
        "thousands": thousands,
        "header": header,
        "encoding": encoding,
        "dropped": {},
    }
    if not header:
        df.columns = [f"x{j}" for j in range(df.shape[1])]
        warn(
            f"{name} {str(path)!r} has no header row (its first line {lines[0][:60]!r} is "
            f"numeric): read it as data and named the columns {_short(list(df.columns))}. Add "
            "a header line to name them.",
            DataFormatWarning,
        )
    df = _drop_artifacts(df, info, name, path)
    return df, info


def check_columns(df, name="data file"):
    """Error naming empty or non-numeric columns of a table read by :func:`read_csv`.

    Parameters
    ----------
    df : pandas.DataFrame
        The selected columns.
    name : str
        How errors refer to the data.

    Examples
    --------
    >>> import pandas as pd
    >>> check_columns(pd.DataFrame({"a": [1.0, 2.0]}))
    """
    import pandas as pd

    empty = [str(c) for c in df.columns if df[c].isna().all()]
    if empty:
        raise ValueError(
            f"{name} column(s) {empty} are empty (no value in any row); drop them or select "
            "the columns to fit with --columns (spec: data.columns)."
        )
    bad = [
        str(c)
        for c in df.columns
        if not pd.api.types.is_numeric_dtype(df[c]) or pd.api.types.is_bool_dtype(df[c])
    ]
    if bad:
        hints = [h for c in bad if (h := _hint(df[c], str(c)))]
        raise ValueError(
            f"{name} has non-numeric column(s) {bad}; bayesmix fits numeric data only. "
            + (" ".join(hints) + " " if hints else "")
            + "Select numeric columns with --columns (spec: data.columns)."
        )


# ---------------------------------------------------------------------------- helpers
def _read_text(path, name):
    if not path.exists():
        raise ValueError(f"{name} {str(path)!r} does not exist.")
    if path.is_dir():
        raise ValueError(f"{name} {str(path)!r} is a folder, not a CSV file.")
    raw = _read_bytes(path, name)
    if b"\x00" in raw[:4096]:
        packed = next((c for m, c in _MAGIC.items() if raw.startswith(m)), None)
        raise ValueError(
            f"{name} {str(path)!r} is not a text file "
            + (
                f"(it looks {packed}-compressed: name it with the {_SUFFIX[packed]!r} "
                "ending so that it is decompressed, or decompress it)."
                if packed
                else "(it holds NUL bytes: a spreadsheet, UTF-16 text or a binary file?). "
                "Save it as CSV (UTF-8) first."
            )
        )
    try:
        return raw.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError:
        warn(
            f"{name} {str(path)!r} is not UTF-8; read it as Windows-1252 (what Excel writes). "
            "Save it as CSV UTF-8 to silence this.",
            DataFormatWarning,
        )
        return raw.decode("cp1252", errors="replace"), "cp1252"


#: file endings pandas decompresses (``compression="infer"``), and their formats
_COMPRESSION = {".gz": "gzip", ".bz2": "bz2", ".xz": "xz", ".zip": "zip", ".zst": "zstd"}
_SUFFIX = {c: e for e, c in _COMPRESSION.items()}
#: leading bytes of the compressed formats (not zip: a spreadsheet is a zip too)
_MAGIC = {b"\x1f\x8b": "gzip", b"BZh": "bz2", b"\xfd7zXZ\x00": "xz", b"(\xb5/\xfd": "zstd"}


def _read_bytes(path, name):
    """The file's bytes, decompressed through pandas when its name ends in .gz, .bz2,
    .xz, .zip or .zst (as ``pandas.read_csv`` would)."""
    compression = _COMPRESSION.get(path.suffix.lower())
    if compression is None:
        return path.read_bytes()
    from pandas.io.common import get_handle

    try:
        with get_handle(path, "rb", compression=compression, is_text=False) as handles:
            return handles.handle.read()
    except ImportError as exc:  # zstandard is optional in pandas
        raise ValueError(
            f"{name} {str(path)!r} is {compression}-compressed, and reading it needs an "
            f"optional package ({exc}). Install it, or decompress the file first."
        ) from None
    except (OSError, EOFError, ValueError, lzma.LZMAError, zipfile.BadZipFile) as exc:
        raise ValueError(
            f"{name} {str(path)!r} could not be decompressed as {compression} (its name ends "
            f"in {path.suffix!r}): {exc}. Check the file, or decompress it and pass the CSV."
        ) from None


def _split(lines, sep):
    return list(csv.reader(lines, delimiter=sep, skipinitialspace=True))


def _check_or_sniff_sep(lines, sep, name, path):
    if sep is not None:
        if not isinstance(sep, str) or len(sep) != 1:
            raise ValueError(f"sep must be a single character such as ';'; got {sep!r}.")
        return sep
    consistent = {}
    for cand in _DELIMITERS:
        counts = {len(r) for r in _split(lines, cand)}
        if len(counts) == 1 and counts != {1}:
            consistent[cand] = counts.pop()
    if len(consistent) == 1:
        sep = next(iter(consistent))
        if (
            sep == ","
            and consistent[sep] == 2
            and all(_DEC_COMMA.match(ln.strip()) for ln in lines)
        ):
            raise ValueError(
                f"{name} {str(path)!r} is ambiguous: every line looks like {lines[0].strip()!r}, "
                "two integer columns or one column with a decimal comma. Add a header row, or "
                "pass sep and decimal explicitly (CLI --sep/--decimal, spec data.sep/decimal)."
            )
        return sep
    if (
        not consistent
        and len(lines) > 1
        and all(_DEC_COMMA.match(ln.strip()) or _INT.match(ln.strip()) for ln in lines[1:])
    ):
        return ";"  # one column of decimal-comma numbers under a header
    if not consistent:
        split = {c: {len(r) for r in _split(lines, c)} for c in _DELIMITERS}
        used = [c for c, n in split.items() if n != {1}]
        if not used:
            return ","  # one column
        raise ValueError(
            f"{name} {str(path)!r}: no delimiter splits every line into the same number of "
            "fields ("
            + ", ".join(f"{_DELIM_NAMES[c]}: {sorted(split[c])} fields" for c in used)
            + "). Check the file for ragged lines, or pass the delimiter explicitly "
            "(sep=..., CLI --sep, spec data.sep)."
        )
    other = [c for c in consistent if c != ","]
    if "," in consistent and len(other) == 1:
        rows = _split(lines, other[0])

        def numeric(r):
            return all(_DEC_COMMA.match(f.strip()) or _INT.match(f.strip()) for f in r)

        # the commas are decimal commas, unless a header line holds commas too
        if all(numeric(r) for r in rows[1:]) and (numeric(rows[0]) or "," not in lines[0]):
            return other[0]
    raise ValueError(
        f"{name} {str(path)!r}: the delimiter is ambiguous: "
        + ", ".join(f"{_DELIM_NAMES[c]} gives {n} fields" for c, n in consistent.items())
        + " on every line. Pass the delimiter explicitly (sep=..., CLI --sep, spec data.sep)."
    )


def _sniff_decimal(rows, sep, decimal, name, path):
    if decimal is not None:
        if decimal not in (".", ","):
            raise ValueError(f"decimal must be '.' or ','; got {decimal!r}.")
        if decimal == sep:
            raise ValueError(f"decimal {decimal!r} cannot equal the delimiter {sep!r}.")
        return decimal, ("." if decimal == "," else None)
    comma = point = grouped = None  # first decimal-comma, decimal-point, 1.234-style field
    for r in rows:
        for f in r:
            f = f.strip()
            if _THOUSANDS_DOT.match(f):
                grouped = grouped or f
                if "," in f:
                    comma = comma or f
            elif _DEC_COMMA.match(f):
                comma = comma or f
            elif _DEC_POINT.match(f):
                point = point or f
    if comma is None or sep == ",":  # no decimal commas (or quoted "1,5" in a comma file)
        return ".", None
    if point is not None:
        raise ValueError(
            f"{name} {str(path)!r} mixes decimal points ({point!r}) and decimal commas "
            f"({comma!r}); a number such as {point!r} would be misread. Re-save the file with "
            "one decimal separator, or pass decimal='.' or ',' (CLI --decimal, spec "
            "data.decimal)."
        )
    # with decimal commas, 1.234 is one thousand two hundred and thirty-four
    return ",", ("." if grouped else None)


def _is_number(field, decimal, thousands):
    f = field.strip()
    if thousands:
        f = f.replace(thousands, "")
    if decimal == ",":
        f = f.replace(",", ".")
    try:
        float(f)
    except ValueError:
        return False
    return True


def _check_header(header, name, path):
    names = [h.strip() for h in header]
    dup = sorted({h for h in names if h and names.count(h) > 1})
    if dup:
        raise ValueError(
            f"{name} {str(path)!r} has duplicate column names {dup}; pandas would rename them "
            "silently ('a', 'a.1'). Rename the columns in the header row."
        )


def _drop_artifacts(df, info, name, path):
    """Drop a written pandas/R index and header-less empty columns, with a warning."""
    unnamed = [c for c in df.columns if str(c).startswith("Unnamed: ")]
    if info["header"] and unnamed and df.columns[0] == unnamed[0]:
        first = df[df.columns[0]]
        n = len(df)
        if n and first.notna().all() and np.issubdtype(first.dtype, np.integer):
            vals = first.to_numpy()
            for start in (0, 1):
                if np.array_equal(vals, np.arange(start, start + n)):
                    df = df.drop(columns=df.columns[0])
                    why = "a pandas index (DataFrame.to_csv)" if start == 0 else "R row names"
                    info["dropped"][str(first.name)] = why
                    warn(
                        f"{name} {str(path)!r}: dropped its first column (no header, values "
                        f"{start}..{start + n - 1}): {why}, not data. Write the file with "
                        "index=False (R: row.names=FALSE) to avoid this.",
                        DataFormatWarning,
                    )
                    break
    empty = [c for c in df.columns if str(c).startswith("Unnamed: ") and df[c].isna().all()]
    if empty:
        df = df.drop(columns=empty)
        for c in empty:
            info["dropped"][str(c)] = "empty, no header"
        warn(
            f"{name} {str(path)!r}: dropped {len(empty)} empty column(s) without a header "
            f"({_short([str(c) for c in empty])}; trailing delimiters?).",
            DataFormatWarning,
        )
    return df


def _hint(series, col):
    vals = [str(v).strip() for v in series.dropna().astype(str).head(200)]
    if vals and all(_DEC_COMMA.match(v) or _INT.match(v) for v in vals):
        return (
            f"Column {col!r} holds numbers with commas ({vals[0]!r}: decimal commas, or "
            "thousands separators) in a comma-delimited file: re-save it with ';' as the "
            "delimiter, or with decimal points and no thousands separators."
        )
    odd = [v for v in vals if not _is_number(v, ".", None)]
    if odd and len(odd) < len(vals):
        return f"Column {col!r} is mostly numeric but holds {odd[0]!r}."
    return ""


def _short(names, k=5):
    return ", ".join(names[:k]) + (" ..." if len(names) > k else "")
