"""Tiny GPT-2 / BART models built from configs, and a pretrained tiny folder (nothing downloaded)."""

from __future__ import annotations

import pytest
import torch
from transformers import BartConfig, BartForConditionalGeneration, GPT2Config, GPT2LMHeadModel
from typer.testing import CliRunner

VOCAB = 120


def tiny_gpt2(seed: int = 0) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    cfg = GPT2Config(n_layer=2, n_embd=32, n_head=4, vocab_size=VOCAB, n_positions=64,
                     bos_token_id=1, eos_token_id=2, pad_token_id=0)
    return GPT2LMHeadModel(cfg).eval()


def tiny_bart(seed: int = 0) -> BartForConditionalGeneration:
    torch.manual_seed(seed)
    cfg = BartConfig(vocab_size=VOCAB, d_model=32, encoder_layers=2, decoder_layers=2,
                     encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=64,
                     decoder_ffn_dim=64, max_position_embeddings=64, pad_token_id=0, bos_token_id=1,
                     eos_token_id=2, decoder_start_token_id=2, forced_eos_token_id=None)
    return BartForConditionalGeneration(cfg).eval()


@pytest.fixture(scope="session")
def ids() -> torch.Tensor:
    return torch.randint(3, VOCAB, (2, 10), generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="session")
def pretrained(tmp_path_factory):
    """A tiny GPT-2 + tokenizer folder written by `deepnotes peft pretrain` (3 steps)."""
    from deepnotes.peft.cli import app

    out = tmp_path_factory.mktemp("base") / "gpt2"
    res = CliRunner().invoke(app, ["pretrain", "--arch", "gpt2", "--size", "tiny", "--out", str(out),
                                  "--steps", "3", "--batch-size", "2", "--device", "cpu",
                                  "--max-chars", "60000"])
    assert res.exit_code == 0, res.output
    return out
