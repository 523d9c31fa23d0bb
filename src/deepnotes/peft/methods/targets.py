"""Where each method goes in each architecture, keyed by transformers' ``config.model_type``.

One :class:`Layout` per family: the default LoRA targets of ``peft train`` (every attention and MLP
projection: on small bases attention-only LoRA barely moved the loss, and Dettmers et al. 2023 (QLoRA) found
every linear layer needed to match full fine-tuning; peft's own default is the query and value projections
only, ``--target-modules q_proj,v_proj``), the adapters' placement (regular expressions on module paths) and
the sites prefix tuning can reach. ``tests/peft/test_targets.py`` checks the LoRA targets against peft's
``TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING`` (ours hold peft's) and every name against a tiny model.

A model type not listed here still takes every method: LoRA with ``--target-modules``, adapters placed by the
generic patterns below (GPT-2, BART and LLaMA-style module names), prefixes in the decoder.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

# the generic placement, tried for model types without a layout of their own
ATTN_OUT = (r".*\.(attn|self_attn|encoder_attn|attention|crossattention|SelfAttention|EncDecAttention)"
            r"\.(c_proj|out_proj|o_proj|o)")
FFN_IN = r".*\.(mlp\.c_fc|fc1|mlp\.up_proj|DenseReluDense\.wi|DenseReluDense\.wi_1)"
FFN_OUT = r".*\.(mlp\.c_proj|fc2|mlp\.down_proj|DenseReluDense\.wo)"


@dataclass(frozen=True)
class Layout:
    """One family's module names.

    ``lora``: default LoRA targets (names matching a path or its tail); ``attn_out``: the attention output
    projections (houlsby adapters follow them); ``ffn_in``: the feed-forward layer that reads the block's
    feed-forward input (a parallel adapter reads the same input; in a gated MLP the up projection);
    ``ffn_out``: the feed-forward output projection; ``prefix_sites``: where prefix tuning may add keys and
    values (``encoder``, ``decoder``, ``cross``: see :class:`~deepnotes.peft.methods.prefix.PrefixConfig`);
    ``shared_input``: sets of sibling modules (children of one module) that the model always calls on the
    same tensor, so their LoRA layers can compute as one group (:mod:`~deepnotes.peft.methods.lora.fused`);
    never list a set whose members may read different tensors (cross-attention's query and key/value).
    """

    lora: tuple[str, ...]
    attn_out: str = ATTN_OUT
    ffn_in: str = FFN_IN
    ffn_out: str = FFN_OUT
    prefix_sites: tuple[str, ...] = ("decoder",)
    shared_input: tuple[tuple[str, ...], ...] = ()


# LLaMA and the families transformers writes the same way (Qwen2, Mistral): gated MLP, grouped-query attention
LLAMA = Layout(lora=("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
               attn_out=r".*\.self_attn\.o_proj", ffn_in=r".*\.mlp\.up_proj", ffn_out=r".*\.mlp\.down_proj",
               shared_input=(("q_proj", "k_proj", "v_proj"), ("gate_proj", "up_proj")))

LAYOUTS: dict[str, Layout] = {
    "gpt2": Layout(lora=("c_attn", "c_proj", "c_fc"), attn_out=r".*\.attn\.c_proj", ffn_in=r".*\.mlp\.c_fc",
                   ffn_out=r".*\.mlp\.c_proj"),
    "bart": Layout(lora=("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"),
                   attn_out=r".*\.(self_attn|encoder_attn)\.out_proj", ffn_in=r".*\.fc1", ffn_out=r".*\.fc2",
                   prefix_sites=("encoder", "decoder", "cross")),
    "llama": LLAMA,
    "qwen2": LLAMA,
    "mistral": LLAMA,
    # T5's encoder stack takes no cache, so its prefixes live in the decoder's self-attention only;
    # wi is T5 1.0's feed-forward input, wi_0 / wi_1 the gated one of T5 1.1
    "t5": Layout(lora=("q", "k", "v", "o", "wi", "wi_0", "wi_1", "wo"),
                 attn_out=r".*\.(SelfAttention|EncDecAttention)\.o",
                 ffn_in=r".*\.DenseReluDense\.(wi|wi_1)", ffn_out=r".*\.DenseReluDense\.wo"),
}


def model_type(model: nn.Module) -> str:
    """transformers' ``config.model_type`` of ``model`` ("" for a model without a transformers config)."""
    config = getattr(model, "config", None)
    return str(getattr(config, "model_type", "") or "")


def layout(model: nn.Module) -> Layout | None:
    """The layout of ``model``'s family, or None for a model type not in :data:`LAYOUTS`."""
    return LAYOUTS.get(model_type(model))


def default_lora_targets(model: nn.Module) -> list[str]:
    """The default LoRA targets for ``model``; a family without a layout is a ValueError asking for them."""
    found = layout(model)
    if found is None:
        raise ValueError(f"no default LoRA targets for model type {model_type(model)!r} "
                         f"(known: {', '.join(LAYOUTS)}); give them with --target-modules NAME,NAME "
                         "(module names, e.g. q_proj,v_proj) or target_modules in the method config")
    return list(found.lora)


def placement(model: nn.Module) -> tuple[str, str, str]:
    """(attention output, feed-forward input, feed-forward output) path patterns for adapters."""
    found = layout(model) or Layout(lora=())
    return found.attn_out, found.ffn_in, found.ffn_out


def prefix_sites(model: nn.Module) -> tuple[str, ...]:
    """The attention sites prefix tuning can reach in ``model`` (decoder-only models: ``decoder``)."""
    if not getattr(getattr(model, "config", None), "is_encoder_decoder", False):
        return ("decoder",)
    found = layout(model)
    return found.prefix_sites if found is not None else ("decoder",)
