"""Small torch helpers shared by model plugins (so each model does not carry its own copy)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Callable, Iterator


@contextlib.contextmanager
def cpu_threads(n: int, device: str) -> Iterator[None]:
    """Run a block with ``n`` torch threads on CPU (0: leave torch's setting alone).

    Small networks on a 2-core machine run several times slower with two threads than with one
    when anything else competes for the cores; the previous setting is restored afterwards.
    """
    import torch

    if n <= 0 or not str(device).startswith("cpu"):
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def save_weights(module, folder: Path | None, filename: str) -> Path | None:
    """Best-effort checkpoint of the final weights into the trial's checkpoint folder."""
    import torch

    if folder is None:
        return None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / filename
        torch.save(module.state_dict(), path)
        return path
    except OSError:
        return None


def train_classifier(net, inputs, labels, ctx, *, epochs: int, batch_size: int, lr: float, generator,
                     batch_inputs: Callable | None = None) -> None:
    """Fit ``net`` (a module returning logits) with Adam and cross-entropy on shuffled mini-batches.

    The supervised baselines of the field (the LSTMs, PoseGait) share this loop; reporting loss
    and training accuracy per epoch through ``ctx`` keeps their MLflow curves alike.
    ``batch_inputs(x, generator)`` turns a batch of ``inputs`` into the network's input (a random
    crop, for instance); it is called after the epoch's permutation is drawn, batch by batch.
    """
    import torch
    from torch import nn

    labels = torch.as_tensor(labels, dtype=torch.int64)
    if (labels < 0).any():
        raise ValueError(f"{type(net).__name__}: training labels must be class indices >= 0")
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    n = len(labels)
    for epoch in range(epochs):
        net.train()
        perm = torch.randperm(n, generator=generator)
        total, correct = 0.0, 0
        for start in range(0, n, batch_size):
            idx = perm[start : start + batch_size]
            x = inputs[idx] if batch_inputs is None else batch_inputs(inputs[idx], generator)
            x, y = x.to(ctx.device), labels[idx].to(ctx.device)
            logits = net(x)
            loss = nn.functional.cross_entropy(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
            correct += int((logits.argmax(1) == y).sum())
        ctx.report(epoch=epoch, loss=total / n, train_acc=correct / n)
        ctx.progress((epoch + 1) / epochs, f"epoch {epoch + 1}/{epochs} loss {total / n:.3f}")
    net.eval()
