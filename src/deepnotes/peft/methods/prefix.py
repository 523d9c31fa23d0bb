"""Prefix tuning (Li & Liang 2021) through the model's key/value cache.

Every attention layer of a chosen *site* gets ``P`` extra key/value vectors in front of its own. They are
handed to the transformers model as a pre-filled cache (``DynamicCache``; ``EncoderDecoderCache`` for
encoder-decoder models), so the model code itself is untouched and ``generate()`` works:

- decoder-only models (GPT-2, LLaMA, Qwen2, Mistral): the prefix fills the self-attention cache; positions
  of real tokens start at P (the model counts the cached prefix as past; rotary models rotate the real
  keys only, the prefix keys are stored as trained). ``generate()`` passes positions counted from the padding
  mask; the hook shifts them by P so training and generation agree. With grouped-query attention the prefix
  has one key/value per key/value head (``num_key_value_heads``), as the cache holds them.
- BART: ``decoder`` fills the decoder's self-attention cache; ``cross`` fills the cross-attention cache
  whose "not yet computed" flag is left unset, so the model appends the encoder's keys/values behind
  the prefix; ``encoder``: the encoder's self-attention layers receive a cache too (BART's encoder
  passes keyword arguments down to its attention). The encoder padding mask gets P leading ones and is
  shared by the encoder's self-attention and the decoder's cross-attention, which both see P + S keys.
- T5: ``decoder`` only (its encoder stack takes no cache); the sites a family allows are listed in
  :mod:`~deepnotes.peft.methods.targets`.

The cache is the one the model itself would build (``DynamicCache(config=model.config)``; for
encoder-decoder models an ``EncoderDecoderCache`` of two), handed over under the keyword the installed
transformers takes (``cache``; ``past_key_values`` before 5.x).

Training uses the MLP reparameterisation ``table = MLP(E)`` (E: P x d); :func:`fold_prefix` replaces
the MLP by the table it produces, so inference stores and computes only the table.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from deepnotes.peft.methods.base import PeftMethod, Tensors, config_overrides
from deepnotes.peft.methods.targets import model_type, prefix_sites


@dataclass
class PrefixConfig:
    """Prefix tuning (Li & Liang 2021): ``num_virtual_tokens`` trainable keys/values in every layer.

    ``projection``: train through the MLP reparameterisation ``P = MLP(E)`` (E: tokens x hidden_size),
    folded into plain prefixes after training. ``sites`` for encoder-decoder models: any of
    ``"encoder"`` (encoder self-attention), ``"decoder"`` (decoder self-attention), ``"cross"``.
    """

    num_virtual_tokens: int = 10
    projection: bool = True
    hidden_size: int = 512
    sites: list[str] = field(default_factory=lambda: ["encoder", "decoder", "cross"])
    method: str = "prefix"

    def __post_init__(self) -> None:
        bad = [s for s in self.sites if s not in ("encoder", "decoder", "cross")]
        if bad or not self.sites:
            raise ValueError(f"PrefixConfig.sites must be a non-empty subset of encoder, decoder, cross; "
                             f"got {bad}")
        if self.num_virtual_tokens < 1:
            raise ValueError("PrefixConfig.num_virtual_tokens must be >= 1")

    def to_peft(self) -> dict[str, Any]:
        return {
            "peft_type": "PREFIX_TUNING",
            "num_virtual_tokens": self.num_virtual_tokens,
            "prefix_projection": self.projection,
            "encoder_hidden_size": self.hidden_size,
            "sites": self.sites,
        }

    @classmethod
    def from_peft(cls, d: dict[str, Any]) -> PrefixConfig:
        return cls(
            num_virtual_tokens=int(d["num_virtual_tokens"]),
            projection=bool(d.get("prefix_projection", False)),
            hidden_size=int(d.get("encoder_hidden_size", 512)),
            sites=d.get("sites", ["decoder"]),
        )


def cache_argument(model: nn.Module) -> str:
    """The keyword the installed transformers uses for the cache: ``cache`` (5.x) or ``past_key_values``."""
    params = inspect.signature(model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def _first(config: Any, *names: str) -> Any:
    """The first of ``names`` that ``config`` sets (None: none)."""
    return next((v for v in (getattr(config, n, None) for n in names) if v is not None), None)


def model_shape(model: nn.Module, site: str) -> tuple[int, int, int]:
    """(layers, key/value heads, head dimension) of the attention at ``site`` from the HF config.

    Grouped-query attention caches ``num_key_value_heads`` heads, not ``num_attention_heads``; the head
    dimension is ``head_dim`` (or T5's ``d_kv``) where the config has one, else width / heads."""
    c = model.config
    if c.is_encoder_decoder:
        part = "encoder" if site == "encoder" else "decoder"
        layers = _first(c, f"{part}_layers", "num_decoder_layers" if part == "decoder" else "num_layers",
                        "num_layers")
        heads = _first(c, f"{part}_attention_heads", "num_heads")
        return layers, heads, _first(c, "d_kv", "head_dim") or c.d_model // heads
    heads = c.num_attention_heads
    kv_heads = _first(c, "num_key_value_heads") or heads
    return c.num_hidden_layers, kv_heads, _first(c, "head_dim") or c.hidden_size // heads


def encoder_length(kwargs: dict) -> int:
    """Sequence length of the ``encoder_outputs`` generate() passes to the decoder steps (-1: none)."""
    enc_out = kwargs.get("encoder_outputs")
    if enc_out is None:
        return -1
    hidden = enc_out[0] if isinstance(enc_out, (tuple, list)) else enc_out.last_hidden_state
    return hidden.shape[1]


class PrefixTable(nn.Module):
    """The prefix of one site: ``(P, layers * 2 * width)`` with ``width = heads * head_dim`` (key/value
    heads), directly or as ``MLP(embedding)`` (peft's layout: its ``token_dim`` is this width)."""

    def __init__(self, config: PrefixConfig, layers: int, heads: int, head_dim: int,
                 like: torch.Tensor) -> None:
        super().__init__()
        width = heads * head_dim
        self.layers, self.heads, self.head_dim = layers, heads, head_dim
        p, out = config.num_virtual_tokens, layers * 2 * width
        kw = {"device": like.device, "dtype": like.dtype}
        if config.projection:
            self.embedding = nn.Embedding(p, width, **kw)
            self.mlp = nn.Sequential(
                nn.Linear(width, config.hidden_size, **kw), nn.Tanh(),
                nn.Linear(config.hidden_size, out, **kw),
            )
        else:
            self.embedding = nn.Embedding(p, out, **kw)
            self.mlp = None

    def table(self) -> torch.Tensor:
        e = self.embedding.weight
        return self.mlp(e) if self.mlp is not None else e

    @torch.no_grad()
    def fold(self) -> None:
        """Replace ``MLP(E)`` by its value: afterwards the table is a plain parameter."""
        if self.mlp is None:
            return
        table = self.table()
        self.embedding = nn.Embedding(*table.shape, device=table.device, dtype=table.dtype)
        self.embedding.weight.copy_(table)
        self.mlp = None

    def key_values(self) -> torch.Tensor:
        """``(layers, 2, heads, P, head_dim)``."""
        t = self.table()
        p = t.shape[0]
        return t.view(p, self.layers, 2, self.heads, self.head_dim).permute(1, 2, 3, 0, 4)


class PrefixTuning(nn.Module):
    """The trainable prefixes of a model (one :class:`PrefixTable` per site) and the hooks that feed them."""

    def __init__(self, model: nn.Module, config: PrefixConfig) -> None:
        super().__init__()
        self.config = config
        like = next(model.parameters())
        encdec = bool(model.config.is_encoder_decoder)
        sites = config.sites if encdec else ["decoder"]
        self.tables = nn.ModuleDict({s: PrefixTable(config, *model_shape(model, s), like) for s in sites})
        self.num_tokens = config.num_virtual_tokens
        self.cache_arg = cache_argument(model)
        self.encdec = encdec
        self.enabled = True

    def fold(self) -> None:
        for t in self.tables.values():
            t.fold()
        self.config.projection = False

    def _fill(self, cache, site: str, batch: int) -> None:
        kv = self.tables[site].key_values()
        for i in range(kv.shape[0]):
            k = kv[i, 0].unsqueeze(0).expand(batch, -1, -1, -1)
            v = kv[i, 1].unsqueeze(0).expand(batch, -1, -1, -1)
            cache.update(k, v, i)

    def _extend(self, mask: torch.Tensor | None, length: int) -> torch.Tensor | None:
        """Prepend P ones to a 2D padding mask that covers ``length`` keys without the prefix."""
        if mask is None or mask.dim() != 2 or mask.shape[1] != length:
            return mask
        ones = torch.ones(mask.shape[0], self.num_tokens, dtype=mask.dtype, device=mask.device)
        return torch.cat([ones, mask], dim=1)

    # --- hooks --------------------------------------------------------------------------------------
    def top_hook(self, module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        if not self.enabled:
            return args, kwargs
        from transformers.cache_utils import DynamicCache, EncoderDecoderCache

        key = "decoder_input_ids" if self.encdec else "input_ids"
        ids = kwargs.get(key)
        if ids is None and not self.encdec and args:
            ids = args[0]
        embeds = kwargs.get("decoder_inputs_embeds" if self.encdec else "inputs_embeds")
        if ids is None and embeds is None:
            if self.encdec and kwargs.get("labels") is not None:
                ids = kwargs["labels"]  # BART derives decoder inputs from labels; only the shape is used
            else:
                return args, kwargs
        batch, length = (ids.shape[0], ids.shape[1]) if ids is not None else embeds.shape[:2]
        cache = kwargs.get(self.cache_arg)
        if cache is None or cache.get_seq_length() == 0:
            if cache is None:  # the cache the model would build itself (sliding-window layers included)
                config = module.config
                cache = (EncoderDecoderCache(DynamicCache(config=config), DynamicCache(config=config))
                         if self.encdec else DynamicCache(config=config))
                kwargs[self.cache_arg] = cache
            if self.encdec:
                if "decoder" in self.tables:
                    self._fill(cache.self_attention_cache, "decoder", batch)
                if "cross" in self.tables:
                    self._fill(cache.cross_attention_cache, "cross", batch)
                    for i in range(len(cache.cross_attention_cache.layers)):
                        # let the model append the encoder's keys behind the prefix
                        cache.is_updated[i] = False
            else:
                self._fill(cache, "decoder", batch)
        if self.encdec:
            self_cache = cache.self_attention_cache
            past_self = self_cache.get_seq_length()
            if "decoder" in self.tables:
                kwargs["decoder_attention_mask"] = self._extend(kwargs.get("decoder_attention_mask"),
                                                                past_self - self.num_tokens + length)
            if "cross" in self.tables and kwargs.get("attention_mask") is not None:
                enc = kwargs.get("input_ids")
                enc_len = enc.shape[1] if enc is not None else encoder_length(kwargs)
                kwargs["attention_mask"] = self._extend(kwargs["attention_mask"], enc_len)
        else:
            past = cache.get_seq_length()
            mask = kwargs.get("attention_mask")
            pos = kwargs.get("position_ids")
            if pos is not None:
                kwargs["position_ids"] = pos + self.num_tokens
            elif mask is not None and mask.dim() == 2:
                # same positions as a forward without a mask would use (P + index), skipping padding
                pos = (mask.long().cumsum(-1) - 1).clamp(min=0)[:, -length:]
                kwargs["position_ids"] = pos + self.num_tokens
            kwargs["attention_mask"] = self._extend(mask, past - self.num_tokens + length)
        return args, kwargs

    def encoder_hook(self, module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        """BART's encoder: hand each self-attention layer a cache holding its prefix."""
        if not self.enabled or "encoder" not in self.tables:
            return args, kwargs
        from transformers.cache_utils import DynamicCache

        ids = kwargs.get("input_ids", args[0] if args else None)
        embeds = kwargs.get("inputs_embeds")
        batch, length = (ids.shape[0], ids.shape[1]) if ids is not None else embeds.shape[:2]
        cache = DynamicCache()
        self._fill(cache, "encoder", batch)
        kwargs["cache"] = cache
        mask = kwargs.get("attention_mask")
        if mask is None:
            device = (ids if ids is not None else embeds).device
            mask = torch.ones(batch, length, dtype=torch.long, device=device)
        kwargs["attention_mask"] = self._extend(mask, length)
        return args, kwargs


def install_prefix(model: nn.Module, config: PrefixConfig) -> PrefixTuning:
    """Attach ``model.prefix_tuning`` and register its hooks; only the prefix trains."""
    if hasattr(model, "prefix_tuning"):
        raise ValueError("this model already has prefix tuning; one prefix per model")
    allowed = prefix_sites(model)
    if model.config.is_encoder_decoder and not set(config.sites) <= set(allowed):
        bad = [s for s in config.sites if s not in allowed]
        family = model_type(model) or type(model).__name__
        raise ValueError(f"PrefixConfig.sites: {family} has no prefix site {bad[0]!r}; "
                         f"valid: {', '.join(allowed)}")
    if model.config.is_encoder_decoder and "cross" in config.sites and "encoder" not in config.sites:
        # the encoder mask is shared by encoder self-attention and cross-attention (both see P + S keys)
        raise ValueError("PrefixConfig.sites: 'cross' needs 'encoder' too (they share the padding mask)")
    if model.config.is_encoder_decoder and "encoder" in config.sites and "cross" not in config.sites:
        raise ValueError("PrefixConfig.sites: 'encoder' needs 'cross' too (they share the padding mask)")
    pt = PrefixTuning(model, config)
    model.prefix_tuning = pt
    model.register_forward_pre_hook(pt.top_hook, with_kwargs=True)
    if pt.encdec:
        model.get_encoder().register_forward_pre_hook(pt.encoder_hook, with_kwargs=True)
    return pt


def default_config(model: nn.Module, opts: dict[str, Any]) -> PrefixConfig:
    """10 virtual tokens through an MLP of width 256, at every site the architecture allows."""
    return PrefixConfig(**{"num_virtual_tokens": 10, "hidden_size": 256, "sites": list(prefix_sites(model)),
                           **config_overrides(PrefixConfig, opts, "prefix")})


def save(model: nn.Module, config: PrefixConfig, _name: str) -> tuple[dict[str, Any], Tensors]:
    """A decoder-only model's plain prefix in peft's own layout (one ``(P, layers * 2 * width)`` table under
    ``prompt_embeddings``); prefixes still holding their MLP and encoder-decoder prefixes, which peft lacks,
    under our module paths."""
    pt = model.prefix_tuning
    if not pt.encdec and not config.projection:
        table = pt.tables["decoder"].embedding.weight
        peft_config = {k: v for k, v in config.to_peft().items() if k != "sites"}  # peft has no such field
        return {**peft_config, "task_type": "CAUSAL_LM"}, {"prompt_embeddings": table}
    return config.to_peft(), {f"prefix_tuning.{k}": v for k, v in pt.state_dict().items()}


def read(model: nn.Module, config: PrefixConfig, tensors: Tensors,
         source: str) -> tuple[PrefixConfig, Tensors]:
    if "prompt_embeddings" in tensors:  # peft's layout (peft's own folders or our GPT-2 ones)
        if model.config.is_encoder_decoder:
            raise ValueError(f"{source}: a peft PREFIX_TUNING table of an encoder-decoder model (peft's own "
                             "layout of decoder-only prefixes) is not read by deepnotes; train the prefix "
                             "here instead")
        # peft saves MLP(E) already evaluated, so the table is a plain (P, layers * 2 * width) prefix
        config.projection, config.sites = False, ["decoder"]
        tensors = {"prefix_tuning.tables.decoder.embedding.weight": tensors["prompt_embeddings"]}
    if any(".mlp." in k for k in tensors) != config.projection:
        raise ValueError(f"{source}: prefix tensors do not match prefix_projection={config.projection}")
    return config, tensors


METHOD = PeftMethod(
    config=PrefixConfig, lr=1e-2, default_config=default_config,
    inject=lambda model, config, _name: install_prefix(model, config),
    trainable=lambda model, _config, _name: model.prefix_tuning.requires_grad_(True),
    save=save, read=read, peft_type="PREFIX_TUNING",
    finish=lambda model: model.prefix_tuning.fold(),  # inference keeps only the prefix table, not the MLP
    knobs={"prefix_length": "num_virtual_tokens"},
)
