"""SM-SGE training and embedding throughput for the IAS-Lab configuration (CPU, and CUDA if present).

Default config (lr 0.0025, batch 64, D_h 256, four scales, f = 6, lengths 1..f as released, r = 1) on
kinect-v1-20 windows. Per device and thread count it prints: training windows/s (forward,
backward and Adam step of the MSR loss), the time of one epoch over ``--train-windows`` windows
(IAS-Lab's Training session gives about 1,800 windows at stride 3; the released code runs 120
epochs), embedding windows/s, and peak memory (CPU: the process's peak RSS; CUDA: the peak of
``torch.cuda.max_memory_allocated``).

    python benchmarks/bench_smsge.py [--threads 1 2] [--steps 6] [--train-windows 1800]

``--paper-budget`` instead trains the whole thing once per device: SM-SGE's ``fit`` with the
configuration a run on ``ias`` resolves to (the released recipe, 120 epochs), on IAS-sized
synthetic windows (``--train-windows`` windows of 11 identities), and prints its minutes, the
first and last epoch's loss and peak memory. ``--epochs`` shortens it (a smoke test);
``--max-minutes`` stops the fit after the epoch that crosses that time and projects the whole
budget from the epochs done (so a time-limited GPU check still gets a figure).
"""

from __future__ import annotations

import argparse
import math
import resource
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _plugin():
    import reid_bench_smsge.model as model

    return model


def bench(device: str, threads: int, steps: int, train_windows: int, variant: str) -> dict:
    import torch

    from reid_bench.api import DataSpec
    from reid_bench.layouts import KINECT_V1_20

    M = _plugin()
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    cfg = M.SMSGEConfig(variant=variant)
    model = M.SMSGE(cfg, DataSpec("skeleton", num_classes=11, layout=KINECT_V1_20, window=6))
    net = model.net.to(device)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(0)
    lengths = M.subsequence_lengths(model.cfg, 6)
    x = (torch.randn(cfg.batch_size, 6, 20, 3, generator=gen) * 0.3).to(device)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()

    def step() -> None:
        frames = [i.to(device) for i in M.sample_subsequences(lengths, 6, cfg.rounds, gen)]
        loss = sum(net.losses(x, frames).values())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def sync() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    def windows_per_s(fn) -> float:
        fn()  # warm-up
        sync()
        t0 = time.perf_counter()
        for _ in range(steps):
            fn()
        sync()
        return steps * cfg.batch_size / (time.perf_counter() - t0)

    train_wps = windows_per_s(step)

    # The floor at equal numerics: the same LSTM calls (every subsequence, every scale, forward
    # and backward to their inputs) with everything else removed.
    feats = {s: torch.randn(cfg.batch_size, 6, m.input_size, generator=gen).to(device).requires_grad_()
             for s, m in net.lstm.items()}

    def lstm_step() -> None:
        total = 0.0
        for idx in M.sample_subsequences(lengths, 6, cfg.rounds, gen):
            for s, lstm in net.lstm.items():
                total = total + lstm(feats[s][:, idx.to(device)])[0].sum()
        total.backward()

    lstm_wps = windows_per_s(lstm_step)

    net.eval()
    xe = (torch.randn(512, 6, 20, 3, generator=gen) * 0.3).to(device)
    with torch.no_grad():
        net.states(xe)
        sync()
        t0 = time.perf_counter()
        for _ in range(3):
            net.states(xe)
        sync()
    embed_wps = 3 * 512 / (time.perf_counter() - t0)
    if device.startswith("cuda"):
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    batches = train_windows // cfg.batch_size
    return {
        "device": device,
        "threads": threads,
        "variant": variant,
        "params": model.num_parameters(),
        "train_wps": train_wps,
        "epoch_s": batches * cfg.batch_size / train_wps,
        "lstm_epoch_s": batches * cfg.batch_size / lstm_wps,
        "embed_wps": embed_wps,
        "peak_mb": peak,
    }


def ias_like_windows(count: int):
    """IAS-Lab-sized synthetic training windows: ``count`` windows of 11 identities, f = 6, kinect-v1-20."""
    import numpy as np

    from reid_bench.api import SampleSet
    from reid_bench.layouts import KINECT_V1_20

    rng = np.random.default_rng(0)
    labels = np.arange(count) % 11
    centres = rng.normal(0, 0.3, (11, 1, KINECT_V1_20.num_joints, 3))
    data = (centres[labels] + rng.normal(0, 0.05, (count, 6, KINECT_V1_20.num_joints, 3))).astype(np.float32)
    return SampleSet("skeleton", data, labels, labels, np.zeros(count), np.arange(count) // 10, layout=KINECT_V1_20)


def _rnn_flops(input, w_ih, w_hh, *_, **__) -> int:
    """One LSTM layer's matrix products (oneDNN's fused layer, which torch's FLOP counter does
    not know): per step and row, the gates' 4 H x (in + H) multiply-adds."""
    return 2 * math.prod(input[:-1]) * (w_ih[0] * w_ih[1] + w_hh[0] * w_hh[1])


def _rnn_backward_flops(input, w_ih, w_hh, *_, **__) -> int:
    """The layer's backward: the gradients of its inputs and of its weights, twice the forward."""
    return 2 * _rnn_flops(input, w_ih, w_hh)


def step_gflops(train_windows: int = 1800) -> float:
    """The matrix products (GFLOP) of one training step of the ias recipe (``train_epoch``'s
    step: the MSR losses, then one gradient per scale), counted by torch's FLOP counter on the
    model's real step; elementwise work is not counted, so this bounds the step from below."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from reid_bench.api import TrialContext
    from reid_bench.config import Overrides
    from reid_bench.layouts import KINECT_V1_20
    from reid_bench.trial import resolve_config

    M = _plugin()
    cfg = resolve_config("smsge", "ias", Overrides()).model
    model = M.SMSGE(cfg, M.DataSpec("skeleton", num_classes=11, layout=KINECT_V1_20, window=6))
    model.start_fit(ias_like_windows(train_windows), TrialContext(device="cpu", seed=0, checkpoint_dir=Path("/tmp")))
    net, x = model.net, model.data[: cfg.batch_size]
    frames = model.fixed if model.fixed is not None else M.sample_subsequences(model.lengths, x.shape[1], cfg.rounds,
                                                                               model.generator)
    counted = {torch.ops.aten.mkldnn_rnn_layer: _rnn_flops, torch.ops.aten.mkldnn_rnn_layer_backward: _rnn_backward_flops}
    with FlopCounterMode(display=False, custom_mapping=counted) as counter:
        losses = net.losses(x, frames)
        if cfg.per_scale_adam:  # the release's four Adams: one gradient per scale's loss
            for s in net.scales:
                torch.autograd.grad(losses[s], model.groups[s], retain_graph=True, allow_unused=True)
        else:
            sum(losses.values()).backward()
    return counter.get_total_flops() / 1e9


def peak_matmul_gflops(threads: int) -> float:
    """This machine's float32 matrix-product rate on ``threads`` threads: the best of several
    2,048-square products (the rate no model's arithmetic can beat)."""
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    out = torch.empty(2048, 2048)
    times = []
    for _ in range(10):
        t0 = time.perf_counter()
        torch.mm(a, b, out=out)
        times.append(time.perf_counter() - t0)
    return 2 * 2048**3 / min(times[2:]) / 1e9


class _OutOfTime(Exception):
    pass


def paper_budget(device: str, threads: int, train_windows: int, epochs: int | None,
                 max_minutes: float | None = None) -> dict:
    """One full ``fit`` at the ias protocol's resolved defaults on synthetic IAS-sized windows."""
    import dataclasses

    import torch

    from reid_bench.api import TrialContext
    from reid_bench.config import Overrides
    from reid_bench.layouts import KINECT_V1_20
    from reid_bench.trial import resolve_config

    M = _plugin()
    torch.set_num_threads(threads)
    cfg = resolve_config("smsge", "ias", Overrides()).model
    cfg = dataclasses.replace(cfg, **({} if epochs is None else {"epochs": epochs}))
    train = ias_like_windows(train_windows)
    model = M.SMSGE(cfg, M.DataSpec("skeleton", num_classes=11, layout=KINECT_V1_20, window=6))
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    losses: list[float] = []

    def report(epoch: int, loss: float, **_) -> None:
        losses.append(loss)
        if max_minutes is not None and time.perf_counter() - t0 > 60 * max_minutes and epoch + 1 < cfg.epochs:
            raise _OutOfTime

    t0 = time.perf_counter()
    try:
        model.fit(train, TrialContext(device=device, seed=0, checkpoint_dir=None, report=report))
    except _OutOfTime:
        pass
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    minutes = (time.perf_counter() - t0) / 60
    return {"device": device, "threads": threads, "epochs": cfg.epochs, "done": len(losses), "recipe": cfg.recipe,
            "minutes": minutes, "projected": minutes * cfg.epochs / len(losses), "first_loss": losses[0],
            "last_loss": losses[-1], "peak_mb": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--steps", type=int, default=6, help="timed training steps (batches of 64)")
    parser.add_argument("--train-windows", type=int, default=1800)
    parser.add_argument("--variants", nargs="+", default=["full", "baseline"])
    parser.add_argument("--devices", nargs="+", help="default: cpu, and cuda when torch sees a GPU")
    parser.add_argument("--paper-budget", action="store_true", help="time one whole fit at the ias defaults")
    parser.add_argument("--epochs", type=int, help="with --paper-budget: fewer epochs than the protocol's")
    parser.add_argument("--max-minutes", type=float, help="with --paper-budget: stop early and project the rest")
    args = parser.parse_args()

    import torch

    devices = args.devices or ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    if args.paper_budget:
        print(f"SM-SGE, one fit at the ias protocol's defaults on {args.train_windows} synthetic windows "
              f"(11 identities, f = 6); torch {torch.__version__}")
        print(f"{'device':<7}{'threads':>8}{'recipe':>10}{'epochs run':>12}{'minutes':>9}{'all epochs, min':>17}"
              f"{'first loss':>12}{'last loss':>11}{'peak MB':>9}")
        for device in devices:
            r = paper_budget(device, args.threads[-1] if device == "cpu" else 1, args.train_windows, args.epochs,
                             args.max_minutes)
            print(f"{r['device']:<7}{r['threads']:>8}{r['recipe']:>10}{r['done']:>6} / {r['epochs']:<3}"
                  f"{r['minutes']:>9.2f}{r['projected']:>17.2f}{r['first_loss']:>12.4f}{r['last_loss']:>11.4f}"
                  f"{r['peak_mb']:>9.0f}")
        return
    rows = []
    for device in devices:
        for threads in args.threads if device == "cpu" else [1]:
            for variant in args.variants:
                rows.append(bench(device, threads, args.steps, args.train_windows, variant))
    print(f"SM-SGE, IAS-Lab configuration (batch 64, f = 6), epoch = {args.train_windows} windows; "
          f"torch {torch.__version__}")
    print(f"{'device':<7}{'threads':>8}{'variant':>10}{'params':>11}{'train win/s':>13}{'epoch s':>9}"
          f"{'120 ep. min':>12}{'embed win/s':>13}{'peak MB':>9}")
    for r in rows:
        print(f"{r['device']:<7}{r['threads']:>8}{r['variant']:>10}{r['params']:>11,}{r['train_wps']:>13.0f}"
              f"{r['epoch_s']:>9.1f}{r['epoch_s'] * 120 / 60:>12.1f}{r['embed_wps']:>13.0f}{r['peak_mb']:>9.0f}")
    print("peak MB: CPU = the process's peak RSS so far (cumulative over rows); CUDA = peak allocated tensors")


if __name__ == "__main__":
    main()
