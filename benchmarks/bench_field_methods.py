"""Training and embedding throughput of the field's learned methods (CPU, and CUDA if present).

For each of lstm-1, lstm-m, posegait, age, sgela, mg-scr, simmc, spc-mgr, hi-mpc, transg and mocos,
in a fresh process (so that the peak memory is that method's), it times the model's own ``fit``
for one epoch on synth-gait's fold A training windows (f = 6, kinect-v1-20) at the method's default
settings (the paper's batch and sizes), then ``embed`` on the same windows, and prints:
training windows/s, embedding windows/s, the time the method's default budget would take on
that fold (its default epochs, and its recognition network where it has one, not included),
and peak memory (CPU: peak RSS of the process; CUDA: peak allocated tensors). The anchor row,
measured in the same run, is a plain 2 x 256 ``torch.nn.LSTM`` forward + backward + Adam step
on the same windows and batch 128: a reference whose cost does not depend on this project's
code, for comparing machines.

``epoch_breakdown`` (used by `make bench`'s per-method rows) times one steady-state epoch instead
and splits it: the method's floor (its torch arithmetic), random draws, the per-epoch clustering,
and what runs outside torch ops. This script's own table times ``fit`` from scratch, so a short
``--epochs`` counts one-off costs (imports, first allocations) in the rate.

Windows/s counts the fold's training windows per second of an epoch, whatever the method does
with them in that epoch (the prototype learners' epochs include clustering every view or level
and train on their class-balanced resampled sets).

    python benchmarks/bench_field_methods.py [--methods lstm-1 age] [--epochs 1] [--threads 1] [--devices cuda]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

METHODS = ("lstm-1", "lstm-m", "posegait", "age", "sgela", "mg-scr", "simmc", "spc-mgr", "hi-mpc", "transg", "mocos")
REPO = Path(__file__).resolve().parent.parent


def _fold():
    from reid_bench.registry import get_registry
    from reid_bench.trial import HarnessData

    registry = get_registry()
    protocol = registry.protocol("synth-gait")()
    return protocol.build_fold("A", 0, HarnessData(registry, None, {}))


def _peak_mb(device: str) -> float:
    import torch

    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def config_class(name: str) -> type:
    from reid_bench.registry import get_registry

    return get_registry().model(name).config_class


#: The methods trained by iterations on P x K batches (GaitTR, GPGait: a harness epoch is
#: ``epoch_iterations`` batches, 1,000 in the releases) are timed in epochs of this many.
EPOCH_ITERATIONS = 10


def default_epochs(name: str) -> float:
    """The method's default (release) budget in timed epochs; a pretraining stage (MG-SCR)
    counts too, and an iteration budget is counted in epochs of ``EPOCH_ITERATIONS``."""
    defaults = config_class(name)()
    if hasattr(defaults, "iterations"):
        return defaults.iterations / EPOCH_ITERATIONS
    return defaults.epochs + getattr(defaults, "pretrain_epochs", 0)


def short_budget(defaults, epochs: int) -> dict:
    """The settings that cut a method's budget to ``epochs`` timed epochs (each stage of a staged
    one; ``EPOCH_ITERATIONS`` batches an epoch for an iteration-trained one)."""
    if hasattr(defaults, "iterations"):
        return {"iterations": epochs * EPOCH_ITERATIONS, "epoch_iterations": EPOCH_ITERATIONS}
    return {"epochs": epochs, **({"pretrain_epochs": epochs} if hasattr(defaults, "pretrain_epochs") else {})}


def measure_method(name: str, device: str, threads: int, epochs: int) -> dict:
    import dataclasses

    import torch

    from reid_bench.api import DataSpec, TrialContext
    from reid_bench.registry import get_registry

    torch.set_num_threads(threads)
    fold = _fold()
    cls = get_registry().model(name)
    defaults = cls.config_class()
    # a pretraining stage (MG-SCR) runs the same number of epochs as the main stage here
    staged = hasattr(defaults, "pretrain_epochs")
    cfg = dataclasses.replace(defaults, **short_budget(defaults, epochs))
    model = cls(cfg, DataSpec("skeleton", fold.train.num_classes, fold.train.layout, 6))
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    model.fit(fold.train, TrialContext(device=device, seed=0, checkpoint_dir=Path("/tmp")))
    _sync(device)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    model.embed(fold.train)
    _sync(device)
    embed_s = time.perf_counter() - t0
    n = len(fold.train)
    # an iteration-trained method's epoch is EPOCH_ITERATIONS P x K batches, not a pass over the fold
    per_epoch = (EPOCH_ITERATIONS * cfg.identities * cfg.per_identity if hasattr(cfg, "iterations")
                 else (2 if staged else 1) * n)
    train_wps = epochs * per_epoch / fit_s
    return {"name": name, "device": device, "threads": threads, "params": model.num_parameters(), "windows": n,
            "train_wps": train_wps, "embed_wps": n / embed_s, "default_epochs": default_epochs(name),
            "default_h": default_epochs(name) * fit_s / (epochs * (2 if staged else 1)) / 3600, "peak_mb": _peak_mb(device)}


#: torch's random-number ops: dropout and frame masks draw with them. They are not the model's
#: arithmetic (a faster generator changes no formula), so the floor leaves them out.
RANDOM_OPS = ("aten::bernoulli_", "aten::uniform_", "aten::normal_", "aten::random_", "aten::randperm",
              "aten::multinomial", "aten::exponential_")
#: The profiler ranges the prototype learners' clustering runs in (``reid_bench_prototypes.clustering``:
#: the call, and the work it hands to other threads).
CLUSTERING = "reid_bench::clustering"
CLUSTERING_WORKER = CLUSTERING + "::worker"


def epoch_breakdown(name: str, device: str, threads: int, train=None) -> dict:
    """Where one steady-state training epoch goes, and the method's floor.

    Warm epochs run after a first one (lazy imports, first allocations): untouched ones for the
    wall time (the median of up to nine, about 4 s; the clustering's share over all of them),
    then one under torch's profiler. The floor is the time of the model's own tensor arithmetic:
    the self time of every torch op, less the ops that draw random numbers and the ops run inside
    the per-epoch clustering (the prototype learners' calls run in the ``CLUSTERING`` profiler
    range). Python, data copies outside torch and the clustering are what a faster loop can
    remove; the floor is not. ``train``: the training windows (default: synth-gait fold A's).
    """
    import torch

    from reid_bench.registry import get_registry

    torch.set_num_threads(threads)
    train = _fold().train if train is None else train
    return _breakdown(get_registry().model(name), name, train, device, threads)


def _breakdown(cls, name: str, train, device: str, threads: int) -> dict:
    from torch.profiler import ProfilerActivity, profile

    model, ctx = _warmed_up(cls, train, device, epochs=3)
    # short epochs (the prototype learners' take 0.2-1 s) vary from one to the next on a shared
    # host: time up to nine, for at most about 4 s, and take the median epoch; the clustering's
    # share is that of all of them together (one epoch's share moved by 5 points from run to run)
    timed = []
    while len(timed) < 9 and (not timed or sum(e for e, _ in timed) < 4.0):
        with _clustering_clock(sys.modules[cls.__module__]) as clustering_s:
            timed.append((_timed_epoch(model, ctx, 1, device), clustering_s[0]))
    epoch_s = sorted(e for e, _ in timed)[len(timed) // 2]
    clustering_share = sum(c for _, c in timed) / sum(e for e, _ in timed)
    t0 = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        model.train_epoch(2, ctx)
        _sync(device)
    profiled_s = time.perf_counter() - t0
    in_ops = random_ops = clustering_ops = clustering_range = 0.0
    for event in prof.events():
        took = event.cpu_time_total / 1e6
        if event.name == CLUSTERING and not _inside(event, _clustering):
            clustering_range += took  # the call's wall time (the profiler misses its worker threads' ops)
        elif event.name.startswith("aten::") and not _inside(event, lambda name: name.startswith("aten::")):
            in_ops += took  # an op called by another op is in its caller's time
            if _inside(event, _clustering):
                clustering_ops += took
        if event.name in RANDOM_OPS and not _inside(event, lambda name: name in RANDOM_OPS or _clustering(name)):
            random_ops += took  # also inside another op (dropout draws its mask with bernoulli_)
    floor_s = (in_ops - random_ops - clustering_ops) * epoch_s / profiled_s  # the profiler's overhead scaled out
    ops = [e for e in prof.key_averages() if e.key.startswith("aten::")]
    largest = sorted(ops, key=lambda e: e.self_cpu_time_total, reverse=True)[:3]
    return {"name": name, "threads": threads, "epoch_s": epoch_s, "floor_s": floor_s,
            "ratio": epoch_s / floor_s if floor_s > 0 else float("inf"),
            "clustering": clustering_share, "random": random_ops / profiled_s,
            # outside torch ops and outside the clustering, which is reported on its own
            "outside_ops": max(0.0, 1 - (in_ops - clustering_ops + clustering_range) / profiled_s),
            "largest": [(e.key.removeprefix("aten::"), e.self_cpu_time_total / 1e6 / profiled_s) for e in largest]}


def steady_epoch_s(name: str, device: str, threads: int, **settings) -> float:
    """One steady-state epoch (after a first one) at the method's defaults with ``settings``
    changed (e.g. ``train_precision="bfloat16"``), on synth-gait fold A, without the profiler."""
    import torch

    from reid_bench.registry import get_registry

    torch.set_num_threads(threads)
    model, ctx = _warmed_up(get_registry().model(name), _fold().train, device, epochs=2, **settings)
    return _timed_epoch(model, ctx, 1, device)


def _warmed_up(cls, train, device: str, epochs: int, **settings):
    """The method at its defaults (``epochs`` in each stage, ``settings`` changed), its fit
    started on ``train`` and a first epoch run (lazy imports, first allocations)."""
    import dataclasses

    import torch

    from reid_bench.api import DataSpec, TrialContext

    defaults = cls.config_class()
    model = cls(dataclasses.replace(defaults, **short_budget(defaults, epochs), **settings),
                DataSpec("skeleton", train.num_classes, train.layout, 6))
    ctx = TrialContext(device=device, seed=0, checkpoint_dir=Path("/tmp"))
    torch.manual_seed(ctx.seed)  # as ``fit`` does: the same weights, and clusters, in every run
    model.start_fit(train, ctx)
    model.train_epoch(0, ctx)
    _sync(device)
    return model, ctx


def _timed_epoch(model, ctx, epoch: int, device: str) -> float:
    t0 = time.perf_counter()
    model.train_epoch(epoch, ctx)
    _sync(device)
    return time.perf_counter() - t0


@contextlib.contextmanager
def _clustering_clock(module):
    """The wall time of the clustering calls a model's module makes (its ``pseudo_labels`` and
    ``pseudo_labels_of``), in a one-item list, while the block runs; the profiler's overhead,
    larger on a training step's many small ops, would overstate the clustering's share."""
    spent = [0.0]
    originals = {attr: getattr(module, attr) for attr in ("pseudo_labels", "pseudo_labels_of") if hasattr(module, attr)}

    def clocked(function):
        def call(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                spent[0] += time.perf_counter() - t0
        return call

    for attr, function in originals.items():
        setattr(module, attr, clocked(function))
    try:
        yield spent
    finally:
        for attr, function in originals.items():
            setattr(module, attr, function)


def _clustering(name: str) -> bool:
    return name in (CLUSTERING, CLUSTERING_WORKER)


def _inside(event, wanted) -> bool:
    """Whether an enclosing event's name satisfies ``wanted``."""
    parent = event.cpu_parent
    while parent is not None:
        if wanted(parent.name):
            return True
        parent = parent.cpu_parent
    return False


def measure_anchor(device: str, threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    fold = _fold()
    x_all = torch.as_tensor(fold.train.data.reshape(len(fold.train), 6, -1))
    net = torch.nn.LSTM(x_all.shape[2], 256, num_layers=2, batch_first=True).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=5e-4)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for s in range(0, len(x_all), 128):
        out, _ = net(x_all[s : s + 128].to(device))
        loss = out[:, -1].pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    _sync(device)
    wps = len(x_all) / (time.perf_counter() - t0)
    return {"name": "anchor: nn.LSTM 2x256", "device": device, "threads": threads,
            "params": sum(p.numel() for p in net.parameters()), "windows": len(x_all), "train_wps": wps,
            "embed_wps": float("nan"), "default_epochs": 0, "default_h": float("nan"), "peak_mb": _peak_mb(device)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--epochs", type=int, default=1, help="timed training epochs per method")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--device", default="cpu", help=argparse.SUPPRESS)
    parser.add_argument("--devices", nargs="+", help="default: cpu, and cuda when torch sees a GPU")
    args = parser.parse_args()
    if args.one:
        row = (measure_anchor(args.device, args.threads) if args.one == "anchor"
               else measure_method(args.one, args.device, args.threads, args.epochs))
        print(json.dumps(row))
        return

    import torch

    devices = args.devices or ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []
    for device in devices:
        for name in ["anchor", *args.methods]:
            proc = subprocess.run([sys.executable, __file__, "--one", name, "--device", device, "--threads",
                                   str(args.threads), "--epochs", str(args.epochs)], capture_output=True, text=True)
            if proc.returncode != 0:
                sys.exit(f"{name} on {device} failed:\n{proc.stderr[-2000:]}")
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    print(f"The field's learned methods on synth-gait fold A ({rows[0]['windows']} training windows, f = 6, "
          f"kinect-v1-20), {args.threads} thread(s), torch {torch.__version__}")
    print(f"{'method':<24}{'device':<7}{'params':>11}{'train win/s':>13}{'embed win/s':>13}"
          f"{'default ep.':>12}{'default h':>11}{'peak MB':>9}")
    for r in rows:
        print(f"{r['name']:<24}{r['device']:<7}{r['params']:>11,}{r['train_wps']:>13.0f}{r['embed_wps']:>13.0f}"
              f"{r['default_epochs']:>12g}{r['default_h']:>11.2f}{r['peak_mb']:>9.0f}")
    print("default h: the method's default epochs over these windows at the measured rate (its "
          "recognition network excluded); peak MB: CPU = peak RSS of the method's own process, CUDA = peak "
          "allocated tensors")


if __name__ == "__main__":
    main()
