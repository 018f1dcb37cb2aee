#!/usr/bin/env python3
"""Exact top-k cosine search one query at a time with numpy, as a service
answers an upload: a gallery of N x D L2-normalised float32 embeddings, each
of Q queries scored alone (gallery @ query, a GEMV), then argpartition and a
sort of the K. The same data as ../shared/bench/search_anchor.py (seed 0).
    python3 bench/search_one_anchor.py --n 100000 --d 128 --q 200 --k 50
Prints `numpy_search_one_n<N>_d<D>_k<K> <queries/s> queries/s` (best of 3)."""
import argparse, time
import numpy as np
p = argparse.ArgumentParser()
p.add_argument("--n", type=int, default=100000); p.add_argument("--d", type=int, default=128)
p.add_argument("--q", type=int, default=200); p.add_argument("--k", type=int, default=50)
a = p.parse_args()
rng = np.random.default_rng(0)
g = rng.standard_normal((a.n, a.d), dtype=np.float32); g /= np.linalg.norm(g, axis=1, keepdims=True)
q = rng.standard_normal((a.q, a.d), dtype=np.float32); q /= np.linalg.norm(q, axis=1, keepdims=True)
def search():
    out = np.empty((a.q, a.k), dtype=np.int64)
    for i in range(a.q):
        sims = g @ q[i]
        idx = np.argpartition(-sims, a.k)[:a.k]
        out[i] = idx[np.argsort(-sims[idx])]
    return out
search()
best = min((lambda t: (search(), time.perf_counter() - t)[1])(time.perf_counter()) for _ in range(3))
print(f"numpy_search_one_n{a.n}_d{a.d}_k{a.k} {a.q / best:.1f} queries/s")
