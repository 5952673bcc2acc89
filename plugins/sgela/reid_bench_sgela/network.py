"""The attention-based gait encoder-decoder of AGE and SGELA, one per coordinate axis.

Facts from the released TensorFlow code (Kali-Hac/SGE-LA ``train.py``, commit 742e691, "[A]";
Kali-Hac/Locality-Awareness-SGE ``train.py``, commit 27df99c, "[C]"), re-expressed in PyTorch:

- one model per axis, input per step the J values of that axis ([A] 71-76, 120);
- encoder: two stacked LSTM cells of 256 units, weights uniform(-0.1, 0.1), biases zero,
  TF's forget bias 1.0 ([A] 199-224);
- decoder: two stacked LSTM cells from the encoder's final state, Luong "general" attention
  over the top encoder outputs (memory layer 256 x 256 without bias), attention layer
  [h; context] -> 256 without bias or tanh, fed back as input next step ("input feeding"),
  output layer 256 -> J with bias, initialised N(0, 0.1) truncated ([A] 227-260); its inputs
  are zero frames: the release's decoder input is f zero frames before the shifted target and
  the helper reads the first f only ([A] 263-281, 326-332);
- the target is the input in reverse order ([A] 397, 647-650).

TF's LSTM cell has one bias per gate; PyTorch's has two. The second (``bias_hh``) is frozen at
TF's constant forget bias, so the trainable parameters are TF's exactly.
"""

from __future__ import annotations

import math

import torch
from torch import nn

HIDDEN = 256


def _tf_like(cell: nn.Module) -> None:
    """Uniform(-0.1, 0.1) weights, zero trainable bias, TF's forget bias 1.0 as a frozen constant."""
    for name, p in cell.named_parameters():
        if name.startswith("weight"):
            nn.init.uniform_(p, -0.1, 0.1)
        elif name.startswith("bias_ih"):
            nn.init.zeros_(p)
        elif name.startswith("bias_hh"):
            with torch.no_grad():
                p.zero_()
                p[p.shape[0] // 4 : p.shape[0] // 2] = 1.0  # PyTorch gate order i, f, g, o
            p.requires_grad_(False)


def _truncated_normal_(w: torch.Tensor, std: float) -> None:
    nn.init.trunc_normal_(w, 0.0, std, -2 * std, 2 * std)


class AxisEncoderDecoder(nn.Module):
    """Encoder-decoder of one coordinate axis: [B, f, J] -> reconstruction, attention, contexts."""

    def __init__(self, joints: int, hidden: int = HIDDEN) -> None:
        super().__init__()
        self.joints, self.hidden = joints, hidden
        self.encoder = nn.LSTM(joints, hidden, num_layers=2, batch_first=True)
        self.memory = nn.Linear(hidden, hidden, bias=False)
        self.dec0 = nn.LSTMCell(joints + hidden, hidden)
        self.dec1 = nn.LSTMCell(hidden, hidden)
        self.attention = nn.Linear(2 * hidden, hidden, bias=False)
        self.out = nn.Linear(hidden, joints)
        for m in (self.encoder, self.dec0, self.dec1):
            _tf_like(m)
        # TF Dense defaults: Glorot uniform kernels for the memory and attention layers
        nn.init.xavier_uniform_(self.memory.weight)
        nn.init.xavier_uniform_(self.attention.weight)
        _truncated_normal_(self.out.weight, 0.1)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """x [B, f, J] -> (reconstruction [B, f, J], alignments [B, f_dec, f_enc],
        contexts [B, f, H], encoder outputs [B, f, H])."""
        b, f, _ = x.shape
        enc_out, (h, c) = self.encoder(x)
        keys = self.memory(enc_out)  # [B, f, H]
        state0, state1 = (h[0], c[0]), (h[1], c[1])
        att = x.new_zeros(b, self.hidden)
        zeros = x.new_zeros(b, self.joints)
        recon, aligns, contexts = [], [], []
        for _ in range(f):
            state0 = self.dec0(torch.cat([zeros, att], dim=1), state0)
            state1 = self.dec1(state0[0], state1)
            query = state1[0]
            align = torch.softmax(torch.bmm(keys, query.unsqueeze(2)).squeeze(2), dim=1)  # [B, f_enc]
            context = torch.bmm(align.unsqueeze(1), enc_out).squeeze(1)
            att = self.attention(torch.cat([query, context], dim=1))
            recon.append(self.out(att))
            aligns.append(align)
            contexts.append(context)
        return torch.stack(recon, 1), torch.stack(aligns, 1), torch.stack(contexts, 1), enc_out


class ProjectionHead(nn.Module):
    """SGELA's contrastive head on the flattened contexts: f*256 -> 256 -> ReLU -> 256,
    weights N(0, 1), biases zero ([C] 694-704)."""

    def __init__(self, window: int, hidden: int = HIDDEN) -> None:
        super().__init__()
        self.fc1 = nn.Linear(window * hidden, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        for layer in (self.fc1, self.fc2):
            nn.init.normal_(layer.weight, 0.0, 1.0)
            nn.init.zeros_(layer.bias)

    def forward(self, contexts: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(contexts.flatten(1))))


def locality_mask(window: int) -> torch.Tensor:
    """[f_dec, f_enc] locality prior: decoder step t is centred on encoder step f-1-t (the
    reversed target) with a Gaussian of sigma f/2 ([A] 393-407)."""
    t = torch.arange(window, dtype=torch.float64)
    centre = window - 1 - t
    d = t[None, :] - centre[:, None]
    sigma = window / 2
    return torch.exp(-(d**2) / (2 * sigma**2)).float()


def adjacent_nt_xent(z: torch.Tensor, temperature: float) -> torch.Tensor:
    """SGELA's contrastive loss: each window's positive is the one before it in the (unshuffled)
    batch; NT-Xent over the 2(B-1) views with cosine similarity / temperature ([C] 712-730)."""
    z1, z2 = z[1:], z[:-1]
    n = z1.shape[0]
    if n < 1:
        return z.sum() * 0.0
    views = nn.functional.normalize(torch.cat([z1, z2], 0), dim=1)
    sim = views @ views.T / temperature
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), -math.inf)
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return nn.functional.cross_entropy(sim, targets)
