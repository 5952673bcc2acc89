"""Small torch helpers shared by model plugins (so each model does not carry its own copy)."""

from __future__ import annotations

import contextlib
import functools
from typing import Any, Callable, Literal, get_args

#: Training precisions a model may offer as a config field (``train_precision``): "bfloat16"
#: runs each training forward pass and loss under ``torch.autocast`` in bfloat16 (matrix
#: products, LSTMs and convolutions in bf16; weights, optimiser state and ``embed`` stay float32).
#: It changes the numbers, so it is a named setting, in the fingerprint and the row's label.
TrainPrecision = Literal["float32", "bfloat16"]


def check_precision(precision: str) -> str:
    if precision not in get_args(TrainPrecision):
        raise ValueError(f"train_precision must be one of {', '.join(get_args(TrainPrecision))}, got {precision!r}")
    return precision


def training_autocast(precision: str, device: Any) -> Any:
    """The context a training step runs in for ``precision`` (see ``TrainPrecision``)."""
    import torch

    if check_precision(precision) == "float32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)


def softmax_last_dim(x: Any) -> Any:
    """``torch.softmax(x, -1)`` for a short last dimension (a graph's few neighbours): the same
    maths (max subtracted, exponentials, divided by their sum; the backward y (g - <g, y>)) in
    plain tensor ops, which on CPU run 4-5x faster than torch's softmax kernel over 5 or 10
    entries (2.5 against 9.7 ms for [1536, 8, 10, 10]); the values agree to a float32 rounding."""
    return _last_dim_softmax().apply(x)


@functools.cache
def _last_dim_softmax() -> Any:
    import torch

    class LastDimSoftmax(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, x: Any) -> Any:
            y = (x - x.amax(-1, keepdim=True)).exp_()
            y.div_(y.sum(-1, keepdim=True))
            ctx.save_for_backward(y)
            return y

        @staticmethod
        def backward(ctx: Any, grad: Any) -> Any:
            (y,) = ctx.saved_tensors
            return y * (grad - (grad * y).sum(-1, keepdim=True))

    return LastDimSoftmax


def dropout(x: Any, p: float, training: bool) -> Any:
    """``torch.nn.functional.dropout(x, p, training)``, its mask drawn twice as fast on CPU: the
    same mask, output, gradient and generator state.

    torch's CPU dropout draws its mask with ``bernoulli_(1 - p)`` (ATen ``Dropout.cpp``,
    ``_dropout_impl``), one float64 uniform per element, in memory order, compared with 1 - p,
    then scales by 1 / (1 - p) and multiplies. Its per-element Bernoulli kernel is the slow part;
    ``uniform_`` on a float64 tensor with x's strides consumes the generator identically and
    faster (13.6 against 29.6 ms for [64, 6, 26, 256] here). Elsewhere (CUDA's fused kernel, p
    of 0 or 1, evaluation) torch's own.
    """
    import torch

    if not training or x.device.type != "cpu" or not 0 < p < 1:
        return torch.nn.functional.dropout(x, p, training)
    keep = 1.0 - p
    noise = torch.empty_like(x, dtype=torch.float64).uniform_().lt_(keep).to(x.dtype).div_(keep)
    return x * noise


def Dropout(p: float) -> Any:
    """A module applying ``dropout`` in training mode (``torch.nn.Dropout``'s role, no state)."""
    return _dropout_module()(p)


@functools.cache
def _dropout_module() -> Any:
    import torch

    class SameDrawDropout(torch.nn.Module):
        def __init__(self, p: float) -> None:
            super().__init__()
            self.p = p

        def forward(self, x: Any) -> Any:
            return dropout(x, self.p, self.training)

        def extra_repr(self) -> str:
            return f"p={self.p}"

        def __reduce__(self) -> Any:  # the class lives in a function: pickle it through ``Dropout``
            return Dropout, (self.p,), self.__dict__.copy()

    return SameDrawDropout


def descend(optimizer: Any, loss: Any) -> float:
    """One optimiser step on ``loss``; its value, for the epoch's mean."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def class_indices(net: Any, labels: Any) -> Any:
    """Training labels as an int64 tensor of class indices, refused when empty or negative (a
    training loop's first check, named after the network it trains)."""
    import torch

    indices = torch.as_tensor(labels, dtype=torch.int64)
    if len(indices) == 0:
        raise ValueError(f"{type(net).__name__}: empty training split")
    if (indices < 0).any():
        raise ValueError(f"{type(net).__name__}: training labels must be class indices >= 0")
    return indices


class ClassifierLoop:
    """Identity cross-entropy training of a network, one epoch per call: the supervised loop of
    the field's baselines (the LSTMs, PoseGait) and of the point-cloud networks, so that their
    comparison is about the networks and their MLflow curves look alike.

    Each epoch draws an order of the training samples from ``generator`` (a permutation, or with
    ``balanced`` a draw with replacement weighted 1 / class size), cuts it into batches of
    ``batch_size`` (``drop_last``: only whole batches, as BatchNorm needs), turns each index
    batch into the network's input with ``batch_inputs(idx)`` (default: ``inputs[idx]``; an
    augmentation draws from the same generator), steps the optimiser and, when given, the
    scheduler once per batch. ``logits_of`` picks the logits from the network's output.
    ``precision``: "bfloat16" runs forward and loss under bf16 autocast (``TrainPrecision``).

    Its ``state_dict`` (optimiser, scheduler, generator) is what a checkpoint needs besides the
    network to continue bit for bit.
    """

    def __init__(self, net: Any, inputs: Any, labels: Any, *, batch_size: int, optimizer: Any, generator: Any,
                 scheduler: Any = None, batch_inputs: Callable[[Any], Any] | None = None, drop_last: bool = False,
                 balanced: bool = False, label_smoothing: float = 0.0,
                 logits_of: Callable[[Any], Any] = lambda out: out, precision: str = "float32") -> None:
        import torch

        self.net = net
        self.inputs = inputs
        self.labels = class_indices(net, labels)
        self.batch_size = min(batch_size, len(self.labels)) if drop_last else batch_size
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.generator = generator
        self.batch_inputs = batch_inputs or (lambda idx: self.inputs[idx])
        self.drop_last = drop_last
        self.weights = 1.0 / torch.bincount(self.labels).double()[self.labels] if balanced else None
        self.label_smoothing = label_smoothing
        self.logits_of = logits_of
        self.precision = check_precision(precision)  # refused before the first epoch

    @property
    def steps_per_epoch(self) -> int:
        n = len(self.labels)
        return max(1, n // self.batch_size) if self.drop_last else -(-n // self.batch_size)

    def epoch(self, device: Any) -> dict[str, float]:
        import torch
        from torch import nn

        n, bs = len(self.labels), self.batch_size
        self.net.train()
        if self.weights is not None:
            order = torch.multinomial(self.weights, n, replacement=True, generator=self.generator)
        else:
            order = torch.randperm(n, generator=self.generator)
        end = self.steps_per_epoch * bs if self.drop_last else n
        total, correct, seen = 0.0, 0, 0
        for start in range(0, end, bs):
            idx = order[start : start + bs]
            x, y = self.batch_inputs(idx).to(device), self.labels[idx].to(device)
            with training_autocast(self.precision, device):
                logits = self.logits_of(self.net(x))
                loss = nn.functional.cross_entropy(logits, y, label_smoothing=self.label_smoothing)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            if self.scheduler is not None:
                self.scheduler.step()
            total += float(loss.detach()) * len(idx)
            correct += int((logits.argmax(1) == y).sum())
            seen += len(idx)
        metrics = {"loss": total / seen, "train_acc": correct / seen}
        if self.scheduler is not None:
            metrics["lr"] = self.optimizer.param_groups[0]["lr"]
        return metrics

    def state_dict(self) -> dict[str, Any]:
        state = {"optimizer": self.optimizer.state_dict(), "generator": self.generator.get_state()}
        if self.scheduler is not None:
            state["scheduler"] = self.scheduler.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state["scheduler"])
