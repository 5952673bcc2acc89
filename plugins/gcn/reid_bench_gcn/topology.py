"""CTR-GCN's refined-topology aggregation with a faster CPU backward and the same numbers.

The release computes ``einsum("ncuv,nctv->nctu", conv4(rel) * alpha + A, v)`` at the end of
CTRGC's forward (Uason-Chen/CTR-GCN ``model/ctrgcn.py``, CTRGC at 150-177).
Under autograd on the CPU the topology's gradient comes out of the einsum's batched product
transposed in memory, and the adjacency's gradient, its sum over N and C, then runs torch's
strided scalar reduction: 21 ms against 1 for the same sum over contiguous memory at
[64, 256, 20, 20], plus a copy of the transposed gradient inside the 1x1 convolution's
backward: a sixth of a CTR-GCN epoch at six frames (37.9 -> 31.4 s on synth-gait, 2 threads).

``aggregate`` computes the forward with the release's own ops and its backward with the
topology's gradient contiguous. Each gradient is the value autograd gives, bit for bit (tested
against the plain ops): the products are the same products in the same order, the adjacency's
gradient adds its N x C terms in the order torch's CPU kernel adds them on the transposed
gradient (``strided_outer_sum_order``), and alpha's is the same reduction over a product laid out
as autograd lays it out. A rounding change here is not harmless: the seeded CTR-GCN losses move
by 2.6e-3 within three epochs when only these two sums add in another order.
"""

from __future__ import annotations

import torch


def _ceil_log2(x: int) -> int:
    return 1 if x <= 2 else (x - 1).bit_length()


def _sequential(rows: torch.Tensor) -> torch.Tensor:
    """[k, s, M] -> [k, M]: each sum over s added from the first term on."""
    total = rows[:, 0].clone()
    for j in range(1, rows.shape[1]):
        total += rows[:, j]
    return total


def _cascade(x: torch.Tensor) -> torch.Tensor:
    """Column sums of [R, M] as torch 2.13's CPU ``multi_row_sum`` adds each column
    (``aten/src/ATen/native/cpu/SumKernel.cpp``): sequential sums of blocks of 2^p rows
    (p = max(4, ceil(log2 R) // 4)); those summed in groups of 2^p, and those again, each level
    in order; the top level sums all of its groups; what is left over at each level is added
    last, from the bottom level up."""
    rows, width = x.shape
    step = 1 << max(4, _ceil_log2(rows) // 4)

    def in_order(t: torch.Tensor) -> torch.Tensor:
        return _sequential(t[None])[0] if len(t) else x.new_zeros(width)

    blocks = rows // step
    level = _sequential(x[:blocks * step].view(blocks, step, width))
    result = in_order(x[blocks * step:])
    left_over = []
    for _ in range(2):  # two intermediate levels flush upwards every `step` of the level below
        groups = len(level) // step
        left_over.append(in_order(level[groups * step:]))
        level = _sequential(level[:groups * step].view(groups, step, width))
    for part in (*left_over, in_order(level)):
        result = result + part
    return result


def _interleaved(x: torch.Tensor) -> torch.Tensor:
    """Column sums of [R, M] as torch's CPU ``row_sum`` adds a single column: four interleaved
    partial sums (rows 4i + k) by ``_cascade``, the rows past the last four into the first, then
    the four added in order."""
    rows, width = x.shape
    quarter = rows // 4
    partial = _cascade(x[:quarter * 4].reshape(quarter, 4 * width)).view(4, width)
    first = partial[0].clone()
    for row in x[quarter * 4:]:
        first += row
    return ((first + partial[1]) + partial[2]) + partial[3]


def strided_outer_sum_order(grad: torch.Tensor) -> torch.Tensor:
    """``g.sum((0, 1))`` for g the [N, C, U, V] tensor ``grad`` (contiguous) would be if it were
    laid out as ``grad.transpose(-1, -2).contiguous().transpose(-1, -2)`` (autograd's layout for
    the topology's gradient), bit for bit, at contiguous speed.

    On that layout torch reduces N x C (one dimension) innermost, walks v next and u outermost,
    and takes its scalar outer-sum path: four v columns at a time through ``multi_row_sum``
    (``_cascade``), the last V mod 4 through ``row_sum`` (``_interleaved``).
    """
    n, c, u, v = grad.shape
    flat = grad.reshape(n * c, u, v)
    grouped = 4 * (v // 4)
    out = torch.empty(u, v, dtype=grad.dtype)
    if grouped:
        out[:, :grouped] = _cascade(flat[:, :, :grouped].reshape(n * c, u * grouped)).view(u, grouped)
    if grouped < v:
        rest = flat[:, :, grouped:].reshape(n * c, u * (v - grouped))
        out[:, grouped:] = _interleaved(rest).view(u, v - grouped)
    return out


class _Aggregate(torch.autograd.Function):
    @staticmethod
    def forward(ctx, refined: torch.Tensor, alpha: torch.Tensor, adjacency: torch.Tensor,
                values: torch.Tensor) -> torch.Tensor:
        topology = refined * alpha + adjacency[None, None]
        ctx.save_for_backward(refined, alpha, topology, values)
        return torch.einsum("ncuv,nctv->nctu", topology, values)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        refined, alpha, topology, values = ctx.saved_tensors
        wants_refined, wants_alpha, wants_adjacency, wants_values = ctx.needs_input_grad
        grad = grad.contiguous()
        grad_values = grad @ topology if wants_values else None  # the einsum's own backward product
        # the topology's gradient [N, C, U, V], contiguous: sum over t of grad[t, u] values[t, v]
        grad_topology = grad.transpose(-1, -2) @ values
        grad_refined = grad_topology * alpha if wants_refined else None
        grad_alpha = grad_adjacency = None
        if wants_alpha:
            # the product laid out as autograd's (v before u in memory), reduced as it reduces it
            product = torch.empty(grad_topology.shape[:2] + grad_topology.shape[:1:-1],
                                  dtype=grad.dtype).transpose(-1, -2)
            torch.mul(grad_topology, refined, out=product)
            grad_alpha = product.sum_to_size(alpha.shape)
        if wants_adjacency:  # a learned adjacency (CTR-GCN's ``adaptive``), not a buffer
            grad_adjacency = strided_outer_sum_order(grad_topology)
        return grad_refined, grad_alpha, grad_adjacency, grad_values


def aggregate(refined: torch.Tensor, alpha: torch.Tensor, adjacency: torch.Tensor,
              values: torch.Tensor) -> torch.Tensor:
    """``einsum("ncuv,nctv->nctu", refined * alpha + adjacency, values)`` (CTRGC, 150-177): refined
    [N, C, V, V], alpha [1], adjacency [V, V], values [N, C, T, V]. Off the CPU, or for another
    dtype, the plain ops (the exact-order backward is written for torch's CPU float32 kernels)."""
    if refined.device.type != "cpu" or refined.dtype != torch.float32 or not torch.is_grad_enabled():
        return torch.einsum("ncuv,nctv->nctu", refined * alpha + adjacency[None, None], values)
    return _Aggregate.apply(refined, alpha, adjacency, values)
