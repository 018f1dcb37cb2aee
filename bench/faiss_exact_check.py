#!/usr/bin/env python3
"""Checks that dmlgo's exact search finds the same top-k as faiss
IndexFlatIP on the same vectors: the `.npy` files dmlgo writes are read by
faiss as dmlgo reads them.

    go run ./tools/bench -n 20000 -nq 500 -adds 0 -write-npy /tmp/ann ann
    /usr/bin/python3 bench/faiss_exact_check.py --base /tmp/ann/base.npy \\
        --queries /tmp/ann/queries.npy --ids /tmp/ann/ours_exact_ids.npy [--k 10]

--base may also be the gallery `retrieve index ... -npy DIR` exports,
DIR/embeddings.npy (or DIR itself); --ids is then our exact top-k of it:
`go run ./tools/bench -base DIR/embeddings.npy -queries Q.npy -write-npy OUT ann`
writes OUT/ours_exact_ids.npy.

The base (n, d) and queries (nq, d) are float32, rows unit length (inner
product = cosine); --ids is int64 (nq, >= k), each row the gallery rows of
a query's best hits, best first. Tie-aware: at a position where our row
and faiss's differ, the two rows' scores (computed again in float64 with
numpy) must be equal within --tol (default 1e-5); our rows must be valid
and distinct. Prints `name value unit` lines:

    faiss_flat_qps_n…_t1 4800 queries/s           IndexFlatIP's search, timed
    faiss_exact_topk_agree 1 fraction             queries whose top-k agrees
    faiss_exact_topk_mismatch_queries 0 queries
    faiss_exact_topk_same_ids 0.9998 fraction     positions with the same row
    faiss_exact_topk_tie_swaps 1 positions        different row, equal score
    faiss_exact_topk_max_score_diff 1.2e-07 score largest float64 score
                                                  difference at a position
and exits 1 on a real mismatch (the first ones are described on stderr),
2 on unusable input. Needs numpy and faiss (Debian: python3-faiss; the
/usr/bin/python3 here has them).
"""
import argparse, os, sys
import numpy as np

p = argparse.ArgumentParser(description="dmlgo's exact top-k against faiss IndexFlatIP")
p.add_argument("--base", required=True, help="float32 (n, d) .npy, or a retrieve -npy export folder")
p.add_argument("--queries", required=True, help="float32 (nq, d) .npy")
p.add_argument("--ids", required=True, help="int64 (nq, k) .npy: our exact top-k rows")
p.add_argument("--k", type=int, default=0, help="positions compared (default: all columns of --ids)")
p.add_argument("--tol", type=float, default=1e-5, help="scores closer than this are a tie")
p.add_argument("--threads", type=int, default=1, help="faiss threads for the timed search (its queries/s is printed as ann_anchor.py prints it)")
a = p.parse_args()


def fail(msg):
    print(f"faiss_exact_check: {msg}", file=sys.stderr)
    sys.exit(2)


def load(path, what, ndim=2):
    try:
        x = np.load(path, allow_pickle=False)
    except Exception as e:  # a missing or malformed file
        fail(f"{what} {path}: {e}")
    if x.ndim != ndim:
        fail(f"{what} {path}: shape {x.shape}, want {ndim} dimensions")
    return x


base = os.path.join(a.base, "embeddings.npy") if os.path.isdir(a.base) else a.base
xb, xq, ours = load(base, "--base"), load(a.queries, "--queries"), load(a.ids, "--ids")
for x, path in ((xb, base), (xq, a.queries)):
    if x.dtype != np.float32:
        fail(f"{path}: dtype {x.dtype}, want float32")
    if not np.isfinite(x).all():
        fail(f"{path}: holds NaN or infinite values")
if not np.issubdtype(ours.dtype, np.integer):
    fail(f"{a.ids}: dtype {ours.dtype}, want int64")
n, d = xb.shape
nq = len(xq)
if xq.shape[1] != d:
    fail(f"{a.queries} has dimension {xq.shape[1]}, {base} has {d}")
if len(ours) != nq:
    fail(f"{a.ids} has {len(ours)} rows, {a.queries} has {nq} queries")
k = a.k or ours.shape[1]
if not 1 <= k <= min(ours.shape[1], n):
    fail(f"--k {k}: {a.ids} has {ours.shape[1]} columns, {base} {n} rows")
ours = ours[:, :k].astype(np.int64)
norms = np.linalg.norm(xb.astype(np.float64), axis=1)
if np.abs(norms - 1).max() > 1e-4:
    print(f"faiss_exact_check: {base}: rows are not unit length (norms {norms.min():.4g}..{norms.max():.4g}): "
          "comparing inner products as they are", file=sys.stderr)

import time
import faiss  # after the checks: a bad file fails fast without it

faiss.omp_set_num_threads(a.threads)
index = faiss.IndexFlatIP(d)
index.add(np.ascontiguousarray(xb))
t0 = time.perf_counter()
_, theirs = index.search(np.ascontiguousarray(xq), k)
print(f"faiss_flat_qps_n{n}_d{d}_k{k}_t{a.threads} {nq / (time.perf_counter() - t0):.4g} queries/s", flush=True)

bad_rows = (ours < 0) | (ours >= n)
dup = np.array([len(set(r)) != k for r in ours])
safe = np.where(bad_rows, 0, ours)


def scores(ids):
    """float64 scores (nq, k) of the rows ids (nq, k) for each query."""
    s = np.empty(ids.shape)
    for q0 in range(0, nq, 1024):
        q1 = min(q0 + 1024, nq)
        s[q0:q1] = np.einsum("qkd,qd->qk", xb[ids[q0:q1]].astype(np.float64), xq[q0:q1].astype(np.float64))
    return s


s_ours, s_theirs = scores(safe), scores(theirs)
same = ours == theirs
diff = np.abs(s_ours - s_theirs)
tie = ~same & (diff <= a.tol)
bad_pos = (~same & ~tie) | bad_rows
bad_query = bad_pos.any(axis=1) | dup
mismatch = int(bad_query.sum())


def out(name, v, unit):
    print(f"{name} {v:.4g} {unit}", flush=True)


out("faiss_exact_topk_agree", 1 - mismatch / nq, "fraction")
out("faiss_exact_topk_mismatch_queries", mismatch, "queries")
out("faiss_exact_topk_same_ids", same.mean(), "fraction")
out("faiss_exact_topk_tie_swaps", int(tie.sum()), "positions")
out("faiss_exact_topk_max_score_diff", float(np.where(bad_rows, 0, diff).max()), "score")
if mismatch:
    for q in np.flatnonzero(bad_query)[:5]:
        print(f"faiss_exact_check: query {q}: ours {ours[q].tolist()} scores {np.round(s_ours[q], 7).tolist()}; "
              f"faiss {theirs[q].tolist()} scores {np.round(s_theirs[q], 7).tolist()}", file=sys.stderr)
    print(f"faiss_exact_check: {mismatch} of {nq} queries differ from faiss beyond ties (tolerance {a.tol})", file=sys.stderr)
    sys.exit(1)
print(f"faiss_exact_check: our exact top-{k} of {nq} queries in {n} x {d} rows equals faiss IndexFlatIP's "
      f"({int(tie.sum())} positions swapped between rows of equal score)", file=sys.stderr)
