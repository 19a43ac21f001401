"""Command line: ``bayesmix fit [DATA.csv]`` and ``bayesmix run SPEC.toml``.

``bayesmix fit`` runs the whole analysis (k-means, EM over a K grid with BIC/ICL,
MCMC for each K with LOO/WAIC, the chosen K, membership uncertainty, EM against
MCMC, saved fits and a report folder) on a CSV file or, without a file, on the
built-in Old Faithful data. ``bayesmix run models/NAME.toml`` runs a declared
experiment (format in :mod:`bayesmix.workflow._spec`); both run
:func:`bayesmix.workflow._pipeline.run_experiment`.

Any bad input ends with exit status 2 and one line on stderr (``bayesmix: error:
...``), never a traceback; ``--debug`` shows tracebacks (for bug reports).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bayesmix import __version__
from bayesmix.posterior._selection import CHOICE_RULE
from bayesmix.workflow._preflight import check_out_dir
from bayesmix.workflow._spec import DEFAULTS, SpecError, load_spec, parse_k, spec_from_dict

__all__ = ["main"]

EXIT_USAGE = 2
EXIT_ERROR = 1

_DEFAULT_OUT = "bayesmix-report"

_FIT_EPILOG = f"""\
defaults (measured to finish Old Faithful in under 3 minutes on 2 cores, see
benchmarks/RESULTS.md): EM over K={DEFAULTS["k"][0]}-{DEFAULTS["k"][-1]}, MCMC for
K={DEFAULTS["mcmc_k"][0]}-{DEFAULTS["mcmc_k"][-1]} ({DEFAULTS["chains"]} chains x
{DEFAULTS["draws"]} draws after {DEFAULTS["tune"]} tuning steps), full covariance, seed
{DEFAULTS["seed"]}. When --k is given, MCMC runs for every K of it unless --mcmc-k says
otherwise.

choice of K: {CHOICE_RULE}

examples:
  bayesmix fit                                  # Old Faithful, defaults
  bayesmix fit --no-mcmc --k 1-8                # EM only, seconds
  bayesmix fit data.csv --columns a,b --standardize --dropna --out results/mine
"""


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage dump
        raise _UsageError(f"{message} (see '{self.prog} --help')")


def _positive(name, minimum=1):
    def conv(text):
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{name} must be an integer >= {minimum}; got {text!r}"
            ) from None
        if v < minimum:
            raise argparse.ArgumentTypeError(f"{name} must be >= {minimum}; got {v}")
        return v

    return conv


def _add_sampler_options(f):
    """``bayesmix fit``'s MCMC settings."""
    f.add_argument("--draws", type=_positive("--draws"), default=DEFAULTS["draws"])
    f.add_argument(
        "--gibbs-draws",
        type=_positive("--gibbs-draws"),
        default=None,
        help="draws per chain of the models sampled by Gibbs (MFM, DP, finite mixtures "
        "with the conjugate prior); --draws is for NUTS (default: 2000, fewer for large data)",
    )
    f.add_argument(
        "--tune",
        type=_positive("--tune", 0),
        default=DEFAULTS["tune"],
        help="NUTS tuning steps per chain (default: %(default)s)",
    )
    f.add_argument(
        "--gibbs-tune",
        type=_positive("--gibbs-tune", 0),
        default=None,
        help="burn-in sweeps per chain of the models sampled by Gibbs (default: 200)",
    )
    f.add_argument("--chains", type=_positive("--chains"), default=DEFAULTS["chains"])
    f.add_argument("--seed", type=_positive("--seed", 0), default=DEFAULTS["seed"])


def _build_parser():
    p = _Parser(
        prog="bayesmix",
        description="Bayesian Gaussian mixture models: k-means, EM and MCMC side by side.",
    )
    p.add_argument("--version", action="version", version=f"bayesmix {__version__}")
    sub = p.add_subparsers(dest="command", metavar="{fit,run}", parser_class=_Parser)

    common = _Parser(add_help=False)
    common.add_argument("--out", help=f"report folder (fit default: {_DEFAULT_OUT})")
    common.add_argument("--quiet", action="store_true", help="no progress output")
    common.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    common.add_argument("--no-mcmc", action="store_true", help="EM only (fast)")
    cl = common.add_mutually_exclusive_group()
    cl.add_argument(
        "--workers",
        type=_positive("--workers"),
        help="fit the EM grid on a local Dask cluster of N single-threaded workers",
    )
    cl.add_argument("--scheduler", help="fit the EM grid on the Dask scheduler at ADDRESS")

    f = sub.add_parser(
        "fit",
        parents=[common],
        help="analyse a CSV file (default: Old Faithful)",
        description="Fit Gaussian mixtures to DATA.csv (header row, numeric columns) or, "
        "without a file, to the built-in Old Faithful data, and write a report folder.",
        epilog=_FIT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    f.add_argument("data", nargs="?", help="CSV file with a header row (default: Old Faithful)")
    f.add_argument("--k", help="K grid for EM, e.g. 1-6 or 1,2,4 (default 1-6)")
    f.add_argument("--mcmc-k", help="K values sampled by MCMC (default 1-4, or all of --k)")
    f.add_argument(
        "--covariance",
        action="append",
        help="covariance type(s): full, diag, spherical, tied, or mclust's model names "
        "(EII, VII, EEI, VEI, EVI, VVI, EEE, VEE, EVE, VVE, EEV, VEV, EVV, VVV; 'all': the "
        "14; the ten beyond the first four are fitted by EM only, and EVE, VEE, VVE, EVV "
        "need --estimate ml); "
        "comma list or repeated (default full)",
    )
    f.add_argument("--columns", help="comma-separated columns to use (default: all)")
    f.add_argument("--sep", help="CSV delimiter, e.g. ';' (default: sniffed among , ; tab |)")
    f.add_argument("--decimal", choices=(".", ","), help="CSV decimal separator (default: sniffed)")
    f.add_argument("--standardize", action="store_true", help="z-score every column")
    f.add_argument("--dropna", action="store_true", help="drop rows with missing values")
    f.add_argument(
        "--noise",
        action="store_true",
        help="add a uniform noise component (outliers, background) to the finite mixtures",
    )
    f.add_argument(
        "--weights",
        metavar="COLUMN",
        help="column of frequency weights (removed from the features, named in the report)",
    )
    _add_sampler_options(f)
    f.add_argument(
        "--model",
        choices=("finite", "dp", "both"),
        default="finite",
        help="finite mixtures over the K grid, a Dirichlet-process mixture, or both",
    )
    f.add_argument(
        "--estimate",
        choices=("map", "ml"),
        default=DEFAULTS["estimate"],
        help="EM estimate: MAP under the default prior (default) or ML",
    )

    r = sub.add_parser(
        "run",
        parents=[common],
        help="run a declared experiment (TOML spec)",
        description="Run the experiment declared in a TOML spec (see models/).",
    )
    r.add_argument("spec", help="path to a TOML spec, e.g. models/old_faithful_finite.toml")
    return p


def _fit_spec(args):
    data = {}
    if args.data is not None:
        data.update(source="csv", path=args.data)
    if args.columns is not None:
        cols = [c.strip() for c in args.columns.split(",") if c.strip()]
        if not cols:
            raise SpecError(f"--columns must name at least one column; got {args.columns!r}.")
        data["columns"] = cols
    data.update(standardize=args.standardize, dropna=args.dropna)
    if args.weights is not None:
        data["weights"] = args.weights
    for key in ("sep", "decimal"):
        if getattr(args, key) is not None:
            data[key] = getattr(args, key)
    model = {"kind": args.model, "estimate": args.estimate}
    if args.noise:
        model["noise"] = True
    sampler = {
        "mcmc": not args.no_mcmc,
        "draws": args.draws,
        "tune": args.tune,
        "chains": args.chains,
    }
    if args.gibbs_draws is not None:
        sampler["gibbs_draws"] = args.gibbs_draws
    if args.gibbs_tune is not None:
        sampler["gibbs_tune"] = args.gibbs_tune
    if args.k is not None:
        model["k"] = parse_k(args.k, name="--k")
    if args.mcmc_k is not None:
        sampler["mcmc_k"] = parse_k(args.mcmc_k, name="--mcmc-k")
    elif args.k is None:
        sampler["mcmc_k"] = DEFAULTS["mcmc_k"]
    if args.covariance:
        model["covariance"] = ",".join(args.covariance)
    d = {"name": "fit", "seed": args.seed, "data": data, "model": model, "sampler": sampler}
    try:
        spec = spec_from_dict(d)
    except SpecError as exc:
        # name the command-line option rather than the spec key
        msg = str(exc)
        for key, opt in (
            ("sampler.mcmc_k", "--mcmc-k"),
            ("model.k", "--k"),
            ("model.covariance", "--covariance"),
            ("data.columns", "--columns"),
            ("sampler.gibbs_draws", "--gibbs-draws"),
            ("sampler.gibbs_tune", "--gibbs-tune"),
            ("sampler.draws", "--draws"),
            ("sampler.chains", "--chains"),
            ("data.sep", "--sep"),
            ("data.decimal", "--decimal"),
            ("data.weights", "--weights"),
        ):
            msg = msg.replace(key, opt)
        raise SpecError(msg) from None
    return spec


def _run(args):
    if args.out is not None and not args.out.strip():
        default = _DEFAULT_OUT if args.command == "fit" else "the spec's output, or results/NAME"
        raise SpecError(
            f"--out is empty ({args.out!r}); give the report folder, e.g. --out results/mine, "
            f"or leave --out out for the default ({default})."
        )
    if args.scheduler is not None:  # fail fast, before loading PyMC and the data
        from bayesmix.em._dask import connect

        connect(args.scheduler).close()
    # deliberately lazy: the pipeline imports PyMC, which --help and bad options need not load
    from bayesmix.workflow._pipeline import run_experiment

    if args.command == "fit":
        spec = _fit_spec(args)
        out = args.out or _DEFAULT_OUT
    else:
        spec = load_spec(args.spec, mcmc=False if args.no_mcmc else None)
        out = args.out
    if args.workers is not None or args.scheduler is not None:
        spec.workers, spec.scheduler = args.workers, args.scheduler
    # before the (slow) pipeline import and any fit: the report folder must be writable
    check_out_dir(out or spec.output or Path("results") / spec.name, "--out")
    result = run_experiment(spec, out=out, quiet=args.quiet)
    if not args.quiet:
        print(f"report: {result.report_path}")
    return 0


def main(argv=None):
    """Entry point of the ``bayesmix`` console script.

    Parameters
    ----------
    argv : list of str, optional
        Arguments (default ``sys.argv[1:]``).

    Returns
    -------
    int
        0 on success, 2 on bad input (one line on stderr), 1 on an unexpected error.

    Examples
    --------
    >>> main(["fit", "--no-mcmc", "--k", "1-3", "--quiet", "--out", "/tmp/bm"])  # doctest: +SKIP
    0
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv
    try:
        parser = _build_parser()
        args = parser.parse_args(argv)
        if args.command is None:
            raise _UsageError(
                "choose a command: 'bayesmix fit' or 'bayesmix run SPEC.toml' "
                "(see 'bayesmix --help')"
            )
        return _run(args)
    except _UsageError as exc:
        _one_line(f"bayesmix: error: {exc}")
        return EXIT_USAGE
    except (
        SpecError,
        ValueError,
        TypeError,
        FileNotFoundError,
        PermissionError,
        IsADirectoryError,
        NotADirectoryError,
    ) as exc:
        if debug:
            raise
        _one_line(f"bayesmix: error: {exc}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        _one_line("bayesmix: interrupted")
        return 130
    except Exception as exc:  # a genuine bug: say so, in one line unless --debug
        if debug:
            raise
        _one_line(
            f"bayesmix: internal error ({type(exc).__name__}: {exc}); rerun with --debug for "
            "the traceback and please report it"
        )
        return EXIT_ERROR


def _one_line(msg):
    print(" ".join(str(msg).split()), file=sys.stderr)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
