"""Prompt tuning (Lester et al. 2021): P trainable input embeddings in front of the input.

The baseline for prefix tuning: only the input layer gets new vectors, not every attention layer.
Decoder-only models: the prompt goes in front of the tokens (labels get P ignored positions).
Encoder-decoder models: in front of the encoder's input; the padding mask, shared with cross-attention,
gets P leading ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from deepnotes.peft.methods.base import PeftMethod, Tensors, config_overrides
from deepnotes.peft.methods.prefix import cache_argument, encoder_length

PROMPT_KEY = "prompt_tuning.embedding.weight"


@dataclass
class PromptConfig:
    """Prompt tuning (Lester et al. 2021): ``num_virtual_tokens`` trainable input embeddings.

    ``init``: ``"vocab"`` (copies of random vocabulary embeddings) or ``"random"``.
    """

    num_virtual_tokens: int = 20
    init: str = "vocab"
    method: str = "prompt"

    def __post_init__(self) -> None:
        if self.init not in ("vocab", "random"):
            raise ValueError(f"PromptConfig.init must be 'vocab' or 'random', got {self.init!r}")

    def to_peft(self) -> dict[str, Any]:
        return {
            "peft_type": "PROMPT_TUNING",
            "num_virtual_tokens": self.num_virtual_tokens,
            "prompt_tuning_init": "RANDOM" if self.init == "random" else "VOCAB",
        }

    @classmethod
    def from_peft(cls, d: dict[str, Any]) -> PromptConfig:
        return cls(num_virtual_tokens=int(d["num_virtual_tokens"]),
                   init="random" if d.get("prompt_tuning_init") == "RANDOM" else "vocab")


class PromptTuning(nn.Module):
    """``embedding: (P, d)`` and the hooks that splice it into the input."""

    def __init__(self, model: nn.Module, config: PromptConfig) -> None:
        super().__init__()
        self.config = config
        table = model.get_input_embeddings()
        gen = torch.Generator().manual_seed(0)
        p = config.num_virtual_tokens
        self.embedding = nn.Embedding(p, table.embedding_dim, device=table.weight.device,
                                      dtype=table.weight.dtype)
        with torch.no_grad():
            if config.init == "vocab":
                ids = torch.randint(0, table.num_embeddings, (p,), generator=gen).to(table.weight.device)
                self.embedding.weight.copy_(table(ids))
            else:
                self.embedding.weight.normal_(0.0, table.weight.std().item())
        self.num_tokens = p
        self.encdec = bool(model.config.is_encoder_decoder)
        self.cache_arg = cache_argument(model)
        self.enabled = True
        object.__setattr__(self, "_embed", table)  # not a submodule: the base model owns it

    def _prepend(self, ids: torch.Tensor | None, embeds: torch.Tensor | None) -> torch.Tensor:
        x = embeds if embeds is not None else self._embed(ids)
        prompt = self.embedding.weight.unsqueeze(0).expand(x.shape[0], -1, -1)
        return torch.cat([prompt.to(x.dtype), x], dim=1)

    def _ones(self, like: torch.Tensor) -> torch.Tensor:
        return torch.ones(like.shape[0], self.num_tokens, dtype=like.dtype, device=like.device)

    def top_hook(self, module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        if not self.enabled:
            return args, kwargs
        if self.encdec:
            mask = kwargs.get("attention_mask")
            enc = kwargs.get("input_ids")
            # the encoder's output already holds the prompt: its mask covers P fewer positions
            length = enc.shape[1] if enc is not None else encoder_length(kwargs) - self.num_tokens
            if mask is not None and mask.dim() == 2 and mask.shape[1] == length:
                kwargs["attention_mask"] = torch.cat([self._ones(mask), mask], dim=1)
            return args, kwargs
        if args:
            kwargs["input_ids"], args = args[0], args[1:]
        cache = kwargs.get(self.cache_arg)
        past = cache.get_seq_length() if cache is not None else 0
        ids, embeds = kwargs.get("input_ids"), kwargs.get("inputs_embeds")
        pos = kwargs.get("position_ids")
        if pos is not None:  # generate() counts positions without the prompt
            pos = pos + self.num_tokens
            if past == 0:
                head = torch.arange(self.num_tokens, dtype=pos.dtype, device=pos.device)
                head = head.expand(pos.shape[0], -1)
                pos = torch.cat([head, pos], dim=1)
            kwargs["position_ids"] = pos
        if past == 0:  # first call: splice the prompt in
            kwargs["inputs_embeds"] = self._prepend(ids, embeds)
            kwargs["input_ids"] = None
            labels = kwargs.get("labels")
            if labels is not None:
                ignore = torch.full((labels.shape[0], self.num_tokens), -100, dtype=labels.dtype,
                                    device=labels.device)
                kwargs["labels"] = torch.cat([ignore, labels], dim=1)
        length = (ids if ids is not None else embeds).shape[1]
        mask = kwargs.get("attention_mask")
        if mask is not None and mask.dim() == 2 and mask.shape[1] == max(past - self.num_tokens, 0) + length:
            kwargs["attention_mask"] = torch.cat([self._ones(mask), mask], dim=1)
        return args, kwargs

    def encoder_hook(self, module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        if not self.enabled:
            return args, kwargs
        if args:
            kwargs["input_ids"], args = args[0], args[1:]
        ids, embeds = kwargs.get("input_ids"), kwargs.get("inputs_embeds")
        length = (ids if ids is not None else embeds).shape[1]
        kwargs["inputs_embeds"] = self._prepend(ids, embeds)
        kwargs["input_ids"] = None
        mask = kwargs.get("attention_mask")
        if mask is not None and mask.dim() == 2 and mask.shape[1] == length:
            kwargs["attention_mask"] = torch.cat([self._ones(mask), mask], dim=1)
        return args, kwargs


def install_prompt(model: nn.Module, config: PromptConfig) -> PromptTuning:
    """Attach ``model.prompt_tuning`` and register its hooks."""
    if hasattr(model, "prompt_tuning"):
        raise ValueError("this model already has prompt tuning; one prompt per model")
    pt = PromptTuning(model, config)
    model.prompt_tuning = pt
    model.register_forward_pre_hook(pt.top_hook, with_kwargs=True)
    if pt.encdec:
        model.get_encoder().register_forward_pre_hook(pt.encoder_hook, with_kwargs=True)
    return pt


def save(model: nn.Module, config: PromptConfig, _name: str) -> tuple[dict[str, Any], Tensors]:
    """peft's layout: one ``(P, d)`` table under ``prompt_embeddings``. peft prepends the prompt only in a
    task model (no task_type: a plain PeftModel that ignores it); our encoder-decoder prompt sits in front of
    the encoder alone, which is peft's ``num_transformer_submodules=1``."""
    task = "SEQ_2_SEQ_LM" if model.config.is_encoder_decoder else "CAUSAL_LM"
    return ({**config.to_peft(), "task_type": task, "num_transformer_submodules": 1},
            {"prompt_embeddings": model.prompt_tuning.embedding.weight})


def read(model: nn.Module, config: PromptConfig, tensors: Tensors,
         _source: str) -> tuple[PromptConfig, Tensors]:
    table, p = tensors.get("prompt_embeddings"), config.num_virtual_tokens
    if model.config.is_encoder_decoder and table is not None and table.shape[0] == 2 * p:
        # peft's seq2seq default (num_transformer_submodules 2) stores 2P rows, but its forward and
        # generate() prepend only the first P, to the encoder input: the same prompt as ours
        tensors = {**tensors, "prompt_embeddings": table[:p]}
    return config, tensors


METHOD = PeftMethod(
    config=PromptConfig, lr=2e-2,
    default_config=lambda _model, opts: PromptConfig(**{"num_virtual_tokens": 10,
                                                        **config_overrides(PromptConfig, opts, "prompt")}),
    inject=lambda model, config, _name: install_prompt(model, config),
    trainable=lambda model, _config, _name: model.prompt_tuning.embedding.requires_grad_(True),
    save=save, read=read, peft_type="PROMPT_TUNING",
    model_keys=lambda keys, _name, _model: {k: PROMPT_KEY if k == "prompt_embeddings" else k for k in keys},
    knobs={"prefix_length": "num_virtual_tokens"},  # the prompt is the input's prefix
)
