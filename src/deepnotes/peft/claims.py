"""Claims of the PEFT notes, measured on a tiny GPT-2 pre-trained here and the synthetic table2text task."""

from __future__ import annotations

import copy
import json
import statistics
import time
from pathlib import Path

import torch

from deepnotes.core import ClaimContext, Outcome, claim
from deepnotes.core.checkpoint import read_meta
from deepnotes.core.notes import Paper, Source
from deepnotes.core.rundir import CHECKPOINT, CONFIG, METRICS
from deepnotes.core.timing import time_call
from deepnotes.core.verdict import Test, floor_reason, paired, ratios
from deepnotes.peft import claims_cost  # noqa: F401  (registers the cost claims: memory, adapter latency)
from deepnotes.peft.methods import METHODS as REGISTERED

TOPIC = "peft"


def _base(ctx: ClaimContext) -> Path:
    """The pre-trained base model, shared by the claims and cached in the report's work folder."""
    from deepnotes.peft.pretrain import pretrain

    # --full trains the tiny size 200x longer rather than the small one: 20k steps of the small GPT-2 take
    # ~6 h on two CPU cores (1.09 s/step) and its 15 fine-tunings as long again; the tiny one needs ~22 min
    steps = ctx.pick(100, 20000)
    path = ctx.out_dir / "work" / "peft_base" / f"gpt2-tiny-{steps}"
    if not (path / "model.safetensors").is_file():
        # resume: a report killed during pre-training continues from the last checkpoint
        pretrain("gpt2", "tiny", path, steps=steps, seed=ctx.seed, device=str(ctx.device), resume=True)
    return path


def _run_dir(ctx: ClaimContext, name: str, owner: str | None = None) -> Path:
    """The run folder ``name`` of claim ``owner`` (default: the running claim) in the report's work folder:
    a claim reuses another's runs by naming it."""
    path = ctx.out_dir / "work" / (owner or ctx.claim_id) / f"{name}-{ctx.pick('quick', 'full')}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _run(ctx: ClaimContext, method: str, name: str, seed: int = 0, options: dict | None = None,
         owner: str | None = None) -> dict:
    """Fine-tune (or reuse the finished run in the report's work folder, or resume the killed one);
    ``owner``: the claim whose run folders hold it (default: the running claim)."""
    from deepnotes.peft.train import train

    out = _run_dir(ctx, name, owner)
    sizes = {"method": method, "steps": ctx.pick(100, 2000), "n_train": ctx.pick(400, 20000),
             "n_test": ctx.pick(16, 500), "seed": seed}
    same = (out / CONFIG).is_file() and all(json.loads((out / CONFIG).read_text()).get(k) == v
                                            for k, v in sizes.items())
    if same and (out / "results.json").is_file():
        return json.loads((out / "results.json").read_text())
    checkpoint = out / CHECKPOINT
    resume = same and checkpoint.is_file() and read_meta(checkpoint).get("engine") is not None
    if checkpoint.is_file() and not resume:
        # another size's run, or one from before the training engine (not resumable): this scratch folder
        # starts over
        checkpoint.unlink()
        (out / METRICS).unlink(missing_ok=True)
    return train(method, _base(ctx), "table2text", out, steps=sizes["steps"], batch_size=8,
                 n_train=sizes["n_train"], n_test=sizes["n_test"], seed=seed, device=str(ctx.device),
                 options=options, resume=resume)


# full fine-tuning (nothing inserted) first: the reference every registered PEFT method is compared with
METHODS = ("full", *(name for name, m in REGISTERED.items() if m.config is not None))

NOTE_PEFT = ("为了寻求一个不更新全部参数的廉价微调方案,之前一些预训练语言模型的高效微调(Parameter Efficient "
             "finetuning, PEFT)工作,要么插入一些参数或学习外部模块来适应新的下游任务。")
PEFT_EN = ("In search of a cheap fine-tuning scheme that does not update every parameter, earlier parameter-"
           "efficient fine-tuning (PEFT) work either inserts some parameters or learns external modules to "
           "adapt to a new downstream task.")
LORA_PAPER = "Hu et al., LoRA: Low-Rank Adaptation of Large Language Models, ICLR 2022 (arXiv:2106.09685)"
PREFIX_PAPER = "Li & Liang, Prefix-Tuning: Optimizing Continuous Prompts for Generation, ACL 2021"
BLEU_FLOOR = 1.0  # sacreBLEU points (of 100): below it every method is at the metric's floor


@claim("peft.trainable_vs_score", TOPIC,
       "LoRA, adapters, prefix and prompt tuning train a small fraction of the parameters of full "
       "fine-tuning and come close to its task score.",
       tests=(
           Test("trainable", "max over PEFT methods of their trained (prefix: stored, MLP folded) "
                "parameters, % of the base model", "<", 10.0, method="exact"),
           Test("score", "min over PEFT methods of BLEU / full fine-tuning's BLEU on table2text (one "
                "training each)", ">", 0.5),
       ),
       origin="note",
       source=Source("peft_adapter", NOTE_PEFT, PEFT_EN),
       paper=Paper(LORA_PAPER, "Table 3, E2E NLG with GPT-2 medium: full fine-tuning (354.92M trained "
                   "parameters) BLEU 68.2; LoRA (0.35M) 70.4; prefix-layer (0.35M) 69.7",
                   "GPT-2 medium, E2E NLG challenge, beam search"))
def trainable_vs_score(ctx: ClaimContext) -> Outcome:
    rows, figures = [], {}
    for m in METHODS:
        t0 = time.perf_counter()
        r = _run(ctx, m, m)
        folded = r["trainable"]
        if m == "prefix":
            from safetensors.torch import load_file

            stored = load_file(str(_run_dir(ctx, m) / "adapter" / "adapter_model.safetensors"))
            folded = sum(t.numel() for t in stored.values())
        # against the base model's size (the total counted after ``apply`` also holds the added parameters)
        pct = 100 * folded / (r["total"] - r["trainable"]) if m != "full" else 100.0
        rows.append({"method": m, "trainable (train)": r["trainable"], "stored after training": folded,
                     "% of full": round(pct, 3), "BLEU": round(r["bleu"], 2),
                     "ROUGE-L": round(r["rougeL"], 2), "test loss": round(r["test_loss"], 3),
                     "seconds": round(time.perf_counter() - t0, 1)})
        figures[f"{m}_bleu"] = r["bleu"]
        figures[f"{m}_test_loss"] = r["test_loss"]
        figures[f"{m}_trainable_percent"] = pct
    full = figures["full_bleu"]
    ratio = min(figures[f"{m}_bleu"] for m in METHODS[1:]) / full if full > 0 else float("nan")
    samples = {"trainable": max(figures[f"{m}_trainable_percent"] for m in METHODS[1:]), "score": [ratio]}
    floor = {"score": floor_reason({m: figures[f"{m}_bleu"] for m in METHODS}, "BLEU", floor=BLEU_FLOOR)}
    return Outcome(figures, samples, floor=floor, tables={"methods": rows},
                   notes="base: gpt2 pre-trained on stdlib docstrings; greedy decoding; sacreBLEU corpus "
                         f"BLEU; one training per method (n = 1). BLEU <= {BLEU_FLOOR:g} for every method is "
                         "the metric's floor: the score test is then inconclusive.")


@claim("peft.training_memory", TOPIC,
       "PEFT methods need less training memory than full fine-tuning (no gradients or optimizer state "
       "for the frozen weights).",
       tests=Test("peak_ratio", "max over PEFT methods of peak training memory / full fine-tuning's, same "
                  "batch", "<", 1.0, method="exact", scale="log"),
       origin="note",
       source=Source("peft_adapter", "全量微调模型所有参数所需的显存早已水涨船高。",
                     "The GPU memory needed to fine-tune all of a model's parameters has long been rising "
                     "with the tide."))
def training_memory(ctx: ClaimContext) -> Outcome:
    from deepnotes.optim import AdamW
    from deepnotes.peft.api import apply
    from deepnotes.peft.data.tasks import make_task
    from deepnotes.peft.memory import training_step_bytes
    from deepnotes.peft.models import load_base
    from deepnotes.peft.train import collate, encode, method_config

    rows, figures = [], {}
    for m in METHODS:
        model, tok = load_base(_base(ctx), ctx.device)
        cfg = method_config(m, model)
        if cfg is not None:
            apply(model, cfg)
        data = encode(tok, make_task("table2text", "train", ctx.pick(8, 32)), False)
        batch = {k: v.to(ctx.device) for k, v in collate(data, tok.pad_token_id, False).items()}
        opt = AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
        mib = training_step_bytes(model, batch, opt) / 2**20
        figures[f"{m}_peak_mib"] = mib
        rows.append({"method": m, "peak MiB": round(mib, 2)})
    for r in rows:
        r["vs full"] = round(r["peak MiB"] / figures["full_peak_mib"], 3)
    how = ("cuda max_memory_allocated" if ctx.device.type == "cuda"
           else "accounted: weights+grads+Adam state+saved activations")
    peak = max(figures[f"{m}_peak_mib"] for m in METHODS[1:]) / figures["full_peak_mib"]
    return Outcome(figures, peak, tables={"memory": rows},
                   notes=f"measurement: {how} (deterministic for a given batch: one measurement)")


def _lora_models(ctx: ClaimContext):
    """A random GPT-2, the same with LoRA on c_attn, c_proj and c_fc (B drawn at random, so the update is not
    zero as at initialisation) and that LoRA model merged and unwrapped (the deployment form)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from deepnotes.peft import LoraConfig, apply, merge_and_unload

    torch.manual_seed(ctx.seed)
    cfg = GPT2Config(n_layer=ctx.pick(4, 6), n_embd=ctx.pick(256, 384), n_head=ctx.pick(4, 6),
                     vocab_size=8000, bos_token_id=0, eos_token_id=0)  # ids in the vocabulary (not 50256)
    base = GPT2LMHeadModel(cfg).to(ctx.device).eval()
    lora = copy.deepcopy(base)
    apply(lora, LoraConfig(r=8, alpha=16, target_modules=["c_attn", "c_proj", "c_fc"]))
    with torch.no_grad():
        for name, p in lora.named_parameters():
            if "lora_B" in name:
                p.normal_(0.0, 0.02)
    merged = merge_and_unload(copy.deepcopy(lora)).eval()
    return base, lora.eval(), merged


@torch.no_grad()
def _weight_identity(lora: torch.nn.Module, merged: torch.nn.Module) -> tuple[float, float]:
    """(max |W_merged - (W + s (B A))| / max |W|, max |s B A| / max |W|) over the wrapped layers; GPT-2's
    Conv1D stores W as in x out, so the update is transposed there."""
    from deepnotes.peft.methods.lora.layer import LoraLayer

    merged_modules = dict(merged.named_modules())
    worst, size = 0.0, 0.0
    for path, layer in lora.named_modules():
        if not isinstance(layer, LoraLayer):
            continue
        (name,) = layer.lora_A.keys()
        delta = layer.scaling[name] * layer.lora_B[name].weight @ layer.lora_A[name].weight  # out x in
        w = layer.base_layer.weight
        expected = w + (delta.T if layer.kind == "conv1d" else delta)
        scale = float(w.abs().max())
        worst = max(worst, float((merged_modules[path].weight - expected).abs().max()) / scale)
        size = max(size, float(delta.abs().max()) / scale)
    return worst, size


@claim("peft.lora_merged_latency", TOPIC,
       "Merging LoRA folds its update into the weight, W' = W + (alpha/r) B A: the merged model computes "
       "exactly what the unmerged LoRA model computes, so inference costs the base model's (latency "
       "reported as information).",
       tests=(
           Test("outputs", "max |logits of the merged model - of the unmerged LoRA model| / max |logits|",
                "<", 1e-5, method="exact"),
           Test("weights", "max over wrapped layers of |W_merged - (W + s B A)| / max |W|", "<", 1e-6,
                method="exact"),
           Test("merged_latency", "merged model's latency / the base model's, per interleaved round", "<",
                1.05, scale="log", decides=False),
           Test("unmerged_latency", "unmerged LoRA model's latency / the base model's", ">", 1.0, scale="log",
                decides=False),
       ),
       origin="paper",
       source=Source("peft_lora", "当然,一种折衷做法就是全量微调后把增量参数进行SVD分解保存,推理时再合并参数",
                     "Of course, one compromise is to fully fine-tune, save the delta decomposed by SVD, and "
                     "merge the parameters at inference."),
       paper=Paper(LORA_PAPER, "Sec. 4: deployed with W = W0 + BA computed and stored, LoRA adds no "
                   "inference latency; adapter layers do (their latency table)",
                   "GPT-2 medium and GPT-3 175B"))
def lora_merged_latency(ctx: ClaimContext) -> Outcome:
    base, lora, merged = _lora_models(ctx)
    x = torch.randint(0, 8000, (4, ctx.pick(64, 128)), device=ctx.device)
    with torch.no_grad():
        out_lora, out_merged = lora(input_ids=x).logits, merged(input_ids=x).logits
        out_base = base(input_ids=x).logits
    diff = float((out_merged - out_lora).abs().max() / out_lora.abs().max())
    worst, size = _weight_identity(lora, merged)
    repeat, rounds = ctx.pick(3, 10), ctx.pick(7, 15)
    ms: dict[str, list[float]] = {"base": [], "unmerged": [], "merged": []}

    def timed(m) -> float:
        def f():
            with torch.no_grad():
                m(input_ids=x)
        return time_call(f, ctx.device, warmup=1, repeat=repeat)

    for _ in range(rounds):  # interleave to share the machine's load evenly
        for name, m in (("base", base), ("unmerged", lora), ("merged", merged)):
            ms[name].append(timed(m))
    figures = {"max_rel_output_diff": diff, "max_rel_weight_diff": worst, "update_size_rel": size,
               "output_change_vs_base": float((out_lora - out_base).abs().max() / out_base.abs().max()),
               **{f"{k}_ms_median": statistics.median(v) for k, v in ms.items()}}
    samples = {"outputs": diff, "weights": worst, "merged_latency": ratios(ms["merged"], ms["base"]),
               "unmerged_latency": ratios(ms["unmerged"], ms["base"])}
    return Outcome(figures, samples,
                   notes=f"LoRA r 8, alpha 16 on c_attn, c_proj, c_fc with B drawn N(0, 0.02) (at "
                         "initialisation B = 0 and the identity would be trivial); latency: median of "
                         f"{repeat} calls in each of {rounds} interleaved rounds on {ctx.device} (shared "
                         "machine: information, not part of the verdict).")


@claim("peft.prefix_mlp_stability", TOPIC,
       "Prefix tuning through the MLP reparameterisation trains better than optimising the prefix directly "
       "(Li & Liang 2021): lower loss on the test targets at every seed; the spread over seeds is reported.",
       tests=(
           Test("loss_gain", "test-target loss of the direct prefix minus the MLP one, paired by seed", ">",
                0.0),
           Test("bleu_gain", "BLEU of the MLP prefix minus the direct one, paired by seed", ">", 0.0,
                decides=False),
       ),
       origin="paper",
       source=Source("prefix", "最早提出Prompt微调的论文之一,其实是可控文本生成领域的延伸,"
                     "因此只针对摘要和Table2Text这两个生成任务进行了评估。",
                     "One of the first papers to propose prompt fine-tuning; really an extension of "
                     "controllable text generation, so it was evaluated only on two generation tasks, "
                     "summarisation and Table2Text. (The excerpt stops before the reparameterisation.)"),
       paper=Paper(PREFIX_PAPER, "Sec. 4.3: optimising the prefix parameters directly is unstable and "
                   "slightly worse, so the prefix is reparameterised by an MLP during training",
                   "GPT-2 on table-to-text (E2E, WebNLG, DART), BART on XSUM"))
def prefix_mlp_stability(ctx: ClaimContext) -> Outcome:
    seeds = ctx.seeds(ctx.pick(3, 5))
    res: dict[bool, list[dict]] = {True: [], False: []}
    rows = []
    for projection in (True, False):
        for s in seeds:
            r = _run(ctx, "prefix", f"prefix-{'mlp' if projection else 'direct'}-{s}", seed=s,
                     options={"projection": projection})
            res[projection].append(r)
            rows.append({"prefix": "MLP" if projection else "direct", "seed": s, "BLEU": round(r["bleu"], 2),
                         "test loss": round(r["test_loss"], 3)})
    bleu = {k: [r["bleu"] for r in v] for k, v in res.items()}
    loss = {k: [r["test_loss"] for r in v] for k, v in res.items()}
    figures = {f"{name}_{stat}_{metric}": f(values[key])
               for name, key in (("mlp", True), ("direct", False))
               for metric, values in (("bleu", bleu), ("test_loss", loss))
               for stat, f in (("mean", statistics.mean), ("std", statistics.pstdev))}
    samples = {"loss_gain": paired(loss[False], loss[True]), "bleu_gain": paired(bleu[True], bleu[False])}
    floor = {"bleu_gain": floor_reason({"MLP": bleu[True], "direct": bleu[False]}, "BLEU", floor=BLEU_FLOOR)}
    return Outcome(figures, samples, floor=floor, tables={"runs": rows},
                   notes=f"{len(seeds)} seeds per arm, the same seeds for both (paired).")


@torch.no_grad()
def svd_merge(base: torch.nn.Module, tuned: torch.nn.Module, paths: list[str],
              rank: int) -> tuple[int, float]:
    """Add to the weight of each module of ``base`` named in ``paths`` the rank-``rank`` truncated SVD of
    its fine-tuning delta ``W_tuned - W_base`` (the note's compromise: store U_r S_r and V_r, merge them at
    inference); returns (numbers the factors store, share of the deltas' squared Frobenius norm kept)."""
    mods_base, mods_tuned = dict(base.named_modules()), dict(tuned.named_modules())
    stored, kept, total = 0, 0.0, 0.0
    for path in paths:
        w0 = mods_base[path].weight
        delta = (mods_tuned[path].weight - w0).double()  # (rows, cols), either Linear's or Conv1D's layout
        u, s, vh = torch.linalg.svd(delta, full_matrices=False)
        w0.add_(((u[:, :rank] * s[:rank]) @ vh[:rank]).to(w0.dtype))
        stored += rank * sum(delta.shape)  # U_r S_r (rows x r) and V_r^T (r x cols)
        kept, total = kept + float((s[:rank] ** 2).sum()), total + float((s**2).sum())
    return stored, kept / total if total > 0 else 1.0


def _lora_matrices(model: torch.nn.Module) -> tuple[list[str], int, int]:
    """(paths of the layers LoRA wraps, its rank, numbers its A and B matrices store) of a LoRA model."""
    from deepnotes.peft.methods.lora.layer import LoraLayer

    paths, rank, stored = [], 0, 0
    for path, layer in model.named_modules():
        if isinstance(layer, LoraLayer):
            (name,) = layer.lora_A.keys()
            paths.append(path)
            rank = layer.lora_A[name].weight.shape[0]
            stored += layer.lora_A[name].weight.numel() + layer.lora_B[name].weight.numel()
    return paths, rank, stored


def _scores(ctx: ClaimContext, model: torch.nn.Module, tok, max_new_tokens: int) -> dict[str, float]:
    """BLEU and test-target loss of ``model`` on the test split the fine-tunings were scored on."""
    from deepnotes.peft.data.tasks import make_task
    from deepnotes.peft.evaluate import generate_texts, score, target_loss

    test = make_task("table2text", "test", ctx.pick(16, 500), seed=0)
    hyps = generate_texts(model, tok, [e.source for e in test], max_new_tokens=max_new_tokens)
    return {"bleu": score(hyps, [e.target for e in test])["bleu"],
            "test_loss": target_loss(model, tok, test, 8)}


@claim("peft.svd_delta_vs_lora", TOPIC,
       "The note's compromise, fully fine-tune and keep the delta as a rank-r SVD merged at inference, "
       "stores a small fraction of the full delta and scores close to LoRA of the same rank on the same "
       "matrices.",
       tests=(
           Test("storage", "numbers the rank-r SVD factors store, % of the parameters full fine-tuning "
                "trained", "<", 10.0, method="exact"),
           Test("score", "BLEU of the base + rank-r SVD of the full delta / BLEU of LoRA r (one training "
                "each)", ">", 0.5),
           Test("size_vs_lora", "numbers the SVD factors store / numbers LoRA stores", "<", 1.05,
                method="exact", scale="log", decides=False),
           Test("loss_gap", "test-target loss of the SVD model minus LoRA's (nats/token)", "<", 0.0,
                decides=False),
       ),
       origin="note",
       source=Source("peft_lora", "当然,一种折衷做法就是全量微调后把增量参数进行SVD分解保存,推理时再合并参数",
                     "Of course, one compromise is to fully fine-tune, save the delta decomposed by SVD, and "
                     "merge the parameters at inference."),
       paper=Paper(LORA_PAPER, "Sec. 7.2 / Table 7: the update a full fine-tuning learns has a very low "
                   "intrinsic rank; LoRA learns a rank-r update directly (r 1-8 on GPT-3's W_q, W_v)",
                   "GPT-3 175B, WikiSQL and MultiNLI"))
def svd_delta_vs_lora(ctx: ClaimContext) -> Outcome:
    owner = "peft.trainable_vs_score"  # its quick / full runs are reused: this claim adds an SVD and a score
    full, lora = (_run(ctx, m, m, owner=owner) for m in ("full", "lora"))
    arms = _svd_arms(ctx, _run_dir(ctx, "full", owner), _run_dir(ctx, "lora", owner), full)
    svd, rank = arms["svd"], arms["rank"]
    figures = {"lora_bleu": lora["bleu"], "lora_test_loss": lora["test_loss"], "full_bleu": full["bleu"],
               "full_test_loss": full["test_loss"], "full_trained": float(full["trainable"]),
               "rank": float(rank), "lora_stored": float(arms["lora_stored"]),
               "delta_energy_kept": arms["energy"],
               **{f"{arm}_{k}": float(arms[arm][k]) for arm in ("svd", "svd_rest")
                  for k in ("bleu", "test_loss", "stored")}}
    rows = [{"arm": name, "stored numbers": int(r["stored"]), "BLEU": round(r["bleu"], 2),
             "test loss": round(r["test_loss"], 3)}
            for name, r in (("full fine-tuning", {**full, "stored": full["trainable"]}),
                            (f"full delta, SVD rank {rank} on LoRA's matrices", svd),
                            ("the same + the rest of the delta kept whole", arms["svd_rest"]),
                            (f"LoRA r {rank}", {**lora, "stored": arms["lora_stored"]}))]
    ratio = svd["bleu"] / lora["bleu"] if lora["bleu"] > 0 else float("nan")
    samples = {"storage": 100 * svd["stored"] / full["trainable"], "score": [ratio],
               "size_vs_lora": svd["stored"] / arms["lora_stored"],
               "loss_gap": [svd["test_loss"] - lora["test_loss"]]}
    floor = {"score": floor_reason({"SVD": svd["bleu"], "LoRA": lora["bleu"]}, "BLEU", floor=BLEU_FLOOR)}
    return Outcome(figures, samples, floor=floor, tables={"arms": rows},
                   notes=f"The full and LoRA runs of peft.trainable_vs_score, reused. The SVD is taken on "
                         f"the {arms['matrices']} matrices LoRA adapts, at LoRA's rank; the rest of the full "
                         "delta (embeddings, norms, biases) is dropped, or kept whole in the third row "
                         f"(information). Rank {rank} keeps {100 * arms['energy']:.1f}% of the deltas' "
                         "squared Frobenius norm. One training each (n = 1).")


def _svd_arms(ctx: ClaimContext, full_dir: Path, lora_dir: Path, full: dict) -> dict:
    """Scores and stored numbers of the base model plus the rank-r SVD of the full fine-tuning's delta on
    LoRA's matrices (``svd``), of the fine-tuned model with only those matrices' deltas truncated
    (``svd_rest``), and LoRA's rank, stored numbers and matrix count."""
    from deepnotes.peft.models import load_base
    from deepnotes.peft.train import load_run

    tuned, tok, asked = load_run(full_dir, str(ctx.device))
    paths, rank, lora_stored = _lora_matrices(load_run(lora_dir, str(ctx.device))[0])
    model, _ = load_base(asked["model"], ctx.device)
    stored, energy = svd_merge(model, tuned, paths, rank)
    rest = copy.deepcopy(tuned)
    merged, kept = dict(model.named_modules()), dict(rest.named_modules())
    with torch.no_grad():
        for path in paths:  # base + rank-r delta on LoRA's matrices, every other trained tensor as tuned
            kept[path].weight.copy_(merged[path].weight)
    rest_numbers = full["trainable"] - sum(merged[p].weight.numel() for p in paths)
    return {"svd": {**_scores(ctx, model.eval(), tok, full["max_new_tokens"]), "stored": stored},
            "svd_rest": {**_scores(ctx, rest.eval(), tok, full["max_new_tokens"]),
                         "stored": stored + rest_numbers},
            "rank": rank, "lora_stored": lora_stored, "energy": energy, "matrices": len(paths)}
