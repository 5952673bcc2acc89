"""OG-Net throughput, peak memory and time split at batch 36 x 4096 points.

Measures forward (eval, no grad) and forward+backward (train) samples/s of the default OG-Net
(and, with --model, Small / Deep), peak memory (CPU: the peak resident set of a fresh child
process per measurement, minus that process's baseline; CUDA: torch.cuda.max_memory_allocated),
and the forward time split between kNN graphs, farthest point sampling, grouping (gathers, ball
queries, edge features) and the dense layers (linears, BN, SE, pooling), from the network's
stage timers (synchronised on CUDA). ``--no-factorised`` times the reference EdgeConv/grouping
path that applies the linears per edge instead of per point.

    python benchmarks/bench_ognet.py                      # CPU, batch 36 x 4096, 1 repeat
    python benchmarks/bench_ognet.py --device cuda --repeat 5
    python benchmarks/bench_ognet.py --batch 8 --points 1024 --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import torch


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def measure(args) -> dict:
    """One measurement in this process (called in a child for a clean CPU peak)."""
    from reid_bench_ognet.model import OGNet, OGNetDeep, OGNetSmall
    from reid_bench_ognet.network import TIMERS, OGNetNetwork

    cls = {"ognet": OGNet, "ognet-small": OGNetSmall, "ognet-deep": OGNetDeep}[args.model]
    cfg = cls.config_class(factorised=not args.no_factorised)
    if args.points != 4096:  # keep the FPS schedule proportional
        cfg.init_points = max(8, cfg.init_points * args.points // 4096)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    net = OGNetNetwork(cfg.net_config(), 751).to(device)
    xyz = (torch.randn(args.batch, args.points, 3) * 0.3).to(device)
    rgb = (torch.rand(args.batch, args.points, 3) - 0.5).to(device)
    y = torch.randint(0, 751, (args.batch,), device=device)
    base_rss = _peak_rss_mb()
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base_cuda = torch.cuda.memory_allocated()

    def step():
        if args.mode == "forward":
            net.eval()
            with torch.no_grad():
                net(xyz, rgb)
        else:
            net.train()
            net.zero_grad(set_to_none=True)
            _, logits = net(xyz, rgb)
            torch.nn.functional.cross_entropy(logits, y).backward()
        if cuda:
            torch.cuda.synchronize()

    for _ in range(args.warmup):
        step()
    times, cpu = [], []
    for _ in range(args.repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        step()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    best = min(times)
    out = {
        "model": args.model,
        "mode": args.mode,
        "device": str(device),
        "batch": args.batch,
        "points": args.points,
        "threads": torch.get_num_threads(),
        "factorised": not args.no_factorised,
        "seconds": round(best, 3),
        "samples_per_s": round(args.batch / best, 2),
        # process CPU seconds: on a shared machine, wall time / threads is only an upper bound
        "cpu_seconds": round(min(cpu), 3),
    }
    if cuda:
        out["peak_mb"] = round((torch.cuda.max_memory_allocated() - base_cuda) / 2**20, 1)
    else:
        out["peak_mb"] = round(_peak_rss_mb() - base_rss, 1)
    if args.mode == "forward":
        TIMERS.enabled, TIMERS.sync, TIMERS.seconds = True, cuda, {}
        t0 = time.perf_counter()
        step()
        total = time.perf_counter() - t0
        TIMERS.enabled = False
        split = {k: round(v / total, 3) for k, v in sorted(TIMERS.seconds.items())}
        split["other"] = round(max(0.0, 1 - sum(split.values())), 3)
        out["split"] = split
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="ognet", choices=["ognet", "ognet-small", "ognet-deep"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch", type=int, default=36)
    p.add_argument("--points", type=int, default=4096)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--warmup", type=int, default=0)
    p.add_argument("--mode", choices=["forward", "train", "both"], default="both")
    p.add_argument("--no-factorised", action="store_true")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(measure(args)))
        return
    modes = ["forward", "train"] if args.mode == "both" else [args.mode]
    for mode in modes:
        cmd = [sys.executable, __file__, "--child", "--mode", mode] + [
            a for a in sys.argv[1:] if a not in ("--mode", "both", "forward", "train")
        ]
        res = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
        if res.returncode != 0:
            print(json.dumps({"mode": mode, "error": res.stderr.strip().splitlines()[-1:]}))
            continue
        r = json.loads(res.stdout.strip().splitlines()[-1])
        line = (f"{r['model']:<11} {r['mode']:<8} {r['device']:<5} B={r['batch']} N={r['points']} "
                f"threads={r['threads']} factorised={r['factorised']}: {r['samples_per_s']:.2f} samples/s "
                f"({r['seconds']:.2f} s/batch wall, {r['cpu_seconds']:.2f} CPU-s), peak {r['peak_mb']:.0f} MB")
        if "split" in r:
            line += "  split " + ", ".join(f"{k} {100 * v:.0f}%" for k, v in r["split"].items())
        print(line, flush=True)


if __name__ == "__main__":
    main()
