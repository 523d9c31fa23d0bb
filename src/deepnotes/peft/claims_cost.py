"""Claims of the PEFT notes about cost: the note's memory figures for fully fine-tuning Qwen1.5-7B and 72B
(from the memory accounting, nothing downloaded), and adapters' inference latency against merged LoRA's.
Registered when :mod:`deepnotes.peft.claims` (the topic's module) is imported."""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable

import torch

from deepnotes.core import ClaimContext, Outcome, claim
from deepnotes.core.notes import Paper, Source
from deepnotes.core.timing import time_call
from deepnotes.core.verdict import Test, ratios

TOPIC = "peft"
GB = 1e9  # the note's "GB" read as 10^9 bytes (an "80GB" A800 holds 80 GiB = 85.9e9: GiB reported beside)

# Qwen1.5-7B(-Chat) and Qwen1.5-72B(-Chat) as their published config.json files give them (model_type qwen2;
# the fields that set the shapes and the parameter count). Written here: nothing is downloaded.
QWEN15 = {
    "7B": {"model_type": "qwen2", "hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32,
           "num_attention_heads": 32, "num_key_value_heads": 32, "vocab_size": 151936,
           "max_position_embeddings": 32768, "tie_word_embeddings": False},
    "72B": {"model_type": "qwen2", "hidden_size": 8192, "intermediate_size": 24576, "num_hidden_layers": 80,
            "num_attention_heads": 64, "num_key_value_heads": 64, "vocab_size": 152064,
            "max_position_embeddings": 32768, "tie_word_embeddings": False},
}
NOTE_GB = {"7B": 160.0, "72B": 1600.0}  # the note: 2 x 80 GB A800 = 160 GB; 20 x 80 GB, at least 1600 GB
# the recipe the note's figures are read under, fixed before computing: full fine-tuning with AdamW in bf16
# mixed precision (fp32 master weights and moments, as DeepSpeed / Megatron train), one sequence of 2048
# tokens, fused (sdpa) attention, no activation checkpointing, one process holding everything
SETTING = {"method": "full", "batch": 1, "seq": 2048, "dtype": "bf16", "optimizer": "adamw"}
FACTOR = 1.5  # "about": our accounting within a factor 1.5 of the note's figure, either way

NOTE_MEMORY = ("全参微调Qwen1.57BChat预估要2张80GB的A800,160GB显存 "
               "全参微调Qwen1.572BChat预估要20张80GB的A800,至少1600GB显存。")
MEMORY_EN = ("Fully fine-tuning Qwen1.5-7B-Chat is estimated to need two 80 GB A800s, 160 GB of GPU memory; "
             "fully fine-tuning Qwen1.5-72B-Chat is estimated to need twenty 80 GB A800s, at least 1600 GB.")


def factor(ours: float, theirs: float) -> float:
    """max(ours / theirs, theirs / ours): how far apart two positive figures are, either way (>= 1)."""
    r = ours / theirs
    return max(r, 1.0 / r)


def qwen_estimates(setting: dict | None = None) -> dict[str, dict]:
    """The memory accounting of full fine-tuning of each Qwen1.5 size (``setting``: :data:`SETTING`)."""
    from deepnotes.peft.memory import estimate

    return {size: estimate(cfg, **(setting or SETTING)).as_dict() for size, cfg in QWEN15.items()}


@claim("peft.qwen_memory_figures", TOPIC,
       "The note's memory figures for full fine-tuning hold under a stated recipe: Qwen1.5-7B-Chat needs "
       "about 160 GB, Qwen1.5-72B-Chat about (the note: at least) 1600 GB.",
       tests=(
           Test("q7b", "factor between our accounting of Qwen1.5-7B full fine-tuning (bf16 mixed-precision "
                "AdamW, 1 x 2048 tokens) and the note's 160 GB, either way", "<", FACTOR, method="exact",
                scale="log"),
           Test("q72b", "the same factor for Qwen1.5-72B against the note's 1600 GB", "<", FACTOR,
                method="exact", scale="log"),
           Test("q72b_at_least", "our accounting of Qwen1.5-72B / the note's 1600 GB (the note: at least)",
                ">", 1.0, method="exact", scale="log", decides=False),
       ),
       origin="note",
       source=Source("peft_adapter", NOTE_MEMORY, MEMORY_EN),
       paper=Paper("Rajbhandari et al., ZeRO: Memory Optimizations Toward Training Trillion Parameter "
                   "Models, SC 2020", "Sec. 3.1: mixed-precision Adam keeps 2 + 2 + 12 = 16 bytes per "
                   "parameter (fp16 weights and gradients, fp32 master weights, momentum and variance) "
                   "before activations", "a 7.5B model: 120 GB of model states"))
def qwen_memory_figures(ctx: ClaimContext) -> Outcome:
    est = qwen_estimates()
    rows, figures = [], {}
    for size, e in est.items():
        total = e["total"] / GB
        figures.update({f"q{size.lower()}_total_gb": total, f"q{size.lower()}_params_b": e["params"] / 1e9,
                        f"q{size.lower()}_activations_gb": e["activations"] / GB,
                        f"q{size.lower()}_a800_cards": float(-(-e["total"] // (80 * 2**30)))})
        rows.append({"model": f"Qwen1.5-{size}", "parameters (B)": round(e["params"] / 1e9, 3),
                     **{f"{k} GB": round(e[k] / GB, 1) for k in ("weights", "gradients", "optimizer_states",
                                                                 "activations", "step_temporaries")},
                     "total GB": round(total, 1), "total GiB": round(e["total"] / 2**30, 1),
                     "80 GiB cards": int(figures[f"q{size.lower()}_a800_cards"]), "note GB": NOTE_GB[size],
                     "ours / note": round(total / NOTE_GB[size], 3)})
    samples = {"q7b": factor(figures["q7b_total_gb"], NOTE_GB["7B"]),
               "q72b": factor(figures["q72b_total_gb"], NOTE_GB["72B"]),
               "q72b_at_least": figures["q72b_total_gb"] / NOTE_GB["72B"]}
    return Outcome(figures, samples, tables={"full fine-tuning memory (peak of one step)": rows},
                   notes="deepnotes.peft.memory.estimate on the meta device (exact for this recipe: "
                         f"{SETTING}); the shapes are Qwen1.5's published config.json values (hidden 4096 "
                         "/ 8192, intermediate 11008 / 24576, layers 32 / 80, heads 32 / 64 without grouped "
                         "keys, vocabulary 151936 / 152064, untied embeddings). Assumptions: the "
                         "accounting's (one process holds the whole model; not counted: CUDA context, "
                         "fragmentation, communication buffers). Mixed precision and pure fp32 AdamW both "
                         "keep 16 bytes per parameter at the step's peak; a longer sequence or a larger "
                         "batch adds activations.")


def thread_ms(fn: Callable[[], object], device: torch.device, repeat: int) -> float:
    """Median milliseconds of ``fn()`` after one warm-up call: the calling thread's CPU time on a CPU (on a
    shared machine the wall time mostly measures the other jobs), the synchronised wall time on a GPU."""
    if device.type != "cpu":
        return time_call(fn, device, warmup=1, repeat=repeat)
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.thread_time()
        fn()
        times.append(1e3 * (time.thread_time() - t0))
    return statistics.median(times)


def _gpt2(ctx: ClaimContext):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(ctx.seed)
    cfg = GPT2Config(n_layer=ctx.pick(4, 12), n_embd=ctx.pick(256, 768), n_head=ctx.pick(4, 12),
                     vocab_size=8000, bos_token_id=0, eos_token_id=0)
    return GPT2LMHeadModel(cfg).to(ctx.device).eval()


def adapter_models(ctx: ClaimContext) -> dict[str, torch.nn.Module]:
    """A random GPT-2 (``base``), the same with Houlsby adapters (two per block, bottleneck d / 16, up
    projections drawn at random so they compute something) and with LoRA r 8 merged into the weights."""
    from deepnotes.peft import AdapterConfig, LoraConfig, apply, merge_and_unload

    base = _gpt2(ctx)
    adapter = apply(copy.deepcopy(base), AdapterConfig(kind="houlsby", reduction_factor=16))
    lora = apply(copy.deepcopy(base), LoraConfig(r=8, alpha=16, target_modules=["c_attn", "c_proj", "c_fc"]))
    with torch.no_grad():
        for model, part in ((adapter, ".up."), (lora, "lora_B")):
            for name, p in model.named_parameters():
                if part in name:
                    p.normal_(0.0, 0.02)
    return {"base": base, "adapter": adapter.eval(), "merged_lora": merge_and_unload(lora).eval()}


@claim("peft.adapter_inference_latency", TOPIC,
       "Adapter layers sit in series inside every block and add inference latency; merged LoRA adds no "
       "layer and no parameter to the base model.",
       tests=(
           Test("adapter_vs_merged", "latency of the model with adapters / of the merged LoRA model (batch "
                "1, 128 tokens), per interleaved round", ">", 1.0, scale="log"),
           Test("merged_extra_params", "parameters the merged LoRA model has beyond the base model's", "<",
                0.5, method="exact"),
           Test("merged_vs_base", "merged LoRA model's latency / the base model's, per round", "<", 1.05,
                scale="log", decides=False),
       ),
       origin="paper",
       source=Source("peft_adapter", "要么插入一些参数或学习外部模块来适应新的下游任务。",
                     "either insert some parameters or learn external modules to adapt to a new downstream "
                     "task. (The excerpt stops at 'Adapter tuning', before its inference cost.)"),
       paper=Paper("Hu et al., LoRA: Low-Rank Adaptation of Large Language Models, ICLR 2022 (adapters: "
                   "Houlsby et al., Parameter-Efficient Transfer Learning for NLP, ICML 2019)",
                   "Table 1: GPT-2 medium forward pass, batch 1, 128 tokens: 19.8 ms without adapters, "
                   "Adapter-L +20.7%, Adapter-H +30.3%; LoRA merged adds no latency",
                   "NVIDIA Quadro RTX8000, averaged over 100 trials"))
def adapter_inference_latency(ctx: ClaimContext) -> Outcome:
    models = adapter_models(ctx)
    x = torch.randint(0, 8000, (1, 128), device=ctx.device)
    rounds, repeat = ctx.pick(9, 25), ctx.pick(5, 10)
    ms: dict[str, list[float]] = {name: [] for name in models}
    with torch.no_grad(), ctx.one_thread(ctx.device.type == "cpu"):
        for _ in range(rounds):  # interleaved: a slow phase of the machine hits every model alike
            for name, m in models.items():
                ms[name].append(thread_ms(lambda m=m: m(input_ids=x), ctx.device, repeat))
    params = {name: sum(p.numel() for p in m.parameters()) for name, m in models.items()}
    figures = {**{f"{k}_ms_median": statistics.median(v) for k, v in ms.items()},
               **{f"{k}_params": float(v) for k, v in params.items()}}
    rows = [{"model": k, "parameters": params[k], "median ms": round(figures[f"{k}_ms_median"], 3),
             "vs base": round(figures[f"{k}_ms_median"] / figures["base_ms_median"], 3)} for k in models]
    samples = {"adapter_vs_merged": ratios(ms["adapter"], ms["merged_lora"]),
               "merged_extra_params": float(params["merged_lora"] - params["base"]),
               "merged_vs_base": ratios(ms["merged_lora"], ms["base"])}
    return Outcome(figures, samples, tables={"latency": rows},
                   notes=f"GPT-2 {ctx.pick('4 layers x 256', '12 layers x 768')} (random weights), batch 1 "
                         f"x 128 tokens, median of {repeat} calls in each of {rounds} interleaved rounds on "
                         f"{ctx.device} (one thread and its CPU time on a CPU); Houlsby adapters "
                         "(bottleneck d/16) after attention and feed-forward; LoRA r 8 on c_attn, c_proj, "
                         "c_fc, merged and unwrapped.")
