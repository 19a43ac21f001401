"""The ``--device`` fit of ``benchmarks/bench_scale.py``: the JAX Gibbs path.

``run_device_fit`` samples a finite full-covariance mixture with
:func:`bayesmix.mcmc.sample_gibbs_jax` on JAX's default backend (a GPU where JAX
finds one, else the CPU) and returns the posterior with its wall time. Needs
``pip install bayesmix[jax]`` (and JAX's CUDA wheels for a GPU).

Run alone for a quick timing: ``python benchmarks/_jax_device.py --n 100000 --d 10 --k 8``.
"""

from __future__ import annotations

import argparse
import time
import warnings


def run_device_fit(X, K, draws, tune, chains, seed):
    """Fit ``bm.build_gmm(X, K)`` (full covariance) with the JAX Gibbs sampler.

    Parameters
    ----------
    X : ndarray, shape (N, D)
    K : int
        Components.
    draws, tune, chains : int
    seed : int

    Returns
    -------
    dt : xarray.DataTree
        As :func:`bayesmix.mcmc.sample_gibbs_jax`; ``dt.attrs`` has ``device``,
        ``compile_time`` and ``sampling_time`` (seconds).
    wall : float
        Seconds for the whole call: the EM start, compilation, sampling and the
        DataTree (its pointwise log-likelihood included).
    """
    import bayesmix as bm
    from bayesmix.mcmc import sample_gibbs_jax

    t0 = time.perf_counter()
    with warnings.catch_warnings():  # short benchmark chains: ESS warnings are expected
        warnings.simplefilter("ignore", bm.ConvergenceWarning)
        dt = sample_gibbs_jax(
            bm.build_gmm(X, K), draws=draws, tune=tune, chains=chains, random_seed=seed
        )
    return dt, time.perf_counter() - t0


def main(argv=None):
    import numpy as np

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--d", type=int, default=10)
    p.add_argument("--k", type=int, default=8)
    p.add_argument("--draws", type=int, default=100)
    p.add_argument("--tune", type=int, default=100)
    p.add_argument("--chains", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    rng = np.random.default_rng(a.seed)
    centres = rng.normal(scale=6.0, size=(a.k, a.d))
    X = centres[rng.integers(a.k, size=a.n)] + rng.normal(size=(a.n, a.d))
    dt, wall = run_device_fit(X, a.k, a.draws, a.tune, a.chains, a.seed)
    print(
        f"n={a.n} D={a.d} K={a.k} chains={a.chains} tune={a.tune} draws={a.draws} "
        f"device={dt.attrs['device']}: wall {wall:.1f} s, "
        f"compile {dt.attrs['compile_time']:.1f} s, sampling {dt.attrs['sampling_time']:.1f} s"
    )


if __name__ == "__main__":
    main()
