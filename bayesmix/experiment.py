"""Declared experiments: TOML specs, their validation, and the one analysis pipeline.

``bayesmix run models/NAME.toml`` and ``bayesmix fit`` both build an
:class:`ExperimentSpec` and call :func:`run_experiment`, which runs

1. data: built-in Old Faithful, a CSV file or a simulated mixture with known truth;
   column selection, optional dropping of rows with missing values (reported),
   optional standardisation;
2. k-means over the K grid (inertia, for reference);
3. EM over the K grid and covariance types (MAP under the experiment's prior by
   default, so that EM is the mode of the posterior MCMC explores), BIC and ICL;
4. MCMC for each K (finite mixtures) and/or one Dirichlet-process mixture, relabelled
   against the EM fit, with ELPD-LOO and ELPD-WAIC;
5. the chosen model (rule in :data:`CHOICE_RULE`), membership uncertainty,
   co-clustering, point partition, EM against MCMC, recovery of the truth for
   simulated data;
6. fits saved with :func:`bayesmix.save_fit` and a report folder
   (:func:`bayesmix.report.write_report`).

Spec format (every key optional except where noted; unknown keys are errors)::

    name = "old_faithful_finite"          # used for the default output folder
    description = "..."
    seed = 1                               # one seed for everything
    output = "results/old_faithful_finite" # relative to the current directory

    [data]
    source = "builtin"     # "builtin" (name = "old_faithful"), "csv" (path = ...),
                           # or "simulate" (table [data.simulate])
    path = "data.csv"      # csv only; relative to the spec file
    columns = ["eruptions", "waiting"]
    standardize = false
    dropna = false

    [data.simulate]        # source = "simulate"
    n_obs = 400
    weights = [0.5, 0.3, 0.2]
    means = [[0, 0], [4, 4], [0, 5]]
    covariances = [[[1, 0], [0, 1]], ...]   # (K, D, D), (K, D) diagonal or (K,) spherical
    seed = 7                                # data seed (defaults to the experiment seed)

    [model]
    kind = "finite"        # "finite", "dp", or "both"
    k = [1, 2, 3]          # or "1-5" or "1,2,4"
    covariance = ["full"]  # any of spherical, diag, full, tied
    estimate = "map"       # EM: "map" (under [prior]) or "ml"
    em_n_init = 5
    truncation = 15        # Dirichlet-process truncation

    [prior]                # GMMPrior fields; defaults from GMMPrior.from_data(X, K)
    mean_shrinkage = 0.01
    weight_concentration = 1.0
    dof = 4.0
    covariance_prior = "conjugate"
    lkj_eta = 2.0
    dp_concentration = [1.0, 1.0]

    [sampler]
    mcmc = true
    mcmc_k = [1, 2, 3]     # subset of k sampled by MCMC (default: all of k)
    draws = 500
    tune = 500
    chains = 2
"""

from __future__ import annotations

import math
import re
import sys
import time
import tomllib
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from bayesmix._validation import COVARIANCE_TYPES, check_covariance_type

__all__ = [
    "CHOICE_RULE",
    "DEFAULTS",
    "ExperimentResult",
    "ExperimentSpec",
    "SpecError",
    "adjusted_rand_index",
    "load_data",
    "load_spec",
    "parse_k",
    "run_experiment",
    "spec_from_dict",
]

#: Defaults of ``bayesmix fit`` and of specs (benchmarks/bench_cli.py measures them on
#: Old Faithful, cold and warm caches). MCMC runs for K = 1..4 with 4 chains: on the
#: shared 2-core machine (load ~3) K=1..4 took about 9, 12, 25-33 and 35-50 s; K=5 took
#: 85 s, which would break the 3-minute target of ``make run``. (An earlier 242 s for K=1
#: was measured under a load average of 8-10 and reflected contention.)
DEFAULTS = {
    "k": [1, 2, 3, 4, 5, 6],
    "mcmc_k": [1, 2, 3, 4],
    "covariance": ["full"],
    "draws": 500,
    "tune": 500,
    "chains": 4,
    "seed": 1,
    "em_n_init": 5,
    "truncation": 15,
    "estimate": "map",
}

CHOICE_RULE = (
    "With MCMC: the highest ELPD-LOO, except that the model with the fewest parameters "
    "whose ELPD-LOO is within one standard error (of the pointwise difference) of the "
    "best is preferred. Without MCMC: the lowest BIC."
)

_PRIOR_FIELDS = (
    "mean",
    "scale",
    "dof",
    "mean_shrinkage",
    "weight_concentration",
    "covariance_prior",
    "lkj_eta",
    "dp_concentration",
)


class SpecError(ValueError):
    """An experiment spec or command-line setting is invalid (names the key)."""


# ---------------------------------------------------------------------------- parsing
def parse_k(value, *, name="k"):
    """Parse a K grid: ``3``, ``"1-6"``, ``"1,2,4"``, ``"1-3,6"`` or a list of ints.

    Returns
    -------
    list of int
        Sorted, without duplicates, all >= 1.

    Examples
    --------
    >>> parse_k("1-3,6")
    [1, 2, 3, 6]
    """
    if isinstance(value, bool):
        raise SpecError(f"{name} must be integers >= 1 like 3, '1-6' or '1,2,4'; got {value!r}.")
    if isinstance(value, int):
        items = [value]
    elif isinstance(value, str):
        items = []
        for part in value.replace(" ", "").split(","):
            m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
            if not m:
                raise SpecError(
                    f"{name} must look like 3, 1-6 or 1,2,4 (integers >= 1); got {value!r}."
                )
            lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
            if hi < lo:
                raise SpecError(f"{name}: range {part!r} is empty (end before start).")
            items.extend(range(lo, hi + 1))
    elif isinstance(value, (list, tuple)):
        items = list(value)
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in items):
            raise SpecError(f"{name} must be a list of integers; got {value!r}.")
    else:
        raise SpecError(f"{name} must be an integer, a range string or a list; got {value!r}.")
    if not items:
        raise SpecError(f"{name} is empty; give at least one number of components.")
    if min(items) < 1:
        raise SpecError(f"{name} must be >= 1; got {min(items)} in {value!r}.")
    return sorted(set(items))


def _covariances(value, name="model.covariance"):
    if isinstance(value, str):
        value = [v for v in value.replace(" ", "").split(",") if v]
    if not isinstance(value, (list, tuple)) or not value:
        raise SpecError(f"{name} must be one or more of {list(COVARIANCE_TYPES)}; got {value!r}.")
    out = []
    for v in value:
        try:
            c = check_covariance_type(v, name=name)
        except (TypeError, ValueError) as exc:
            raise SpecError(str(exc)) from None
        if c not in out:
            out.append(c)
    return out


def _int(value, name, minimum=1):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SpecError(f"{name} must be an integer >= {minimum}; got {value!r}.")
    return value


def _bool(value, name):
    if not isinstance(value, bool):
        raise SpecError(f"{name} must be true or false; got {value!r}.")
    return value


def _check_keys(table, allowed, where):
    if not isinstance(table, dict):
        raise SpecError(f"[{where}] must be a table; got {type(table).__name__}.")
    unknown = sorted(set(table) - set(allowed))
    if unknown:
        raise SpecError(
            f"unknown key(s) {unknown} in {'the top level' if not where else '[' + where + ']'}; "
            f"allowed: {sorted(allowed)}."
        )


# ---------------------------------------------------------------------------- the spec
@dataclass
class ExperimentSpec:
    """A validated experiment (see the module docstring for the TOML form)."""

    name: str = "bayesmix"
    description: str = ""
    seed: int = DEFAULTS["seed"]
    output: str | None = None
    source: str = "builtin"
    builtin: str = "old_faithful"
    path: str | None = None
    columns: list | None = None
    standardize: bool = False
    dropna: bool = False
    simulate: dict | None = None
    kind: str = "finite"
    k: list = field(default_factory=lambda: list(DEFAULTS["k"]))
    covariance: list = field(default_factory=lambda: list(DEFAULTS["covariance"]))
    estimate: str = DEFAULTS["estimate"]
    em_n_init: int = DEFAULTS["em_n_init"]
    truncation: int = DEFAULTS["truncation"]
    prior: dict = field(default_factory=dict)
    mcmc: bool = True
    mcmc_k: list | None = None
    draws: int = DEFAULTS["draws"]
    tune: int = DEFAULTS["tune"]
    chains: int = DEFAULTS["chains"]

    def to_dict(self):
        """JSON-ready dict (stored with saved fits)."""
        return asdict(self)


_TOP = ("name", "description", "seed", "output", "data", "model", "prior", "sampler")
_DATA = ("source", "name", "path", "columns", "standardize", "dropna", "simulate")
_SIM = ("n_obs", "weights", "means", "covariances", "seed")
_MODEL = ("kind", "k", "covariance", "estimate", "em_n_init", "truncation")
_SAMPLER = ("mcmc", "mcmc_k", "draws", "tune", "chains")


def spec_from_dict(d, *, base_dir=None):
    """Validate a spec dict (as read from TOML) and return an :class:`ExperimentSpec`.

    Parameters
    ----------
    d : dict
    base_dir : str or Path, optional
        Relative CSV paths are resolved against it (the spec file's folder).

    Raises
    ------
    SpecError
        Naming the offending key, what was expected and what was given.

    Examples
    --------
    >>> spec_from_dict({"model": {"k": "1-3"}}).k
    [1, 2, 3]
    """
    _check_keys(d, _TOP, "")
    s = ExperimentSpec()
    if "name" in d:
        if not isinstance(d["name"], str) or not re.fullmatch(r"[\w.-]+", d["name"]):
            raise SpecError(f"name must be a word (letters, digits, _ . -); got {d['name']!r}.")
        s.name = d["name"]
    if "description" in d:
        s.description = str(d["description"])
    if "seed" in d:
        s.seed = _int(d["seed"], "seed", 0)
    if "output" in d:
        if not isinstance(d["output"], str) or not d["output"]:
            raise SpecError(f"output must be a folder path string; got {d['output']!r}.")
        s.output = d["output"]

    data = d.get("data", {})
    _check_keys(data, _DATA, "data")
    s.source = data.get("source", "builtin")
    if s.source not in ("builtin", "csv", "simulate"):
        raise SpecError(f"data.source must be 'builtin', 'csv' or 'simulate'; got {s.source!r}.")
    if s.source == "builtin":
        s.builtin = data.get("name", "old_faithful")
        if s.builtin != "old_faithful":
            raise SpecError(
                f"data.name must be 'old_faithful' (the built-in data); got {s.builtin!r}."
            )
    elif s.source == "csv":
        if not isinstance(data.get("path"), str):
            raise SpecError("data.path (a CSV file) is required when data.source = 'csv'.")
        p = Path(data["path"])
        if not p.is_absolute() and base_dir is not None:
            p = Path(base_dir) / p
        s.path = str(p)
    else:
        sim = data.get("simulate")
        if sim is None:
            raise SpecError("data.simulate (a table) is required when data.source = 'simulate'.")
        _check_keys(sim, _SIM, "data.simulate")
        for key in ("n_obs", "weights", "means", "covariances"):
            if key not in sim:
                raise SpecError(f"data.simulate.{key} is required.")
        _int(sim["n_obs"], "data.simulate.n_obs", 2)
        if "seed" in sim:
            _int(sim["seed"], "data.simulate.seed", 0)
        s.simulate = dict(sim)
    if "columns" in data:
        cols = data["columns"]
        if isinstance(cols, str):
            cols = [c.strip() for c in cols.split(",") if c.strip()]
        if not isinstance(cols, list) or not cols or not all(isinstance(c, str) for c in cols):
            raise SpecError(f"data.columns must be a non-empty list of column names; got {cols!r}.")
        s.columns = cols
    if "standardize" in data:
        s.standardize = _bool(data["standardize"], "data.standardize")
    if "dropna" in data:
        s.dropna = _bool(data["dropna"], "data.dropna")

    model = d.get("model", {})
    _check_keys(model, _MODEL, "model")
    s.kind = model.get("kind", "finite")
    if s.kind not in ("finite", "dp", "both"):
        raise SpecError(f"model.kind must be 'finite', 'dp' or 'both'; got {s.kind!r}.")
    if "k" in model:
        s.k = parse_k(model["k"], name="model.k")
    if "covariance" in model:
        s.covariance = _covariances(model["covariance"])
    s.estimate = model.get("estimate", DEFAULTS["estimate"])
    if s.estimate not in ("map", "ml"):
        raise SpecError(f"model.estimate must be 'map' or 'ml'; got {s.estimate!r}.")
    if "em_n_init" in model:
        s.em_n_init = _int(model["em_n_init"], "model.em_n_init")
    if "truncation" in model:
        s.truncation = _int(model["truncation"], "model.truncation", 2)

    prior = d.get("prior", {})
    _check_keys(prior, _PRIOR_FIELDS, "prior")
    s.prior = dict(prior)
    if s.prior:
        # validate the values with the prior object itself on a dummy 1-feature setup only
        # for scalar fields; mean/scale are checked against the data later.
        for key in ("dof", "mean_shrinkage", "weight_concentration", "lkj_eta"):
            if key in s.prior and (
                isinstance(s.prior[key], bool)
                or not isinstance(s.prior[key], (int, float))
                or not s.prior[key] > 0
            ):
                raise SpecError(f"prior.{key} must be a positive number; got {s.prior[key]!r}.")
        if "covariance_prior" in s.prior and s.prior["covariance_prior"] not in (
            "conjugate",
            "lkj",
        ):
            raise SpecError(
                "prior.covariance_prior must be 'conjugate' or 'lkj'; got "
                f"{s.prior['covariance_prior']!r}."
            )
        if "dp_concentration" in s.prior:
            v = s.prior["dp_concentration"]
            if not (
                isinstance(v, list)
                and len(v) == 2
                and all(
                    isinstance(x, (int, float)) and not isinstance(x, bool) and x > 0 for x in v
                )
            ):
                raise SpecError(
                    "prior.dp_concentration must be [shape, rate], two positive numbers; got "
                    f"{v!r}."
                )

    sampler = d.get("sampler", {})
    _check_keys(sampler, _SAMPLER, "sampler")
    if "mcmc" in sampler:
        s.mcmc = _bool(sampler["mcmc"], "sampler.mcmc")
    for key, minimum in (("draws", 1), ("tune", 0), ("chains", 1)):
        if key in sampler:
            setattr(s, key, _int(sampler[key], f"sampler.{key}", minimum))
    if "mcmc_k" in sampler:
        s.mcmc_k = parse_k(sampler["mcmc_k"], name="sampler.mcmc_k")
        extra = sorted(set(s.mcmc_k) - set(s.k))
        if extra:
            raise SpecError(
                f"sampler.mcmc_k has K={extra} not in model.k={s.k}; add them to model.k."
            )
    if s.prior.get("covariance_prior") == "lkj" and s.estimate == "map":
        raise SpecError(
            "prior.covariance_prior = 'lkj' has no closed-form MAP; set model.estimate = 'ml' "
            "or use covariance_prior = 'conjugate'."
        )
    return s


def load_spec(path):
    """Read and validate a TOML experiment spec.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    ExperimentSpec

    Examples
    --------
    >>> spec = load_spec("models/old_faithful_finite.toml")  # doctest: +SKIP
    """
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"spec file {str(path)!r} does not exist.")
    try:
        d = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path}: not valid TOML ({exc}).") from None
    except UnicodeDecodeError:
        raise SpecError(f"{path}: not a text (UTF-8) file.") from None
    try:
        spec = spec_from_dict(d, base_dir=path.parent)
    except SpecError as exc:
        raise SpecError(f"{path}: {exc}") from None
    if "name" not in d:
        spec.name = path.stem
    return spec


# ---------------------------------------------------------------------------- data
@dataclass
class Data:
    X: np.ndarray
    feature_names: list
    info: dict
    truth: dict | None = None


def _csv_lines(rows, n=5):
    # data row i (0-based) sits on CSV line i + 2 (line 1 is the header)
    shown = ", ".join(str(int(r) + 2) for r in rows[:n])
    return shown + (", ..." if len(rows) > n else "")


def load_data(spec):
    """Load, select, clean and optionally standardise the data of a spec.

    Returns
    -------
    Data
        ``X`` (N, D) float64, ``feature_names``, ``info`` (source, rows read, rows
        dropped, standardisation) and ``truth`` (simulated data only: labels and
        parameters, the parameters in the units and features of the analysed data:
        marginalised to ``data.columns`` and standardised like ``X``).
    """
    import pandas as pd

    import bayesmix as bm

    truth = None
    if spec.source == "builtin":
        df = bm.load_old_faithful()
        src = "built-in Old Faithful (272 eruptions)"
    elif spec.source == "csv":
        p = Path(spec.path)
        if not p.exists():
            raise SpecError(f"data file {spec.path!r} does not exist.")
        if p.is_dir():
            raise SpecError(f"data file {spec.path!r} is a folder, not a CSV file.")
        try:
            df = pd.read_csv(p)
        except pd.errors.EmptyDataError:
            raise SpecError(
                f"data file {spec.path!r} is empty; expected a header row and data."
            ) from None
        except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
            msg = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            raise SpecError(f"could not read {spec.path!r} as CSV: {msg}") from None
        if df.shape[0] == 0:
            raise SpecError(f"data file {spec.path!r} has a header but no data rows.")
        src = f"CSV file {spec.path} ({df.shape[0]} rows, {df.shape[1]} columns)"
    else:
        sim = spec.simulate
        try:
            X, z = bm.simulate(
                sim["n_obs"],
                sim["weights"],
                sim["means"],
                sim["covariances"],
                random_seed=sim.get("seed", spec.seed),
            )
        except (TypeError, ValueError) as exc:
            raise SpecError(f"data.simulate: {exc}") from None
        D = X.shape[1]
        df = pd.DataFrame(X, columns=[f"x{j}" for j in range(D)])
        w = np.asarray(sim["weights"], float)
        cov = np.asarray(sim["covariances"], float)
        if cov.ndim == 1:
            cov = cov[:, None, None] * np.eye(D)
        elif cov.ndim == 2:
            cov = np.stack([np.diag(c) for c in cov])
        truth = {
            "labels": z,
            "weights": w,
            "means": np.asarray(sim["means"], float),
            "covariances": cov,
        }
        src = f"simulated mixture, K={len(w)}, n={sim['n_obs']}"
    n_read = int(df.shape[0])
    if spec.columns is not None:
        missing = [c for c in spec.columns if c not in df.columns]
        if missing:
            raise SpecError(
                f"column(s) {missing} not in the data; available columns: "
                f"{list(map(str, df.columns))}."
            )
        df = df[spec.columns]
    bad = [
        str(c)
        for c in df.columns
        if not pd.api.types.is_numeric_dtype(df[c]) or pd.api.types.is_bool_dtype(df[c])
    ]
    if bad:
        raise SpecError(
            f"non-numeric column(s) {bad}; bayesmix fits numeric data only. Select numeric "
            "columns with --columns (spec: data.columns)."
        )
    values = df.to_numpy(dtype=float)
    bad_rows = np.flatnonzero(~np.isfinite(values).all(axis=1))
    n_dropped = 0
    if bad_rows.size:
        if not spec.dropna:
            raise SpecError(
                f"{bad_rows.size} row(s) have missing or infinite values (CSV lines "
                f"{_csv_lines(bad_rows)}); pass --dropna (spec: data.dropna = true) to drop them."
            )
        keep = np.ones(len(values), bool)
        keep[bad_rows] = False
        values = values[keep]
        n_dropped = int(bad_rows.size)
        if truth is not None:
            truth["labels"] = truth["labels"][keep]
    names = [str(c) for c in df.columns]
    if values.shape[0] < 2:
        raise SpecError(f"only {values.shape[0]} complete row(s) left; at least 2 are needed.")
    info = {
        "source": src,
        "n_read": n_read,
        "n_dropped": n_dropped,
        "n_obs": int(values.shape[0]),
        "n_features": int(values.shape[1]),
        "feature_names": names,
        "standardized": False,
    }
    if spec.standardize:
        mean = values.mean(axis=0)
        sd = values.std(axis=0, ddof=1)
        const = [n for n, v in zip(names, sd, strict=True) if not v > 0]
        if const:
            raise SpecError(
                f"cannot standardize constant column(s) {const}; drop them with --columns."
            )
        values = (values - mean) / sd
        info.update(standardized=True, center=mean.tolist(), scale=sd.tolist())
    if truth is not None:
        truth = _truth_in_data_units(truth, list(df.columns), info)
    return Data(np.ascontiguousarray(values), names, info, truth)


def _truth_in_data_units(truth, columns, info):
    """The simulated components as the analysed data sees them: the selected features'
    marginals (columns are named x0, x1, ...), standardised when X is."""
    idx = [int(str(c)[1:]) for c in columns]
    m = np.asarray(truth["means"], float)[:, idx]
    c = np.asarray(truth["covariances"], float)[:, idx][:, :, idx]
    if info.get("standardized"):
        center, scale = np.asarray(info["center"]), np.asarray(info["scale"])
        m = (m - center) / scale
        c = c / np.outer(scale, scale)
    return {**truth, "means": m, "covariances": c}


# ---------------------------------------------------------------------------- recovery
def adjusted_rand_index(labels_true, labels_pred):
    """Adjusted Rand index of two partitions (Hubert & Arabie 1985).

    Examples
    --------
    >>> adjusted_rand_index([0, 0, 1, 1], [1, 1, 0, 0])
    1.0
    """
    a = np.unique(np.asarray(labels_true), return_inverse=True)[1]
    b = np.unique(np.asarray(labels_pred), return_inverse=True)[1]
    n = a.size
    table = np.zeros((a.max() + 1, b.max() + 1))
    np.add.at(table, (a, b), 1)

    def comb2(x):
        return (x * (x - 1) / 2.0).sum()

    sum_ij = comb2(table)
    sum_a, sum_b = comb2(table.sum(1)), comb2(table.sum(0))
    expected = sum_a * sum_b / (n * (n - 1) / 2.0) if n > 1 else 0.0
    max_index = (sum_a + sum_b) / 2.0
    if max_index == expected:
        return 1.0
    return float((sum_ij - expected) / (max_index - expected))


def _match_components(true_means, est_means):
    from scipy.optimize import linear_sum_assignment

    cost = ((true_means[:, None, :] - est_means[None, :, :]) ** 2).sum(-1)
    rows, cols = linear_sum_assignment(cost)
    return cols[np.argsort(rows)]


def recovery(truth, em_result=None, idata=None, labels=None):
    """Recovery of a known truth: ARI and parameter errors after matching components.

    Returns
    -------
    dict
        ``ari`` (of ``labels`` against the truth) and, when the fitted K equals the true
        K, per source (``em``, ``posterior mean``) the largest absolute error of the
        weights and means and the largest Frobenius error of the covariances, after
        matching components to the truth by their means (Hungarian algorithm).
    """
    from bayesmix._trace import get_params

    out = {}
    if labels is not None:
        out["ari"] = adjusted_rand_index(truth["labels"], labels)
    Kt = len(truth["weights"])
    sources = []
    if em_result is not None:
        sources.append(("EM", em_result.weights, em_result.means, em_result.covariances))
    if idata is not None:
        w, m, c = get_params(idata)
        sources.append(("posterior mean", w.mean((0, 1)), m.mean((0, 1)), c.mean((0, 1))))
    errors = []
    for name, w, m, c in sources:
        if len(w) != Kt:
            continue
        perm = _match_components(truth["means"], m)
        errors.append(
            {
                "estimate": name,
                "max |weight error|": float(np.abs(w[perm] - truth["weights"]).max()),
                "max |mean error|": float(np.abs(m[perm] - truth["means"]).max()),
                "max covariance error (Frobenius)": float(
                    np.linalg.norm(c[perm] - truth["covariances"], axis=(1, 2)).max()
                ),
            }
        )
    out["parameter_errors"] = errors
    return out


# ---------------------------------------------------------------------------- results
@dataclass
class FitRecord:
    covariance: str
    K: int | str
    em: object = None
    prior: object = None
    idata: object = None
    loo: object = None
    waic: object = None
    diagnostics: dict = field(default_factory=dict)
    error: str | None = None
    path: str | None = None
    seconds: float = 0.0
    #: seconds per step of the MCMC fit: ``build`` (PyMC model), ``sample`` (bm.sample,
    #: compilation included), ``post`` (relabelling, LOO/WAIC, diagnostics)
    stage_seconds: dict = field(default_factory=dict)


@dataclass
class ExperimentResult:
    """Everything :func:`run_experiment` computed (the report renders it)."""

    spec: ExperimentSpec
    data: Data
    kmeans_table: object = None
    table: object = None
    records: dict = field(default_factory=dict)
    dp: FitRecord | None = None
    chosen: tuple | None = None
    choice_reason: str = ""
    membership: object = None
    membership_source: str = ""
    coclustering: object = None
    partition: object = None
    comparison: object = None
    recovery: dict | None = None
    out_dir: Path | None = None
    report_path: Path | None = None
    timings: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)

    @property
    def chosen_record(self):
        return None if self.chosen is None else self.records[self.chosen]


class _Progress:
    def __init__(self, quiet, stream=None):
        self.quiet = quiet
        self.stream = stream or sys.stderr
        self.t0 = time.perf_counter()

    def __call__(self, msg):
        if not self.quiet:
            print(f"[{time.perf_counter() - self.t0:6.1f}s] {msg}", file=self.stream, flush=True)


def _prior_for(spec, X, K):
    import bayesmix as bm

    overrides = dict(spec.prior)
    if "dp_concentration" in overrides:
        overrides["dp_concentration"] = tuple(overrides["dp_concentration"])
    try:
        return bm.GMMPrior.from_data(X, K, **overrides)
    except (TypeError, ValueError) as exc:
        raise SpecError(f"prior: {exc}") from None


def _n_params(covariance, K, D):
    cov = {"full": K * D * (D + 1) / 2, "tied": D * (D + 1) / 2, "diag": K * D, "spherical": K}
    return int((K - 1) + K * D + cov[covariance])


def _elpd_pointwise(res):
    e = getattr(res, "elpd_i", None)
    return None if e is None else np.asarray(getattr(e, "values", e), float).ravel()


def _choose(result):
    """Apply CHOICE_RULE to the table; returns ((cov, K), reason)."""
    t = result.table
    D = result.data.X.shape[1]
    ok = t[t["error"].isna()] if "error" in t else t
    if ok.empty:
        raise RuntimeError("every EM fit failed; nothing to choose from (see the table).")
    mc = ok[ok["elpd_loo"].notna()] if "elpd_loo" in ok else ok.iloc[:0]
    if len(mc):
        best = mc.loc[mc["elpd_loo"].idxmax()]
        best_key = (best["covariance"], int(best["K"]))
        best_i = _elpd_pointwise(result.records[best_key].loo)
        cands = []
        for _, row in mc.iterrows():
            key = (row["covariance"], int(row["K"]))
            e_i = _elpd_pointwise(result.records[key].loo)
            if key == best_key:
                se = 0.0
            elif e_i is not None and best_i is not None and e_i.size == best_i.size:
                se = float(np.sqrt(e_i.size * np.var(best_i - e_i, ddof=1)))
            else:
                se = float(row.get("elpd_loo_se", np.nan))
            if row["elpd_loo"] >= best["elpd_loo"] - se:
                cands.append((_n_params(key[0], key[1], D), -row["elpd_loo"], key))
        key = min(cands)[2]
        chosen_elpd = float(mc.set_index(["covariance", "K"]).loc[key, "elpd_loo"])
        reason = (
            f"{key[0]} covariance, K={key[1]}: ELPD-LOO {chosen_elpd:.1f}; "
            f"best ELPD-LOO {best['elpd_loo']:.1f} at {best_key[0]} K={best_key[1]}"
            + ("" if key == best_key else " (within one SE of the difference, fewer parameters)")
        )
        return key, reason
    best = ok.loc[ok["bic"].idxmin()]
    key = (best["covariance"], int(best["K"]))
    return key, f"{key[0]} covariance, K={key[1]}: lowest BIC ({best['bic']:.1f})"


def _diag_summary(idata, relabelled):
    out = {}
    ss = idata.children.get("sample_stats") if hasattr(idata, "children") else None
    if ss is not None and "diverging" in ss.data_vars:
        out["divergences"] = int(ss["diverging"].values.sum())
    if relabelled:
        try:
            from bayesmix.labelswitching import diagnostics

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                d = diagnostics(idata, var_names=("weights", "means"))
            out["max_rhat"] = float(np.nanmax(d["rhat"])) if len(d) else float("nan")
            out["min_ess_bulk"] = float(np.nanmin(d["ess_bulk"])) if len(d) else float("nan")
        except Exception as exc:  # diagnostics are informative, never fatal
            out["diagnostics_error"] = f"{type(exc).__name__}: {exc}"
    return out


def _sample(model, *, init, spec, seed, quiet, notes=None, what=""):
    import bayesmix as bm

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", bm.BayesmixWarning)
        idata = bm.sample(
            model,
            init=init,
            draws=spec.draws,
            tune=spec.tune,
            chains=spec.chains,
            random_seed=seed,
            progressbar=not quiet,
        )
    if notes is not None:
        notes.extend(f"{what}: {w.message}" for w in caught)
    return idata


def run_experiment(spec, *, out=None, quiet=False, stream=None, report=True):
    """Run the whole analysis of a spec and write its report folder.

    Parameters
    ----------
    spec : ExperimentSpec
        From :func:`load_spec` or :func:`spec_from_dict`.
    out : str or Path, optional
        Output folder; default ``spec.output`` or ``results/<spec.name>``.
    quiet : bool
        No progress lines (and no sampler progress bar).
    stream : file, optional
        Where progress lines go (default stderr).
    report : bool
        Write the report folder (plots, report.md, report.html) and save the fits.

    Returns
    -------
    ExperimentResult

    Examples
    --------
    >>> spec = spec_from_dict({"model": {"k": "1-3"}, "sampler": {"mcmc": False}})
    >>> res = run_experiment(spec, out="/tmp/bm-doc", quiet=True)  # doctest: +SKIP
    >>> res.chosen  # doctest: +SKIP
    ('full', 2)
    """
    import pandas as pd

    import bayesmix as bm
    from bayesmix.clustering import kmeans

    log = _Progress(quiet, stream)
    t_start = time.perf_counter()
    data = load_data(spec)
    X = data.X
    N, D = X.shape
    # a DataFrame carries the feature names into the EM result and the posterior coords
    Xdf = pd.DataFrame(X, columns=data.feature_names)
    result = ExperimentResult(spec=spec, data=data)
    out_dir = Path(out or spec.output or Path("results") / spec.name)
    result.out_dir = out_dir
    too_big = [K for K in spec.k if K > N]
    if too_big:
        raise SpecError(f"K={too_big} exceed the number of observations n={N}; use K <= {N}.")
    log(
        f"data: {data.info['source']}; using {N} rows x {D} features {data.feature_names}"
        + (
            f", dropped {data.info['n_dropped']} rows with missing values"
            if data.info["n_dropped"]
            else ""
        )
        + (", standardized" if spec.standardize else "")
    )
    rng = np.random.default_rng(spec.seed)
    seeds = iter(rng.integers(0, 2**31 - 1, size=10_000).tolist())

    # ---- k-means
    t0 = time.perf_counter()
    rows = []
    for K in spec.k:
        km = kmeans(X, K, n_init=10, random_seed=next(seeds))
        rows.append(
            {
                "K": K,
                "inertia": float(km.inertia),
                "sizes": np.bincount(km.labels, minlength=K).tolist(),
            }
        )
    result.kmeans_table = pd.DataFrame(rows)
    result.timings["kmeans"] = time.perf_counter() - t0
    log(f"k-means over K={spec.k}: done")

    # ---- EM over the grid
    t0 = time.perf_counter()
    rows = []
    em_seed = next(seeds)
    for cov in spec.covariance:
        for K in spec.k:
            rec = FitRecord(cov, K)
            rec.prior = _prior_for(spec, X, K)
            row = {"covariance": cov, "K": K, "n_params": _n_params(cov, K, D)}
            try:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always", bm.BayesmixWarning)
                    rec.em = bm.fit_em(
                        Xdf,
                        K,
                        covariance=cov,
                        prior=rec.prior if spec.estimate == "map" else None,
                        n_init=spec.em_n_init,
                        random_seed=em_seed,
                    )
                row.update(
                    log_likelihood=float(rec.em.log_likelihood),
                    bic=float(rec.em.bic(X)),
                    icl=float(rec.em.icl(X)),
                    converged=bool(rec.em.converged),
                    collapsed=len(getattr(rec.em, "collapsed", ()) or ()),
                    error=None,
                )
                for w in caught:
                    result.notes.append(f"EM {cov} K={K}: {w.message}")
            except (ValueError, np.linalg.LinAlgError) as exc:
                rec.error = f"{type(exc).__name__}: {exc}"
                row["error"] = rec.error
                result.notes.append(f"EM {cov} K={K} failed: {exc}")
            result.records[(cov, K)] = rec
            rows.append(row)
    result.table = pd.DataFrame(rows)
    result.timings["em"] = time.perf_counter() - t0
    ok = result.table[result.table["error"].isna()]
    if len(ok):
        b = ok.loc[ok["bic"].idxmin()]
        log(
            f"EM ({spec.estimate.upper()}) over K={spec.k}, covariance {spec.covariance}: "
            f"lowest BIC at {b['covariance']} K={int(b['K'])}"
        )

    # ---- MCMC for each K
    t0 = time.perf_counter()
    mcmc_k = spec.mcmc_k if spec.mcmc_k is not None else spec.k
    if spec.mcmc and spec.kind in ("finite", "both"):
        for col in (
            "elpd_loo",
            "elpd_loo_se",
            "p_loo",
            "elpd_waic",
            "elpd_waic_se",
            "max_rhat",
            "divergences",
            "mcmc_seconds",
        ):
            result.table[col] = np.nan
        todo = [
            (cov, K)
            for cov in spec.covariance
            for K in mcmc_k
            if result.records[(cov, K)].em is not None
        ]
        for i, (cov, K) in enumerate(todo, 1):
            rec = result.records[(cov, K)]
            log(
                f"MCMC {i}/{len(todo)}: {cov} K={K} ({spec.chains} chains x {spec.draws} draws "
                f"after {spec.tune} tuning)"
            )
            t1 = time.perf_counter()
            model = bm.build_gmm(Xdf, K, covariance=cov, prior=rec.prior)
            t2 = time.perf_counter()
            idata = _sample(
                model,
                init=rec.em,
                spec=spec,
                seed=next(seeds),
                quiet=quiet,
                notes=result.notes,
                what=f"MCMC {cov} K={K}",
            )
            t3 = time.perf_counter()
            if K > 1:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always", bm.BayesmixWarning)
                    idata = bm.relabel(idata, reference=rec.em)
                for w in caught:
                    result.notes.append(f"MCMC {cov} K={K}: {w.message}")
            rec.idata = idata
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", bm.BayesmixWarning)
                rec.loo = bm.loo(idata)
                rec.waic = bm.waic(idata)
            for w in caught:
                result.notes.append(f"MCMC {cov} K={K}: {w.message}")
            rec.diagnostics = _diag_summary(idata, relabelled=True)
            rec.seconds = time.perf_counter() - t1
            rec.stage_seconds = {"build": t2 - t1, "sample": t3 - t2, "post": t1 + rec.seconds - t3}
            m = (result.table["covariance"] == cov) & (result.table["K"] == K)
            result.table.loc[m, "elpd_loo"] = float(rec.loo.elpd)
            result.table.loc[m, "elpd_loo_se"] = float(rec.loo.se)
            result.table.loc[m, "p_loo"] = float(rec.loo.p)
            result.table.loc[m, "elpd_waic"] = float(rec.waic.elpd)
            result.table.loc[m, "elpd_waic_se"] = float(rec.waic.se)
            result.table.loc[m, "max_rhat"] = rec.diagnostics.get("max_rhat", np.nan)
            result.table.loc[m, "divergences"] = rec.diagnostics.get("divergences", np.nan)
            result.table.loc[m, "mcmc_seconds"] = rec.seconds
            log(
                f"  ELPD-LOO {rec.loo.elpd:.1f} ± {rec.loo.se:.1f}, WAIC {rec.waic.elpd:.1f}, "
                f"{rec.seconds:.0f} s"
            )
    if spec.mcmc and spec.kind in ("dp", "both"):
        cov = spec.covariance[0]
        T = min(spec.truncation, N)
        log(f"MCMC: Dirichlet-process mixture, {cov} covariance, truncation {T}")
        t1 = time.perf_counter()
        rec = FitRecord(cov, f"DP({T})", prior=_prior_for(spec, X, T))
        model = bm.build_dpgmm(Xdf, truncation=T, covariance=cov, prior=rec.prior)
        # start the chains from the EM fit with the most components (<= T) of the grid, as
        # notebook 03 does: the sticks beyond it start nearly empty
        em_init = [
            r.em
            for (c, K), r in sorted(result.records.items(), key=lambda kv: kv[0][1])
            if c == cov and r.em is not None and K <= T
        ]
        t2 = time.perf_counter()
        rec.idata = _sample(
            model,
            init=em_init[-1] if em_init else None,
            spec=spec,
            seed=next(seeds),
            quiet=quiet,
            notes=result.notes,
            what="DP",
        )
        t3 = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", bm.BayesmixWarning)
            rec.loo = bm.loo(rec.idata)
            rec.waic = bm.waic(rec.idata)
        for w in caught:
            result.notes.append(f"DP: {w.message}")
        rec.diagnostics = _diag_summary(rec.idata, relabelled=False)
        rec.diagnostics["occupied"] = _occupied(rec.idata)
        rec.seconds = time.perf_counter() - t1
        rec.stage_seconds = {"build": t2 - t1, "sample": t3 - t2, "post": t1 + rec.seconds - t3}
        result.dp = rec
        log(f"  ELPD-LOO {rec.loo.elpd:.1f} ± {rec.loo.se:.1f}, {rec.seconds:.0f} s")
    result.timings["mcmc"] = time.perf_counter() - t0

    # ---- choice and posterior analysis
    t0 = time.perf_counter()
    result.chosen, result.choice_reason = _choose(result)
    log(f"chosen: {result.choice_reason}")
    rec = result.chosen_record
    if rec.idata is not None and rec.K != 1:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", bm.BayesmixWarning)
            result.membership = bm.membership(rec.idata)
        result.membership_source = "posterior (MCMC)"
    else:
        p = rec.em.predict_proba(X)
        result.membership = {"label": p.argmax(1), "uncertainty": 1.0 - p.max(1)}
        result.membership_source = "EM"
    tree = rec.idata if rec.idata is not None else (result.dp.idata if result.dp else None)
    if tree is not None:
        result.coclustering = bm.coclustering(tree)
        result.partition = bm.point_partition(result.coclustering)
    if rec.idata is not None:
        try:
            result.comparison = bm.compare_fits(rec.em, rec.idata)
        except (AttributeError, ImportError) as exc:
            result.notes.append(f"EM-vs-MCMC comparison unavailable: {exc}")
    if data.truth is not None:
        labels = np.asarray(result.membership["label"])
        result.recovery = recovery(data.truth, rec.em, rec.idata, labels)
        if result.partition is not None:
            result.recovery["ari_point_partition"] = adjusted_rand_index(
                data.truth["labels"], result.partition.labels
            )
        if result.dp is not None:
            dp_part = bm.point_partition(bm.coclustering(result.dp.idata))
            result.recovery["ari_dp_point_partition"] = adjusted_rand_index(
                data.truth["labels"], dp_part.labels
            )
    result.timings["analysis"] = time.perf_counter() - t0
    result.timings["analysis_total"] = time.perf_counter() - t_start
    if report:
        from bayesmix.report import write_report

        log(f"saving fits and writing the report to {out_dir}/")
        t0 = time.perf_counter()
        _save_fits(result)
        result.timings["save"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        result.report_path = write_report(result, out_dir)
        result.timings["report"] = time.perf_counter() - t0
        result.timings["total"] = time.perf_counter() - t_start
        log(f"done in {result.timings['total']:.0f} s: {result.report_path}")
    return result


def _occupied(idata, max_draws=400):
    """Posterior draws of the number of occupied components (hard allocations)."""
    from bayesmix._gaussian import responsibilities
    from bayesmix._trace import get_observed, get_params

    w, m, c = get_params(idata)
    C, S = w.shape[:2]
    X = get_observed(idata)
    flat = np.unique(np.linspace(0, C * S - 1, min(C * S, max_draws)).round().astype(int))
    w, m, c = (a.reshape(C * S, *a.shape[2:])[flat] for a in (w, m, c))
    lab = responsibilities(X, w, m, c).argmax(-1)
    counts = np.array([np.unique(r).size for r in lab])
    values, freq = np.unique(counts, return_counts=True)
    return {int(v): float(f / counts.size) for v, f in zip(values, freq, strict=True)}


def _save_fits(result):
    from bayesmix.io import save_fit

    fits = result.out_dir / "fits"
    base = {"spec": result.spec.to_dict(), "data": result.data.info}
    for (cov, K), rec in result.records.items():
        if rec.em is None:
            continue
        rec.path = str(fits / f"{cov}_K{K}")
        cfg = dict(
            base,
            covariance=cov,
            K=K,
            estimate=result.spec.estimate,
            prior=rec.prior.to_dict() if rec.prior is not None else None,
        )
        save_fit(rec.path, em_result=rec.em, idata=rec.idata, config=_jsonable(cfg))
    if result.dp is not None:
        rec = result.dp
        rec.path = str(fits / f"dp_{rec.covariance}")
        cfg = dict(
            base,
            covariance=rec.covariance,
            model="dp",
            prior=rec.prior.to_dict() if rec.prior is not None else None,
        )
        save_fit(rec.path, idata=rec.idata, config=_jsonable(cfg))


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
