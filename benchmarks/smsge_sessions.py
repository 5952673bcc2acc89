"""SM-SGE and its ablations within the training session and across sessions, on synth-gait.

The leaderboard's synth-gait folds test on new sessions (A: other clothes and noise; B: new
place and views). This script adds the in-session view: each trial also runs on the
protocol's validation fold (training-session sequences held out from training; what
``reid-bench tune`` selects on), so a gap between the two columns is a generalisation gap,
not a fitting one. Everything goes through ``execute_trial``, as ``reid-bench run`` does.

    python benchmarks/smsge_sessions.py [--variants full baseline] [--seeds 0 1 2]
        [--folds A B] [--set epochs=3 ...]

Prints window Rank-1 (percent, mean ± sample std over seeds, as the leaderboards) per variant: validation (fold A's
training session) and the test folds.
"""

from __future__ import annotations

import argparse
import sys
import tempfile

import numpy as np

try:
    from reid_bench.trial import TrialSpec, execute_trial
except ImportError:  # running from a source tree that was never installed
    sys.exit("import reid_bench failed: pip install -e . (or put the package on PYTHONPATH)")


def rank1(variant: str, fold: str, seed: int, split: str, sets: dict[str, str], work: str) -> float:
    spec = TrialSpec("smsge", "synth-gait", fold, seed, overrides={"model": {"variant": variant, **sets}},
                     device="cpu", work_dir=work, threads=1, cache_dir=None, split=split)
    return 100.0 * execute_trial(spec)["metrics"]["rank1"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=["full", "baseline"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--folds", nargs="+", default=["A", "B"])
    parser.add_argument("--set", action="append", default=[], help="model override key=value")
    args = parser.parse_args()
    sets = dict(kv.split("=", 1) for kv in args.set)
    columns = [("validation", "A")] + [("test", f) for f in args.folds]
    print(f"{'variant':18s}" + "".join(f"{('in-session' if s == 'validation' else f'fold {f}'):>16s}" for s, f in columns))
    with tempfile.TemporaryDirectory() as work:
        for variant in args.variants:
            cells = []
            for split, fold in columns:
                values = [rank1(variant, fold, seed, split, sets, work) for seed in args.seeds]
                cells.append(f"{np.mean(values):9.1f} ± {np.std(values, ddof=1 if len(values) > 1 else 0):3.1f}")
            print(f"{variant:18s}" + "".join(f"{c:>16s}" for c in cells), flush=True)


if __name__ == "__main__":
    main()
