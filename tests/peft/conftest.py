"""Tiny GPT-2 / BART / T5 / LLaMA / Qwen2 / Mistral models built from configs, and a pretrained tiny folder
(nothing downloaded). The LLaMA-family configs use grouped-query attention (2 key/value heads for 4 query
heads)."""

from __future__ import annotations

import pytest
import torch
from transformers import (
    BartConfig,
    BartForConditionalGeneration,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
    T5Config,
    T5ForConditionalGeneration,
)
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


def _llama_like(model_cls, config_cls, seed: int):
    torch.manual_seed(seed)
    cfg = config_cls(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                     num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64, pad_token_id=0,
                     bos_token_id=1, eos_token_id=2)
    return model_cls(cfg).eval()


def tiny_llama(seed: int = 0) -> LlamaForCausalLM:
    return _llama_like(LlamaForCausalLM, LlamaConfig, seed)


def tiny_qwen2(seed: int = 0) -> Qwen2ForCausalLM:
    return _llama_like(Qwen2ForCausalLM, Qwen2Config, seed)


def tiny_mistral(seed: int = 0) -> MistralForCausalLM:
    return _llama_like(MistralForCausalLM, MistralConfig, seed)


def tiny_t5(seed: int = 0) -> T5ForConditionalGeneration:
    torch.manual_seed(seed)
    cfg = T5Config(vocab_size=VOCAB, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4, pad_token_id=0,
                   eos_token_id=2, decoder_start_token_id=0)
    return T5ForConditionalGeneration(cfg).eval()


# every architecture the PEFT methods are tested on, by transformers' model_type
BUILDERS = {"gpt2": tiny_gpt2, "bart": tiny_bart, "t5": tiny_t5, "llama": tiny_llama, "qwen2": tiny_qwen2,
            "mistral": tiny_mistral}
ENCODER_DECODER = ("bart", "t5")


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


def qwen_like_tokenizer(vocab_size: int = 400):
    """A byte-level BPE tokenizer trained on the synthetic tasks, shaped like Qwen's: an end token
    ``<|endoftext|>`` and neither a start nor a padding token."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from deepnotes.peft.data.tasks import make_task

    texts = [t for e in make_task("table2text", "train", 300) for t in (e.source, e.target)]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>"],
                                  show_progress=False, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>")


@pytest.fixture(scope="session")
def qwen2_folder(tmp_path_factory):
    """A tiny Qwen2-shaped model (grouped-query attention) and a Qwen-like tokenizer, saved with
    ``save_pretrained`` as a user's local model folder would be."""
    out = tmp_path_factory.mktemp("base") / "qwen2-tiny"
    tok = qwen_like_tokenizer()
    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                      eos_token_id=tok.eos_token_id, tie_word_embeddings=True)
    Qwen2ForCausalLM(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def word_tokenizer(size: int = VOCAB):
    """A whitespace word-level tokenizer of ``size`` entries (``<pad> <s> </s> <unk> w4 ...``), to save
    beside the tiny models of vocabulary ``VOCAB``."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    names = ["<pad>", "<s>", "</s>", "<unk>"] + [f"w{i}" for i in range(4, size)]
    vocab = {t: i for i, t in enumerate(names)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>",
                                   unk_token="<unk>")


def greedy_reference(model, ids: torch.Tensor, steps: int, encdec: bool) -> torch.Tensor:
    """Reference decoder: the whole sequence recomputed every step (no cache reuse), EOS barred."""
    eos = model.config.eos_token_id

    def pick(logits):
        logits = logits[:, -1:].clone()
        logits[..., eos] = float("-inf")
        return logits.argmax(-1)

    if encdec:
        out = torch.full((ids.shape[0], 1), model.config.decoder_start_token_id)
        for _ in range(steps):
            out = torch.cat([out, pick(model(input_ids=ids, decoder_input_ids=out).logits)], 1)
        return out
    out = ids
    for _ in range(steps):
        out = torch.cat([out, pick(model(input_ids=out).logits)], 1)
    return out
