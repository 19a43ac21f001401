"""Draw the simulation-based-calibration rank histograms of the docs
(docs/_static/gallery/sbc_ranks.png) from the cases of tests/test_sbc.py.

Usage (from the repository root; about 8 minutes on 2 cores)::

    python docs/sbc_figure.py

Every case runs with the seed its test uses, so the figure shows exactly the ranks the
slow test checks; the chi-square p-values are printed (and written to
docs/_static/gallery/sbc_pvalues.csv).
"""

from __future__ import annotations

import csv
import os
import sys
from pathlib import Path

os.environ.setdefault("MPLBACKEND", "Agg")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
OUT = ROOT / "docs" / "_static" / "gallery"

import numpy as np  # noqa: E402
import test_sbc as sbc  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


def cases():
    for cov, D, N in sbc.CASES:
        yield f"finite Gibbs, {cov}, D = {D}", sbc.sbc_finite(cov, D, N, seed=11)
    yield "MFM Gibbs, full, D = 2", sbc.sbc_mfm(2, 50, seed=13)
    yield "DP Gibbs, full, D = 2", sbc.sbc_dp(2, 50, seed=14)
    wrong = sbc._prior(2, kappa0=2.0, scale=1.5)
    yield "negative control (wrong prior)", sbc.sbc_finite("full", 2, 40, 12, sampler_prior=wrong)


def main():
    results = []
    for name, ranks in cases():
        print(name, flush=True)
        results.append((name, ranks))
    order = ("K", "K+", "concentration")
    names = sorted({s for _, r in results for s in r}, key=lambda s: (s in order, s))
    fig = Figure(figsize=(2.2 * len(names), 1.7 * len(results)), layout="constrained")
    axes = fig.subplots(len(results), len(names), squeeze=False)
    expected = sbc.REPS / sbc.BINS
    band = 2 * np.sqrt(expected * (1 - 1 / sbc.BINS))  # +-2 sd of a bin count
    rows = []
    for i, (case, ranks) in enumerate(results):
        first = min(j for j, stat in enumerate(names) if stat in ranks)
        for j, stat in enumerate(names):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            if stat not in ranks:
                ax.axis("off")
                continue
            counts = np.bincount(ranks[stat] * sbc.BINS // (sbc.L + 1), minlength=sbc.BINS)
            p = sbc.uniformity_p(ranks[stat])
            rows.append({"case": case, "statistic": stat, "p_value": f"{p:.4g}"})
            ax.axhspan(expected - band, expected + band, color="0.85")
            ax.bar(np.arange(sbc.BINS), counts, width=0.9, color="C3" if p < sbc.P_MIN else "C0")
            ax.set_title(f"{stat}\np = {p:.3f}", fontsize=7)
            if j == first:
                ax.set_ylabel(case.replace(", ", "\n", 1), fontsize=7)
    fig.suptitle(
        f"SBC rank histograms ({sbc.REPS} replications, {sbc.BINS} bins; grey: +-2 sd of a "
        f"uniform bin; red: p < {sbc.P_MIN:g})",
        fontsize=9,
    )
    OUT.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUT / "sbc_ranks.png", dpi=100)
    with open(OUT / "sbc_pvalues.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["case", "statistic", "p_value"])
        w.writeheader()
        w.writerows(rows)
    for r in rows:
        print(r)


if __name__ == "__main__":
    main()
