"""`make bench`: every performance target of the project in one table, anchors measured in the same run.

Each row runs in a fresh process (so that its peak memory is its own) and prints: the figure, the
value measured, its anchor (a reference measured here and now, whose cost does not depend on this
project's code), the ratio value / anchor, the target, and the process's peak memory. The first
line says which machine and how loaded it was: on a shared machine absolute times move, the
ratios much less.

    python benchmarks/bench_all.py [--only smsge eval-market ...] [--skip eval-msmt] [--methods age transg]
                                   [--torchreid-src DIR]   # a deep-person-reid checkout: the Cython anchor row
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
FIELD = ("lstm-1", "lstm-m", "posegait", "age", "sgela", "mg-scr", "simmc", "spc-mgr", "hi-mpc", "transg", "mocos",
         "stgcn", "ctrgcn", "gaittr", "gpgait")


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _best(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def _lstm_anchor(threads: int) -> float:
    """Training windows/s of a plain 2 x 256 nn.LSTM with Adam on f = 6 windows, batch 128."""
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    x = torch.randn(1536, 6, 60)
    net = torch.nn.LSTM(60, 256, num_layers=2, batch_first=True)
    opt = torch.optim.Adam(net.parameters(), lr=5e-4)

    def epoch():
        for s in range(0, len(x), 128):
            out, _ = net(x[s : s + 128])
            loss = out[:, -1].pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()

    return len(x) / _best(epoch, 2)


# ------------------------------------------------------------------------------ rows (one process each)


def row_smsge() -> dict:
    """SM-SGE's ias fold at the release's recipe (per-scale Adam, lengths 1..f, its balanced set):
    one steady-state epoch of the model's own ``train_epoch``, split as the other learned rows."""
    import numpy as np

    import bench_field_methods
    import bench_smsge
    from reid_bench.samples import class_balanced_order

    # IAS-sized training data (about 1,800 windows of 11 people); the release trains on its
    # class-balanced set built from them, 1.7 times as many windows an epoch
    windows = len(class_balanced_order(np.arange(1800) % 11, 64, np.random.default_rng(0)))
    # the budget's matrix products at this machine's best matrix-product rate: no loop is faster.
    # The rate is taken before and after the timed epochs and the higher kept (a shared host's
    # slow minute would otherwise lower the bound below what the epochs achieved).
    peak = bench_smsge.peak_matmul_gflops(2)
    r = bench_field_methods.epoch_breakdown("smsge", "cpu", 2, train=bench_smsge.ias_like_windows(1800))
    lstm = bench_smsge.bench("cpu", 2, 6, windows, "full")["lstm_epoch_s"]
    budget = 120 * r["epoch_s"] / 60
    step_gflops, peak = bench_smsge.step_gflops(1800), max(peak, bench_smsge.peak_matmul_gflops(2))
    bound = 120 * (windows // 64) * step_gflops / peak / 60
    return {"figure": f"SM-SGE, IAS configuration, release budget (120 epochs of its {windows:,}-window balanced set), 2 threads",
            "value": f"{budget:.1f} min per fold ({r['epoch_s']:.1f} s an epoch)",
            "anchor": f"its floor: {120 * r['floor_s'] / 60:.1f} min", "ratio": r["ratio"],
            "target": "< 18 min per fold (set for 1,800 windows an epoch), or why not", "peak_mb": _peak_mb(),
            "note": f"its matrix products ({step_gflops:.1f} GFLOP a step) at this machine's peak float32 "
                    f"matrix-product rate ({peak:.0f} GFLOP/s on 2 threads): {bound:.1f} min; "
                    f"its LSTM calls alone (forward and backward): {120 * lstm / 60:.1f} min, "
                    f"{budget * 60 / (120 * lstm):.2f}x; largest ops: "
                    + ", ".join(f"{op} {100 * share:.0f}%" for op, share in r["largest"])
                    + f"; outside torch ops {100 * r['outside_ops']:.0f}%; "
                    "2 threads on busy cores oversubscribe: measure on an idle machine"}


def row_method(name: str) -> dict:
    import bench_field_methods

    cls_defaults = bench_field_methods.default_epochs(name)
    r = bench_field_methods.epoch_breakdown(name, "cpu", 2)
    budget_min = cls_defaults * r["epoch_s"] / 60
    shares = ", ".join(f"{op} {100 * share:.0f}%" for op, share in r["largest"])
    parts = [f"largest ops: {shares}", f"outside torch ops {100 * r['outside_ops']:.0f}%"]
    if r["clustering"]:
        parts.append(f"clustering {100 * r['clustering']:.0f}% of the epoch")
    if r["random"]:
        parts.append(f"random draws {100 * r['random']:.0f}%")
    if hasattr(bench_field_methods.config_class(name)(), "train_precision"):
        bf16 = bench_field_methods.steady_epoch_s(name, "cpu", 2, train_precision="bfloat16")
        parts.append(f"train_precision=bfloat16 (a named switch, scores in its README): "
                     f"{cls_defaults * bf16 / 60:.1f} min, {r['epoch_s'] / bf16:.2f}x faster")
    return {"figure": f"{name}: its default (release) budget on synth-gait fold A, 2 threads",
            "value": f"{budget_min:.1f} min ({_budget_in_words(name, cls_defaults, r['epoch_s'])})",
            "anchor": f"its floor: {cls_defaults * r['floor_s'] / 60:.1f} min", "ratio": r["ratio"],
            "target": "<= 1.3x its floor, or why not", "peak_mb": _peak_mb(), "note": "; ".join(parts)}


def _budget_in_words(name: str, epochs: float, epoch_s: float) -> str:
    import bench_field_methods

    defaults = bench_field_methods.config_class(name)()
    if hasattr(defaults, "iterations"):  # trained by iterations: timed in epochs of EPOCH_ITERATIONS
        per_batch = epoch_s / bench_field_methods.EPOCH_ITERATIONS
        return f"{defaults.iterations:,} it. of {defaults.identities} x {defaults.per_identity} at {per_batch:.3f} s"
    return f"{epochs:g} ep. of {epoch_s:.2f} s"


def _problem(queries: int, gallery: int, ids: int, cameras: int):
    import numpy as np
    import torch

    import bench_metrics

    args = argparse.Namespace(queries=queries, gallery=gallery, ids=ids, cameras=cameras, dim=256, noise=2.0)
    qf, gf, qp, gp, qc, gc = bench_metrics.make_problem(args, np.random.default_rng(0))
    dist = torch.from_numpy(qf) @ torch.from_numpy(gf).T
    dist.neg_().add_(1.0)  # in place: the process's peak memory before evaluation is one matrix
    return dist.numpy(), qp, gp, qc, gc


def row_eval_market() -> dict:
    import numpy as np

    from reid_bench.metrics import evaluate_retrieval

    dist, qp, gp, qc, gc = _problem(3368, 19732, 750, 6)
    took = _best(lambda: evaluate_retrieval(dist, qp, gp, qc, gc), 3)
    anchor = _best(lambda: np.argsort(dist, axis=1), 1)
    return {"figure": "evaluate_retrieval, Market-1501 scale (3,368 x 19,732), CPU", "value": f"{took:.2f} s",
            "anchor": f"one np.argsort of the matrix: {anchor:.2f} s", "ratio": took / anchor,
            "target": "<= 0.2 s", "peak_mb": _peak_mb()}


def row_eval_market_cython() -> dict:
    """Against torchreid's compiled ``evaluate_cy`` (built from a checkout), at equal results."""
    import numpy as np

    import torchreid_cython
    from reid_bench.metrics import evaluate_retrieval

    figure = "evaluate_retrieval vs torchreid's Cython evaluate_cy, Market scale, CPU"
    src = torchreid_cython.source_from(None)
    if src is None:
        return {"figure": figure, "value": "not run: pass --torchreid-src (a deep-person-reid checkout)",
                "anchor": "—", "ratio": None, "target": "faster at equal results", "peak_mb": None}
    evaluate_cy = torchreid_cython.load(src)
    dist, qp, gp, qc, gc = _problem(3368, 19732, 750, 6)
    ours = evaluate_retrieval(dist, qp, gp, qc, gc)
    cmc_cy, map_cy = evaluate_cy(dist, qp, gp, qc, gc, 50)
    diff = max(abs(ours.mAP - float(map_cy)), float(np.abs(ours.cmc - cmc_cy).max()))
    took = _best(lambda: evaluate_retrieval(dist, qp, gp, qc, gc), 3)
    anchor = _best(lambda: evaluate_cy(dist, qp, gp, qc, gc, 50), 2)
    return {"figure": figure, "value": f"{took:.2f} s", "anchor": f"evaluate_cy: {anchor:.2f} s", "ratio": took / anchor,
            "target": "faster at equal results", "peak_mb": _peak_mb(),
            "note": f"mAP {ours.mAP:.6f} vs {float(map_cy):.6f}; largest mAP/CMC difference {diff:.1e} (float32 sums)"}


def row_eval_msmt() -> dict:
    from reid_bench.metrics import evaluate_retrieval

    dist, qp, gp, qc, gc = _problem(11659, 82161, 1041, 15)
    before = _peak_mb()
    t0 = time.perf_counter()
    evaluate_retrieval(dist, qp, gp, qc, gc)
    took = time.perf_counter() - t0
    matrix_mb = dist.nbytes / 2**20
    return {"figure": "evaluate_retrieval, MSMT17 scale (11,659 x 82,161), CPU", "value": f"{took:.1f} s",
            "anchor": f"the distance matrix itself: {matrix_mb:.0f} MB", "ratio": None,
            "target": "< 5 s, memory bounded by chunking",
            "peak_mb": _peak_mb(), "note": f"+{max(0.0, _peak_mb() - before):.0f} MB above the matrix"}


def row_knn() -> dict:
    import numpy as np
    import torch
    from scipy.spatial import cKDTree

    from reid_bench import pointops

    torch.set_num_threads(1)
    x = torch.rand(4, 4096, 3)
    ours = _best(lambda: pointops.knn(x, x, 16), 3)
    pts = x.numpy()
    tree = _best(lambda: [cKDTree(p).query(p, 16, workers=1) for p in pts], 3)
    brute = _best(lambda: pointops.knn(x, x, 16, method="brute"), 2)
    same = float(np.mean(pointops.knn(x, x, 16).numpy() == pointops.knn(x, x, 16, method="brute").numpy()))
    return {"figure": "kNN over xyz (OG-Net), 4 clouds x 4,096 points, k = 16, 1 thread",
            "value": f"{ours * 1000:.0f} ms (brute force {brute * 1000:.0f} ms)", "anchor": f"scipy cKDTree: {tree * 1000:.0f} ms",
            "ratio": ours / tree, "target": "within 2x of cKDTree", "peak_mb": _peak_mb(),
            "note": f"{100 * same:.2f}% of indices equal to brute force (the rest: near-ties)"}


def row_ball() -> dict:
    import torch

    from reid_bench import pointops

    torch.set_num_threads(1)
    x = torch.rand(4, 4096, 3)
    q = x[:, :1024]
    radii, ks = (0.05, 0.1, 0.2), (16, 32, 64)
    together = _best(lambda: pointops.ball_query_multi(q, x, radii, ks), 3)
    apart = _best(lambda: [pointops.ball_query(q, x, r, k) for r, k in zip(radii, ks)], 3)
    return {"figure": "multi-scale ball grouping, 3 radii, 1,024 centres of 4,096 points, 4 clouds, 1 thread",
            "value": f"{together * 1000:.0f} ms", "anchor": f"one ball query per radius: {apart * 1000:.0f} ms",
            "ratio": together / apart, "target": "one distance computation per grouping", "peak_mb": _peak_mb()}


def _cpu_seconds(cmd: list[str]) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(cmd, check=True, capture_output=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def row_info() -> dict:
    cli = [sys.executable, "-m", "reid_bench.cli"]
    # the least disturbed of 5 (CPU time only grows with interference: cache misses, page faults)
    info = min(_cpu_seconds(cli + ["info", "smsge"]) for _ in range(5))
    torch = min(_cpu_seconds([sys.executable, "-c", "import torch"]) for _ in range(5))
    return {"figure": "reid-bench info smsge, CPU time (least of 5)", "value": f"{info:.2f} s", "anchor": f"import torch: {torch:.2f} s",
            "ratio": info / torch, "target": "<= 1.2x", "peak_mb": None}


def row_list() -> dict:
    cli = [sys.executable, "-m", "reid_bench.cli"]
    listed = min(_cpu_seconds(cli + ["list"]) for _ in range(5))
    scan = min(_cpu_seconds([sys.executable, "-c", "import importlib.metadata as m; m.entry_points()"])
               for _ in range(5))
    return {"figure": "reid-bench list, CPU time (least of 5)", "value": f"{listed:.2f} s",
            "anchor": f"python + one entry-point scan: {scan:.2f} s", "ratio": listed / scan, "target": "one scan",
            "peak_mb": None}


def row_run_fixed() -> dict:
    """The run's own timing line: how long after the process started the first trial began."""
    with tempfile.TemporaryDirectory() as tmp:
        uri = f"sqlite:///{Path(tmp) / 'mlflow.db'}"
        cmd = [sys.executable, "-m", "reid_bench.cli", "run", "--model", "d13", "--protocol", "synth-gait", "--seeds",
               "1", "--fold", "A", "--no-ray", "--rerun", "--tracking-uri", uri, "--results-dir", tmp, "--json",
               "--set", "data.identities=6"]
        subprocess.run(cmd, check=True, capture_output=True, cwd=tmp)  # creates the store
        firsts, walls = [], []
        for _ in range(3):
            t0 = time.perf_counter()
            out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=tmp)
            walls.append(time.perf_counter() - t0)
            firsts.append(json.loads(out.stdout)["overhead"]["first_trial_s"])
        t1 = time.perf_counter()  # the same request without --rerun: everything finished, nothing runs
        subprocess.run([c for c in cmd if c != "--rerun"], check=True, capture_output=True, cwd=tmp)
        skipped = time.perf_counter() - t1
    first, wall = _median(firsts), _median(walls)
    torch_wall = _median([_wall([sys.executable, "-c", "import torch"]) for _ in range(3)])
    return {"figure": "run: process start to its first trial (existing store, --no-ray), the run's timing line",
            "value": f"{first:.1f} s (exit after {wall:.1f} s; a finished one skipped: {skipped:.1f} s)",
            "anchor": f"python -c 'import torch': {torch_wall:.1f} s", "ratio": first / torch_wall,
            "target": "< 5 s, in the run's timing line", "peak_mb": None,
            "note": "median of 3; the imports of torch (needed by the trial) and mlflow (genai, pandas, fastapi "
                    "come with it) are most of it"}


def row_no_ray_threads() -> dict:
    """One small trial in process (--no-ray) and through a local Ray instance, 1 CPU per trial:
    the same torch thread count, so about the same compute (before, --no-ray used torch's
    default and one in-process evaluation took 11 times its Ray time)."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "reid_bench.cli", "run", "--model", "gait-lstm", "--protocol", "synth-gait",
               "--seeds", "1", "--fold", "A", "--rerun", "--cpus-per-trial", "1", "--tracking-uri",
               f"sqlite:///{Path(tmp) / 'mlflow.db'}", "--results-dir", tmp, "--json", "--set", "epochs=3"]
        seen = {}
        for label, extra in (("in process", ["--no-ray"]), ("Ray", [])):
            out = subprocess.run(cmd + extra, check=True, capture_output=True, text=True, cwd=tmp)
            trial = json.loads(out.stdout)["trials"][0]
            seen[label] = (trial["timings"]["trial_s"], trial["torch_threads"])
    (own_s, own_threads), (ray_s, ray_threads) = seen["in process"], seen["Ray"]
    return {"figure": "--no-ray trial against the same trial under Ray (gait-lstm, 3 epochs, 1 CPU per trial)",
            "value": f"{own_s:.1f} s, {own_threads} torch thread(s)", "anchor": f"under Ray: {ray_s:.1f} s, "
            f"{ray_threads} thread(s)", "ratio": own_s / ray_s, "target": "the same thread policy as under Ray",
            "peak_mb": None}


def row_threads() -> dict:
    """Two cores, two ways: one trial on two threads, or two one-thread trials side by side (two
    seeds under Ray). Each trial reports the torch threads it ran with, so the row also shows
    that a trial uses the cores it was given."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "reid_bench.cli", "run", "--model", "lstm-m", "--protocol", "synth-gait",
               "--fold", "A", "--rerun", "--tracking-uri", f"sqlite:///{Path(tmp) / 'mlflow.db'}",
               "--results-dir", tmp, "--json", "--set", "epochs=6"]
        seen = {}
        for label, extra in (("one", ["--seeds", "1", "--cpus-per-trial", "2"]),
                             ("two", ["--seeds", "2", "--cpus-per-trial", "1"])):
            out = json.loads(subprocess.run(cmd + extra, check=True, capture_output=True, text=True, cwd=tmp).stdout)
            seen[label] = [(t["timings"]["trial_s"], t["torch_threads"]) for t in out["trials"]]
    one_s, one_threads = seen["one"][0]
    two_s = max(s for s, _ in seen["two"])
    threads_two = sorted({t for _, t in seen["two"]})
    return {"figure": "two cores: two 1-thread trials side by side vs one 2-thread trial (lstm-m, 6 epochs, Ray)",
            "value": f"{two_s:.1f} s for both ({'/'.join(map(str, threads_two))} torch thread each)",
            "anchor": f"one trial: {one_s:.1f} s ({one_threads} torch threads)", "ratio": two_s / (2 * one_s),
            "target": "a trial uses the cores it was given; ratio < 1: side by side is the better use",
            "peak_mb": None, "note": "ratio: the two trials' time over two one-after-another 2-thread trials"}


def row_fit_once() -> dict:
    """`make demo`'s SM-SGE request (synth-gait, both folds, its CPU budget), one seed: folds A and B
    learn on the same training session, so one fit serves both. The anchor is the trial structure
    before: one fit per fold (two invocations, --fold A and --fold B), measured here and now."""
    with tempfile.TemporaryDirectory() as tmp:
        base = [sys.executable, "-m", "reid_bench.cli", "run", "--model", "smsge", "--protocol", "synth-gait",
                "--seeds", "1", "--no-ray", "--rerun", "--tracking-uri", f"sqlite:///{Path(tmp) / 'mlflow.db'}",
                "--results-dir", tmp, "--json"]
        subprocess.run([*base, "--set", "epochs=0", "--fold", "A"], check=True, capture_output=True, cwd=tmp)  # warm
        t0 = time.perf_counter()
        together = json.loads(subprocess.run(base, check=True, capture_output=True, text=True, cwd=tmp).stdout)
        joint = time.perf_counter() - t0
        separate, alone = 0.0, {}
        for fold in ("A", "B"):
            t0 = time.perf_counter()
            out = json.loads(subprocess.run([*base, "--fold", fold], check=True, capture_output=True, text=True,
                                            cwd=tmp).stdout)
            separate += time.perf_counter() - t0
            alone[fold] = out["trials"][0]["metrics"]
    same = all(t["metrics"] == alone[t["fold"]] for t in together["trials"])
    return {"figure": "fit once per training set: make demo's SM-SGE request (synth-gait A+B, 1 seed, --no-ray)",
            "value": f"{joint:.0f} s, one fit for both folds", "anchor": f"one fit per fold: {separate:.0f} s",
            "ratio": joint / separate, "target": "one fit per (training set, seed), equal scores", "peak_mb": None,
            "note": f"scores equal to the separate fits: {same}; IAS-A/B and BIWI-S/W share a fit the same way, so "
                    "the SM-SGE row's minutes per fold are now minutes per fold pair"}


def _wall(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - t0


ROWS = {"smsge": row_smsge, "eval-market": row_eval_market, "eval-market-cython": row_eval_market_cython,
        "eval-msmt": row_eval_msmt, "knn": row_knn,
        "ball": row_ball, "info": row_info, "list": row_list, "run-fixed": row_run_fixed,
        "no-ray-threads": row_no_ray_threads, "threads": row_threads, "fit-once": row_fit_once}


def _machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    return f"{cpu}, {os.cpu_count()} cores, load average {load}; Python {platform.python_version()}, torch {torch.__version__}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", help=f"rows: {', '.join(ROWS)}, field")
    parser.add_argument("--skip", nargs="+", default=[])
    parser.add_argument("--methods", nargs="+", default=list(FIELD), help="the field rows' methods")
    parser.add_argument("--torchreid-src", help="a deep-person-reid checkout: its Cython evaluate_cy becomes the "
                        "anchor of the eval-market-cython row (default: $TORCHREID_SRC; without one the row is not run)")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.torchreid_src:
        os.environ["TORCHREID_SRC"] = str(Path(args.torchreid_src).resolve())
    if args.one:
        name, _, method = args.one.partition(":")
        print(json.dumps(row_method(method) if name == "field" else ROWS[name]()))
        return
    wanted = args.only or [*ROWS, "field"]
    jobs = [n for n in ROWS if n in wanted and n not in args.skip]
    if "field" in wanted and "field" not in args.skip:
        jobs += [f"field:{m}" for m in args.methods]
    print(f"machine: {_machine()}")
    header = f"{'figure':<92} {'value':<52} {'anchor':<44} {'ratio':>7} {'peak MB':>8}  target"
    print(header)
    print("-" * len(header))
    for job in jobs:
        proc = subprocess.run([sys.executable, __file__, "--one", job], capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"{job:<92} failed: {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.returncode}")
            continue
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        ratio = "—" if r["ratio"] is None else f"{r['ratio']:.2f}"
        peak = "—" if r["peak_mb"] is None else f"{r['peak_mb']:.0f}"
        print(f"{r['figure']:<92} {r['value']:<52} {r['anchor']:<44} {ratio:>7} {peak:>8}  {r['target']}"
              + (f"  ({r['note']})" if r.get("note") else ""), flush=True)
    print("ratio: value / anchor (for throughput rows: this project's windows/s over the anchor's); peak MB: the "
          "row's own process (the MSMT row holds its 3.6 GB distance matrix)")


if __name__ == "__main__":
    main()
