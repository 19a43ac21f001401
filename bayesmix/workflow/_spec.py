"""Declared experiments: TOML specs, their validation, and loading their data.

``bayesmix run models/NAME.toml`` and ``bayesmix fit`` both build an
:class:`ExperimentSpec` here (:func:`load_spec`, :func:`spec_from_dict`) and hand it
to :func:`bayesmix.workflow._pipeline.run_experiment`. :func:`load_data` reads the data a spec
declares: built-in Old Faithful, a CSV file or a simulated mixture with known truth;
column selection, optional dropping of rows with missing values (reported), optional
standardisation.

Spec format (every key optional except where noted; unknown keys are errors)::

    name = "old_faithful_finite"          # used for the default output folder
    description = "..."
    seed = 1                               # one seed for everything
    output = "results/old_faithful_finite" # relative to the current directory

    [data]
    source = "builtin"     # "builtin" (name = "old_faithful"), "csv" (path = ...),
                           # or "simulate" (table [data.simulate])
    path = "data.csv"      # csv only; relative to the spec file (.gz/.bz2/.xz/.zip/.zst read too)
    sep = ";"              # csv only, optional: the delimiter (sniffed when absent)
    decimal = ","          # csv only, optional: the decimal separator (sniffed too)
    columns = ["eruptions", "waiting"]
    standardize = false
    dropna = false
    weights = "count"      # optional: a column of frequency weights (not a feature)

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
    mfm = true             # also a mixture of finite mixtures (Gibbs): posterior on K

    [prior]                # GMMPrior fields; defaults from GMMPrior.from_data(X, K)
    mean_shrinkage = 0.01
    weight_concentration = 1.0             # >= 1 under estimate = "map" (no MAP below 1)
    dof = 4.0
    covariance_prior = "conjugate"
    lkj_eta = 2.0
    dp_concentration = [1.0, 1.0]

    [sampler]
    mcmc = true
    mcmc_k = [1, 2, 3]     # subset of k sampled by MCMC (default: all of k)
    draws = 500
    gibbs_draws = 2000     # per chain, models sampled by Gibbs (MFM, DP); default auto
    tune = 500
    chains = 2
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from bayesmix.core._mclust_models import MAP_MODELS, MCLUST_MODELS
from bayesmix.core._validation import (
    COVARIANCE_TYPES,
    EM_COVARIANCE_TYPES,
    check_covariance_type,
    check_data,
    check_int,
    check_sample_weight,
)
from bayesmix.workflow._csv import check_columns, read_csv
from bayesmix.workflow._datasets import check_mixture, load_old_faithful
from bayesmix.workflow._datasets import simulate as simulate_mixture
from bayesmix.workflow._preflight import K_LIMIT, check_mcmc_draws

__all__ = [
    "DEFAULTS",
    "GIBBS_DRAWS",
    "GIBBS_LOGLIK_ENTRIES",
    "GIBBS_MFM_DRAWS",
    "GIBBS_RETRY_FACTOR",
    "GIBBS_TUNE",
    "Data",
    "ExperimentSpec",
    "SpecError",
    "gibbs_draws",
    "gibbs_retry_draws",
    "gibbs_tune",
    "load_data",
    "load_spec",
    "parse_k",
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
    "gibbs_draws": None,  # auto: GIBBS_DRAWS, fewer for large data (gibbs_draws)
    "tune": 500,
    "gibbs_tune": None,  # auto: GIBBS_TUNE burn-in sweeps (gibbs_tune)
    "chains": 4,
    "seed": 1,
    "em_n_init": 5,
    "truncation": 15,
    "estimate": "map",
}

# the Gibbs run lengths (defaults, the repeat of a failed run) live in _gibbs_length
from bayesmix.workflow._gibbs_length import (  # noqa: E402
    GIBBS_DRAWS,
    GIBBS_LOGLIK_ENTRIES,
    GIBBS_MFM_DRAWS,
    GIBBS_RETRY_FACTOR,
    GIBBS_TUNE,
    gibbs_draws,
    gibbs_retry_draws,
    gibbs_tune,
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
            _check_k_limit(hi, name)
            items.extend(range(lo, hi + 1))
    elif isinstance(value, (list, tuple)):
        items = list(value)
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in items):
            raise SpecError(f"{name} must be a list of integers; got {value!r}.")
    else:
        raise SpecError(f"{name} must be an integer, a range string or a list; got {value!r}.")
    if not items:
        raise SpecError(f"{name} is empty; give at least one number of components.")
    _check_k_limit(max(items), name)
    if min(items) < 1:
        raise SpecError(f"{name} must be >= 1; got {min(items)} in {value!r}.")
    return sorted(set(items))


def _check_k_limit(k, name):
    """A K grid is bounded before it is expanded (``1-100000000`` is refused at once)."""
    if k > K_LIMIT:
        raise SpecError(
            f"{name} goes up to K={k}; bayesmix fits at most K={K_LIMIT} components (and at "
            "most one per data point). Use a grid such as 1-10."
        )


def _covariances(value, name="model.covariance"):
    """The covariance types of a spec: native types, mclust's names, ``"all"`` (the 14)."""
    if isinstance(value, str):
        value = [v for v in value.replace(" ", "").split(",") if v]
    if not isinstance(value, (list, tuple)) or not value:
        raise SpecError(f"{name} must be one or more of {list(COVARIANCE_TYPES)}; got {value!r}.")
    if any(isinstance(v, str) and v.lower() == "all" for v in value):
        value = [v for v in value if not (isinstance(v, str) and v.lower() == "all")]
        value += list(MCLUST_MODELS)  # mclust's 14 models, in mclust's order
    out = []
    for v in value:
        try:
            c = check_covariance_type(v, allowed=EM_COVARIANCE_TYPES, name=name)
        except (TypeError, ValueError) as exc:
            raise SpecError(str(exc)) from None
        if c not in out:
            out.append(c)
    return out


def _int(value, name, minimum=1):
    """:func:`check_int` with its error as a :class:`SpecError` (the message names the key)."""
    try:
        return check_int(value, name, minimum=minimum)
    except (TypeError, ValueError) as exc:
        raise SpecError(str(exc)) from None


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
    sep: str | None = None
    decimal: str | None = None
    columns: list | None = None
    standardize: bool = False
    dropna: bool = False
    simulate: dict | None = None
    weights: str | None = None
    kind: str = "finite"
    k: list = field(default_factory=lambda: list(DEFAULTS["k"]))
    covariance: list = field(default_factory=lambda: list(DEFAULTS["covariance"]))
    estimate: str = DEFAULTS["estimate"]
    em_n_init: int = DEFAULTS["em_n_init"]
    truncation: int = DEFAULTS["truncation"]
    noise: bool | float = False
    mfm: bool = True
    prior: dict = field(default_factory=dict)
    mcmc: bool = True
    mcmc_k: list | None = None
    draws: int = DEFAULTS["draws"]
    #: draws per chain of the models sampled by Gibbs (the MFM, the DP, conjugate finite
    #: mixtures: mcmc/_choice.py): cheap draws, more autocorrelated than NUTS's, so more of
    #: them; None: ``GIBBS_DRAWS``, fewer when the log-likelihood array would
    #: be large (never fewer than ``draws``)
    gibbs_draws: int | None = DEFAULTS["gibbs_draws"]
    tune: int = DEFAULTS["tune"]
    #: burn-in sweeps of the models sampled by Gibbs; None: ``GIBBS_TUNE`` (200)
    gibbs_tune: int | None = DEFAULTS["gibbs_tune"]
    chains: int = DEFAULTS["chains"]
    #: [cluster]: run the EM grid on a LocalCluster of this many workers ...
    workers: int | None = None
    #: ... or on the dask.distributed scheduler at this address
    scheduler: str | None = None

    @property
    def mcmc_covariance(self):
        """The covariance types the samplers cover (mclust's ten others are EM only)."""
        return [c for c in self.covariance if c in COVARIANCE_TYPES]

    def to_dict(self):
        """JSON-ready dict (stored with saved fits)."""
        return asdict(self)


_TOP = ("name", "description", "seed", "output", "data", "model", "prior", "sampler", "cluster")
_DATA = (
    "source",
    "name",
    "path",
    "sep",
    "decimal",
    "columns",
    "standardize",
    "dropna",
    "simulate",
    "weights",
)
_SIM = ("n_obs", "weights", "means", "covariances", "seed")
_MODEL = (
    "kind",
    "k",
    "covariance",
    "estimate",
    "em_n_init",
    "truncation",
    "noise",
    "mfm",
)
_SAMPLER = ("mcmc", "mcmc_k", "draws", "gibbs_draws", "tune", "gibbs_tune", "chains")


def spec_from_dict(d, *, base_dir=None, mcmc=None):
    """Validate a spec dict (as read from TOML) and return an :class:`ExperimentSpec`.

    Parameters
    ----------
    d : dict
    base_dir : str or Path, optional
        Relative CSV paths are resolved against it (the spec file's folder).
    mcmc : bool, optional
        Override ``sampler.mcmc`` (the command line's ``--no-mcmc``) after the spec's own
        value has been validated: with ``False`` the MCMC settings (e.g. too few draws
        for LOO) are not checked, since nothing is sampled.

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
    _parse_top(s, d)
    _parse_data(s, d.get("data", {}), base_dir)
    _parse_model(s, d.get("model", {}))
    _parse_prior(s, d.get("prior", {}))
    _parse_sampler(s, d.get("sampler", {}), mcmc)
    _parse_cluster(s, d.get("cluster", {}))
    _check_map(s)
    return s


def _check_map(s):
    """A MAP estimate (``model.estimate = 'map'``) must exist under the spec's prior."""
    if s.estimate != "map":
        return
    with_map = (*COVARIANCE_TYPES, *MAP_MODELS)
    no_map = [c for c in s.covariance if c not in with_map]
    if no_map:
        raise SpecError(
            f"model.covariance {no_map} has no MAP fit (mclust has no prior for EVE, VEE, "
            f"VVE, EVV; EM under a prior covers {list(with_map)}); set model.estimate = "
            "'ml' (--estimate ml) for their maximum-likelihood fits."
        )
    if s.prior.get("covariance_prior") == "lkj":
        raise SpecError(
            "prior.covariance_prior = 'lkj' has no closed-form MAP; set model.estimate = 'ml' "
            "or use covariance_prior = 'conjugate'."
        )
    wc = s.prior.get("weight_concentration")
    if wc is not None and wc < 1 and max(s.k) >= 2:
        raise SpecError(
            f"prior.weight_concentration = {wc!r} is below 1, and model.estimate = 'map' "
            "needs weight_concentration >= 1: below 1 the Dirichlet density is unbounded "
            "at the edges of the simplex, so every EM fit with K >= 2 (model.k = "
            f"{s.k}) would have no MAP and fail. Set prior.weight_concentration >= 1 "
            "(1, the default, is flat), or set model.estimate = 'ml' (EM by maximum "
            "likelihood; MCMC keeps the sparse prior)."
        )


def _parse_cluster(s, cluster):
    """``[cluster] workers = N`` (a LocalCluster) or ``scheduler = "tcp://host:8786"``."""
    _check_keys(cluster, ("workers", "scheduler"), "cluster")
    if "workers" in cluster and "scheduler" in cluster:
        raise SpecError("cluster: give either workers (a local cluster) or scheduler, not both.")
    if "workers" in cluster:
        s.workers = _int(cluster["workers"], "cluster.workers", 1)
    if "scheduler" in cluster:
        if not isinstance(cluster["scheduler"], str) or not cluster["scheduler"]:
            raise SpecError(
                "cluster.scheduler must be an address string such as 'tcp://host:8786'; got "
                f"{cluster['scheduler']!r}."
            )
        s.scheduler = cluster["scheduler"]


def _parse_top(s, d):
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


def _parse_data(s, data, base_dir):
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
        s.sep, s.decimal = _parse_dialect(data)
    else:
        s.simulate = _parse_simulate(data.get("simulate"))
    if "columns" in data:
        cols = data["columns"]
        if isinstance(cols, str):
            cols = [c.strip() for c in cols.split(",") if c.strip()]
        if not isinstance(cols, list) or not cols or not all(isinstance(c, str) for c in cols):
            raise SpecError(f"data.columns must be a non-empty list of column names; got {cols!r}.")
        twice = sorted({c for c in cols if cols.count(c) > 1})
        if twice:
            raise SpecError(f"data.columns names {twice} more than once; list each column once.")
        s.columns = cols
    if "standardize" in data:
        s.standardize = _bool(data["standardize"], "data.standardize")
    if "dropna" in data:
        s.dropna = _bool(data["dropna"], "data.dropna")
    if "weights" in data:
        w = data["weights"]
        if not isinstance(w, str) or not w:
            raise SpecError(f"data.weights must name the column of frequency weights; got {w!r}.")
        if s.columns is not None and w in s.columns:
            raise SpecError(
                f"data.weights column {w!r} is also listed in data.columns; the weights are "
                "not a feature: remove it from data.columns."
            )
        s.weights = w


def _parse_dialect(data):
    sep, decimal = data.get("sep"), data.get("decimal")
    if sep is not None and (not isinstance(sep, str) or len(sep) != 1):
        raise SpecError(f"data.sep must be one character such as ';' or ','; got {sep!r}.")
    if decimal is not None and decimal not in (".", ","):
        raise SpecError(f"data.decimal must be '.' or ','; got {decimal!r}.")
    if sep is not None and sep == decimal:
        raise SpecError(f"data.sep and data.decimal must differ; both are {sep!r}.")
    return sep, decimal


def _parse_simulate(sim):
    if sim is None:
        raise SpecError("data.simulate (a table) is required when data.source = 'simulate'.")
    _check_keys(sim, _SIM, "data.simulate")
    for key in ("n_obs", "weights", "means", "covariances"):
        if key not in sim:
            raise SpecError(f"data.simulate.{key} is required.")
    _int(sim["n_obs"], "data.simulate.n_obs", 2)
    if "seed" in sim:
        _int(sim["seed"], "data.simulate.seed", 0)
    try:  # the whole spec is valid before any data are drawn or fits run
        check_mixture(
            sim["weights"],
            sim["means"],
            sim["covariances"],
            names=tuple(f"data.simulate.{k}" for k in ("weights", "means", "covariances")),
        )
    except ValueError as exc:
        raise SpecError(str(exc)) from None
    return dict(sim)


def _parse_model(s, model):
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
    if "noise" in model:
        noise = model["noise"]
        if not (isinstance(noise, bool) or _is_positive_number(noise)):
            raise SpecError(
                "model.noise must be true/false (a uniform noise component over the data's "
                f"bounding box) or a positive volume; got {noise!r}."
            )
        s.noise = noise
    if "mfm" in model:
        s.mfm = _bool(model["mfm"], "model.mfm")


def _is_positive_number(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool) and x > 0


def _is_numeric_array(v, max_ndim):
    try:
        arr = np.asarray(v, dtype=float)
    except (TypeError, ValueError):
        return False
    return (
        arr.ndim <= max_ndim
        and (arr.ndim < 2 or arr.shape[0] == arr.shape[1])
        and bool(np.isfinite(arr).all())
        and not isinstance(v, (str, bool))
    )


def _parse_prior(s, prior):
    _check_keys(prior, _PRIOR_FIELDS, "prior")
    s.prior = dict(prior)
    # scalar fields are checked here; mean/scale are checked against the data later
    for key in ("dof", "mean_shrinkage", "weight_concentration", "lkj_eta"):
        if key in s.prior and not _is_positive_number(s.prior[key]):
            raise SpecError(f"prior.{key} must be a positive number; got {s.prior[key]!r}.")
    if "covariance_prior" in s.prior and s.prior["covariance_prior"] not in ("conjugate", "lkj"):
        raise SpecError(
            "prior.covariance_prior must be 'conjugate' or 'lkj'; got "
            f"{s.prior['covariance_prior']!r}."
        )
    for key in ("mean", "scale"):
        if key in s.prior and not _is_numeric_array(s.prior[key], 1 if key == "mean" else 2):
            raise SpecError(
                f"prior.{key} must be "
                + (
                    "a list of numbers (one per feature)"
                    if key == "mean"
                    else "a number, a list of variances or a list of rows (a D x D matrix)"
                )
                + f"; got {s.prior[key]!r}."
            )
    if "dp_concentration" in s.prior:
        v = s.prior["dp_concentration"]
        if not (isinstance(v, list) and len(v) == 2 and all(_is_positive_number(x) for x in v)):
            raise SpecError(
                f"prior.dp_concentration must be [shape, rate], two positive numbers; got {v!r}."
            )


def _parse_sampler(s, sampler, mcmc=None):
    _check_keys(sampler, _SAMPLER, "sampler")
    if "mcmc" in sampler:
        s.mcmc = _bool(sampler["mcmc"], "sampler.mcmc")
    if mcmc is not None:  # --no-mcmc, after the spec's own value was checked
        s.mcmc = bool(mcmc)
    for key, minimum in (
        ("draws", 1),
        ("gibbs_draws", 1),
        ("tune", 0),
        ("gibbs_tune", 0),
        ("chains", 1),
    ):
        if key in sampler:
            setattr(s, key, _int(sampler[key], f"sampler.{key}", minimum))
    if s.mcmc:
        try:
            check_mcmc_draws(s.draws, s.chains, names=("sampler.draws", "sampler.chains"))
        except ValueError as exc:
            raise SpecError(str(exc)) from None
    if "mcmc_k" in sampler:
        s.mcmc_k = parse_k(sampler["mcmc_k"], name="sampler.mcmc_k")
        extra = sorted(set(s.mcmc_k) - set(s.k))
        if extra:
            raise SpecError(
                f"sampler.mcmc_k has K={extra} not in model.k={s.k}; add them to model.k."
            )


def load_spec(path, *, mcmc=None):
    """Read and validate a TOML experiment spec.

    Parameters
    ----------
    path : str or Path
    mcmc : bool, optional
        Override the spec's ``sampler.mcmc`` (the command line's ``--no-mcmc``) once its
        own value has been validated (a wrong type is an error either way): with
        ``False`` the MCMC settings (e.g. too few draws for LOO) are not checked, since
        nothing is sampled.

    Returns
    -------
    ExperimentSpec

    Examples
    --------
    >>> spec = load_spec("models/old_faithful_finite.toml")  # doctest: +SKIP
    """
    path = Path(path)
    if path.is_dir():
        raise SpecError(
            f"spec file {str(path)!r} is a folder; bayesmix run expects a TOML spec file "
            "such as models/old_faithful_finite.toml."
        )
    if not path.is_file():
        raise SpecError(f"spec file {str(path)!r} does not exist.")
    try:
        d = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path}: not valid TOML ({exc}).") from None
    except UnicodeDecodeError:
        raise SpecError(f"{path}: not a text (UTF-8) file.") from None
    try:
        spec = spec_from_dict(d, base_dir=path.parent, mcmc=mcmc)
    except SpecError as exc:
        raise SpecError(f"{path}: {exc}") from None
    if "name" not in d:
        spec.name = path.stem
    return spec


# ---------------------------------------------------------------------------- data
@dataclass
class Data:
    """The analysed data of a spec (see :func:`load_data`)."""

    X: np.ndarray
    feature_names: list
    info: dict
    truth: dict | None = None
    #: frequency weights from the column ``data.weights`` (N,), or None
    sample_weight: np.ndarray | None = None


def _csv_lines(rows, first_line=2, n=5):
    # data row i (0-based) sits on CSV line i + 2 (line 1 is the header; i + 1 without one)
    shown = ", ".join(str(int(r) + first_line) for r in rows[:n])
    return shown + (", ..." if len(rows) > n else "")


def load_data(spec):
    """Load, select, clean and optionally standardise the data of a spec.

    Parameters
    ----------
    spec : ExperimentSpec

    Returns
    -------
    Data
        ``X`` (N, D) float64, ``feature_names``, ``info`` (source, rows read, rows
        dropped, standardisation) and ``truth`` (simulated data only: labels and
        parameters, the parameters in the units and features of the analysed data:
        marginalised to ``data.columns`` and standardised like ``X``).

    Examples
    --------
    >>> load_data(spec_from_dict({})).X.shape
    (272, 2)
    """
    df, src, truth, first_line = _read_source(spec)
    n_read = int(df.shape[0])
    df, wcol = _pop_weights(df, spec.weights)
    df = _select_columns(df, spec.columns)
    values = df.to_numpy(dtype=float)
    if wcol is not None:
        values = np.column_stack([values, wcol])
    n_data = values.shape[1] - (wcol is not None)
    values, keep = _drop_missing(values, spec.dropna, first_line, n_data)
    weights = None
    if wcol is not None:
        values, weights = values[:, :-1], values[:, -1]
        try:
            weights = check_sample_weight(
                weights, len(weights), name=f"data.weights {spec.weights!r}"
            )
        except ValueError as exc:
            raise SpecError(str(exc)) from None
    if truth is not None and keep is not None:
        truth["labels"] = truth["labels"][keep]
    names = [str(c) for c in df.columns]
    if values.shape[0] < 2:
        raise SpecError(f"only {values.shape[0]} complete row(s) left; at least 2 are needed.")
    try:  # magnitudes the arithmetic (and --standardize) cannot handle, named by column
        check_data(pd.DataFrame(values, columns=names), name="data", missing="mar")
    except ValueError as exc:
        raise SpecError(str(exc)) from None
    info = {
        "source": src,
        "n_read": n_read,
        "n_dropped": 0 if keep is None or not spec.dropna else int((~keep).sum()),
        # rows whose every feature is missing (excluded without --dropna)
        "n_excluded_empty": 0 if keep is None or spec.dropna else int((~keep).sum()),
        "missing_per_column": {
            n: int(c) for n, c in zip(names, np.isnan(values).sum(0), strict=True)
        },
        "n_obs": int(values.shape[0]),
        "n_features": int(values.shape[1]),
        "feature_names": names,
        "standardized": False,
        "weights": spec.weights,
        "total_weight": None if weights is None else float(weights.sum()),
    }
    if spec.standardize:
        values = _standardize(values, names, info)
    if truth is not None:
        truth = _truth_in_data_units(truth, list(df.columns), info)
    return Data(np.ascontiguousarray(values), names, info, truth, weights)


def _pop_weights(df, column):
    """(table without the weights column, the weights as float or None)."""
    if column is None:
        return df, None
    if column not in df.columns:
        raise SpecError(
            f"weights column {column!r} (data.weights / --weights) is not in the data; "
            f"available columns: {list(map(str, df.columns))}."
        )
    try:
        w = pd.to_numeric(df[column], errors="raise").to_numpy(dtype=float)
    except (ValueError, TypeError):
        raise SpecError(
            f"weights column {column!r} must hold numbers (frequency weights >= 0)."
        ) from None
    return df.drop(columns=[column]), w


def _read_source(spec):
    """The raw table of a spec's source: (DataFrame, description, truth or None, the CSV
    line of the first data row)."""
    if spec.source == "builtin":
        return load_old_faithful(), "built-in Old Faithful (272 eruptions)", None, 2
    if spec.source == "csv":
        try:
            df, info = read_csv(spec.path, sep=spec.sep, decimal=spec.decimal)
        except ValueError as exc:
            raise SpecError(str(exc)) from None
        dialect = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}.get(
            info["delimiter"], repr(info["delimiter"])
        )
        src = (
            f"CSV file {spec.path} ({df.shape[0]} rows, {df.shape[1]} columns; {dialect}-"
            f"delimited, decimal {info['decimal']!r})"
        )
        return df, src, None, 2 if info["header"] else 1
    return (*_simulate(spec), 2)


def _simulate(spec):
    sim = spec.simulate
    try:
        X, z = simulate_mixture(
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
    return df, f"simulated mixture, K={len(w)}, n={sim['n_obs']}", truth


def _select_columns(df, columns):
    if columns is not None:
        missing = [c for c in columns if c not in df.columns]
        if missing:
            raise SpecError(
                f"column(s) {missing} not in the data; available columns: "
                f"{list(map(str, df.columns))}."
            )
        df = df[columns]
    try:
        check_columns(df, name="data")
    except ValueError as exc:
        raise SpecError(str(exc)) from None
    return df


def _drop_missing(values, dropna, first_line=2, n_data=None):
    """Rows with missing or infinite values (returns the values and the kept mask).

    ``dropna``: every row with a NaN or an infinite value is dropped (complete-case
    analysis). Otherwise NaN entries stay (missing values, fitted by the observed-data
    likelihood), rows whose data columns (the first ``n_data``) are all missing are
    excluded, and an infinite value is an error.
    """
    data = values[:, :n_data]
    if dropna:
        bad_rows = np.flatnonzero(~np.isfinite(values).all(axis=1))
    else:
        inf_rows = np.flatnonzero(np.isinf(values).any(axis=1))
        if inf_rows.size:
            raise SpecError(
                f"{inf_rows.size} row(s) have infinite values (CSV lines "
                f"{_csv_lines(inf_rows, first_line)}); replace them (an empty cell is a "
                "missing value) or pass --dropna (spec: data.dropna = true) to drop them."
            )
        bad_rows = np.flatnonzero(np.isnan(data).all(axis=1))
    if not bad_rows.size:
        return values, None
    keep = np.ones(len(values), bool)
    keep[bad_rows] = False
    return values[keep], keep


def _standardize(values, names, info):
    gaps = np.isnan(values).any()
    mean = np.nanmean(values, axis=0) if gaps else values.mean(axis=0)
    sd = np.nanstd(values, axis=0, ddof=1) if gaps else values.std(axis=0, ddof=1)
    const = [n for n, v in zip(names, sd, strict=True) if not v > 0]
    if const:
        raise SpecError(f"cannot standardize constant column(s) {const}; drop them with --columns.")
    info.update(standardized=True, center=mean.tolist(), scale=sd.tolist())
    return (values - mean) / sd


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
