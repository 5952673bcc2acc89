"""The closed-set probe: a classifier trained on a model's frozen features.

SM-SGE's protocol (and every closed-set protocol here) scores a model by the class scores of a
classifier trained on its frozen training features; :func:`reid_bench.metrics.closed_set_metrics`
then turns those scores into Rank-k, nAUC and sequence accuracy. The probe trains a fixed number
of epochs so that test data never steers it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from reid_bench.config import Fraction, NonNegativeFloat, PositiveFloat, PositiveInt

__all__ = ["ProbeConfig", "train_probe_and_score"]


@dataclass
class ProbeConfig:
    """Probe trained on frozen features; fixed epochs so test data never steers it.

    ``init``: "torch" (PyTorch's default) or "normal" (weights N(0, 1), biases 0). ``chunks``:
    the feature is that many equal parts sharing one classifier, whose logits are summed (SM-SGE's
    release classifies each of a window's f+1 prefixes that way); ``chunk_loss``: train on the
    summed logits ("summed", SM-SGE) or on every part as a sample of its own ("each", AGE's
    per-frame recognition network; test scores are still the summed logits). ``balanced``: train on the
    class-balanced set of :func:`reid_bench.samples.class_balanced_order` instead of the windows
    as given; ``shuffle``: reshuffle every epoch (False: the order as built). ``scores``: what the
    metrics rank, "softmax" probabilities or raw "logits" (SM-SGE's release computes its ROC AUC
    on the summed logits).

    ``knn``: ``k`` nearest training samples by ``metric`` ("cosine" similarity, or "euclidean"
    distance, as the KNN of D13's table row). ``adaboost``: scikit-learn's AdaBoost (SAMME) over
    ``estimators`` depth-1 trees, as the table rows "D16 descriptors + Adaboost".
    """

    kind: Literal["mlp", "knn", "adaboost"] = "mlp"
    hidden: PositiveInt = 256
    epochs: PositiveInt = 100
    lr: PositiveFloat = 1e-3
    weight_decay: NonNegativeFloat = 1e-4
    batch_size: PositiveInt = 256
    dropout: Fraction = 0.0
    k: PositiveInt = 1
    standardize: bool = True
    init: Literal["torch", "normal"] = "torch"
    chunks: PositiveInt = 1
    balanced: bool = False
    shuffle: bool = True
    scores: Literal["softmax", "logits"] = "softmax"
    metric: Literal["cosine", "euclidean"] = "cosine"
    estimators: PositiveInt = 50
    chunk_loss: Literal["summed", "each"] = "summed"


def _to_float_tensor(x, name: str, device: torch.device) -> torch.Tensor:
    t = x.detach() if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    if t.dim() != 2 or t.shape[0] == 0 or t.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty 2-D array [N, D], got shape {tuple(t.shape)}")
    t = t.to(device=device, dtype=torch.float32)
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} contains NaN or inf")
    return t


def train_probe_and_score(
    train_feats, train_labels, test_feats, cfg: ProbeConfig, seed: int, device="cpu"
) -> np.ndarray:
    """Fit a probe on frozen train features and return class scores [N_test, C].

    * ``mlp``: Linear -> ReLU -> (Dropout) -> Linear, Adam + cross-entropy for
      exactly ``cfg.epochs`` epochs; returns softmax probabilities. Weight init,
      dropout and batch shuffling all derive from ``seed`` (the global torch
      RNG is left untouched).
    * ``knn``: score of class c = mean of the top min(k, n_c) cosine
      similarities (or negated Euclidean distances) to that class's training
      samples; classes with no training sample get -inf.
    * ``adaboost``: class probabilities of scikit-learn's AdaBoostClassifier
      (``estimators`` stumps, random state ``seed``); classes never seen get 0.

    C = max(train_labels) + 1. Features are standardised with the train
    mean/std first when ``cfg.standardize``.
    """
    if cfg.kind not in ("mlp", "knn", "adaboost"):
        raise ValueError(f"unknown probe kind {cfg.kind!r}; expected 'mlp', 'knn' or 'adaboost'")
    if cfg.metric not in ("cosine", "euclidean"):
        raise ValueError(f"unknown probe metric {cfg.metric!r}; expected 'cosine' or 'euclidean'")
    for name in ("hidden", "epochs", "batch_size", "k", "estimators"):
        if getattr(cfg, name) < 1:
            raise ValueError(f"ProbeConfig.{name} must be >= 1, got {getattr(cfg, name)}")
    if not 0.0 <= cfg.dropout < 1.0:
        raise ValueError(f"ProbeConfig.dropout must be in [0, 1), got {cfg.dropout}")
    device = torch.device(device)
    xtr = _to_float_tensor(train_feats, "train_feats", device)
    xte = _to_float_tensor(test_feats, "test_feats", device)
    if xtr.shape[1] != xte.shape[1]:
        raise ValueError(
            f"feature dims differ: train has {xtr.shape[1]}, test has {xte.shape[1]}"
        )
    ytr_np = np.asarray(
        train_labels.detach().cpu() if isinstance(train_labels, torch.Tensor) else train_labels
    )
    if ytr_np.ndim != 1 or ytr_np.shape[0] != xtr.shape[0]:
        raise ValueError(
            f"shape mismatch: train_feats has {xtr.shape[0]} rows but train_labels has shape "
            f"{ytr_np.shape}"
        )
    if ytr_np.dtype.kind not in "iu" or ytr_np.min() < 0:
        raise ValueError("train_labels must be non-negative integer class indices")
    ytr = torch.as_tensor(ytr_np.astype(np.int64), device=device)
    n_cls = int(ytr.max()) + 1

    if cfg.standardize:
        mean = xtr.mean(0, keepdim=True)
        std = xtr.std(0, unbiased=False, keepdim=True)
        std = torch.where(std > 1e-12, std, torch.ones_like(std))
        xtr = (xtr - mean) / std
        xte = (xte - mean) / std

    if cfg.kind == "knn":
        return _knn_scores(xtr, ytr, xte, n_cls, cfg.k, cfg.metric)
    if cfg.kind == "adaboost":
        return _adaboost_scores(xtr, ytr, xte, n_cls, cfg.estimators, seed)
    return _mlp_scores(xtr, ytr, xte, n_cls, cfg, seed, device)


def _knn_scores(xtr, ytr, xte, n_cls: int, k: int, metric: str = "cosine") -> np.ndarray:
    if metric == "cosine":
        a = torch.nn.functional.normalize(xtr, dim=1)
        b = torch.nn.functional.normalize(xte, dim=1)
    counts = torch.bincount(ytr, minlength=n_cls)
    n_max = int(counts.max())
    # [C, n_max] table of train indices per class (padded), so one gather
    # gives every class's similarities at once
    order = torch.sort(ytr, stable=True).indices
    starts = torch.cumsum(counts, 0) - counts
    ar = torch.arange(n_max, device=xtr.device)
    present = ar[None, :] < counts[:, None]
    table = order[(starts[:, None] + ar[None, :]).clamp(max=len(ytr) - 1)]
    kk = min(k, n_max)
    denom = counts.clamp(max=k).double()
    out = torch.empty((xte.shape[0], n_cls), dtype=torch.float64, device=xtr.device)
    step = max(1, (1 << 24) // max(1, n_cls * n_max))
    for s in range(0, xte.shape[0], step):
        if metric == "cosine":
            sim = b[s : s + step] @ a.T  # [B, N_train]
        else:
            sim = -torch.cdist(xte[s : s + step].double(), xtr.double())
        per_cls = sim[:, table].masked_fill(~present[None], -math.inf)  # [B, C, n_max]
        top = per_cls.topk(kk, dim=2).values
        top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))
        out[s : s + step] = top.double().sum(2) / denom.clamp(min=1)[None]
    out[:, counts == 0] = -math.inf
    return out.cpu().numpy()


def _adaboost_scores(xtr, ytr, xte, n_cls: int, estimators: int, seed: int) -> np.ndarray:
    # scikit-learn's SAMME AdaBoost with stumps is the textbook one; the table rows name no settings.
    from sklearn.ensemble import AdaBoostClassifier

    labels = ytr.cpu().numpy()
    clf = AdaBoostClassifier(n_estimators=estimators, random_state=seed)
    clf.fit(xtr.double().cpu().numpy(), labels)
    proba = clf.predict_proba(xte.double().cpu().numpy())
    out = np.zeros((xte.shape[0], n_cls), dtype=np.float64)
    out[:, clf.classes_] = proba
    return out


def _mlp_scores(xtr, ytr, xte, n_cls: int, cfg: ProbeConfig, seed: int, device) -> np.ndarray:
    if xtr.shape[1] % cfg.chunks:
        raise ValueError(f"probe.chunks={cfg.chunks} does not divide the feature size {xtr.shape[1]}")
    width = xtr.shape[1] // cfg.chunks
    fork_devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=fork_devices):
        torch.manual_seed(seed)
        layers: list[torch.nn.Module] = [torch.nn.Linear(width, cfg.hidden), torch.nn.ReLU()]
        if cfg.dropout > 0:
            layers.append(torch.nn.Dropout(cfg.dropout))
        layers.append(torch.nn.Linear(cfg.hidden, n_cls))
        model = torch.nn.Sequential(*layers).to(device)
        if cfg.init == "normal":
            for layer in model:
                if isinstance(layer, torch.nn.Linear):
                    torch.nn.init.normal_(layer.weight, 0.0, 1.0)
                    torch.nn.init.zeros_(layer.bias)

        def logits(x: torch.Tensor) -> torch.Tensor:  # one classifier on every chunk, logits summed
            return model(x.reshape(x.shape[0] * cfg.chunks, width)).reshape(x.shape[0], cfg.chunks, -1).sum(1)

        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        gen = torch.Generator(device="cpu")
        gen.manual_seed(seed)
        if cfg.balanced:
            from reid_bench.samples import class_balanced_order

            order = torch.as_tensor(class_balanced_order(ytr.cpu().numpy(), cfg.batch_size,
                                                         np.random.default_rng(seed)))
        else:
            order = torch.arange(xtr.shape[0])
        n = len(order)
        model.train()
        for _ in range(cfg.epochs):
            perm = order[torch.randperm(n, generator=gen)] if cfg.shuffle else order
            perm = perm.to(device)
            for s in range(0, n, cfg.batch_size):
                idx = perm[s : s + cfg.batch_size]
                if cfg.chunk_loss == "each":
                    part_logits = model(xtr[idx].reshape(len(idx) * cfg.chunks, width))
                    loss = torch.nn.functional.cross_entropy(part_logits, ytr[idx].repeat_interleave(cfg.chunks))
                else:
                    loss = torch.nn.functional.cross_entropy(logits(xtr[idx]), ytr[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        model.eval()
        with torch.no_grad():
            out = [logits(xte[s : s + 4096]).double() for s in range(0, xte.shape[0], 4096)]
            scores = torch.cat(out)
            if cfg.scores == "softmax":
                scores = torch.softmax(scores, dim=1)
    return scores.cpu().numpy()
