"""Base models: GPT-2 / BART configs by size (``peft pretrain``), and loading any saved causal or
encoder-decoder model + tokenizer from a local folder (``peft train --model``)."""

from __future__ import annotations

from pathlib import Path

from torch import nn

ARCHS = ("gpt2", "bart")
SIZES = {
    # layers (per stack for BART), width, heads, context
    "tiny": (2, 64, 4, 256),
    "small": (6, 384, 6, 512),
}
VOCAB = {"tiny": 2000, "small": 8000}
SPECIAL = ["<pad>", "<s>", "</s>", "<unk>", "<mask>"]
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")


def build_model(arch: str, size: str, vocab_size: int, pad: int, bos: int, eos: int) -> nn.Module:
    """A freshly initialised GPT-2 or BART of the named size."""
    from transformers import BartConfig, BartForConditionalGeneration, GPT2Config, GPT2LMHeadModel

    if arch not in ARCHS:
        raise ValueError(f"unknown --arch {arch!r}; valid: {', '.join(ARCHS)}")
    if size not in SIZES:
        raise ValueError(f"unknown --size {size!r}; valid: {', '.join(SIZES)}")
    layers, width, heads, ctx = SIZES[size]
    if arch == "gpt2":
        cfg = GPT2Config(vocab_size=vocab_size, n_layer=layers, n_embd=width, n_head=heads, n_positions=ctx,
                         bos_token_id=bos, eos_token_id=eos, pad_token_id=pad)
        return GPT2LMHeadModel(cfg)
    cfg = BartConfig(vocab_size=vocab_size, d_model=width, encoder_layers=layers, decoder_layers=layers,
                     encoder_attention_heads=heads, decoder_attention_heads=heads, encoder_ffn_dim=4 * width,
                     decoder_ffn_dim=4 * width, max_position_embeddings=ctx, pad_token_id=pad,
                     bos_token_id=bos, eos_token_id=eos, decoder_start_token_id=eos, forced_bos_token_id=None,
                     forced_eos_token_id=eos)
    return BartForConditionalGeneration(cfg)


def load_base(model_dir: str | Path, device=None):
    """(model, tokenizer) saved by ``save_pretrained`` in ``model_dir`` (a local folder; nothing
    downloaded): any causal LM (GPT-2, LLaMA, Qwen2, Mistral...) or encoder-decoder (BART, T5) transformers
    knows, with the tokenizer saved beside it. A tokenizer without a padding token pads with its end token
    (LLaMA's and Qwen's have none); the model records the folder's absolute path as its
    ``config._name_or_path``, which adapter folders name as their base."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a bar per tiny local load only clutters the reports' logs

    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise FileNotFoundError(f"{model_dir}/config.json not found: --model must be a folder written by "
                                "`deepnotes peft pretrain` or `save_pretrained`")
    source = str(model_dir.resolve())
    config = AutoConfig.from_pretrained(source, local_files_only=True)
    cls = AutoModelForSeq2SeqLM if config.is_encoder_decoder else AutoModelForCausalLM
    model = cls.from_pretrained(source, local_files_only=True)
    if not any((model_dir / f).is_file() for f in TOKENIZER_FILES):
        raise FileNotFoundError(f"{model_dir} holds no tokenizer ({' or '.join(TOKENIZER_FILES)}): save it "
                                "beside the model with tokenizer.save_pretrained(folder)")
    tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    if tokenizer.pad_token_id is None or tokenizer.eos_token_id is None:
        raise ValueError(f"{model_dir}: the tokenizer has no end-of-sequence token (eos_token); "
                         "fine-tuning ends every target with it")
    if device is not None:
        model = model.to(device)
    return model, tokenizer
