"""The one analysis pipeline of ``bayesmix fit`` and ``bayesmix run``.

:func:`run_experiment` takes an :class:`bayesmix.workflow._spec.ExperimentSpec` and runs its
stages in order:

1. data (:func:`bayesmix.workflow._spec.load_data`);
2. k-means over the K grid (inertia, for reference);
3. EM over the K grid and covariance types (MAP under the experiment's prior by
   default, so that EM is the mode of the posterior MCMC explores), BIC and ICL;
4. MCMC for each K (finite mixtures), relabelled against the EM fit, with ELPD-LOO and
   ELPD-WAIC;
5. one Dirichlet-process mixture; one mixture of finite mixtures (``model.mfm``, Gibbs
   sampler), whose posterior P(K = k) becomes the ``p_mfm`` column of the table;
6. analysis: the chosen model (:func:`bayesmix.posterior._selection.choose_model`, rule in
   :data:`bayesmix.posterior._selection.CHOICE_RULE`), membership uncertainty, co-clustering,
   point partition, EM against MCMC, recovery of the truth for simulated data;
7. the fits saved with :func:`bayesmix.save_fit`;
8. the report folder (:func:`bayesmix.workflow._report.write_report`).

Warnings raised by a stage become notes of the report (:func:`_notes`).
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from bayesmix.cluster._kmeans import kmeans
from bayesmix.core._covariance import n_parameters
from bayesmix.core._priors import GMMPrior
from bayesmix.core._validation import BayesmixWarning, check_degenerate
from bayesmix.em import (
    _dask,  # imports no Dask itself (only with a [cluster])
    fit_em,
)
from bayesmix.mcmc._builders import (
    DP_DEFAULT_K0,
    build_dpgmm,
    build_gmm,
    build_mfm,
    default_cluster_prior,
    get_config,
)
from bayesmix.mcmc._choice import resolve_sampler
from bayesmix.mcmc._relabel import relabel
from bayesmix.mcmc._sample import sample
from bayesmix.mcmc._trace import get_observed
from bayesmix.posterior import _membership
from bayesmix.posterior._compare import adjusted_rand_index, compare_fits
from bayesmix.posterior._loo import subsample_note
from bayesmix.posterior._membership import coclustering, membership, point_partition
from bayesmix.posterior._modelcompare import compare_models
from bayesmix.posterior._nclusters import n_clusters
from bayesmix.posterior._selection import choose_model, loo, waic
from bayesmix.workflow import _fitchecks as _fc
from bayesmix.workflow import _preflight as pf
from bayesmix.workflow._io import save_fit
from bayesmix.workflow._outdir import REPORT_MARKER, ReportFolder, lock_folder
from bayesmix.workflow._plot_points import subsample
from bayesmix.workflow._recovery import recovery
from bayesmix.workflow._report import run_length, write_report
from bayesmix.workflow._report_ppc import ppc_for_report
from bayesmix.workflow._spec import (
    Data,
    ExperimentSpec,
    SpecError,
    gibbs_draws,
    gibbs_retry_draws,
    gibbs_tune,
    load_data,
)

__all__ = ["REPORT_MARKER", "ExperimentResult", "FitRecord", "recovery", "run_experiment"]

#: Columns of the results table filled by the MCMC stage (NaN where not sampled).
_MCMC_COLUMNS = (
    "elpd_loo",
    "elpd_loo_se",
    "p_loo",
    "elpd_waic",
    "elpd_waic_se",
    "max_rhat",
    "min_ess_bulk",
    "divergences",
    "mcmc_seconds",
)


# ---------------------------------------------------------------------------- results
@dataclass
class FitRecord:
    """One fit of the grid (or the DP mixture): EM result, posterior, LOO/WAIC ..."""

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
    mfm: FitRecord | None = None
    chosen: tuple | None = None
    choice_reason: str = ""
    membership: object = None
    membership_source: str = ""
    coclustering: object = None
    partition: object = None
    #: positions (M,) of the observations of the co-clustering and partition, or None (all)
    coclustering_subset: object = None
    comparison: object = None
    #: arviz_stats.compare over the MCMC fits' LOO (bayesmix.posterior._modelcompare)
    model_comparison: object = None
    #: the chosen fit's posterior predictive check (bayesmix.workflow._report_ppc.PPCCheck)
    ppc: object = None
    recovery: dict | None = None
    out_dir: Path | None = None
    report_path: Path | None = None
    timings: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    #: folders in ``out_dir/fits`` this run did not write and left as they were
    untouched_fits: list = field(default_factory=list)

    @property
    def chosen_record(self):
        """The :class:`FitRecord` of the chosen model (None before the choice)."""
        return None if self.chosen is None else self.records[self.chosen]


class _Progress:
    def __init__(self, quiet, stream=None):
        self.quiet = quiet
        self.stream = stream or sys.stderr
        self.t0 = time.perf_counter()

    def __call__(self, msg):
        if not self.quiet:
            print(f"[{time.perf_counter() - self.t0:6.1f}s] {msg}", file=self.stream, flush=True)


@dataclass
class _Run:
    """What the stages share: the spec, the result being filled, the data, the seeds."""

    spec: ExperimentSpec
    result: ExperimentResult
    X: np.ndarray
    #: a DataFrame carries the feature names into the EM result and the posterior coords
    Xdf: pd.DataFrame
    seeds: Iterator[int]
    log: _Progress
    quiet: bool
    #: a dask.distributed client for the EM grid (spec [cluster]), or None
    client: object = None
    #: the output folder's files bayesmix owns (None with report=False)
    folder: ReportFolder | None = None

    @property
    def sample_weight(self):
        """The frequency weights of the data (``data.weights``), or None."""
        return self.result.data.sample_weight


@contextlib.contextmanager
def _notes(notes, what):
    """Record the warnings raised inside the block as report notes ``"what: message"``.

    Every :class:`BayesmixWarning` is recorded (even a repeated one), other warnings
    as their filters allow. Nothing is recorded when the block raises.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", BayesmixWarning)
        yield
    notes.extend(f"{what}: {w.message}" for w in caught)


@contextlib.contextmanager
def _timer(timings, stage):
    t0 = time.perf_counter()
    yield
    timings[stage] = time.perf_counter() - t0


# ---------------------------------------------------------------------------- the driver
def run_experiment(spec, *, out=None, quiet=False, stream=None, report=True):
    """Run the whole analysis of a spec and write its report folder.

    Parameters
    ----------
    spec : ExperimentSpec
        From :func:`bayesmix.workflow._spec.load_spec` or
        :func:`bayesmix.workflow._spec.spec_from_dict`.
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
    >>> from bayesmix.workflow._spec import spec_from_dict
    >>> spec = spec_from_dict({"model": {"k": "1-3"}, "sampler": {"mcmc": False}})
    >>> res = run_experiment(spec, out="/tmp/bm-doc", quiet=True)  # doctest: +SKIP
    >>> res.chosen  # doctest: +SKIP
    ('full', 2)
    """
    t_start = time.perf_counter()
    log = _Progress(quiet, stream)
    try:
        out_dir = pf.check_out_dir(out or spec.output or Path("results") / spec.name, "--out")
    except ValueError as exc:
        raise SpecError(str(exc)) from None
    if not report:
        return _run_stages(_prepare(spec, out_dir, quiet, log, None), t_start, report)
    # one run at a time in a folder, from before the first fit to the end (also on errors)
    with lock_folder(out_dir, "--out") as stale:
        if stale:
            print(f"bayesmix: note: {stale}", file=log.stream, flush=True)
        run = _prepare(spec, out_dir, quiet, log, ReportFolder(out_dir, "--out"))
        if stale:
            run.result.notes.append(f"output folder: {stale}")
        return _run_stages(run, t_start, report)


def _run_stages(run, t_start, report):
    """The stages of :func:`run_experiment` after :func:`_prepare`."""
    spec, result, timings = run.spec, run.result, run.result.timings
    with _timer(timings, "kmeans"):
        _kmeans_stage(run)
    with _dask.Cluster(spec.workers, spec.scheduler) as run.client:
        with _timer(timings, "em"):
            _em_stage(run)
        with _timer(timings, "mcmc"):
            em_only = [c for c in spec.covariance if c not in spec.mcmc_covariance]
            if spec.mcmc and em_only:
                result.notes.append(f"MCMC skipped for {em_only}: mclust's models, EM only.")
            if spec.mcmc and spec.kind in ("finite", "both"):
                _mcmc_stage(run)
            if spec.mcmc and spec.kind in ("dp", "both") and spec.mcmc_covariance:
                _dp_stage(run)
            if spec.mcmc and spec.mfm and spec.mcmc_covariance:
                _mfm_stage(run)
    with _timer(timings, "analysis"):
        _analysis_stage(run)
    timings["analysis_total"] = time.perf_counter() - t_start
    if report:
        run.log(f"saving fits and writing the report to {result.out_dir}/")
        with _timer(timings, "save"):
            _save_fits(result, run.folder)
            result.untouched_fits = run.folder.remove_stale_fits()
        with _timer(timings, "report"):
            result.report_path = write_report(result, result.out_dir, folder=run.folder)
        timings["total"] = time.perf_counter() - t_start
        run.log(f"done in {timings['total']:.0f} s: {result.report_path}")
    return result


# ---------------------------------------------------------------------------- the stages
def _prepare(spec, out_dir, quiet, log, folder):
    """Load the data, check everything the fits will need from them (K grid,
    truncation, degenerate columns) and the output folder (``folder``: None without a
    report) before the first fit; draw the seeds."""
    notes = []
    with _notes(notes, "data"):
        data = load_data(spec)
    spec = pf.spec_for_gaps(spec, data.X, notes, data.sample_weight)  # gaps: Gibbs or no MCMC
    for note in notes:  # what was done to the data is said even with quiet=True
        print(f"bayesmix: note: {note}", file=log.stream, flush=True)
    X = data.X
    N, D = X.shape
    result = ExperimentResult(spec=spec, data=data)
    result.notes.extend(notes)
    result.out_dir = out_dir
    with _notes(result.notes, "data"):
        _check_before_fitting(spec, data, folder)
    dropped = data.info["n_dropped"]
    log(
        f"data: {data.info['source']}; using {N} rows x {D} features {data.feature_names}"
        + (f", dropped {dropped} rows with missing values" if dropped else "")
        + (f", {int(np.isnan(X).sum())} missing entries kept" if np.isnan(X).any() else "")
        + (", standardized" if spec.standardize else "")
        + (f", weighted by column {spec.weights!r}" if spec.weights else "")
    )
    rng = np.random.default_rng(spec.seed)
    seeds = iter(rng.integers(0, 2**31 - 1, size=10_000).tolist())
    Xdf = pd.DataFrame(X, columns=data.feature_names)
    return _Run(spec, result, X, Xdf, seeds, log, quiet, folder=folder)


def _check_before_fitting(spec, data, folder):
    """Everything that would otherwise fail after minutes of fitting, as one SpecError."""
    X, names = data.X, data.feature_names
    N = X.shape[0]
    X = pf.filled_for_checks(X)  # the degeneracy checks see gaps filled by column means
    try:
        rep = check_degenerate(
            X,
            1,
            names,
            covariance="diag",
            prior_given="scale" in spec.prior,
            name="data",
            how=" with --columns (spec: data.columns)",
        )
        pf.check_k_grid(spec.k, N, rep["n_distinct"], name="--k (spec: model.k)")
        for cov in spec.covariance:
            if cov in ("full", "tied"):
                check_degenerate(
                    X,
                    1,
                    names,
                    covariance=cov,
                    prior_given="scale" in spec.prior,
                    name="data",
                    how=" with --columns (spec: data.columns)",
                )
        if spec.mcmc and spec.kind in ("dp", "both") and spec.truncation > N:
            raise ValueError(
                f"model.truncation={spec.truncation} exceeds the number of observations n={N}; "
                f"use a truncation <= {N}."
            )
        if folder is not None:
            folder.check(_planned_fits(spec))
    except ValueError as exc:
        raise SpecError(str(exc)) from None


def _planned_fits(spec):
    """The ``fits/NAME`` folders a run of ``spec`` may save (:func:`_save_fits`)."""
    names = [f"{cov}_K{K}" for cov in spec.covariance for K in spec.k]
    first = (spec.mcmc_covariance or [None])[0]
    if spec.mcmc and spec.kind in ("dp", "both") and first:
        names.append(f"dp_{first}")
    if spec.mcmc and spec.mfm and first:
        names.append(f"mfm_{first}")
    return [f"fits/{n}" for n in names]


def _kmeans_stage(run):
    rows = []
    for K in run.spec.k:
        km = kmeans(
            run.X, K, n_init=10, random_seed=next(run.seeds), sample_weight=run.sample_weight
        )
        rows.append(
            {
                "K": K,
                "inertia": float(km.inertia),
                "sizes": np.bincount(km.labels, minlength=K).tolist(),
            }
        )
    run.result.kmeans_table = pd.DataFrame(rows)
    run.log(f"k-means over K={run.spec.k}: done")


def _em_fit(Xdf, cov, K, prior, n_init, seed, sample_weight=None, noise=False):
    """One EM fit of the grid (a pure task): ``(EMResult or None, error, notes)``."""
    notes = []
    try:
        with _notes(notes, f"EM {cov} K={K}"):
            em = fit_em(
                Xdf,
                K,
                covariance=cov,
                prior=prior,
                n_init=n_init,
                random_seed=seed,
                sample_weight=sample_weight,
                noise=noise,
            )
    except (ValueError, np.linalg.LinAlgError) as exc:
        return None, exc, notes
    return em, None, notes


def _em_stage(run):
    spec, result, X = run.spec, run.result, run.X
    em_seed = next(run.seeds)
    rows = []
    grid = [(cov, K, _prior_for(spec, X, K)) for cov in spec.covariance for K in spec.k]
    tasks = [
        (
            run.Xdf,
            cov,
            K,
            p if spec.estimate == "map" else None,
            spec.em_n_init,
            em_seed,
            run.sample_weight,
            spec.noise,
        )
        for cov, K, p in grid
    ]
    if run.client is not None:
        names = [f"EM {cov} K={K}" for cov, K, _ in grid]
        fits = _dask.run_tasks(run.client, _em_fit, tasks, names, run.log)
    else:
        fits = [_em_fit(*t) for t in tasks]
    for (cov, K, p), (em, exc, notes) in zip(grid, fits, strict=True):
        rec = FitRecord(cov, K, prior=p)
        row = {"covariance": cov, "K": K, "n_params": n_parameters(cov, K, X.shape[1])}
        result.notes.extend(notes)
        rec.em = em
        if exc is None:
            row.update(
                log_likelihood=float(em.log_likelihood),
                bic=float(em.bic(X, sample_weight=run.sample_weight)),
                icl=float(em.icl(X, sample_weight=run.sample_weight)),
                converged=bool(em.converged),
                collapsed=len(getattr(em, "collapsed", ()) or ()),
                **({} if em.noise_weight is None else {"noise_weight": em.noise_weight}),
                error=None,
            )
        else:
            rec.error = f"{type(exc).__name__}: {exc}"
            row["error"] = rec.error
            result.notes.append(f"EM {cov} K={K} failed: {exc}")
        result.records[(cov, K)] = rec
        rows.append(row)
    result.table = pd.DataFrame(rows)
    ok = result.table[result.table["error"].isna()]
    _check_some_k_above_one(result.table)
    if len(ok):
        b = ok.loc[ok["bic"].idxmin()]
        run.log(
            f"EM ({spec.estimate.upper()}) over K={spec.k}, covariance {spec.covariance}: "
            f"lowest BIC at {b['covariance']} K={int(b['K'])}"
        )


def _check_some_k_above_one(table):
    """Refuse a run whose every EM fit with K >= 2 failed: its choice would be K = 1 for
    lack of a competitor, not because the data say so."""
    multi = table[table["K"] >= 2]
    if len(multi) and multi["error"].notna().all():
        first = multi.iloc[0]
        raise ValueError(
            f"every EM fit with K >= 2 failed ({len(multi)} of them; the first, "
            f"{first['covariance']} K={int(first['K'])}: {first['error']}), so the analysis "
            "could only report K = 1. Fix the cause named there (a prior, the data's scale, "
            "reg_covar) or leave K >= 2 out of model.k."
        )


def _mcmc_stage(run):
    """Finite mixtures: MCMC from each EM fit, relabelled against it, LOO and WAIC."""
    spec, result = run.spec, run.result
    mcmc_k = spec.mcmc_k if spec.mcmc_k is not None else spec.k
    for col in _MCMC_COLUMNS:
        result.table[col] = np.nan
    todo = [
        (cov, K)
        for cov in spec.mcmc_covariance
        for K in mcmc_k
        if result.records[(cov, K)].em is not None
    ]
    if run.client is not None:  # the seeds in the serial order: the same fits
        recs = [result.records[key] for key in todo]
        tasks = [(run.Xdf, rec, spec, next(run.seeds), True, run.sample_weight) for rec in recs]
        names = [f"MCMC {cov} K={K}" for cov, K in todo]
        done = _dask.run_tasks(run.client, _mcmc_task, tasks, names, run.log)
        for rec, out in zip(recs, done, strict=True):
            _apply_mcmc(rec, out, result.notes)
    for i, (cov, K) in enumerate(todo, 1):
        rec = result.records[(cov, K)]
        if run.client is None:
            run.log(f"MCMC {i}/{len(todo)}: {cov} K={K}")
            _mcmc_fit(run, rec)
        m = (result.table["covariance"] == cov) & (result.table["K"] == K)
        for col, value in _mcmc_columns(rec).items():
            result.table.loc[m, col] = value
        run.log(
            f"  {run_length(rec, spec)}: ELPD-LOO {rec.loo.elpd:.1f} ± {rec.loo.se:.1f}"
            f"{subsample_note(rec.loo)}, "
            f"WAIC {rec.waic.elpd:.1f}, max R-hat {rec.diagnostics.get('max_rhat', np.nan):.3f}, "
            f"min ESS {rec.diagnostics.get('min_ess_bulk', np.nan):.0f}, {rec.seconds:.0f} s"
        )


def _mcmc_fit(run, rec):
    seed = next(run.seeds)
    out = _mcmc_task(run.Xdf, rec, run.spec, seed, run.quiet, run.sample_weight)
    _apply_mcmc(rec, out, run.result.notes)


def _apply_mcmc(rec, out, notes):
    fields, task_notes = out
    for name, value in fields.items():
        setattr(rec, name, value)
    notes.extend(task_notes)


def _mcmc_task(Xdf, rec, spec, seed, quiet, sample_weight=None):
    """One MCMC fit from ``rec.em`` (a pure task): ``(FitRecord fields, notes)``."""
    cov, K, what = rec.covariance, rec.K, f"MCMC {rec.covariance} K={rec.K}"
    notes = []
    t1 = time.perf_counter()
    model = build_gmm(
        Xdf, K, covariance=cov, prior=rec.prior, sample_weight=sample_weight, noise=spec.noise
    )
    t2 = time.perf_counter()
    out, t_sample = _sample_and_check(model, rec, spec, seed, quiet, notes, what)
    failed = _fc.failed_checks(out["diagnostics"], spec.chains)
    gibbs = out["idata"].attrs.get("sampler") == "gibbs"
    retry = gibbs_retry_draws(spec, Xdf.shape[0]) if gibbs else None
    if failed and retry is not None:
        seed2 = _fc.retry_seed(seed)
        notes.append(
            f"{what}: {failed} with {out['idata']['posterior'].sizes['draw']} draws per "
            f"chain; sampled again with {retry} (seed {seed2}): the report shows that run"
        )
        notes_retry = []
        out, t2_sample = _sample_and_check(
            model, rec, spec, seed2, quiet, notes_retry, what, draws=retry
        )
        notes.extend(notes_retry)
        t_sample += t2_sample
    out["seconds"] = time.perf_counter() - t1
    out["stage_seconds"] = {
        "build": t2 - t1,
        "sample": t_sample,
        "post": out["seconds"] - (t2 - t1) - t_sample,
    }
    return out, notes


def _sample_and_check(model, rec, spec, seed, quiet, notes, what, draws=None):
    """Sample from ``rec.em``, relabel against it, LOO, WAIC and the diagnostics:
    ``(fields, sampling seconds)``."""
    t0 = time.perf_counter()
    idata = _sample(
        model, init=rec.em, spec=spec, seed=seed, quiet=quiet, notes=notes, what=what, draws=draws
    )
    t_sample = time.perf_counter() - t0
    if rec.K > 1:
        with _notes(notes, what):
            idata = relabel(idata, reference=rec.em)
    out = {"idata": idata}
    with _notes(notes, what):
        out["loo"] = loo(idata)
        out["waic"] = waic(idata)
    out["diagnostics"] = _fc.diag_summary(idata, relabelled=True)
    return out, t_sample


def _mcmc_columns(rec):
    return {
        "elpd_loo": float(rec.loo.elpd),
        "elpd_loo_se": float(rec.loo.se),
        "p_loo": float(rec.loo.p),
        "elpd_waic": float(rec.waic.elpd),
        "elpd_waic_se": float(rec.waic.se),
        "max_rhat": rec.diagnostics.get("max_rhat", np.nan),
        "min_ess_bulk": rec.diagnostics.get("min_ess_bulk", np.nan),
        "divergences": rec.diagnostics.get("divergences", np.nan),
        "mcmc_seconds": rec.seconds,
    }


def _dp_stage(run):
    """One Dirichlet-process mixture (first covariance type of the spec)."""
    spec, result = run.spec, run.result
    cov = spec.mcmc_covariance[0]
    T = min(spec.truncation, run.X.shape[0])
    run.log(f"MCMC: Dirichlet-process mixture, {cov} covariance, truncation {T}")
    t1 = time.perf_counter()
    prior = _cluster_prior(spec, run.X, DP_DEFAULT_K0)
    model = build_dpgmm(
        run.Xdf, truncation=T, covariance=cov, prior=prior, sample_weight=run.sample_weight
    )
    rec = FitRecord(cov, f"DP({T})", prior=model.bayesmix_config.prior)
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
        seed=next(run.seeds),
        quiet=run.quiet,
        notes=result.notes,
        what="DP",
    )
    t3 = time.perf_counter()
    with _notes(result.notes, "DP"):
        rec.loo = loo(rec.idata)
        rec.waic = waic(rec.idata)
    rec.diagnostics = _fc.diag_summary(rec.idata, relabelled=False)
    rec.diagnostics["occupied"] = _fc.occupied(rec.idata)
    rec.seconds = time.perf_counter() - t1
    rec.stage_seconds = {"build": t2 - t1, "sample": t3 - t2, "post": t1 + rec.seconds - t3}
    result.dp = rec
    run.log(
        f"  ELPD-LOO {rec.loo.elpd:.1f} ± {rec.loo.se:.1f}{subsample_note(rec.loo)}, "
        f"{rec.seconds:.0f} s"
    )


def _mfm_stage(run):
    """One mixture of finite mixtures (first covariance type): the posterior on K."""
    spec, result = run.spec, run.result
    cov = spec.mcmc_covariance[0]
    run.log(
        f"MCMC: mixture of finite mixtures, {cov} covariance (Gibbs, {spec.chains} chains x "
        f"{gibbs_draws(spec, run.X.shape[0], mfm=True)} draws after {gibbs_tune(spec)})"
    )
    t1 = time.perf_counter()
    k_prior = build_mfm(run.Xdf, covariance=cov).bayesmix_config.k_prior
    k0 = float(k_prior @ np.arange(1, k_prior.size + 1))
    prior = _cluster_prior(spec, run.X, k0, drop=("dp_concentration",))
    model = build_mfm(run.Xdf, covariance=cov, prior=prior)
    rec = FitRecord(cov, "MFM", prior=model.bayesmix_config.prior)
    # start at the grid's lowest-BIC EM fit (no EM restarts inside bm.sample)
    fits = [r.em for (c, K), r in result.records.items() if c == cov and r.em is not None]
    init = min(fits, key=lambda em: em.bic(run.X)) if fits else None
    if init is not None and init.weights.size > model.bayesmix_config.n_components:
        init = None
    seed = next(run.seeds)
    rec.idata = _mfm_sample(run, model, init, gibbs_draws(spec, run.X.shape[0], True), seed)
    table = n_clusters(rec.idata)
    failed = _fc.mfm_failed_checks(table, spec.chains)
    retry = gibbs_retry_draws(spec, run.X.shape[0], mfm=True)
    if failed and retry is not None:
        seed2 = _fc.retry_seed(seed)
        result.notes.append(
            f"MFM: {failed} with {rec.idata['posterior'].sizes['draw']} draws per chain; "
            f"sampled again with {retry} (seed {seed2}): the report shows that run"
        )
        run.log(f"  {failed}: sampling again with {retry} draws per chain")
        rec.idata = _mfm_sample(run, model, init, retry, seed2)
        table = n_clusters(rec.idata)
    rec.diagnostics["n_clusters"] = table
    k = table[table["variable"] == "n_components"].set_index("k")
    on = result.table["covariance"] == cov
    result.table["p_mfm"] = np.where(
        on, result.table["K"].map(k["probability"]).fillna(0.0), np.nan
    )
    rec.seconds = time.perf_counter() - t1
    result.mfm = rec
    s = table.attrs["summary"]["n_components"]
    run.log(
        f"  posterior mode K={s['mode']} (P = {s['mode_probability']:.2f}), {rec.seconds:.0f} s"
    )


def _mfm_sample(run, model, init, draws, seed):
    with _notes(run.result.notes, "MFM"):
        return sample(
            model,
            init=init,
            sampler="gibbs",
            draws=draws,
            tune=gibbs_tune(run.spec),
            chains=run.spec.chains,
            random_seed=seed,
            progressbar=not run.quiet,
        )


def _analysis_stage(run):
    """The chosen model and what the report says about it."""
    result, X = run.result, run.X
    loos = {key: rec.loo for key, rec in result.records.items() if rec.loo is not None}
    result.chosen, result.choice_reason = choose_model(result.table, loos, X.shape[1])
    try:
        result.model_comparison = compare_models(loos) if loos else None
    except ValueError as exc:  # e.g. pointwise values of different lengths
        result.notes.append(f"arviz_stats.compare unavailable: {exc}")
    run.log(f"chosen: {result.choice_reason}")
    rec = result.chosen_record
    if rec.idata is not None and rec.K != 1:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", BayesmixWarning)
            result.membership = membership(rec.idata)
        result.membership_source = "posterior (MCMC)"
    else:
        p = rec.em.predict_proba(X)
        result.membership = {"label": p.argmax(1), "uncertainty": 1.0 - p.max(1)}
        result.membership_source = "EM"
    tree = rec.idata if rec.idata is not None else (result.dp.idata if result.dp else None)
    if tree is not None:
        result.coclustering, result.coclustering_subset = _coclustering_of(tree, run.spec.seed)
        result.partition = point_partition(result.coclustering)
    if rec.idata is not None:
        with _notes(result.notes, "posterior predictive check"):
            result.ppc = ppc_for_report(rec.idata, run.spec.seed, result.notes)
        try:
            result.comparison = compare_fits(rec.em, rec.idata)
        except (AttributeError, ImportError) as exc:
            result.notes.append(f"EM-vs-MCMC comparison unavailable: {exc}")
    if result.data.truth is not None:
        result.recovery = _recovery_of(result)


#: the co-clustering (8 N^2 bytes) and point partition of at most this many observations
COCLUSTERING_MAX_OBS = _membership.COCLUSTERING_MAX_OBS


def _coclustering_of(tree, seed):
    """``(co-clustering, subset positions or None)``: of every observation up to
    :data:`COCLUSTERING_MAX_OBS`, else of a seeded uniform subset of that many (the
    DataArray's ``obs`` coordinate holds their indices, ``attrs["n_obs"]`` the N)."""
    N = get_observed(tree).shape[0]
    if N <= COCLUSTERING_MAX_OBS:
        return coclustering(tree), None
    idx = subsample(N, COCLUSTERING_MAX_OBS, seed)
    sub = tree.map_over_datasets(lambda ds: ds.isel(obs=idx) if "obs" in ds.dims else ds)
    psm = coclustering(sub, max_obs=None)
    psm.attrs["n_obs"] = N
    return psm, idx


def _recovery_of(result):
    truth, rec = result.data.truth, result.chosen_record
    labels = np.asarray(result.membership["label"])
    out = recovery(truth, rec.em, rec.idata, labels)
    true_labels = np.asarray(truth["labels"])
    if result.partition is not None:
        sub = result.coclustering_subset
        out["ari_point_partition"] = adjusted_rand_index(
            true_labels if sub is None else true_labels[sub], result.partition.labels
        )
    if result.dp is not None:
        psm, sub = _coclustering_of(result.dp.idata, result.spec.seed)
        out["ari_dp_point_partition"] = adjusted_rand_index(
            true_labels if sub is None else true_labels[sub], point_partition(psm).labels
        )
    return out


def _save_fits(result, folder):
    """Save every fit under ``out_dir/fits``, each listed in the folder's marker first."""

    def path(name):
        folder.claim_fit(f"fits/{name}")
        return str(result.out_dir / "fits" / name)

    base = {"spec": result.spec.to_dict(), "data": result.data.info}
    for (cov, K), rec in result.records.items():
        if rec.em is None:
            continue
        rec.path = path(f"{cov}_K{K}")
        cfg = dict(
            base,
            covariance=cov,
            K=K,
            estimate=result.spec.estimate,
            prior=rec.prior.to_dict() if rec.prior is not None else None,
        )
        save_fit(rec.path, em_result=rec.em, idata=rec.idata, config=_jsonable(cfg), overwrite=True)
    if result.dp is not None:
        rec = result.dp
        rec.path = path(f"dp_{rec.covariance}")
        cfg = dict(
            base,
            covariance=rec.covariance,
            model="dp",
            prior=rec.prior.to_dict() if rec.prior is not None else None,
        )
        save_fit(rec.path, idata=rec.idata, config=_jsonable(cfg), overwrite=True)
    if result.mfm is not None:
        rec = result.mfm
        rec.path = path(f"mfm_{rec.covariance}")
        cfg = dict(base, covariance=rec.covariance, model="mfm", prior=rec.prior.to_dict())
        save_fit(rec.path, idata=rec.idata, config=_jsonable(cfg), overwrite=True)


# ---------------------------------------------------------------------------- helpers
def _cluster_prior(spec, X, k0, drop=()):
    """The DP/MFM default prior (mclust's scale at ``k0`` clusters, see
    :func:`bayesmix.mcmc._builders.default_cluster_prior`) under the spec's [prior] fields; ``None``
    (the builder's own default) when the spec sets none."""
    if not spec.prior:
        return None
    return _spec_prior(spec, default_cluster_prior, X, k0, drop)


def _prior_for(spec, X, K):
    return _spec_prior(spec, GMMPrior.from_data, X, K)


def _spec_prior(spec, make, X, k, drop=()):
    """``make(X, k, **spec.prior)`` (less ``drop``); a bad field is a SpecError."""
    overrides = {key: v for key, v in spec.prior.items() if key not in drop}
    if "dp_concentration" in overrides:
        overrides["dp_concentration"] = tuple(overrides["dp_concentration"])
    try:
        return make(X, k, **overrides)
    except (TypeError, ValueError) as exc:
        raise SpecError(f"prior: {exc}") from None


def _sample(model, *, init, spec, seed, quiet, notes=None, what="", draws=None):
    """bayesmix.sample with the spec's settings (``gibbs_draws`` for a model sampled by
    Gibbs, unless ``draws`` is given); its warnings become notes."""
    gibbs = resolve_sampler(model, None) == "gibbs"
    if draws is None:
        draws = gibbs_draws(spec, get_config(model).X.shape[0]) if gibbs else spec.draws
    with _notes(notes if notes is not None else [], what):
        return sample(
            model,
            init=init,
            draws=draws,
            tune=gibbs_tune(spec) if gibbs else spec.tune,
            chains=spec.chains,
            random_seed=seed,
            progressbar=not quiet,
        )


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
