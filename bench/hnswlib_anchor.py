#!/usr/bin/env python3
"""The graph-index anchor for galleries too large for ../shared/bench/ann_anchor.py
on a small machine: hnswlib (HNSW, M links, efConstruction) and faiss
IndexFlatIP (the exact top-k, and its speed), without faiss's IndexHNSWFlat,
whose build alone takes about 1,000 s per 100,000 rows of the benchmark's
data on one core here (BENCHMARKS.md) and so hours at a million.

    go run ./tools/bench -anchors -ann-anchor bench/hnswlib_anchor.py -n 1000000 -threads 1 ann

or by hand on the .npy files tools/bench -write-npy DIR writes:

    /usr/bin/python3 bench/hnswlib_anchor.py --base DIR/base.npy --queries DIR/queries.npy [--threads 1] [--k 10] [--m 32] [--efc 200]

Prints `name value unit` lines named as ann_anchor.py names them (tag
n<N>_d<D>_k<K>_t<T>): faiss_flat_qps_<tag>; hnswlib_build_s_<tag>;
hnswlib_ef<E>_recall_<tag> and _qps_ for each ef swept; hnswlib_qps_r90/
r95/r99_<tag> (interpolated); hnswlib_mem_<tag>, the growth of the
process's resident memory over the build (MiB), which ann_anchor.py does
not measure; and with --adds, hnswlib_add_s_<tag>, the time to add those
rows (in one call, on --threads threads). Needs numpy, faiss and hnswlib (Debian: python3-faiss,
python3-hnswlib; the /usr/bin/python3 here has them)."""
import argparse, time
import numpy as np

p = argparse.ArgumentParser()
p.add_argument("--base", required=True); p.add_argument("--queries", required=True)
p.add_argument("--threads", type=int, default=1); p.add_argument("--k", type=int, default=10)
p.add_argument("--m", type=int, default=32); p.add_argument("--efc", type=int, default=200)
p.add_argument("--adds", help="float32 (na, d) .npy: rows added after the sweep, timed (hnswlib_add_s_<tag>)")
a = p.parse_args()
T, K = a.threads, a.k
xb = np.ascontiguousarray(np.load(a.base), dtype=np.float32)
xq = np.ascontiguousarray(np.load(a.queries), dtype=np.float32)
n, d = xb.shape
tag = f"n{n}_d{d}_k{K}_t{T}"


def out(name, v, unit):
    print(f"{name} {v:.4g} {unit}", flush=True)


def rss_mib():
    """The resident memory now (not the peak), from /proc."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / (1 << 20)


def at_recall(points, r):
    pts = sorted(points)
    for (r0, q0), (r1, q1) in zip(pts, pts[1:]):
        if r0 <= r <= r1:
            return q0 + (q1 - q0) * (r - r0) / max(r1 - r0, 1e-12)
    return pts[0][1] if pts and pts[0][0] >= r else float("nan")


def recall(ids, gt):
    return float(np.mean([len(set(i[:K]) & set(g[:K])) / K for i, g in zip(ids, gt)]))


import faiss
import hnswlib

faiss.omp_set_num_threads(T)
flat = faiss.IndexFlatIP(d)
flat.add(xb)
t = time.perf_counter()
_, gt = flat.search(xq, K)
out(f"faiss_flat_qps_{tag}", len(xq) / (time.perf_counter() - t), "queries/s")
del flat

before = rss_mib()
t = time.perf_counter()
h = hnswlib.Index(space="ip", dim=d)
h.init_index(max_elements=n, M=a.m, ef_construction=a.efc)
h.set_num_threads(T)
h.add_items(xb)
out(f"hnswlib_build_s_{tag}", time.perf_counter() - t, "s")
out(f"hnswlib_mem_{tag}", rss_mib() - before, "MiB")
pts = []
for ef in (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512):
    h.set_ef(max(ef, K))
    t = time.perf_counter()
    ids, _ = h.knn_query(xq, k=K)
    dt = time.perf_counter() - t
    r = recall(ids, gt)
    pts.append((r, len(xq) / dt))
    out(f"hnswlib_ef{ef}_recall_{tag}", r, "recall")
    out(f"hnswlib_ef{ef}_qps_{tag}", len(xq) / dt, "queries/s")
for r in (0.90, 0.95, 0.99):
    out(f"hnswlib_qps_r{int(r * 100)}_{tag}", at_recall(pts, r), "queries/s")
if a.adds:
    xa = np.ascontiguousarray(np.load(a.adds), dtype=np.float32)
    t = time.perf_counter()
    h.resize_index(n + len(xa))
    h.add_items(xa, np.arange(n, n + len(xa)))
    out(f"hnswlib_add_s_{tag}", time.perf_counter() - t, "s")
