"""The k-means engine: numba kernels, Lloyd and Hamerly assignment passes, thread pools.

Used by :mod:`bayesmix.cluster._kmeans` (the public :func:`~bayesmix.kmeans`), which
follows scikit-learn's ``KMeans(algorithm="lloyd")`` step for step. All kernels use
``cache=True`` and no fastmath.

* the data are centred first (by the caller), as scikit-learn does;
* an assignment step is, per block of 2,048 rows, one BLAS product ``X @ C.T`` and
  the argmin of ``||c||^2 - 2 x.c`` (scikit-learn's criterion), accumulating the
  per-block sums for the centre update (:class:`_LloydPass`);
* once few labels change per iteration, the step switches to Hamerly's bounds (an
  upper bound on the distance to the own centre, a lower bound on the distance to any
  other), which skip most distance computations and give the same labels as the full
  step, ties still going to the lowest index (:class:`_HamerlyPass`);
* k-means++ potentials (:func:`_pp_kernel`), the inertia and nearest-centre
  assignment (:func:`_assign`) use exact direct sums of squares;
* blocks are split between Python threads (the kernels release the GIL; idle
  threads sleep, not spin); block sums are reduced in block order, so results do
  not depend on the number of threads;
* Lloyd's centre update and stopping rule (:func:`_lloyd_update`) and the plain numpy
  nearest-centre labels (:func:`nearest`) are shared with the Dask k-means
  (:mod:`bayesmix.cluster._dask`) and the EM starts (:mod:`bayesmix.em._starts`).
"""

from __future__ import annotations

import numba
import numpy as np

from bayesmix.core._gaussian import row_chunks

_CHUNK = 256  # rows per work item of the serial kernels (per-chunk partial sums)
_BLOCK = 2048  # rows per block of Lloyd's assignment step (fixed: results do not
# depend on the number of threads)
_SLACK = 1.0 + 1e-9  # relative safety margin on Hamerly's bounds


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
    X, G, x_sq, c_sq, labels, sums, counts, upper, lower, bounds, w
):  # pragma: no cover
    """Lloyd assignment of one block of rows from ``G = X @ centers.T``.

    The nearest centre minimises ``||c||^2 - 2 x.c`` (scikit-learn's criterion; the
    ``||x||^2`` term is common to all centres; ties go to the lowest index).
    Overwrites labels (B,), sums (K, D) and counts (K,) of the block, and squared
    Hamerly bounds: ``upper`` >= squared distance to the assigned centre, ``lower``
    <= squared distance to any other centre, widened by a generous bound on the
    rounding error of the expansion. Returns the number of labels that changed. Releases the GIL.
    ``w`` (B,) are the sample weights of the rows (ones when unweighted: multiplying by
    1.0 is exact, so unweighted results are unchanged): counts and sums are weighted.
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
        wi = w[i]
        counts[best] += wi
        for j in range(d):
            sums[best, j] += wi * X[i, j]
    return n_changed


class _LloydPass:
    """One Lloyd assignment over all rows: blocked BLAS products and a numba kernel.

    Rows are cut into fixed blocks of ``_BLOCK`` (a (block, K) product stays in cache
    and is small enough for BLAS to run it single-threaded); the blocks are split
    between ``n_threads`` Python threads (BLAS and the kernel release the GIL; idle
    threads sleep rather than spin, which matters on a busy machine). Per-block sums
    are reduced in block order, so results do not depend on the number of threads.
    """

    def __init__(self, X, n_components, n_threads, executor, upper, lower, w):
        self.X = X
        self.w = w
        n = X.shape[0]
        self.x_sq = np.einsum("nd,nd->n", X, X)
        self.upper = upper
        self.lower = lower
        self.n_blocks, parts = _split_blocks(n, n_threads)
        self.block_sums = np.empty((self.n_blocks, n_components, X.shape[1]))
        self.block_counts = np.empty((self.n_blocks, n_components))
        self.changed = np.empty(self.n_blocks, dtype=np.int64)
        self.parts = [range(b0, b1) for b0, b1 in parts]
        self.executor = executor if len(parts) > 1 else None
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
                self.w[start:stop],
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
    w,
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
    computations once few labels change. Per-block sums and counts (weighted by the
    sample weights ``w``, ones when unweighted), and the number of changed labels per
    block, are written for a reduction in block order.
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
            wi = w[i]
            counts[a] += wi
            for j in range(d):
                sums[a, j] += wi * X[i, j]
        changed[b] = n_changed


class _HamerlyPass:
    """Lloyd's assignment step with Hamerly's bounds, blocks split between threads.

    Rows are cut into fixed blocks of ``_BLOCK``; contiguous runs of blocks go to
    ``n_threads`` Python threads (the numba kernel releases the GIL; idle threads
    sleep rather than spin, which matters on a busy machine). Per-block sums are
    reduced in block order, so results do not depend on the number of threads.
    """

    def __init__(self, X, n_components, n_threads, executor, upper, lower, w, prev=None):
        self.X = X
        self.w = w
        n = X.shape[0]
        self.n_blocks, self.parts = _split_blocks(n, n_threads)
        self.block_sums = np.empty((self.n_blocks, n_components, X.shape[1]))
        self.block_counts = np.empty((self.n_blocks, n_components))
        self.changed = np.empty(self.n_blocks, dtype=np.int64)
        # bounds valid for the centres ``prev`` (None: the first call computes them)
        self.upper = upper
        self.lower = lower
        self.prev = prev
        self.executor = executor if len(self.parts) > 1 else None

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
            self.w,
        )
        _run_blocks(_hamerly_kernel, self.parts, self.executor, self.X, *args)
        return self.block_sums.sum(axis=0), self.block_counts.sum(axis=0), int(self.changed.sum())


@numba.njit(cache=True, fastmath=False, nogil=True)
def _inertia_kernel(X, centers, labels, w):  # pragma: no cover
    """sum_i w_i ||X[i] - centers[labels[i]]||^2, per chunk then in a fixed order."""
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
            acc += w[i] * s
        part[c] = acc
    total = 0.0
    for c in range(n_chunks):
        total += part[c]
    return total


@numba.njit(cache=True, fastmath=False, nogil=True)
def _pp_kernel(X, b_start, b_stop, ct, closest, part, update, w):  # pragma: no cover
    """k-means++ pass over blocks ``b_start..b_stop`` of ``_BLOCK`` rows.

    part[b, t] = sum over block b of w_i min(closest_i, ||x_i - ct[:, t]||^2); with
    ``update`` (a single candidate) also sets closest_i to that minimum (unweighted).
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
                part[b, t] += w[i] * v
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


def nearest(X, centers):
    """Index of the nearest centre (squared Euclidean distance, computed directly)."""
    labels = np.empty(X.shape[0], dtype=np.int64)
    for sl in row_chunks(X.shape[0], centers.size):
        labels[sl] = ((X[sl][:, None, :] - centers[None]) ** 2).sum(-1).argmin(1)
    return labels


def _lloyd_update(centers, sums, counts, n_changed, tol_abs):
    """Lloyd's centre update and scikit-learn's stopping rule (in-memory and Dask k-means).

    Returns ``(new centres, strict, converged)``: the new centres are the cluster means
    (an empty cluster, count 0, keeps its centre); ``strict`` when no label changed
    (``n_changed == 0``), ``converged`` then or when the summed squared centre shift is
    at most ``tol_abs``.
    """
    new = centers.copy()
    filled = counts > 0
    new[filled] = sums[filled] / counts[filled, None]
    if n_changed == 0:  # strict convergence: the labels did not change
        return new, True, True
    return new, False, float(((new - centers) ** 2).sum()) <= tol_abs


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


def _sq_dists_gaps(X, centers):
    """Squared distances (N, K) over each row's observed coordinates."""
    obs = ~np.isnan(X)
    X0 = np.where(obs, X, 0.0)
    return np.maximum(
        (X0**2).sum(1)[:, None] - 2.0 * X0 @ centers.T + obs.astype(float) @ (centers**2).T, 0.0
    )
