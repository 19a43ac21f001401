"""k-means (greedy k-means++ seeding and Lloyd iterations) and its link to EM.

k-means is the zero-variance limit of EM for a Gaussian mixture with equal weights
and a shared isotropic covariance ``eps * I``: the E-step responsibilities
``softmax(-||x - c_k||^2 / (2 eps))`` become the one-hot nearest-centre assignment
as ``eps -> 0``, and the M-step means become Lloyd's centroid update.
:func:`soft_kmeans` runs that EM at a fixed ``beta = 1 / eps`` (in log space, so it
is stable for huge ``beta``), and :func:`em_kmeans_limit` runs it over a decreasing
sequence of ``eps`` from the same starting centres to show the soft assignments
hardening into the k-means partition.

The k-means engine follows scikit-learn's ``KMeans(algorithm="lloyd")`` step for
step, so that both give the same labels, centres and iteration counts from the same
initial centres:

* seeding: greedy k-means++ with ``2 + int(log K)`` local trials per centre, keeping
  the candidate that minimises the potential (sum of squared distances);
* stopping: after an iteration whose labels did not change ("strict" convergence),
  or when the sum over centres of the squared centre shift is at most
  ``tol * mean(var(X, axis=0))``;
* an empty cluster is re-seeded with the point farthest from its assigned centre;
* a final assignment step makes ``labels`` match ``centers``.

Engine (numba kernels with ``cache=True``, no fastmath):

* the data are centred first, as scikit-learn does;
* an assignment step is, per block of 2,048 rows, one BLAS product ``X @ C.T`` and
  the argmin of ``||c||^2 - 2 x.c`` (scikit-learn's criterion), accumulating the
  per-block sums for the centre update;
* once fewer than 5% of the labels change per iteration, the step switches to
  Hamerly's bounds (an upper bound on the distance to the own centre, a lower bound
  on the distance to any other), which skip most distance computations and give
  the same labels as the full step (ties still go to the lowest index);
* k-means++ potentials, the inertia and :meth:`KMeansResult.predict` use exact
  direct sums of squares;
* blocks are split between Python threads (the kernels release the GIL; idle
  threads sleep, not spin); block sums are reduced in block order, so results do
  not depend on the number of threads.
"""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numba
import numpy as np

from bayesmix._validation import (
    ConvergenceWarning,
    DegenerateDataWarning,
    check_data,
    check_n_components,
    check_positive,
    check_random_state,
    warn,
)

__all__ = [
    "KMeansLimitResult",
    "KMeansResult",
    "SoftKMeansResult",
    "em_kmeans_limit",
    "kmeans",
    "soft_kmeans",
]

_CHUNK = 256  # rows per work item of the serial kernels (per-chunk partial sums)
_BLOCK = 2048  # rows per block of Lloyd's assignment step (fixed: results do not
# depend on the number of threads)
_SLACK = 1.0 + 1e-9  # relative safety margin on Hamerly's bounds
_HAMERLY_SWITCH = 0.05  # switch to Hamerly's bounds below this fraction of changed labels
# Below this many multiply-adds per pass (n_obs * K * D), kmeans() runs on one thread.
_PARALLEL_MIN_WORK = 2_000_000


@numba.njit(cache=True, fastmath=False, nogil=True, inline="always")
def _row_sq_dists(X, i, ct, dist):  # pragma: no cover
    """dist[m] = sum_j (X[i, j] - ct[j, m])^2 for all m (ct is centres transposed, (D, K)).

    Four centres at a time with scalar accumulators: four independent exact sums the
    compiler keeps in registers (and may pack into one SIMD lane group), twice as fast
    as accumulating into memory, with bit-identical results (no fastmath reassociation).
    """
    d, k = ct.shape
    k4 = k - k % 4
    for m in range(0, k4, 4):
        s0 = 0.0
        s1 = 0.0
        s2 = 0.0
        s3 = 0.0
        for j in range(d):
            xj = X[i, j]
            t0 = xj - ct[j, m]
            t1 = xj - ct[j, m + 1]
            t2 = xj - ct[j, m + 2]
            t3 = xj - ct[j, m + 3]
            s0 += t0 * t0
            s1 += t1 * t1
            s2 += t2 * t2
            s3 += t3 * t3
        dist[m] = s0
        dist[m + 1] = s1
        dist[m + 2] = s2
        dist[m + 3] = s3
    for m in range(k4, k):
        s = 0.0
        for j in range(d):
            t = X[i, j] - ct[j, m]
            s += t * t
        dist[m] = s


@numba.njit(cache=True, fastmath=False, nogil=True)
def _assign_kernel(X, centers, labels, min_dist, sums, counts, update):  # pragma: no cover
    """Nearest centre of each row; with ``update`` also per-centre sums and counts.

    X (N, D), centers (K, D); writes labels (N,) int64, min_dist (N,) float64 and,
    if update, sums (K, D) and counts (K,) (overwritten). Ties go to the lowest index.
    """
    n, d = X.shape
    k = centers.shape[0]
    ct = np.ascontiguousarray(centers.T)  # (D, K): the inner loop runs over K
    n_chunks = (n + _CHUNK - 1) // _CHUNK
    n_acc = n_chunks if update else 1
    local_sums = np.zeros((n_acc, k, d))
    local_counts = np.zeros((n_acc, k))
    for c in range(n_chunks):
        start = c * _CHUNK
        stop = min(start + _CHUNK, n)
        dist = np.empty(k)
        for i in range(start, stop):
            _row_sq_dists(X, i, ct, dist)
            best = 0
            best_d = dist[0]
            for m in range(1, k):
                if dist[m] < best_d:
                    best_d = dist[m]
                    best = m
            labels[i] = best
            min_dist[i] = best_d
            if update:
                local_counts[c, best] += 1.0
                for j in range(d):
                    local_sums[c, best, j] += X[i, j]
    if update:
        sums[:, :] = 0.0
        counts[:] = 0.0
        for c in range(n_chunks):  # fixed order: reproducible whatever the thread count
            for m in range(k):
                counts[m] += local_counts[c, m]
                for j in range(d):
                    sums[m, j] += local_sums[c, m, j]


@numba.njit(cache=True, fastmath=False, nogil=True)
def _sq_dist_kernel(X, centers, out):  # pragma: no cover
    """out[i, m] = sum_j (X[i, j] - centers[m, j])^2, computed directly."""
    n = X.shape[0]
    ct = np.ascontiguousarray(centers.T)
    n_chunks = (n + _CHUNK - 1) // _CHUNK
    for c in range(n_chunks):
        start = c * _CHUNK
        stop = min(start + _CHUNK, n)
        for i in range(start, stop):
            _row_sq_dists(X, i, ct, out[i])


@numba.njit(cache=True, fastmath=False, nogil=True)
def _lloyd_block_kernel(
    X, G, x_sq, c_sq, labels, sums, counts, upper, lower, bounds
):  # pragma: no cover
    """Lloyd assignment of one block of rows from ``G = X @ centers.T``.

    The nearest centre minimises ``||c||^2 - 2 x.c`` (scikit-learn's criterion; the
    ``||x||^2`` term is common to all centres; ties go to the lowest index).
    Overwrites labels (B,), sums (K, D) and counts (K,) of the block, and squared
    Hamerly bounds: ``upper`` >= squared distance to the assigned centre, ``lower``
    <= squared distance to any other centre, widened by a generous bound on the
    rounding error of the expansion. Returns the number of labels that changed. Releases the GIL.
    """
    n, d = X.shape
    k = G.shape[1]
    c_max = 0.0
    for m in range(k):
        c_max = max(c_max, c_sq[m])
    sums[:, :] = 0.0
    counts[:] = 0.0
    n_changed = 0
    for i in range(n):
        best = 0
        best_v = c_sq[0] - 2.0 * G[i, 0]
        if bounds:
            second = np.inf
            for m in range(1, k):
                v = c_sq[m] - 2.0 * G[i, m]
                second = min(second, max(v, best_v))
                if v < best_v:
                    best_v = v
                    best = m
            err = 1e-12 * (x_sq[i] + c_max)
            upper[i] = max(x_sq[i] + best_v, 0.0) + err  # squared: the sqrt is taken
            lower[i] = max(x_sq[i] + second - err, 0.0)  # when Hamerly takes over
        else:
            for m in range(1, k):
                v = c_sq[m] - 2.0 * G[i, m]
                if v < best_v:
                    best_v = v
                    best = m
        if labels[i] != best:
            n_changed += 1
            labels[i] = best
        counts[best] += 1.0
        for j in range(d):
            sums[best, j] += X[i, j]
    return n_changed


class _LloydPass:
    """One Lloyd assignment over all rows: blocked BLAS products and a numba kernel.

    Rows are cut into fixed blocks of ``_BLOCK`` (a (block, K) product stays in cache
    and is small enough for BLAS to run it single-threaded); the blocks are split
    between ``n_threads`` Python threads (BLAS and the kernel release the GIL; idle
    threads sleep rather than spin, which matters on a busy machine). Per-block sums
    are reduced in block order, so results do not depend on the number of threads.
    """

    def __init__(self, X, n_components, n_threads, executor, upper, lower):
        self.X = X
        n = X.shape[0]
        self.x_sq = np.einsum("nd,nd->n", X, X)
        self.upper = upper
        self.lower = lower
        self.n_blocks = (n + _BLOCK - 1) // _BLOCK
        self.block_sums = np.empty((self.n_blocks, n_components, X.shape[1]))
        self.block_counts = np.empty((self.n_blocks, n_components))
        self.changed = np.empty(self.n_blocks, dtype=np.int64)
        n_threads = max(1, min(n_threads, self.n_blocks))
        bounds = np.linspace(0, self.n_blocks, n_threads + 1).astype(int)
        self.parts = [range(bounds[t], bounds[t + 1]) for t in range(n_threads)]
        self.executor = executor if n_threads > 1 else None
        self.buffers = [np.empty((_BLOCK, n_components)) for _ in self.parts]

    def _work(self, t, ct, c_sq, labels, bounds):
        X, G = self.X, self.buffers[t]
        n = X.shape[0]
        for b in self.parts[t]:
            start = b * _BLOCK
            stop = min(start + _BLOCK, n)
            g = G[: stop - start]
            np.dot(X[start:stop], ct, out=g)
            self.changed[b] = _lloyd_block_kernel(
                X[start:stop],
                g,
                self.x_sq[start:stop],
                c_sq,
                labels[start:stop],
                self.block_sums[b],
                self.block_counts[b],
                self.upper[start:stop],
                self.lower[start:stop],
                bounds,
            )

    def __call__(self, centers, labels, bounds=False):
        """Assign ``labels`` in place; return (sums (K, D), counts (K,), n_changed).

        With ``bounds``, also leave squared Hamerly bounds for these centres.
        """
        ct = np.ascontiguousarray(centers.T)
        c_sq = np.einsum("kd,kd->k", centers, centers)
        if self.executor is None:
            for t in range(len(self.parts)):
                self._work(t, ct, c_sq, labels, bounds)
        else:
            futures = [
                self.executor.submit(self._work, t, ct, c_sq, labels, bounds)
                for t in range(len(self.parts))
            ]
            for f in futures:
                f.result()
        return self.block_sums.sum(axis=0), self.block_counts.sum(axis=0), int(self.changed.sum())


@numba.njit(cache=True, fastmath=False, nogil=True)
def _hamerly_kernel(
    X,
    b_start,
    b_stop,
    ct,
    s_half,
    delta,
    upper,
    lower,
    labels,
    block_sums,
    block_counts,
    changed,
    full,
):  # pragma: no cover
    """Exact Lloyd assignment of blocks ``b_start..b_stop`` with Hamerly's bounds.

    ``upper[i]`` bounds the distance from row i to its centre from above, ``lower[i]``
    the distance to every other centre from below; both are first moved by the centre
    shifts ``delta`` of the last update. A row whose upper bound is below
    ``max(lower[i], s_half[label])`` (``s_half``: half the distance from its centre to
    the nearest other centre) provably keeps its label; otherwise the distance to its
    centre is recomputed and, if needed, the distances to all centres (exactly, as
    sums of squares; ties go to the lowest index, as in a plain argmin). The result is
    the same labelling as Lloyd's full assignment, at a fraction of the distance
    computations once few labels change. Per-block sums and counts, and the number of
    changed labels per block, are written for a reduction in block order.
    """
    n, d = X.shape
    k = ct.shape[1]
    # largest and second-largest centre shift, for the lower bounds
    a1 = 0
    m1 = -1.0
    m2 = 0.0
    for m in range(k):
        if delta[m] > m1:
            m2 = m1 if m1 > 0.0 else 0.0
            m1 = delta[m]
            a1 = m
        elif delta[m] > m2:
            m2 = delta[m]
    m1 = max(m1, 0.0)
    dist = np.empty(k)
    for b in range(b_start, b_stop):
        start = b * _BLOCK
        stop = min(start + _BLOCK, n)
        sums = block_sums[b]
        counts = block_counts[b]
        sums[:, :] = 0.0
        counts[:] = 0.0
        n_changed = 0
        for i in range(start, stop):
            a = labels[i]
            recompute = full
            if not full:
                upper[i] += delta[a]
                lower[i] -= m2 if a == a1 else m1
                bound = max(s_half[a], lower[i])
                # the slack keeps rounding in the bounds from ever skipping a row
                # whose nearest centre changed
                if not (upper[i] * _SLACK < bound):
                    s = 0.0
                    for j in range(d):
                        t = X[i, j] - ct[j, a]
                        s += t * t
                    upper[i] = np.sqrt(s)
                    recompute = not (upper[i] * _SLACK < bound)
            if recompute:
                _row_sq_dists(X, i, ct, dist)
                best = 0
                best_d = dist[0]
                second = np.inf
                for m in range(1, k):
                    v = dist[m]
                    if v < best_d:
                        second = best_d
                        best_d = v
                        best = m
                    elif v < second:
                        second = v
                upper[i] = np.sqrt(best_d)
                lower[i] = np.sqrt(second)
                if best != a:
                    n_changed += 1
                    labels[i] = best
                a = best
            counts[a] += 1.0
            for j in range(d):
                sums[a, j] += X[i, j]
        changed[b] = n_changed


class _HamerlyPass:
    """Lloyd's assignment step with Hamerly's bounds, blocks split between threads.

    Rows are cut into fixed blocks of ``_BLOCK``; contiguous runs of blocks go to
    ``n_threads`` Python threads (the numba kernel releases the GIL; idle threads
    sleep rather than spin, which matters on a busy machine). Per-block sums are
    reduced in block order, so results do not depend on the number of threads.
    """

    def __init__(self, X, n_components, n_threads, executor, upper, lower, prev=None):
        self.X = X
        n = X.shape[0]
        self.n_blocks = (n + _BLOCK - 1) // _BLOCK
        self.block_sums = np.empty((self.n_blocks, n_components, X.shape[1]))
        self.block_counts = np.empty((self.n_blocks, n_components))
        self.changed = np.empty(self.n_blocks, dtype=np.int64)
        # bounds valid for the centres ``prev`` (None: the first call computes them)
        self.upper = upper
        self.lower = lower
        self.prev = prev
        n_threads = max(1, min(n_threads, self.n_blocks))
        bounds = np.linspace(0, self.n_blocks, n_threads + 1).astype(int)
        self.parts = [(int(bounds[t]), int(bounds[t + 1])) for t in range(n_threads)]
        self.executor = executor if n_threads > 1 else None

    def __call__(self, centers, labels):
        """Assign ``labels`` in place; return (sums (K, D), counts (K,), n_changed)."""
        k = centers.shape[0]
        ct = np.ascontiguousarray(centers.T)
        full = self.prev is None
        delta = np.zeros(k) if full else np.sqrt(((centers - self.prev) ** 2).sum(axis=1))
        if k > 1:
            cc = np.sqrt(_sq_dists(centers, centers))
            np.fill_diagonal(cc, np.inf)
            s_half = 0.5 * cc.min(axis=1)
        else:
            s_half = np.full(1, np.inf)
        self.prev = centers.copy()
        args = (
            ct,
            s_half,
            delta,
            self.upper,
            self.lower,
            labels,
            self.block_sums,
            self.block_counts,
            self.changed,
            full,
        )
        if self.executor is None:
            for b0, b1 in self.parts:
                _hamerly_kernel(self.X, b0, b1, *args)
        else:
            futures = [
                self.executor.submit(_hamerly_kernel, self.X, b0, b1, *args)
                for b0, b1 in self.parts
            ]
            for f in futures:
                f.result()
        return self.block_sums.sum(axis=0), self.block_counts.sum(axis=0), int(self.changed.sum())


@numba.njit(cache=True, fastmath=False, nogil=True)
def _inertia_kernel(X, centers, labels):  # pragma: no cover
    """sum_i ||X[i] - centers[labels[i]]||^2, summed per chunk then in a fixed order."""
    n, d = X.shape
    n_chunks = (n + _CHUNK - 1) // _CHUNK
    part = np.zeros(n_chunks)
    for c in range(n_chunks):
        start = c * _CHUNK
        stop = min(start + _CHUNK, n)
        acc = 0.0
        for i in range(start, stop):
            lab = labels[i]
            s = 0.0
            for j in range(d):
                t = X[i, j] - centers[lab, j]
                s += t * t
            acc += s
        part[c] = acc
    total = 0.0
    for c in range(n_chunks):
        total += part[c]
    return total


@numba.njit(cache=True, fastmath=False, nogil=True)
def _pp_kernel(X, b_start, b_stop, ct, closest, part, update):  # pragma: no cover
    """k-means++ pass over blocks ``b_start..b_stop`` of ``_BLOCK`` rows.

    part[b, t] = sum over block b of min(closest_i, ||x_i - ct[:, t]||^2); with
    ``update`` (a single candidate) also sets closest_i to that minimum.
    """
    n = X.shape[0]
    t_count = ct.shape[1]
    dist = np.empty(t_count)
    for b in range(b_start, b_stop):
        start = b * _BLOCK
        stop = min(start + _BLOCK, n)
        for t in range(t_count):
            part[b, t] = 0.0
        for i in range(start, stop):
            _row_sq_dists(X, i, ct, dist)
            ci = closest[i]
            for t in range(t_count):
                v = dist[t] if dist[t] < ci else ci
                part[b, t] += v
                if update:
                    closest[i] = v


def _split_blocks(n_obs, n_threads):
    """Fixed blocks of ``_BLOCK`` rows, cut into contiguous runs, one per thread."""
    n_blocks = (n_obs + _BLOCK - 1) // _BLOCK
    n_threads = max(1, min(n_threads, n_blocks))
    bounds = np.linspace(0, n_blocks, n_threads + 1).astype(int)
    return n_blocks, [(int(bounds[t]), int(bounds[t + 1])) for t in range(n_threads)]


def _run_blocks(kernel, parts, executor, X, *args):
    """Run ``kernel(X, b_start, b_stop, *args)`` for each run of blocks, in threads."""
    if executor is None or len(parts) == 1:
        for b0, b1 in parts:
            kernel(X, b0, b1, *args)
        return
    futures = [executor.submit(kernel, X, b0, b1, *args) for b0, b1 in parts]
    for f in futures:
        f.result()


def _sq_dists(X, centers):
    """Squared Euclidean distances, shape (N, K), computed directly (no expansion)."""
    out = np.empty((X.shape[0], centers.shape[0]))
    _sq_dist_kernel(X, np.ascontiguousarray(centers, dtype=np.float64), out)
    return out


def _assign(X, centers):
    """Labels (N,) and squared distance to the assigned centre (N,)."""
    n = X.shape[0]
    labels = np.empty(n, dtype=np.int64)
    min_dist = np.empty(n)
    dummy_s = np.empty((0, 0))
    dummy_c = np.empty(0)
    _assign_kernel(X, centers, labels, min_dist, dummy_s, dummy_c, False)
    return labels, min_dist


# --------------------------------------------------------------------------------------
# results
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class KMeansResult:
    """Result of :func:`kmeans`.

    Attributes
    ----------
    centers : ndarray, shape (n_components, n_features)
        Cluster centres.
    labels : ndarray of int, shape (n_obs,)
        Index of the nearest centre of each observation (consistent with ``centers``).
    inertia : float
        Sum of squared distances of the observations to their centres.
    n_iter : int
        Lloyd iterations of the returned run.
    converged : bool
        Whether the returned run met its stopping rule before ``max_iter``.
    n_init : int
        Number of runs (restarts) made; the one with the lowest inertia is returned.
    init_centers : ndarray, shape (n_components, n_features)
        The initial centres of the returned run.
    """

    centers: np.ndarray
    labels: np.ndarray
    inertia: float
    n_iter: int
    converged: bool
    n_init: int = 1
    init_centers: np.ndarray | None = field(default=None, repr=False)

    @property
    def n_components(self):
        """Number of clusters K."""
        return self.centers.shape[0]

    def predict(self, X):
        """Index of the nearest centre of each row of ``X``.

        Parameters
        ----------
        X : array_like, shape (n_obs, n_features)

        Returns
        -------
        ndarray of int, shape (n_obs,)
        """
        X = check_data(X)
        if X.shape[1] != self.centers.shape[1]:
            raise ValueError(
                f"X has {X.shape[1]} features but the centres have {self.centers.shape[1]}; "
                "pass data with the same columns as used for fitting."
            )
        return _assign(X, self.centers)[0]

    def transform(self, X):
        """Squared Euclidean distances of each row of ``X`` to each centre, shape (n_obs, K)."""
        X = check_data(X)
        if X.shape[1] != self.centers.shape[1]:
            raise ValueError(
                f"X has {X.shape[1]} features but the centres have {self.centers.shape[1]}."
            )
        return _sq_dists(X, self.centers)


# --------------------------------------------------------------------------------------
# seeding and Lloyd
# --------------------------------------------------------------------------------------


def _kmeans_plusplus(X, n_components, rng, n_local_trials=None, n_threads=1, executor=None):
    """Greedy k-means++ seeding, as scikit-learn's ``_kmeans_plusplus``.

    The first centre is a uniformly drawn row; each next one is the best (lowest
    potential, i.e. sum of squared distances to the nearest centre) of
    ``n_local_trials = 2 + int(log K)`` rows drawn with probability proportional to
    the squared distance to the nearest centre chosen so far. Distances are exact
    (direct sums of squares, in a fused numba pass: no (trials, N) temporaries).

    Returns the centres (K, D), their row indices (K,) and whether the potential
    reached zero before all centres were chosen (fewer distinct points than K).
    """
    n, d = X.shape
    if n_local_trials is None:
        n_local_trials = 2 + int(np.log(n_components))
    centers = np.empty((n_components, d))
    indices = np.full(n_components, -1, dtype=np.int64)
    first = int(rng.integers(n))
    centers[0] = X[first]
    indices[0] = first
    closest = np.full(n, np.inf)
    n_blocks, parts = _split_blocks(n, n_threads if executor is not None else 1)
    part = np.empty((n_blocks, n_local_trials))

    def potentials(rows, update):
        p = part[:, : len(rows)]
        ct = np.ascontiguousarray(X[rows].T)
        _run_blocks(_pp_kernel, parts, executor, X, ct, closest, p, update)
        return p.sum(axis=0)

    pot = float(potentials([first], True)[0])
    degenerate = False
    for c in range(1, n_components):
        if pot <= 0.0:
            degenerate = True
        rand_vals = rng.uniform(size=n_local_trials) * pot
        cand = np.searchsorted(np.cumsum(closest), rand_vals)
        np.clip(cand, None, n - 1, out=cand)
        cand_pot = potentials(cand, False)
        best = int(np.argmin(cand_pot))
        pot = float(potentials([cand[best]], True)[0])
        centers[c] = X[cand[best]]
        indices[c] = cand[best]
    return centers, indices, degenerate


def _lloyd(X, centers_init, max_iter, tol_abs, n_threads=1, executor=None):
    """Lloyd iterations from ``centers_init``, as scikit-learn's ``_kmeans_single_lloyd``.

    ``X`` should be centred (column means subtracted), as scikit-learn does, so that
    the ``||c||^2 - 2 x.c`` assignment criterion loses no precision. Each iteration
    is a blocked BLAS product ``X @ centers.T`` and a numba kernel (see _LloydPass);
    once fewer than ``_HAMERLY_SWITCH * n`` labels change per iteration, the exact
    assignment switches to Hamerly's bounds (_HamerlyPass), which give the same labels
    with far fewer distance computations.
    Unless the labels stopped changing, a final assignment makes the labels match the
    returned centres; the inertia is then summed exactly as ``||x - c_label||^2``.

    Returns labels, inertia, centres, n_iter, converged, n_relocated.
    """
    n = X.shape[0]
    k = centers_init.shape[0]
    centers = np.array(centers_init, dtype=np.float64, order="C", copy=True)
    labels = np.full(n, -1, dtype=np.int64)
    upper = np.empty(n)
    lower = np.empty(n)
    blas_pass = _LloydPass(X, k, n_threads, executor, upper, lower)
    hamerly_pass = None
    want_bounds = False
    converged = strict = False
    n_relocated = 0
    i = 0
    for i in range(max_iter):  # noqa: B007 (i is used after the loop)
        if hamerly_pass is not None:
            sums, counts, n_changed = hamerly_pass(centers, labels)
        else:
            sums, counts, n_changed = blas_pass(centers, labels, want_bounds)
            if want_bounds:
                # few labels change now: the bounds this pass left for these centres
                # let Hamerly's pass skip most distance computations from here on
                np.sqrt(upper, out=upper)
                np.sqrt(lower, out=lower)
                hamerly_pass = _HamerlyPass(X, k, n_threads, executor, upper, lower, centers)
            want_bounds = n_changed < _HAMERLY_SWITCH * n
        empty = np.flatnonzero(counts == 0)
        if empty.size:
            min_dist = np.einsum("nd,nd->n", X - centers[labels], X - centers[labels])
            n_relocated += _relocate_empty(X, labels, min_dist, sums, counts, empty)
        new = centers.copy()
        filled = counts > 0
        new[filled] = sums[filled] / counts[filled, None]
        shift_tot = float(((new - centers) ** 2).sum())
        centers = new
        if n_changed == 0:  # strict convergence: the labels did not change
            strict = converged = True
            break
        if shift_tot <= tol_abs:
            converged = True
            break
    if not strict:
        # a final assignment so that the labels match the returned centres
        (hamerly_pass or blas_pass)(centers, labels)
    inertia = _inertia_kernel(X, centers, labels)
    return labels, inertia, centers, i + 1, converged, n_relocated


def _relocate_empty(X, labels, min_dist, sums, counts, empty):
    """Re-seed empty clusters with the points farthest from their assigned centres.

    As scikit-learn: each empty cluster takes one of the farthest points (its sums
    and count move from its old cluster to the empty one; labels are not changed
    until the next assignment). Returns the number of clusters re-seeded.
    """
    n_empty = empty.size
    if min_dist.max() == 0.0:
        # more clusters than distinct points: nothing to gain; keep the old centres
        return 0
    far = np.argsort(-min_dist, kind="stable")[:n_empty]
    for new_id, idx in zip(empty, far, strict=True):
        old_id = labels[idx]
        sums[old_id] -= X[idx]
        counts[old_id] -= 1.0
        sums[new_id] = X[idx]
        counts[new_id] = 1.0
    return n_empty


def _check_init(init, n_components, n_features):
    if isinstance(init, str):
        if init != "k-means++":
            raise ValueError(
                f"init must be 'k-means++' or an array of initial centres with shape "
                f"({n_components}, {n_features}); got {init!r}."
            )
        return None
    arr = np.asarray(init, dtype=np.float64)
    if arr.shape != (n_components, n_features):
        raise ValueError(
            f"init as an array must have shape (n_components, n_features) = "
            f"({n_components}, {n_features}); got shape {arr.shape}."
        )
    if not np.isfinite(arr).all():
        raise ValueError("init contains NaN or infinite values; give finite initial centres.")
    return np.ascontiguousarray(arr)


def _check_int(value, name, minimum):
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an integer >= {minimum}; got {value!r}.")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}; got {value}.")
    return int(value)


# --------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------


def kmeans(
    X,
    n_components,
    *,
    n_init=10,
    max_iter=300,
    tol=1e-4,
    init="k-means++",
    random_seed=None,
    progress=False,
):
    """k-means clustering: greedy k-means++ seeding, Lloyd iterations, restarts.

    Parameters
    ----------
    X : array_like or pandas.DataFrame, shape (n_obs, n_features)
        Data.
    n_components : int
        Number of clusters K, ``1 <= K <= n_obs``.
    n_init : int, default 10
        Number of runs from independent k-means++ seedings; the run with the lowest
        inertia is returned. With an array ``init`` a single run is made: Lloyd's
        algorithm is deterministic, so restarts from the same centres would repeat it
        exactly (``n_init`` then changes nothing in the result; ``result.n_init`` is 1).
    max_iter : int, default 300
        Maximum Lloyd iterations per run.
    tol : float, default 1e-4
        A run stops when the sum over centres of the squared centre shift is at most
        ``tol * mean(var(X, axis=0))`` (scikit-learn's rule), or when the labels stop
        changing. ``tol=0`` runs until the labels are stable.
    init : {"k-means++"} or array_like, shape (n_components, n_features)
        Seeding method, or explicit initial centres (then a single run is made).
    random_seed : int or numpy.random.Generator, optional
        Seed. Restarts use independent child streams (``Generator.spawn``).
    progress : bool, default False
        Print one line per run to stderr.

    Returns
    -------
    KMeansResult
        ``centers`` (K, D), ``labels`` (N,), ``inertia``, ``n_iter``, ``converged``;
        ``predict(X)`` assigns new data.

    Warns
    -----
    ConvergenceWarning
        If the returned run hit ``max_iter``.
    DegenerateDataWarning
        If the data have fewer distinct points than ``n_components`` (some centres
        then coincide; the output is still finite).

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0.0, 0.0], [0.1, 0.0], [5.0, 5.0], [5.1, 5.0]])
    >>> res = kmeans(X, 2, random_seed=0)
    >>> sorted(res.centers[:, 0].round(2).tolist())
    [0.05, 5.05]
    >>> bool(res.labels[0] == res.labels[1] != res.labels[2])
    True
    """
    X = check_data(X)
    n, d = X.shape
    k = check_n_components(n_components, n)
    n_init = _check_int(n_init, "n_init", 1)
    max_iter = _check_int(max_iter, "max_iter", 1)
    tol = check_positive(tol, "tol", strict=False)
    init_centers = _check_init(init, k, d)
    if init_centers is not None and n_init != 1:
        # an explicit initialisation is deterministic: restarts would repeat it
        n_init = 1
    rng = check_random_state(random_seed)
    tol_abs = float(np.mean(np.var(X, axis=0)) * tol) if tol > 0 else 0.0
    # work on centred data (as scikit-learn does): the assignment criterion
    # ||c||^2 - 2 x.c is then accurate however far the data are from the origin
    x_mean = X.mean(axis=0)
    Xc = X - x_mean

    degenerate = False
    best = None
    # threads: numba's configured count (NUMBA_NUM_THREADS), for large enough problems
    n_threads = numba.get_num_threads() if n * k * d >= _PARALLEL_MIN_WORK else 1
    executor = ThreadPoolExecutor(n_threads) if n_threads > 1 else None
    # parallelism comes from a thread pool (the kernels release the GIL; idle workers
    # sleep): numba's OpenMP threads were measured to spin and slow down a busy machine
    try:
        streams = rng.spawn(n_init) if init_centers is None else [rng]
        for r, stream in enumerate(streams):
            if init_centers is None:
                start, _, deg = _kmeans_plusplus(
                    Xc, k, stream, n_threads=n_threads, executor=executor
                )
                degenerate |= deg
            else:
                start = init_centers - x_mean
            labels, inertia, centers, n_iter, conv, _ = _lloyd(
                Xc, start, max_iter, tol_abs, n_threads, executor
            )
            if progress:
                print(
                    f"kmeans: run {r + 1}/{len(streams)}: inertia {inertia:.6g}, "
                    f"{n_iter} iterations{'' if conv else ' (not converged)'}",
                    file=sys.stderr,
                    flush=True,
                )
            if best is None or inertia < best[1]:
                best = (labels, inertia, centers, n_iter, conv, start)
    finally:
        if executor is not None:
            executor.shutdown()
    labels, inertia, centers, n_iter, conv, start = best

    if not degenerate and k > 1:
        # coinciding centres (e.g. from an explicit init) also signal degenerate data
        dc = _sq_dists(centers, centers)
        np.fill_diagonal(dc, np.inf)
        degenerate = bool((dc == 0).any())
    if degenerate:
        warn(
            f"X has fewer distinct points than n_components={k}; some centres coincide and "
            "some clusters are empty. Use fewer components or remove duplicated points.",
            DegenerateDataWarning,
        )
    if not conv:
        warn(
            f"kmeans did not converge in max_iter={max_iter} iterations (tol={tol}); "
            "increase max_iter or tol.",
            ConvergenceWarning,
        )
    return KMeansResult(
        centers=centers + x_mean,
        labels=labels,
        inertia=inertia,
        n_iter=int(n_iter),
        converged=bool(conv),
        n_init=len(streams),
        init_centers=init_centers.copy() if init_centers is not None else start + x_mean,
    )


# --------------------------------------------------------------------------------------
# the zero-variance limit of EM
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class SoftKMeansResult:
    """Result of :func:`soft_kmeans`.

    Attributes
    ----------
    centers : ndarray, shape (K, D)
        Responsibility-weighted means at the fixed point.
    responsibilities : ndarray, shape (N, K)
        ``softmax(-beta/2 * ||x - c_k||^2)`` at the returned centres.
    n_iter : int
        EM iterations run.
    converged : bool
        Whether the stopping rule was met before ``max_iter``.
    beta : float
        Inverse variance of the components.
    """

    centers: np.ndarray
    responsibilities: np.ndarray
    n_iter: int
    converged: bool
    beta: float

    @property
    def labels(self):
        """Most responsible component of each observation, shape (N,)."""
        return np.argmax(self.responsibilities, axis=1)


def _soft_responsibilities(X, centers, beta):
    """Log-space softmax of ``-beta/2 * ||x - c||^2`` over components."""
    logits = _sq_dists(X, centers)
    # subtract the row minimum first: the largest logit is exactly 0 and beta * 0 = 0,
    # so nothing overflows to NaN even when beta * distance overflows to inf.
    logits -= logits.min(axis=1, keepdims=True)
    logits *= -0.5 * beta
    np.exp(logits, out=logits)
    logits /= logits.sum(axis=1, keepdims=True)
    return logits


def soft_kmeans(X, centers, *, beta, max_iter=1000, tol=1e-10):
    """EM for equal-weight Gaussians with a fixed isotropic covariance ``(1/beta) I``.

    Only the means are estimated: the E-step gives responsibilities
    ``r_nk = softmax_k(-beta/2 * ||x_n - c_k||^2)`` (computed in log space, so any
    ``beta`` up to ``inf``-like values is stable) and the M-step sets
    ``c_k = sum_n r_nk x_n / sum_n r_nk``. As ``beta -> inf`` this is Lloyd's
    algorithm (see :func:`em_kmeans_limit`).

    Parameters
    ----------
    X : array_like, shape (n_obs, n_features)
        Data.
    centers : array_like, shape (n_components, n_features)
        Initial centres.
    beta : float
        Inverse of the component variance (``eps = 1 / beta``), in 1 / (data units)^2.
    max_iter : int, default 1000
        Maximum EM iterations.
    tol : float, default 1e-10
        Stop when the sum of squared centre shifts is at most ``tol * mean(var(X, axis=0))``
        (0 stops only when the centres no longer change).

    Returns
    -------
    SoftKMeansResult
        ``centers`` (K, D), ``responsibilities`` (N, K) at those centres, ``n_iter``,
        ``converged``.

    Notes
    -----
    A component whose total responsibility underflows to exactly 0 keeps its centre
    (the M-step is undefined there); this can only happen for very large ``beta``,
    where it is also what Lloyd's algorithm does with an empty cluster before
    re-seeding.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0.0], [1.0], [10.0], [11.0]])
    >>> res = soft_kmeans(X, [[0.0], [10.0]], beta=1e6)
    >>> res.centers.ravel().tolist()
    [0.5, 10.5]
    """
    X = check_data(X)
    n, d = X.shape
    c = np.array(centers, dtype=np.float64, order="C", copy=True)
    if c.ndim != 2 or c.shape[1] != d:
        raise ValueError(
            f"centers must have shape (n_components, {d}) to match X; got shape {c.shape}."
        )
    check_n_components(c.shape[0], n, name="centers.shape[0]")
    if not np.isfinite(c).all():
        raise ValueError("centers contains NaN or infinite values; give finite centres.")
    beta = check_positive(beta, "beta", allow_inf=False)
    max_iter = _check_int(max_iter, "max_iter", 1)
    tol = check_positive(tol, "tol", strict=False)
    tol_abs = float(np.mean(np.var(X, axis=0)) * tol)
    converged = False
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007
        resp = _soft_responsibilities(X, c, beta)
        nk = resp.sum(axis=0)
        new = c.copy()
        ok = nk > 0
        new[ok] = (resp.T @ X)[ok] / nk[ok, None]
        shift = float(((new - c) ** 2).sum())
        c = new
        if shift <= tol_abs:
            converged = True
            break
    if not converged:
        warn(
            f"soft_kmeans did not converge in max_iter={max_iter} iterations (beta={beta:g}); "
            "increase max_iter or tol.",
            ConvergenceWarning,
        )
    resp = _soft_responsibilities(X, c, beta)
    return SoftKMeansResult(
        centers=c, responsibilities=resp, n_iter=it, converged=converged, beta=beta
    )


@dataclass(frozen=True, eq=False)
class KMeansLimitResult:
    """Result of :func:`em_kmeans_limit`: soft EM fixed points over a sequence of eps.

    Attributes
    ----------
    epsilons : ndarray, shape (E,)
        Component variances, in the order given.
    responsibilities : ndarray, shape (E, N, K)
        Soft-EM responsibilities at each eps.
    centers : ndarray, shape (E, K, D)
        Soft-EM centres at each eps.
    n_iter : ndarray of int, shape (E,)
        EM iterations at each eps.
    max_abs_deviation : ndarray, shape (E,)
        ``max |responsibilities - onehot(kmeans labels)|`` at each eps.
    center_error : ndarray, shape (E,)
        ``max |centers - kmeans centers|`` at each eps.
    kmeans : KMeansResult
        Lloyd's algorithm from the same initial centres.
    init_centers : ndarray, shape (K, D)
    """

    epsilons: np.ndarray
    responsibilities: np.ndarray
    centers: np.ndarray
    n_iter: np.ndarray
    max_abs_deviation: np.ndarray
    center_error: np.ndarray
    kmeans: KMeansResult
    init_centers: np.ndarray

    def to_dataframe(self):
        """One row per eps: ``eps``, ``beta``, ``max_abs_deviation``, ``center_error``,
        ``n_iter`` and the mean assignment entropy (nats) -- ready to plot."""
        import pandas as pd

        r = self.responsibilities
        with np.errstate(divide="ignore", invalid="ignore"):
            ent = -np.where(r > 0, r * np.log(r), 0.0).sum(axis=2).mean(axis=1)
        return pd.DataFrame(
            {
                "eps": self.epsilons,
                "beta": 1.0 / self.epsilons,
                "max_abs_deviation": self.max_abs_deviation,
                "center_error": self.center_error,
                "mean_entropy": ent,
                "n_iter": self.n_iter,
            }
        )


def em_kmeans_limit(X, centers, epsilons=None, *, max_iter=5000, tol=1e-10):
    """Soft assignments hardening into k-means as the component variance eps shrinks.

    For each ``eps`` runs :func:`soft_kmeans` with ``beta = 1/eps`` from ``centers``,
    and compares the fixed point with Lloyd's algorithm (:func:`kmeans` with
    ``init=centers``, ``tol=0``) from the same centres.

    Parameters
    ----------
    X : array_like, shape (n_obs, n_features)
        Data.
    centers : array_like, shape (n_components, n_features)
        Common initial centres.
    epsilons : array_like of float, shape (E,), optional
        Component variances in data units squared. Default: ``mean(var(X, axis=0))``
        times ``logspace(0, -6, 13)``.
    max_iter, tol
        Passed to :func:`soft_kmeans` (EM is slow to converge near the eps where
        clusters split, hence the larger default ``max_iter``); ``max_iter`` also bounds
        Lloyd's algorithm.

    Returns
    -------
    KMeansLimitResult
        Arrays over eps (responsibilities (E, N, K), centres (E, K, D), deviations
        from the k-means partition); ``to_dataframe()`` for plotting.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0.0], [1.0], [4.0], [5.0]])
    >>> lim = em_kmeans_limit(X, [[0.0], [5.0]], epsilons=[10.0, 1e-3])
    >>> bool(lim.max_abs_deviation[0] > 0.1), bool(lim.max_abs_deviation[1] < 1e-12)
    (True, True)
    """
    X = check_data(X)
    c0 = np.array(centers, dtype=np.float64, order="C", copy=True)
    if c0.ndim != 2 or c0.shape[1] != X.shape[1]:
        raise ValueError(
            f"centers must have shape (n_components, {X.shape[1]}); got shape {c0.shape}."
        )
    if epsilons is None:
        epsilons = float(np.mean(np.var(X, axis=0))) * np.logspace(0, -6, 13)
    eps = np.atleast_1d(np.asarray(epsilons, dtype=np.float64))
    if eps.ndim != 1 or eps.size == 0 or not np.all(np.isfinite(eps)) or np.any(eps <= 0):
        raise ValueError(
            f"epsilons must be a non-empty 1-D sequence of finite positive variances; got {eps}."
        )
    km = kmeans(X, c0.shape[0], init=c0, n_init=1, tol=0.0, max_iter=max_iter)
    onehot = np.zeros((X.shape[0], c0.shape[0]))
    onehot[np.arange(X.shape[0]), km.labels] = 1.0
    resp, cents, iters, dev, cerr = [], [], [], [], []
    for e in eps:
        res = soft_kmeans(X, c0, beta=1.0 / e, max_iter=max_iter, tol=tol)
        resp.append(res.responsibilities)
        cents.append(res.centers)
        iters.append(res.n_iter)
        dev.append(float(np.abs(res.responsibilities - onehot).max()))
        cerr.append(float(np.abs(res.centers - km.centers).max()))
    return KMeansLimitResult(
        epsilons=eps,
        responsibilities=np.stack(resp),
        centers=np.stack(cents),
        n_iter=np.asarray(iters, dtype=np.int64),
        max_abs_deviation=np.asarray(dev),
        center_error=np.asarray(cerr),
        kmeans=km,
        init_centers=c0,
    )
