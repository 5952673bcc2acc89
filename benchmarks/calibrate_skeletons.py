"""Calibrate the synthetic walkers: chance vs D13 vs GaitLSTM on the synth-gait protocol.

The protocol is rebuilt by hand (as ``synth-gait`` does): closed-set, train on session
"train", test on session "A" (fold A) or "B" (fold B); windows of 6 frames, train stride 3,
test stride 6, skeletons centred on joint 0; every model's embeddings train the harness's
probe (MLP, ProbeConfig defaults) whose class scores give Rank-1, nAUC and sequence accuracy.

    python benchmarks/calibrate_skeletons.py [--seeds 0 1 2] [--models chance d13 gait_lstm]
        [--vary-data] [--set noise=0.03 --set clothing=0.05 ...] [--lstm-set epochs=20 ...]

By default the data are the protocol's (WalkerOptions defaults, data seed 0) and the trial
seed changes the model and the probe; ``--vary-data`` uses the trial seed as data seed too.
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

from reid_bench.api import DataSpec, TrialContext
from reid_bench.layouts import KINECT_V1_20
from reid_bench.metrics import closed_set_metrics
from reid_bench.probe import ProbeConfig, train_probe_and_score
from reid_bench.samples import label_map, windows_from_sequences
from reid_bench.synthetic.skeletons import WalkerOptions, generate_walkers

WINDOW, TRAIN_STRIDE, TEST_STRIDE = 6, 3, 6


def _parse_sets(pairs: list[str], cls: type) -> dict[str, object]:
    types = {f.name: f.type for f in dataclasses.fields(cls)}
    defaults = cls()
    out: dict[str, object] = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        if key not in types:
            raise SystemExit(f"{cls.__name__} has no field {key!r}")
        kind = type(getattr(defaults, key))
        out[key] = (value.lower() in ("1", "true", "yes")) if kind is bool else kind(value)
    return out


def build_folds(options: WalkerOptions) -> tuple[dict[str, tuple], float]:
    t0 = time.perf_counter()
    records = generate_walkers(options)
    gen_s = time.perf_counter() - t0
    train_recs = [r for r in records if r.session == "train"]
    labels = label_map(r.person for r in train_recs)
    train = windows_from_sequences(train_recs, WINDOW, TRAIN_STRIDE, KINECT_V1_20, labels)
    folds = {}
    for fold in ("A", "B"):
        test_recs = [r for r in records if r.session == fold]
        test = windows_from_sequences(test_recs, WINDOW, TEST_STRIDE, KINECT_V1_20, labels)
        folds[fold] = (train, test)
    return folds, gen_s


def run_model(
    name: str, train, tests: dict[str, object], seed: int, lstm_overrides: dict[str, object]
) -> dict[str, tuple[dict[str, float], float]]:
    """Fit once on the (shared) training split, evaluate every fold. The time per fold is what
    one harness trial costs: fit + embed + probe + metrics."""
    t0 = time.perf_counter()
    n_cls = train.num_classes
    model = None
    if name != "chance":
        spec = DataSpec("skeleton", num_classes=n_cls, layout=KINECT_V1_20, window=WINDOW)
        if name == "d13":
            from reid_bench_handcrafted.d13 import D13, D13Config

            model = D13(D13Config(), spec)
        elif name == "gait_lstm":
            from reid_bench_baselines.gait_lstm import GaitLSTM, GaitLSTMConfig

            model = GaitLSTM(GaitLSTMConfig(**lstm_overrides), spec)
        else:
            raise SystemExit(f"unknown model {name!r}")
        with tempfile.TemporaryDirectory() as tmp:
            model.fit(train, TrialContext(device="cpu", seed=seed, checkpoint_dir=Path(tmp)))
    fit_s = time.perf_counter() - t0
    out = {}
    for fold, test in tests.items():
        t1 = time.perf_counter()
        if model is None:
            scores = np.random.default_rng(seed).random((len(test), n_cls))
        else:
            tr, te = model.embed(train), model.embed(test)
            scores = train_probe_and_score(tr, train.labels, te, ProbeConfig(), seed=seed)
        res = closed_set_metrics(scores, test.labels, sequence_ids=test.group)
        metrics = {"rank1": res.rank1, "nAUC": res.nAUC, "seq_acc": res.sequence_accuracy or 0.0}
        out[fold] = (metrics, fit_s + time.perf_counter() - t1)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--models", nargs="+", default=["chance", "d13", "gait_lstm"])
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--vary-data", action="store_true", help="use the trial seed as the data seed too")
    ap.add_argument("--set", dest="sets", action="append", default=[], help="WalkerOptions field=value")
    ap.add_argument("--lstm-set", dest="lstm_sets", action="append", default=[], help="GaitLSTMConfig field=value")
    args = ap.parse_args(argv)

    overrides = _parse_sets(args.sets, WalkerOptions)
    if args.threads > 0:
        import torch

        torch.set_num_threads(args.threads)
    from reid_bench_baselines.gait_lstm import GaitLSTMConfig

    lstm_overrides = _parse_sets(args.lstm_sets, GaitLSTMConfig)
    results: dict[tuple[str, str], list[tuple[dict[str, float], float]]] = {}
    cache: dict[int, dict] = {}
    for seed in args.seeds:
        data_seed = seed if args.vary_data else WalkerOptions().seed
        if data_seed not in cache:
            folds, gen_s = build_folds(WalkerOptions(**{**overrides, "seed": data_seed}))
            cache[data_seed] = folds
            tr, te_a = folds["A"]
            print(
                f"data seed {data_seed}: generated in {gen_s:.2f}s; train windows {len(tr)}, "
                f"A windows {len(te_a)}, B windows {len(folds['B'][1])}",
                flush=True,
            )
        folds = cache[data_seed]
        train = folds["A"][0]
        tests = {fold: test for fold, (_, test) in folds.items()}
        for name in args.models:
            for fold, (res, secs) in run_model(name, train, tests, seed, lstm_overrides).items():
                results.setdefault((name, fold), []).append((res, secs))
                print(
                    f"  seed {seed} fold {fold} {name:9s} rank1 {100 * res['rank1']:5.1f}  nAUC {100 * res['nAUC']:5.1f}"
                    f"  seq {100 * res['seq_acc']:5.1f}  ({secs:.1f}s)",
                    flush=True,
                )

    print()
    print("| model | fold | Rank-1 (%) | nAUC (%) | seq. acc. (%) | s/trial |")
    print("|---|---|---|---|---|---|")
    for name in args.models:
        for fold in ("A", "B"):
            rows = results.get((name, fold), [])
            if not rows:
                continue

            def ms(key: str) -> str:
                v = 100 * np.array([r[key] for r, _ in rows])
                return f"{v.mean():.1f} ± {v.std():.1f}"

            secs = np.mean([s for _, s in rows])
            print(f"| {name} | {fold} | {ms('rank1')} | {ms('nAUC')} | {ms('seq_acc')} | {secs:.1f} |")
    print(f"\n(n = {len(args.seeds)} seeds; mean ± population std; data {'seed = trial seed' if args.vary_data else 'seed 0'})")


if __name__ == "__main__":
    main()
