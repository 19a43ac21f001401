"""How many points a data plot draws, and how: the large-n rules of the plots.

A scatter plot of 100,000 observations is a solid blot that takes seconds to render,
and a PNG of it says nothing about where the data are dense. The data-level plots of
:mod:`bayesmix.workflow._plots` therefore follow one rule, set by their ``max_points``
parameter (default :data:`MAX_POINTS`; ``None`` draws every point):

* up to ``max_points`` observations every point is drawn, as before;
* above it, plots of the data alone (the points under the component ellipses) draw a
  hexagonal-bin density of **all** observations (:meth:`matplotlib.axes.Axes.hexbin`,
  log-scaled counts, a light grey colormap so the ellipses stay on top), or, with
  ``large="subsample"``, a seeded random subsample of ``max_points`` observations;
* plots that colour or size each point (membership, uncertainty) draw the seeded
  random subsample: a per-point attribute has no density summary.

The subsample is :func:`subsample` (uniform without replacement, sorted indices), from
``numpy.random.default_rng(random_seed)``, so the same seed gives the same points. Each
plot says what it shows (``"5,000 of 100,000 points shown (random subsample, seed 0)"``
or ``"100,000 points as hexagon counts (log scale)"``) in its title. Markers shrink and
turn more transparent as the number of points drawn grows beyond :data:`FULL_SIZE_N`
(:func:`marker_scale`); up to that many points the markers are as they always were.
"""

from __future__ import annotations

import numbers

import numpy as np

__all__ = ["FULL_SIZE_N", "MAX_POINTS", "check_max_points", "marker_scale", "subsample"]

#: data plots draw at most this many points by default (above it: hexbin or subsample)
MAX_POINTS = 5000
#: up to this many points drawn, markers keep their full size and opacity
FULL_SIZE_N = 1000
#: hexagons across the x axis of a hexbin density
HEXBIN_GRIDSIZE = 70
#: the options of ``large``: how a plot of the data alone draws more than max_points
LARGE_MODES = ("hexbin", "subsample")


def check_max_points(max_points, name="max_points"):
    """``max_points`` as an int >= 1, or None (draw every point)."""
    if max_points is None:
        return None
    if isinstance(max_points, bool) or not isinstance(max_points, numbers.Integral):
        raise TypeError(
            f"{name} must be a positive int or None (draw every point); got "
            f"{type(max_points).__name__} {max_points!r}."
        )
    if max_points < 1:
        raise ValueError(
            f"{name} must be at least 1, or None to draw every point; got {max_points}."
        )
    return int(max_points)


def check_large(large):
    if large not in LARGE_MODES:
        raise ValueError(
            f"large must be one of {LARGE_MODES} (how more than max_points observations are "
            f"drawn: a density of all of them, or a random subsample); got {large!r}."
        )
    return large


def subsample(n, max_points, random_seed=0):
    """Indices of the observations a plot draws.

    Parameters
    ----------
    n : int
        Number of observations.
    max_points : int or None
        At most this many; None: all.
    random_seed : int, numpy.random.Generator or None
        Seed of the uniform subsample without replacement (``numpy.random.default_rng``).

    Returns
    -------
    ndarray of int, shape (min(n, max_points),)
        Sorted indices; ``arange(n)`` when nothing is left out.

    Examples
    --------
    >>> subsample(5, None)
    array([0, 1, 2, 3, 4])
    >>> idx = subsample(100_000, 5000, random_seed=0)
    >>> idx.shape, bool((subsample(100_000, 5000, random_seed=0) == idx).all())
    ((5000,), True)
    """
    max_points = check_max_points(max_points)
    if max_points is None or n <= max_points:
        return np.arange(n)
    rng = np.random.default_rng(random_seed)
    return np.sort(rng.choice(n, size=max_points, replace=False))


def marker_scale(n_drawn):
    """Factor for marker area and opacity: 1 up to :data:`FULL_SIZE_N` points drawn,
    then ``sqrt(FULL_SIZE_N / n_drawn)`` (0.45 at 5,000 points), at least 0.2.

    Examples
    --------
    >>> marker_scale(272), round(marker_scale(5000), 3)
    (1.0, 0.447)
    """
    if n_drawn <= FULL_SIZE_N:
        return 1.0
    return float(max(0.2, np.sqrt(FULL_SIZE_N / n_drawn)))


def shown_note(n_shown, n, random_seed):
    """The title text of a subsampled plot ('' when every point is drawn)."""
    if n_shown >= n:
        return ""
    seed = f", seed {random_seed}" if isinstance(random_seed, numbers.Integral) else ""
    return f"{n_shown:,} of {n:,} points shown (random subsample{seed})"


def hexbin_note(n):
    return f"{n:,} points as hexagon counts (log scale)"


def _light_greys():
    from matplotlib import colormaps
    from matplotlib.colors import ListedColormap

    # light end of Greys: one point is a pale grey, the densest bins mid grey, so the
    # coloured ellipses and means drawn on top stay readable
    return ListedColormap(colormaps["Greys"](np.linspace(0.18, 0.72, 256)), name="bm_greys")


def draw_hexbin(ax, x, y):
    """A log-count hexbin density of all points, under everything else (zorder 0)."""
    from matplotlib.colors import LogNorm

    return ax.hexbin(
        x,
        y,
        gridsize=HEXBIN_GRIDSIZE,
        mincnt=1,
        norm=LogNorm(),
        cmap=_light_greys(),
        linewidths=0.0,
        zorder=0,
    )
