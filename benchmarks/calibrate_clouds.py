"""Calibrate the synthetic clouds: chance vs CloudHistogram vs PointNetLite.

Both cloud protocols are rebuilt by hand (as ``synth-market`` and ``synth-market-to-duke``
do): train on subset "train" of domain market; query = subset "query", gallery = subset
"gallery" without junk (person -1) of domain market (synth-market) or of a separately
generated domain duke with the same data options (market->duke); features are L2-normalised,
distances Euclidean, and ``evaluate_retrieval`` applies Market-1501's rules (same person and
camera is junk).

    python benchmarks/calibrate_clouds.py [--seeds 0 1 2] [--models chance cloud_hist pointnet_lite]
        [--vary-data] [--set occlusion=0.2 ...] [--hist-set bands=8 ...] [--pn-set epochs=20 ...]

By default the data are the protocols' (CloudOptions defaults, data seed 0) and the trial
seed changes the model only; ``--vary-data`` uses the trial seed as the data seed too.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

try:
    import reid_bench  # noqa: F401
except ImportError:  # running from a source tree that was never installed
    sys.exit("import reid_bench failed: pip install -e . (or put the package on PYTHONPATH)")

from reid_bench.api import DataSpec, SampleSet, TrialContext
from reid_bench.samples import clouds_to_sampleset, label_map
from reid_bench.synthetic.clouds import CloudOptions, generate_clouds

PROTOCOLS = ("synth-market", "synth-market-to-duke")


def _parse_sets(pairs: list[str], cls: type) -> dict[str, object]:
    defaults = cls()
    names = {f.name for f in dataclasses.fields(cls)}
    out: dict[str, object] = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        if key not in names:
            raise SystemExit(f"{cls.__name__} has no field {key!r}")
        kind = type(getattr(defaults, key))
        if kind is bool:
            out[key] = value.lower() in ("1", "true", "yes")
        elif kind is tuple:
            out[key] = tuple(int(v) for v in value.split(","))
        else:
            out[key] = kind(value)
    return out


def _test_split(records, labels, num_points: int, seed: int) -> tuple[SampleSet, SampleSet]:
    query = [r for r in records if r.subset == "query"]
    gallery = [r for r in records if r.subset == "gallery" and r.person != -1]
    return (
        clouds_to_sampleset(query, labels, num_points=num_points, seed=seed),
        clouds_to_sampleset(gallery, labels, num_points=num_points, seed=seed),
    )


def build_protocols(options: CloudOptions, seed: int = 0) -> tuple[SampleSet, dict[str, tuple], dict[str, float]]:
    """The train split and {protocol: (query, gallery)}, plus generation times (s)."""
    times = {}
    t0, c0 = time.perf_counter(), time.process_time()
    market = generate_clouds(dataclasses.replace(options, domain="market"))
    times["market"], times["market_cpu"] = time.perf_counter() - t0, time.process_time() - c0
    t0, c0 = time.perf_counter(), time.process_time()
    duke = generate_clouds(dataclasses.replace(options, domain="duke"))
    times["duke"], times["duke_cpu"] = time.perf_counter() - t0, time.process_time() - c0
    train_recs = [r for r in market if r.subset == "train"]
    labels = label_map(r.person for r in train_recs)
    train = clouds_to_sampleset(train_recs, labels, seed=seed)
    p = train.data.shape[1]
    tests = {
        "synth-market": _test_split(market, labels, p, seed),
        "synth-market-to-duke": _test_split(duke, labels, p, seed),
    }
    return train, tests, times


def evaluate(qf: np.ndarray, gf: np.ndarray, query: SampleSet, gallery: SampleSet) -> dict[str, float]:
    from reid_bench.metrics import evaluate_retrieval

    qf = qf / np.maximum(np.linalg.norm(qf, axis=1, keepdims=True), 1e-12)
    gf = gf / np.maximum(np.linalg.norm(gf, axis=1, keepdims=True), 1e-12)
    sq = (qf * qf).sum(1)[:, None] + (gf * gf).sum(1)[None, :] - 2.0 * qf @ gf.T
    distmat = np.sqrt(np.maximum(sq, 0.0))
    res = evaluate_retrieval(distmat, query.person, gallery.person, query.camera, gallery.camera,
                             max_rank=50, filter_same_camera=True)
    d = res.as_dict()
    return {"rank1": 100 * d["rank1"], "rank5": 100 * d["rank5"], "mAP": 100 * d["mAP"], "mINP": 100 * d["mINP"]}


def make_model(name: str, num_classes: int, num_points: int, hist_set: dict, pn_set: dict):
    spec = DataSpec("pointcloud", num_classes=num_classes, num_points=num_points)
    if name == "cloud_hist":
        from reid_bench_baselines.cloud_hist import CloudHistogram, CloudHistogramConfig

        return CloudHistogram(CloudHistogramConfig(**hist_set), spec)
    if name == "pointnet_lite":
        from reid_bench_baselines.pointnet_lite import PointNetLite, PointNetLiteConfig

        return PointNetLite(PointNetLiteConfig(**pn_set), spec)
    raise SystemExit(f"unknown model {name!r}")


def run(name: str, train: SampleSet, tests: dict, seed: int, hist_set: dict, pn_set: dict, verbose: bool):
    """{protocol: metrics} and (fit seconds, fit CPU seconds, embed seconds)."""
    t0, c0 = time.perf_counter(), time.process_time()
    if name == "chance":
        rng = np.random.default_rng(seed)
        feats = {k: (rng.standard_normal((len(q), 64)), rng.standard_normal((len(g), 64))) for k, (q, g) in tests.items()}
        return {k: evaluate(*feats[k], *tests[k]) for k in tests}, (0.0, 0.0, time.perf_counter() - t0)
    model = make_model(name, train.num_classes, train.data.shape[1], hist_set, pn_set)
    curve: list[tuple[int, float]] = []

    def report(epoch, **m):
        curve.append((epoch, m.get("loss", float("nan"))))
        if verbose:
            print(f"    epoch {epoch:3d} " + " ".join(f"{k}={v:.3f}" for k, v in m.items()), flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        ctx = TrialContext(device="cpu", seed=seed, checkpoint_dir=Path(tmp), report=report)
        model.fit(train, ctx)
    fit_s, fit_cpu = time.perf_counter() - t0, time.process_time() - c0
    t0 = time.perf_counter()
    out = {}
    for k, (q, g) in tests.items():
        out[k] = evaluate(model.embed(q), model.embed(g), q, g)
    return out, (fit_s, fit_cpu, time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--models", nargs="+", default=["chance", "cloud_hist", "pointnet_lite"])
    ap.add_argument("--vary-data", action="store_true", help="use the trial seed as data seed too")
    ap.add_argument("--set", dest="sets", action="append", default=[], help="CloudOptions field=value")
    ap.add_argument("--hist-set", action="append", default=[], help="CloudHistogramConfig field=value")
    ap.add_argument("--pn-set", action="append", default=[], help="PointNetLiteConfig field=value")
    ap.add_argument("--verbose", action="store_true", help="print per-epoch training curves")
    args = ap.parse_args(argv)

    opts = CloudOptions(**_parse_sets(args.sets, CloudOptions))
    hist_set: dict = {}
    pn_set: dict = {}
    if args.hist_set:
        from reid_bench_baselines.cloud_hist import CloudHistogramConfig

        hist_set = _parse_sets(args.hist_set, CloudHistogramConfig)
    if args.pn_set:
        from reid_bench_baselines.pointnet_lite import PointNetLiteConfig

        pn_set = _parse_sets(args.pn_set, PointNetLiteConfig)
    print(f"options: {opts}")
    results: dict[tuple[str, str], list[dict[str, float]]] = {}
    timings: dict[str, list[tuple[float, float]]] = {}
    cached = None
    for seed in args.seeds:
        if cached is None or args.vary_data:
            data_opts = dataclasses.replace(opts, seed=seed) if args.vary_data else opts
            train, tests, gen = build_protocols(data_opts)
            cached = (train, tests)
            q, g = tests["synth-market"]
            qd, gd = tests["synth-market-to-duke"]
            print(
                f"data seed {data_opts.seed}: generated market {gen['market']:.2f}s (cpu {gen['market_cpu']:.2f}s), "
                f"duke {gen['duke']:.2f}s (cpu {gen['duke_cpu']:.2f}s); "
                f"train {len(train)} clouds / {train.num_classes} ids; market query {len(q)} gallery {len(g)}; "
                f"duke query {len(qd)} gallery {len(gd)}",
                flush=True,
            )
        train, tests = cached
        for name in args.models:
            out, t = run(name, train, tests, seed, hist_set, pn_set, args.verbose)
            timings.setdefault(name, []).append(t)
            for proto, m in out.items():
                results.setdefault((name, proto), []).append(m)
            summary = "  ".join(f"{p}: R1 {m['rank1']:.1f} mAP {m['mAP']:.1f}" for p, m in out.items())
            print(f"seed {seed} {name:14s} fit {t[0]:6.1f}s (cpu {t[1]:6.1f}s) embed {t[2]:5.1f}s  {summary}", flush=True)

    print()
    print("| model | protocol | Rank-1 | Rank-5 | mAP | mINP | fit s (cpu s) | embed s | n |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in args.models:
        ts = np.asarray(timings[name])
        for proto in PROTOCOLS:
            rows = results[(name, proto)]
            cell = lambda key: f"{np.mean([r[key] for r in rows]):.1f} ± {np.std([r[key] for r in rows]):.1f}"  # noqa: E731
            print(
                f"| {name} | {proto} | {cell('rank1')} | {cell('rank5')} | {cell('mAP')} | {cell('mINP')} "
                f"| {ts[:, 0].mean():.1f} ({ts[:, 1].mean():.1f}) | {ts[:, 2].mean():.1f} | {len(rows)} |"
            )


if __name__ == "__main__":
    main()
