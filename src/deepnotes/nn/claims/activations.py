"""Claims of the activations topic: vanishing gradients, dying ReLUs, SwiGLU vs GELU in a small LM."""

from __future__ import annotations

import math
from dataclasses import asdict
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from deepnotes.core.claims import ClaimContext, Outcome, claim
from deepnotes.core.notes import Paper, Source
from deepnotes.core.verdict import Test, paired
from deepnotes.nn.activations import get_activation
from deepnotes.nn.corpus import stdlib_docstrings
from deepnotes.nn.tiny_lm import LMConfig, train_lm
from deepnotes.optim import AdamW

DEPTH_ACTS = ("sigmoid", "tanh", "relu", "gelu")
# each activation with the initialisation its literature recommends: Glorot for the saturating ones,
# He for the rectifiers. The table also shows every activation under every init.
RECOMMENDED_INIT = {"sigmoid": "xavier", "tanh": "xavier", "relu": "kaiming", "gelu": "kaiming"}
INITS = ("torch_default", "xavier", "kaiming")


def _init_linear(layer: nn.Linear, init: str) -> None:
    if init == "xavier":
        nn.init.xavier_normal_(layer.weight)
    elif init == "kaiming":
        nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
    elif init != "torch_default":
        raise ValueError(f"unknown init {init!r}; valid: {', '.join(INITS)}")
    if init != "torch_default":
        nn.init.zeros_(layer.bias)


def layer_gradient_norms(act: str, init: str, depth: int, width: int, seed: int,
                         device: torch.device) -> list[float]:
    """Weight-gradient norm of every layer of a ``depth``-layer MLP (width x width hidden layers) at init.

    One cross-entropy step on a random batch (10 classes). Returns ``depth`` norms, first layer first.
    """
    torch.manual_seed(seed)
    dims = [width] * depth + [10]
    layers = [nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:], strict=False)]
    for layer in layers:
        _init_linear(layer, init)
    mods: list[nn.Module] = []
    for i, layer in enumerate(layers):
        mods += [layer] if i == len(layers) - 1 else [layer, get_activation(act)]
    net = nn.Sequential(*mods).to(device)
    x = torch.randn(256, width, device=device)
    y = torch.randint(0, 10, (256,), device=device)
    F.cross_entropy(net(x), y).backward()
    return [layer.weight.grad.norm().item() for layer in layers]


NOTE_WHY = ("曾经优秀的 ReLUs 怎么了,以及是什么促使最新的大型语言模型(LLMs)的创造者们"
            "开始使用不同的(更高级的)激活函数?")
WHY_EN = ("What happened to the once excellent ReLUs, and what drove the makers of the latest large language "
          "models to use different (more advanced) activation functions?")


@claim(
    "activations.vanishing_gradients", "activations",
    "In a 20-layer MLP at initialisation, the gradient reaching the first layer vanishes by orders of "
    "magnitude with sigmoid and tanh, but not with ReLU or GELU.",
    tests=(
        Test("saturating", "max over sigmoid and tanh of log10(|grad W_1| / |grad W_19|), each with "
             "Xavier init", "<", -2.0),
        Test("rectifiers", "min over ReLU and GELU of log10(|grad W_1| / |grad W_19|), each with He init",
             ">", -1.0),
    ),
    origin="library",
    source=Source("activations", NOTE_WHY, WHY_EN + " (The excerpt stops before the vanishing gradient; the "
                  "claim is the textbook reason, measured.)"),
)
def vanishing_gradients(ctx: ClaimContext) -> Outcome:
    import matplotlib.pyplot as plt

    from deepnotes.nn.plots import plot_activations

    depth, width, seeds = 20, ctx.pick(128, 512), ctx.seeds(ctx.pick(5, 10))
    # sigmoid gradients reach 1e-30, where denormal arithmetic is 100x slower
    flush = torch.set_flush_denormal(True)
    try:
        norms = {(a, i): [layer_gradient_norms(a, i, depth, width, s, ctx.device) for s in seeds]
                 for a in DEPTH_ACTS for i in INITS}
    finally:
        if flush:
            torch.set_flush_denormal(False)

    def log_ratios(a: str, i: str) -> list[float]:  # one per seed
        return [math.log10(max(n[0], 1e-300) / n[depth - 2]) for n in norms[(a, i)]]

    def ratio(a: str, i: str) -> float:  # geometric mean over seeds
        return 10 ** (sum(log_ratios(a, i)) / len(seeds))

    rec = {a: log_ratios(a, RECOMMENDED_INIT[a]) for a in DEPTH_ACTS}
    samples = {"saturating": [max(s, t) for s, t in zip(rec["sigmoid"], rec["tanh"], strict=True)],
               "rectifiers": [min(r, g) for r, g in zip(rec["relu"], rec["gelu"], strict=True)]}
    figures = {f"ratio_{a}": ratio(a, RECOMMENDED_INIT[a]) for a in DEPTH_ACTS}
    table = [{"activation": a, **{f"ratio ({i})": f"{ratio(a, i):.2e}" for i in INITS}} for a in DEPTH_ACTS]
    figures.update({f"ratio_{a}_{i}": ratio(a, i) for a in DEPTH_ACTS for i in INITS})
    _gradient_plot(ctx, plt, norms, depth, len(seeds))
    ctx.save_plot(plot_activations(), "functions-and-derivatives")
    return Outcome(
        figures, samples,
        tables={"first/last hidden-layer gradient ratio (geometric mean over seeds)": table},
        notes=("The ratio depends on the init as much as on the activation: under Xavier, tanh stays near "
               "its linear regime and keeps its gradient; under torch's default Linear init (variance "
               "1/(3 fan_in)) every activation vanishes. Sigmoid vanishes under every init (sigma' <= 1/4, "
               "outputs not zero-centred)."),
    )


def _gradient_plot(ctx: ClaimContext, plt, norms: dict, depth: int, seeds: int) -> None:
    fig, axes = plt.subplots(1, len(INITS), figsize=(12, 3.4), sharey=True)
    for ax, init in zip(axes, INITS, strict=False):
        for a in DEPTH_ACTS:
            mean_log = [sum(math.log10(max(n[k], 1e-300)) for n in norms[(a, init)]) / seeds
                        for k in range(depth)]
            ax.plot(range(1, depth + 1), mean_log, marker=".", label=a)
        ax.set_title(f"init: {init}")
        ax.set_xlabel("layer")
    axes[0].set_ylabel("log10 |grad W|")
    axes[0].legend()
    ctx.save_plot(fig, "grad-norm-per-layer")


def _teacher_data(seed: int, n: int, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, dim, generator=g)
    w = torch.randn(dim, 1, generator=g)
    return x, torch.sin(x @ w) + 0.1 * x[:, :1] ** 2


def dead_fractions(act: str, lr: float, steps: int, seed: int, device: torch.device, width: int = 128,
                   depth: int = 4) -> dict[str, float]:
    """Train a ``depth``-layer MLP regressor with AdamW at ``lr``; measure its units on held-out inputs.

    ``dead``: units whose derivative f'(z) is below 1e-3 in magnitude on every held-out input (no gradient
    can flow back through them). ``negative``: units whose pre-activation is <= 0 on every input.
    """
    x, y = _teacher_data(seed, 4096, 16)
    x_train, y_train = x[:3072].to(device), y[:3072].to(device)
    x_val, y_val = x[3072:].to(device), y[3072:].to(device)
    torch.manual_seed(seed)
    layers = nn.ModuleList(nn.Linear(16 if i == 0 else width, width) for i in range(depth)).to(device)
    acts = [get_activation(act) for _ in layers]
    head = nn.Linear(width, 1).to(device)
    opt = AdamW([*layers.parameters(), *head.parameters()], lr=lr, weight_decay=0.0)
    g = torch.Generator().manual_seed(seed + 1)

    def forward(inp: torch.Tensor, pre: list[torch.Tensor] | None = None) -> torch.Tensor:
        for layer, a in zip(layers, acts, strict=False):
            z = layer(inp)
            if pre is not None:
                pre.append(z)
            inp = a(z)
        return head(inp)

    for _ in range(steps):
        idx = torch.randint(0, len(x_train), (128,), generator=g).to(device)
        loss = F.mse_loss(forward(x_train[idx]), y_train[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    pre: list[torch.Tensor] = []
    with torch.no_grad():
        val = F.mse_loss(forward(x_val, pre), y_val).item()
    dead, negative = [], []
    for z, a in zip(pre, acts, strict=False):
        zg = z.detach().requires_grad_()
        (dz,) = torch.autograd.grad(a(zg).sum(), zg)
        dead.append((dz.abs() < 1e-3).all(dim=0))
        negative.append((z <= 0).all(dim=0))
    return {"dead": torch.cat(dead).float().mean().item(),
            "negative": torch.cat(negative).float().mean().item(), "val_mse": val}


@claim(
    "activations.dying_relu", "activations",
    "Trained at a high learning rate, many ReLU units die (output 0 and receive no gradient on every input); "
    "LeakyReLU keeps its units able to recover.",
    tests=(
        Test("relu_high_vs_low_lr", "dead fraction of ReLU units (f'(z) = 0 on every held-out input) at "
             "lr 1e-2 minus at lr 1e-3, paired by seed", ">", 0.0),
        Test("relu_vs_leaky_stuck", "fraction of units whose pre-activation is <= 0 on every held-out input "
             "(a criterion both can meet): ReLU minus LeakyReLU at lr 1e-2, paired by seed", ">", 0.0),
    ),
    origin="library",
    source=Source("activations", NOTE_WHY, WHY_EN + " (The excerpt stops before the dying ReLU.)"),
)
def dying_relu(ctx: ClaimContext) -> Outcome:
    steps, seeds = ctx.pick(150, 1000), ctx.seeds(ctx.pick(5, 8))
    arms = (("relu", 1e-2), ("relu", 1e-3), ("leaky_relu", 1e-2), ("gelu", 1e-2))
    with ctx.one_thread():
        runs = {(a, lr): [dead_fractions(a, lr, steps, s, ctx.device) for s in seeds] for a, lr in arms}
    rows, figures = [], {}
    for (a, lr), rs in runs.items():
        tag = "high" if lr == 1e-2 else "low"
        mean = {k: sum(r[k] for r in rs) / len(rs) for k in rs[0]}
        figures.update({f"{k}_{a}_{tag}_lr": v for k, v in mean.items()})
        rows.append({"activation": a, "lr": lr, "dead fraction": round(mean["dead"], 3),
                     "pre-activation <= 0 everywhere": round(mean["negative"], 3),
                     "val MSE": round(mean["val_mse"], 4)})
    samples = {
        "relu_high_vs_low_lr": paired([r["dead"] for r in runs[("relu", 1e-2)]],
                                      [r["dead"] for r in runs[("relu", 1e-3)]]),
        "relu_vs_leaky_stuck": paired([r["negative"] for r in runs[("relu", 1e-2)]],
                                      [r["negative"] for r in runs[("leaky_relu", 1e-2)]]),
    }
    return Outcome(figures, samples, tables={"units after training (mean over seeds)": rows},
                   notes=("'dead' (f'(z) below 1e-3 on every input) cannot happen to LeakyReLU, whose slope "
                          "is 0.01 everywhere: the claim compares ReLU with itself at a high and a low "
                          "learning rate, and ReLU with LeakyReLU on 'pre-activation <= 0 everywhere', which "
                          "either can meet (LeakyReLU's stuck units still pass 1% of the gradient)."))


@claim(
    "activations.swiglu_vs_gelu_lm", "activations",
    "At equal parameter count, a transformer language model with SwiGLU feed-forward blocks reaches a lower "
    "validation loss than one with GELU MLP blocks.",
    tests=Test("gap", "validation loss of GELU minus SwiGLU (nats/byte), same data order, paired by seed",
               ">", 0.0),
    origin="paper",
    source=Source("activations", "最近,似乎现在每个大型语言模型(LLM)和新闻中提到的复杂神经网络架构"
                  "都使用略有不同的激活函数",
                  "Lately, it seems every large language model (LLM) and complex architecture in the news "
                  "uses a slightly different activation function"),
    paper=Paper("Shazeer, GLU Variants Improve Transformer, arXiv:2002.05202, 2020",
                "Table 1: held-out log-perplexity after 65,536 steps, FFN_GELU 1.983 vs FFN_SwiGLU 1.944",
                "T5-base-sized encoder-decoder on C4 span filling, FFN hidden 3072 (GELU) vs 2048 (SwiGLU): "
                "equal parameters and compute"),
)
def swiglu_vs_gelu(ctx: ClaimContext) -> Outcome:
    import matplotlib.pyplot as plt

    corpus = stdlib_docstrings(max_bytes=ctx.pick(150_000, None))
    d, layers, context = ctx.pick(64, 128), ctx.pick(2, 4), ctx.pick(64, 128)
    # --full: 3 seeds, not 5: each training takes ~37 min on 2 cores
    steps, batch, seeds = ctx.pick(120, 3000), ctx.pick(16, 32), ctx.seeds(3)
    results: dict[str, list[dict]] = {"gelu": [], "swiglu": []}
    for seed in seeds:
        for name, ffn in (("gelu", "mlp"), ("swiglu", "swiglu")):
            cfg = LMConfig(context=context, d_model=d, layers=layers, heads=4, ffn=ffn)
            # each --full training takes ~37 min: a rerun with the same --out reuses the finished ones
            key = {**asdict(cfg), "steps": steps, "batch": batch, "lr": 3e-3, "seed": seed,
                   "train_bytes": len(corpus.train), "val_bytes": len(corpus.val), "device": ctx.device.type}
            run = partial(train_lm, cfg, corpus.train, corpus.val, steps, batch, lr=3e-3, seed=seed,
                          device=ctx.device, desc=f"lm {name}")
            with ctx.one_thread(ctx.quick):  # quick: a tiny model on a shared laptop
                results[name].append(ctx.cached(f"lm-{name}-seed{seed}", key, run))
    figures: dict[str, float] = {"corpus_train_bytes": len(corpus.train), "corpus_val_bytes": len(corpus.val)}
    for name, runs in results.items():
        figures[f"val_loss_{name}"] = sum(r["val_loss"] for r in runs) / len(seeds)
        figures[f"val_bits_per_byte_{name}"] = figures[f"val_loss_{name}"] / math.log(2)
        figures[f"params_{name}"] = runs[0]["params"]
        figures[f"ffn_params_{name}"] = runs[0]["ffn_params"]
    fig, ax = plt.subplots(figsize=(5, 3.4))
    for name, runs in results.items():
        steps_at, losses = zip(*runs[0]["curve"], strict=False)
        ax.plot(steps_at, losses, marker="o", label=f"{name} ({runs[0]['params']} params)")
    ax.set_xlabel("step")
    ax.set_ylabel("validation loss (nats/byte)")
    ax.legend()
    ctx.save_plot(fig, "val-loss")
    gap = paired([r["val_loss"] for r in results["gelu"]], [r["val_loss"] for r in results["swiglu"]])
    return Outcome(figures, gap, notes=f"{corpus.files} stdlib modules; {d=}, {layers=}, {context=}, "
                   f"{steps=}, {batch=}, seeds={len(seeds)}; skipped files: {corpus.skipped or 'none'}")
