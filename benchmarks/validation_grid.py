"""Compare configurations of one model on a protocol's validation split: the way to choose a
setting (a budget, a learning rate) for a synthetic protocol without test-set selection.

The validation split is carved from the protocol's training data (``Protocol.validation_fold``:
held-out sequences for closed-set protocols, held-out identities for retrieval ones), as
``reid-bench tune`` uses it. Each ``--row`` is one configuration in ``reid-bench run --set``
syntax; every row is checked before the first trial runs. Prints, per row, the validation main
score (percent, mean ± sample std over seeds) and the last epoch's training curves as the model
reported them (e.g. loss and training accuracy), with the time per trial.

    python benchmarks/validation_grid.py --model ognet-deep --protocol synth-market \\
        --row "lr=0.002" --row "lr=0.0012" --seeds 0 1
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import asdict

from reid_bench.config import ConfigError, parse_sets
from reid_bench.registry import get_registry
from reid_bench.trial import TrialSpec, execute_trial, resolve_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--protocol", required=True)
    parser.add_argument("--row", action="append", default=[], help="one configuration: 'key=value ...'")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--fold", default=None, help="default: the protocol's first fold")
    args = parser.parse_args()
    rows = args.row or [""]
    try:
        parsed = [parse_sets(r.split()) for r in rows]
        for overrides in parsed:  # every row checked before the first trial
            resolve_config(args.model, args.protocol, overrides)
    except ConfigError as exc:
        sys.exit(f"error: {exc}")
    protocol = get_registry().protocol(args.protocol)
    fold = args.fold or protocol.folds[0]
    print(f"{args.model} on {args.protocol} fold {fold}, validation split, seeds {' '.join(map(str, args.seeds))}")
    print(f"{'configuration':32s} {'val ' + protocol.main_score:>16s}  last epoch (mean over seeds)  s/trial")
    with tempfile.TemporaryDirectory() as work:
        for row, overrides in zip(rows, parsed):
            scores, curves, seconds = [], [], []
            for seed in args.seeds:
                last: dict[str, float] = {}
                spec = TrialSpec(args.model, args.protocol, fold, seed, overrides=asdict(overrides), device="cpu",
                                 work_dir=work, threads=1, cache_dir=None, split="validation")
                t0 = time.perf_counter()
                result = execute_trial(spec, report=lambda p: last.update(p) if "epoch" in p else None)
                seconds.append(time.perf_counter() - t0)
                scores.append(100.0 * result["metrics"][protocol.main_score])
                curves.append({k: v for k, v in last.items() if k not in ("phase", "progress", "epoch", "val_score")})
            spread = statistics.stdev(scores) if len(scores) > 1 else 0.0
            keys = sorted(set().union(*curves))
            curve = " ".join(f"{k}={statistics.fmean(c[k] for c in curves if k in c):.3g}" for k in keys)
            print(f"{row or 'defaults':32s} {statistics.fmean(scores):9.1f} ± {spread:4.1f}  {curve}  "
                  f"{statistics.fmean(seconds):.0f}", flush=True)


if __name__ == "__main__":
    main()
