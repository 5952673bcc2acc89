"""Where the wall time of `reid-bench run` goes: Ray start, MLflow writes, trial compute.

Runs the same invocation in process and through a local Ray instance and prints a table.
    python benchmarks/bench_run_overhead.py --model d13 --protocol synth-gait --seeds 3
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="d13")
    parser.add_argument("--protocol", default="synth-gait")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--set", dest="sets", action="append", default=[])
    args = parser.parse_args()

    from reid_bench.config import parse_sets
    from reid_bench.runner import run_benchmark

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        uri = f"sqlite:///{Path(tmp) / 'mlflow.db'}"
        for use_ray in (False, True):
            t0 = time.perf_counter()
            res = run_benchmark(args.model, args.protocol, parse_sets(args.sets), seeds=args.seeds, tracking_uri=uri,
                                use_ray=use_ray, results_dir=tmp, show_progress=False)
            total = time.perf_counter() - t0
            o = res.overhead
            trials = len(res.trials)
            rows.append(("ray" if use_ray else "in-process", trials, total, o["trial_compute_s"], o["ray_start_s"],
                         o["mlflow_setup_s"], o["dispatch_s"], res.ok))
    print(f"model={args.model} protocol={args.protocol} seeds={args.seeds} cpus={os.cpu_count()}")
    header = ("dispatcher", "trials", "wall s", "sum trial s", "ray start s", "mlflow setup s", "dispatch s", "ok")
    print("  ".join(f"{h:>14}" for h in header))
    for row in rows:
        print("  ".join(f"{v:>14.2f}" if isinstance(v, float) else f"{v!s:>14}" for v in row))
    print("dispatch s = from the first trial handed out to the last result recorded (includes MLflow writes);\n"
          "sum trial s = execute_trial time summed over trials (Ray runs trials concurrently, one per CPU).")


if __name__ == "__main__":
    main()
