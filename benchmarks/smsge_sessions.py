"""SM-SGE and its ablations within the training session and across sessions, on synth-gait.

The leaderboard's synth-gait folds test on new sessions (A: other clothes and noise; B: new
place and views). This script adds the in-session view: each trial also runs on the
protocol's validation fold (training-session sequences held out from training; what
``reid-bench tune`` selects on), so a gap between the two columns is a generalisation gap,
not a fitting one. Everything goes through ``execute_trial``, as ``reid-bench run`` does.

``--protocol synth-gait-dev`` runs the same table on the development twin (other people):
that is where settings are compared, since choosing them on synth-gait's folds would be
test-set selection. Each ``--row`` is one configuration ("variant=full epochs=6"); a
``data.`` key goes to the dataset, so ``--protocol synth-gait --set data.seed=2`` is a second
development draw (other walkers; the test folds are generator seed 0).

    python benchmarks/smsge_sessions.py [--variants full baseline] [--seeds 0 1 2]
        [--folds A B] [--set epochs=3 ...] [--protocol synth-gait-dev]
        [--row "variant=full normal_init=true" --row "variant=baseline"] [--no-in-session]

Prints window Rank-1 (percent, mean ± sample std over seeds, as the leaderboards) per row:
in-session (fold A's training session) and the test folds.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import asdict

import numpy as np

try:
    from reid_bench.config import ConfigError, Overrides, parse_sets
    from reid_bench.trial import TrialSpec, execute_trial
except ImportError:  # running from a source tree that was never installed
    sys.exit("import reid_bench failed: pip install -e . (or put the package on PYTHONPATH)")


def rank1(protocol: str, fold: str, seed: int, split: str, overrides: Overrides, work: str) -> float:
    spec = TrialSpec("smsge", protocol, fold, seed, overrides={k: v for k, v in asdict(overrides).items() if v},
                     device="cpu", work_dir=work, threads=1, cache_dir=None, split=split)
    return 100.0 * execute_trial(spec)["metrics"]["rank1"]


def parse_row(items: list[str]) -> Overrides:
    """``key=value`` items as ``reid-bench run --set`` reads them (bare keys: model; data.*, probe.*)."""
    try:
        return parse_sets(items)
    except ConfigError as err:
        sys.exit(str(err))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocol", default="synth-gait")
    parser.add_argument("--variants", nargs="+", default=["full", "baseline"])
    parser.add_argument("--row", action="append", default=[], help="one configuration: 'key=value ...' (replaces --variants)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--folds", nargs="+", default=["A", "B"])
    parser.add_argument("--set", action="append", default=[],
                        help="key=value for every row, as reid-bench run --set (data.seed=2: another draw of walkers)")
    parser.add_argument("--no-in-session", dest="in_session", action="store_false", help="skip the validation column")
    args = parser.parse_args()
    rows = [args.set + r.split() for r in args.row] or [args.set + [f"variant={v}"] for v in args.variants]
    parsed = [parse_row(r) for r in rows]  # every row checked before the first trial
    columns = ([("validation", "A")] if args.in_session else []) + [("test", f) for f in args.folds]
    labels = [" ".join(r) or "defaults" for r in rows]
    width = max(18, *(len(label) + 2 for label in labels))
    print(f"protocol {args.protocol}, seeds {' '.join(map(str, args.seeds))}: window Rank-1 (%)")
    print(f"{'configuration':{width}s}" + "".join(f"{('in-session' if s == 'validation' else f'fold {f}'):>16s}" for s, f in columns))
    with tempfile.TemporaryDirectory() as work:
        for label, overrides in zip(labels, parsed):
            cells = []
            for split, fold in columns:
                values = [rank1(args.protocol, fold, seed, split, overrides, work) for seed in args.seeds]
                cells.append(f"{np.mean(values):9.1f} ± {np.std(values, ddof=1 if len(values) > 1 else 0):3.1f}")
            print(f"{label:{width}s}" + "".join(f"{c:>16s}" for c in cells), flush=True)


if __name__ == "__main__":
    main()
