"""A small decoder-only transformer over bytes, to compare feed-forward blocks (GELU MLP vs SwiGLU).

Pre-norm blocks: x + Attn(LN(x)), then x + FFN(LN(x)); learned positions; output head tied to the byte
embedding. The FFN is any block from :mod:`deepnotes.nn.glu`, chosen by name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from deepnotes.core.progress import progress
from deepnotes.nn.glu import get_feed_forward
from deepnotes.optim import AdamW, cosine_with_warmup


@dataclass
class LMConfig:
    vocab: int = 256
    context: int = 64
    d_model: int = 64
    layers: int = 2
    heads: int = 4
    ffn: str = "mlp"  # a name from deepnotes.nn.glu.FEED_FORWARDS
    ffn_activation: str = "gelu"  # for ffn="mlp" only; gated blocks fix their own


class CausalSelfAttention(nn.Module):
    """(B, T, d) -> (B, T, d): multi-head attention where position t sees positions <= t."""

    def __init__(self, d_model: int, heads: int):
        super().__init__()
        if d_model % heads:
            raise ValueError(f"d_model {d_model} is not divisible by heads {heads}")
        self.heads = heads
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=False)
        self.proj = nn.Linear(d_model, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, heads, T, d/heads)
        return self.proj(y.transpose(1, 2).reshape(b, t, d))


class Block(nn.Module):
    def __init__(self, cfg: LMConfig):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(cfg.d_model), nn.LayerNorm(cfg.d_model)
        self.attn = CausalSelfAttention(cfg.d_model, cfg.heads)
        kw = {"activation": cfg.ffn_activation} if cfg.ffn == "mlp" else {}
        self.ffn = get_feed_forward(cfg.ffn, cfg.d_model, **kw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.ffn(self.ln2(x))


class TinyLM(nn.Module):
    """(B, T) byte ids -> (B, T, vocab) next-byte logits, T <= context."""

    def __init__(self, cfg: LMConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab, cfg.d_model)
        self.pos = nn.Parameter(torch.zeros(cfg.context, cfg.d_model))
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.layers))
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.apply(self._init)
        # scale the residual-branch outputs down with depth (GPT-2) so the stream does not grow with layers
        for name, p in self.named_parameters():
            if name.endswith(("proj.weight", "fc_out.weight")):
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * cfg.layers))

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        t = ids.shape[1]
        if t > self.cfg.context:
            raise ValueError(f"sequence length {t} exceeds the model context {self.cfg.context}")
        x = self.embed(ids) + self.pos[:t]
        for block in self.blocks:
            x = block(x)
        return self.ln_f(x) @ self.embed.weight.T  # tied output head

    def ffn_parameters(self) -> int:
        return sum(p.numel() for b in self.blocks for p in b.ffn.parameters())


def batch_windows(data: torch.Tensor, starts: torch.Tensor,
                  context: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs (B, context) and next-byte targets (B, context) from windows of ``data`` at ``starts``."""
    idx = starts[:, None] + torch.arange(context + 1)
    chunk = data[idx].long()
    return chunk[:, :-1], chunk[:, 1:]


@torch.no_grad()
def evaluate(model: TinyLM, data: torch.Tensor, windows: int, batch: int, seed: int,
             device: torch.device) -> float:
    """Mean next-byte cross-entropy (nats) over ``windows`` fixed, seeded windows of ``data``."""
    model.eval()
    ctx = model.cfg.context
    g = torch.Generator().manual_seed(seed)
    starts = torch.randint(0, len(data) - ctx - 1, (windows,), generator=g)
    total, count = 0.0, 0
    for i in range(0, windows, batch):
        x, y = batch_windows(data, starts[i : i + batch], ctx)
        logits = model(x.to(device))
        total += F.cross_entropy(logits.flatten(0, 1), y.to(device).flatten(), reduction="sum").item()
        count += y.numel()
    model.train()
    return total / count


def train_lm(cfg: LMConfig, train: torch.Tensor, val: torch.Tensor, steps: int, batch: int, lr: float,
             seed: int, device: torch.device, eval_windows: int = 256, desc: str = "lm") -> dict:
    """Train a :class:`TinyLM` with AdamW and a warm-up + cosine schedule; return its losses and size.

    Returns ``{"val_loss", "train_loss" (mean of the last 10% of steps), "params", "ffn_params", "curve"}``;
    the curve holds (step, validation loss) at a few points.
    """
    torch.manual_seed(seed)
    model = TinyLM(cfg).to(device)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and n != "pos"]
    other = [p for n, p in model.named_parameters() if p.dim() < 2 or n == "pos"]
    opt = AdamW([{"params": decay, "weight_decay": 0.1}, {"params": other, "weight_decay": 0.0}],
                lr=lr, betas=(0.9, 0.95))
    sched = cosine_with_warmup(opt, warmup_steps=max(1, steps // 20), total_steps=steps)
    g = torch.Generator().manual_seed(seed + 1)  # same batches for every model compared at this seed
    curve, recent = [], []
    for step in progress(range(steps), desc=desc, total=steps):
        starts = torch.randint(0, len(train) - cfg.context - 1, (batch,), generator=g)
        x, y = batch_windows(train, starts, cfg.context)
        loss = F.cross_entropy(model(x.to(device)).flatten(0, 1), y.to(device).flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step >= steps - max(1, steps // 10):
            recent.append(loss.item())
        if (step + 1) % max(1, steps // 4) == 0:
            curve.append((step + 1, evaluate(model, val, eval_windows // 4, batch, seed, device)))
    return {
        "val_loss": evaluate(model, val, eval_windows, batch, seed, device),
        "train_loss": sum(recent) / len(recent),
        "params": sum(p.numel() for p in model.parameters()),
        "ffn_params": model.ffn_parameters(),
        "curve": curve,
    }
