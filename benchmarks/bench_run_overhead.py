"""Where the wall time of `reid-bench run` goes, and how trials scale with concurrency.

Table 1: the same invocation in process and through a local Ray instance: wall time against
the summed trial compute, Ray start and MLflow set-up.
Table 2: trials per minute through Ray with 1 trial at a time (2 CPUs per trial) and with 2 at
a time (1 CPU each); scaling efficiency = throughput(2) / (2 x throughput(1)).
    python benchmarks/bench_run_overhead.py --model gait-lstm --protocol synth-gait --seeds 4 --set epochs=5
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="gait-lstm")
    parser.add_argument("--protocol", default="synth-gait")
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--fold", default="A")
    parser.add_argument("--set", dest="sets", action="append", default=None)
    args = parser.parse_args()
    sets = args.sets if args.sets is not None else ["epochs=5"]

    from reid_bench.config import parse_sets
    from reid_bench.runner import ExecutionOptions, RunRequest, run_benchmark

    def once(tmp: str, use_ray: bool, cpus: float):
        uri = f"sqlite:///{Path(tmp) / 'mlflow.db'}"
        t0 = time.perf_counter()
        res = run_benchmark(RunRequest(args.model, args.protocol, parse_sets(sets), seeds=args.seeds, folds=(args.fold,)),
                            ExecutionOptions(tracking_uri=uri, use_ray=use_ray, cpus_per_trial=cpus, results_dir=tmp,
                                             show_progress=False))
        assert res.ok, [t.error for t in res.trials if t.error]
        return time.perf_counter() - t0, res

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, use_ray, cpus in (("in-process", False, 1.0), ("ray, 1 at a time", True, 2.0), ("ray, 2 at a time", True, 1.0)):
            wall, res = once(tmp, use_ray, cpus)
            o = res.overhead
            n = len(res.trials)
            rows.append((label, n, wall, o["trial_compute_s"], o["trial_compute_s"] / n, o["ray_start_s"],
                         o["mlflow_setup_s"], 60.0 * n / o["dispatch_s"]))
    print(f"model={args.model} protocol={args.protocol} fold={args.fold} seeds={args.seeds} set={sets} cpus={os.cpu_count()}")
    header = ("dispatch", "trials", "wall s", "sum trial s", "s/trial", "ray start s", "mlflow s", "trials/min")
    print("  ".join(f"{h:>16}" for h in header))
    for row in rows:
        print("  ".join(f"{v:>16.2f}" if isinstance(v, float) else f"{v!s:>16}" for v in row))
    one, two = rows[1][-1], rows[2][-1]
    print(f"scaling efficiency (2 concurrent vs 1): {two / (2 * one):.2f}  (trials/min {one:.1f} -> {two:.1f})")
    print("trials/min counts from the first trial handed out to the last result recorded (MLflow writes included);\n"
          "s/trial is execute_trial alone: the bare compute.")


if __name__ == "__main__":
    main()
