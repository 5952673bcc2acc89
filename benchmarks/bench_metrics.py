"""Time ``reid_bench.metrics.evaluate_retrieval`` against a per-query numpy loop.

The problem is Market-1501 sized by default (3368 queries x 19732 gallery),
with identity-structured features so queries have real matches, same-camera
junk and distractor identities that never appear as queries.

    python benchmarks/bench_metrics.py --repeat 3
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from reid_bench.metrics import evaluate_retrieval


def reference_market1501(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=50):
    """Plain loop with the Market-1501 rules and a stable argsort (the baseline)."""
    num_q, num_g = distmat.shape
    max_rank = min(max_rank, num_g)
    all_cmc, all_ap, all_inp = [], [], []
    for i in range(num_q):
        order = np.argsort(distmat[i], kind="stable")
        match = g_pids[order] == q_pids[i]
        junk = match & (g_camids[order] == q_camids[i])
        hits = match[~junk]
        if not hits.any():
            continue
        cum = np.cumsum(hits)
        pos = np.flatnonzero(hits)
        all_inp.append(cum[pos[-1]] / (pos[-1] + 1.0))
        all_ap.append(np.mean(cum[pos] / (pos + 1.0)))
        cmc = np.minimum(cum, 1).astype(np.float64)
        if cmc.size < max_rank:
            cmc = np.concatenate([cmc, np.ones(max_rank - cmc.size)])
        all_cmc.append(cmc[:max_rank])
    return np.mean(all_cmc, axis=0), float(np.mean(all_ap)), float(np.mean(all_inp)), len(all_ap)


def make_problem(args, rng: np.random.Generator):
    """Identity centres + camera shift + noise; distractor ids exist only in the gallery."""
    n_distract = max(1, args.ids // 5)
    centres = rng.standard_normal((args.ids + n_distract, args.dim)).astype(np.float32)
    cam_shift = rng.standard_normal((args.cameras, args.dim)).astype(np.float32)

    q_pids = rng.integers(0, args.ids, args.queries)
    q_cams = rng.integers(0, args.cameras, args.queries)
    n_distract_imgs = args.gallery // 7
    n_true = args.gallery - n_distract_imgs
    # every query identity gets gallery images (some from the query's own cameras -> junk)
    g_pids = np.concatenate(
        [
            np.resize(np.arange(args.ids), n_true),
            args.ids + rng.integers(0, n_distract, n_distract_imgs),
        ]
    )
    g_cams = rng.integers(0, args.cameras, args.gallery)
    perm = rng.permutation(args.gallery)
    g_pids, g_cams = g_pids[perm], g_cams[perm]

    def feats(pids, cams):
        x = centres[pids] + 0.5 * cam_shift[cams]
        x += args.noise * rng.standard_normal(x.shape).astype(np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    return feats(q_pids, q_cams), feats(g_pids, g_cams), q_pids, g_pids, q_cams, g_cams


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--queries", type=int, default=3368)
    p.add_argument("--gallery", type=int, default=19732)
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--cameras", type=int, default=6)
    p.add_argument("--ids", type=int, default=750)
    p.add_argument("--noise", type=float, default=2.0, help="per-image noise: 2 gives R1~0.97, mAP~0.7")
    p.add_argument("--max-rank", type=int, default=50)
    p.add_argument("--chunk-size", type=int, default=256)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads")
    p.add_argument("--skip-reference", action="store_true", help="do not time the numpy loop")
    p.add_argument("--device", default="cpu", help="where the distance matrix lives and the ranking runs")
    p.add_argument("--compare-cpu", action="store_true",
                   help="also rank the same matrix on CPU and print the difference (always on for a GPU device)")
    args = p.parse_args()
    cuda = args.device.startswith("cuda")

    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    qf, gf, q_pids, g_pids, q_cams, g_cams = make_problem(args, rng)

    t0 = time.perf_counter()
    dist_t = 1.0 - torch.from_numpy(qf).to(args.device) @ torch.from_numpy(gf).to(args.device).T  # cosine
    distmat = dist_t if cuda else dist_t.numpy()
    if cuda:
        torch.cuda.synchronize()
    t_dist = time.perf_counter() - t0

    def run_torch():
        return evaluate_retrieval(
            distmat, q_pids, g_pids, q_cams, g_cams, max_rank=args.max_rank, chunk_size=args.chunk_size
        )

    def best_of(fn, n):
        times, out = [], None
        for _ in range(n):
            t = time.perf_counter()
            out = fn()
            times.append(time.perf_counter() - t)
        return min(times), float(np.median(times)), out

    run_torch()  # warm-up (thread pool, allocator)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    t_best, t_med, res = best_of(run_torch, args.repeat)  # the metrics are Python floats: synchronised
    peak = f", peak {(torch.cuda.max_memory_allocated() - base) / 2**20:.0f} MB above the distance matrix" if cuda else ""

    print(
        f"problem: {args.queries} queries x {args.gallery} gallery, dim {args.dim}, "
        f"{args.cameras} cameras, {args.ids} ids, device {args.device}, torch threads {torch.get_num_threads()}{peak}"
    )
    print(
        f"result: R1 {res.rank(1):.4f}  mAP {res.mAP:.4f}  mINP {res.mINP:.4f}  "
        f"valid {res.num_valid_queries}/{res.num_queries}"
    )
    print(f"distmat (matmul, not in comparison): {t_dist:.3f} s")
    print()
    print(f"{'implementation':<28}{'best s':>10}{'median s':>10}{'speed-up':>10}")
    print(f"{'evaluate_retrieval (torch)':<28}{t_best:>10.3f}{t_med:>10.3f}{'':>10}")
    if cuda or args.compare_cpu:
        on_cpu = dist_t.cpu().numpy()
        c_best, _, cpu_res = best_of(
            lambda: evaluate_retrieval(on_cpu, q_pids, g_pids, q_cams, g_cams, max_rank=args.max_rank,
                                       chunk_size=args.chunk_size), 1)
        print(f"{'evaluate_retrieval on CPU':<28}{c_best:>10.3f}{c_best:>10.3f}{c_best / t_best:>9.1f}x")
        print(f"  vs {args.device}: max |diff| cmc {float(np.abs(res.cmc - cpu_res.cmc).max()):.2e}  "
              f"mAP {abs(res.mAP - cpu_res.mAP):.2e}  mINP {abs(res.mINP - cpu_res.mINP):.2e}")
    if not args.skip_reference:
        distmat = distmat.cpu().numpy() if cuda else distmat
        r_best, r_med, ref = best_of(
            lambda: reference_market1501(distmat, q_pids, g_pids, q_cams, g_cams, args.max_rank),
            args.repeat,
        )
        print(f"{'numpy per-query loop':<28}{r_best:>10.3f}{r_med:>10.3f}{r_best / t_best:>9.1f}x")
        print()
        print(
            "max |diff|: cmc {:.2e}  mAP {:.2e}  mINP {:.2e}  valid queries equal: {}".format(
                float(np.abs(res.cmc - ref[0]).max()),
                abs(res.mAP - ref[1]),
                abs(res.mINP - ref[2]),
                res.num_valid_queries == ref[3],
            )
        )


if __name__ == "__main__":
    main()
