"""Prefix tuning and prompt tuning: against peft where it has the same method, and self-consistency."""

from __future__ import annotations

import pytest
import torch

import peft
from deepnotes.peft import PrefixConfig, PromptConfig, apply, load_adapter, save_adapter, trainable_parameters
from deepnotes.peft.methods.prefix import PrefixTuning
from tests.peft.conftest import greedy_reference, tiny_bart, tiny_gpt2


def _scale_prefix(model, factor=0.1):
    with torch.no_grad():
        for t in model.prefix_tuning.tables.values():
            t.embedding.weight.mul_(factor)


def test_gpt2_prefix_matches_peft(ids):
    ours = apply(tiny_gpt2(), PrefixConfig(num_virtual_tokens=5, projection=False))
    _scale_prefix(ours)
    theirs = peft.get_peft_model(tiny_gpt2(),
                                 peft.PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=5))
    with torch.no_grad():
        theirs.prompt_encoder["default"].embedding.weight.copy_(ours.prefix_tuning.tables["decoder"].embedding.weight)
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0  # right padding: peft and we count positions alike (left padding: see below)
    labels = ids.masked_fill(mask == 0, -100)
    a = ours(input_ids=ids, attention_mask=mask, labels=labels)
    b = theirs(input_ids=ids, attention_mask=mask, labels=labels)
    valid = mask.bool()  # at padded positions the two position conventions differ; nothing reads them
    torch.testing.assert_close(a.logits[valid], b.logits[valid], atol=1e-5, rtol=0)
    a.loss.backward()
    b.loss.backward()
    torch.testing.assert_close(ours.prefix_tuning.tables["decoder"].embedding.weight.grad,
                               theirs.prompt_encoder["default"].embedding.weight.grad, atol=1e-5, rtol=0)


def test_bart_decoder_prefix_matches_peft(ids):
    ours = apply(tiny_bart(), PrefixConfig(num_virtual_tokens=3, projection=False, sites=["decoder"]))
    _scale_prefix(ours)
    theirs = peft.get_peft_model(tiny_bart(),
                                 peft.PrefixTuningConfig(task_type="SEQ_2_SEQ_LM", num_virtual_tokens=3))
    w = theirs.prompt_encoder["default"].embedding.weight
    table = ours.prefix_tuning.tables["decoder"].embedding.weight
    assert w.shape == table.shape
    # peft 0.21 lays the seq2seq table out so that with 2 layers both read layer 0's block (its
    # concat-then-split of self/cross entries); give both layers the same block to compare like for like
    with torch.no_grad():
        table[:, 64:] = table[:, :64]
        w.copy_(table)
    mask = torch.ones_like(ids)
    mask[0, 8:] = 0
    a = ours(input_ids=ids, attention_mask=mask, labels=ids).logits
    b = theirs(input_ids=ids, attention_mask=mask, labels=ids).logits
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


@pytest.mark.parametrize("arch", ["gpt2", "bart"])
def test_prefix_generate_matches_full_recompute(arch, ids):
    encdec = arch == "bart"
    model = apply(tiny_bart() if encdec else tiny_gpt2(), PrefixConfig(num_virtual_tokens=4, hidden_size=16))
    _scale_prefix(model, 3.0)  # make the prefix matter
    got = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=6,
                         do_sample=False, min_new_tokens=6)
    want = greedy_reference(model, ids, 6, encdec)
    assert torch.equal(got[:, -6:], want[:, -6:])


@pytest.mark.parametrize("arch", ["gpt2", "bart"])
def test_prefix_padding_is_masked(arch, ids):
    """A padded row gives the same logits as the same row alone: the extended mask is right."""
    encdec = arch == "bart"
    model = apply(tiny_bart() if encdec else tiny_gpt2(), PrefixConfig(num_virtual_tokens=4, hidden_size=16))
    _scale_prefix(model, 3.0)
    short = ids[:1, :7]
    padded = torch.cat([short, torch.zeros(1, 3, dtype=torch.long)], 1)
    mask = torch.cat([torch.ones(1, 7), torch.zeros(1, 3)], 1).long()
    if encdec:
        dec = ids[:1, :5]
        a = model(input_ids=short, decoder_input_ids=dec).logits
        b = model(input_ids=padded, attention_mask=mask, decoder_input_ids=dec).logits
    else:
        a = model(input_ids=short).logits
        b = model(input_ids=padded, attention_mask=mask).logits[:, :7]
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_bart_prefix_reaches_every_site_and_folds(ids, tmp_path):
    model = apply(tiny_bart(), PrefixConfig(num_virtual_tokens=4, hidden_size=16))
    out = model(input_ids=ids, labels=ids)
    out.loss.backward()
    for site in ("encoder", "decoder", "cross"):
        assert model.prefix_tuning.tables[site].embedding.weight.grad.abs().sum() > 0, site
    before = model(input_ids=ids, labels=ids).logits.detach()
    n_train = trainable_parameters(model).trainable
    pt: PrefixTuning = model.prefix_tuning
    pt.fold()
    assert all(t.mlp is None for t in pt.tables.values())
    torch.testing.assert_close(model(input_ids=ids, labels=ids).logits, before, atol=1e-5, rtol=0)
    # folded: P x (layers * 2 * width) per site, far fewer than with the MLP
    assert sum(p.numel() for p in pt.parameters()) == 3 * 4 * 2 * 2 * 32 < n_train
    save_adapter(model, tmp_path)
    back = load_adapter(tiny_bart(), tmp_path)
    torch.testing.assert_close(back(input_ids=ids, labels=ids).logits, before, atol=1e-5, rtol=0)


def test_prefix_without_its_partner_site_is_refused():
    with pytest.raises(ValueError, match="'cross' needs 'encoder'"):
        apply(tiny_bart(), PrefixConfig(sites=["decoder", "cross"]))


def test_gpt2_prompt_matches_peft(ids):
    ours = apply(tiny_gpt2(), PromptConfig(num_virtual_tokens=3))
    theirs = peft.get_peft_model(tiny_gpt2(),
                                 peft.PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=3))
    with torch.no_grad():
        theirs.prompt_encoder["default"].embedding.weight.copy_(ours.prompt_tuning.embedding.weight)
    mask = torch.ones_like(ids)
    mask[1, :2] = 0
    a = ours(input_ids=ids, attention_mask=mask, labels=ids)
    b = theirs(input_ids=ids, attention_mask=mask, labels=ids)
    torch.testing.assert_close(a.logits, b.logits, atol=1e-5, rtol=0)
    torch.testing.assert_close(a.loss, b.loss, atol=1e-6, rtol=0)
    assert trainable_parameters(ours).trainable == 3 * 32


@pytest.mark.parametrize("arch", ["gpt2", "bart"])
def test_prompt_generate_and_round_trip(arch, ids, tmp_path):
    encdec = arch == "bart"
    model = apply(tiny_bart() if encdec else tiny_gpt2(), PromptConfig(num_virtual_tokens=3, init="random"))
    got = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=5,
                         min_new_tokens=5, do_sample=False)
    want = greedy_reference(model, ids, 5, encdec)
    assert torch.equal(got[:, -5:], want[:, -5:])
    save_adapter(model, tmp_path)
    back = load_adapter(tiny_bart() if encdec else tiny_gpt2(), tmp_path)
    torch.testing.assert_close(back.prompt_tuning.embedding.weight, model.prompt_tuning.embedding.weight)


@pytest.mark.parametrize("arch", ["gpt2", "bart"])
def test_peft_runs_our_prompt_folders(arch, ids, tmp_path):
    # without task_type peft builds a plain PeftModel that never prepends the prompt (silently a no-op)
    make = tiny_bart if arch == "bart" else tiny_gpt2
    ours = apply(make(), PromptConfig(num_virtual_tokens=3, init="random")).eval()
    save_adapter(ours, tmp_path)
    theirs = peft.PeftModel.from_pretrained(make(), tmp_path).eval()
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    a = ours(input_ids=ids, attention_mask=mask, labels=ids)
    b = theirs(input_ids=ids, attention_mask=mask, labels=ids)
    torch.testing.assert_close(a.logits, b.logits, atol=1e-5, rtol=0)
    torch.testing.assert_close(a.loss, b.loss, atol=1e-6, rtol=0)


def test_we_run_peft_default_seq2seq_prompt_folders(ids, tmp_path):
    # peft's SEQ_2_SEQ_LM default stores 2P rows (num_transformer_submodules 2) yet prepends only the first P
    theirs = peft.get_peft_model(tiny_bart(),
                                 peft.PromptTuningConfig(task_type="SEQ_2_SEQ_LM", num_virtual_tokens=3))
    with torch.no_grad():
        g = torch.Generator().manual_seed(1)
        theirs.prompt_encoder["default"].embedding.weight.normal_(0.0, 0.5, generator=g)
    assert theirs.prompt_encoder["default"].embedding.weight.shape[0] == 6
    theirs.save_pretrained(tmp_path)
    ours = load_adapter(tiny_bart(), tmp_path).eval()
    mask = torch.ones_like(ids)
    mask[0, 8:] = 0
    a = ours(input_ids=ids, attention_mask=mask, labels=ids)
    b = theirs.eval()(input_ids=ids, attention_mask=mask, labels=ids)
    torch.testing.assert_close(a.logits, b.logits, atol=1e-5, rtol=0)
    got = ours.generate(input_ids=ids, attention_mask=mask, max_new_tokens=4, do_sample=False)
    want = theirs.generate(input_ids=ids, attention_mask=mask, max_new_tokens=4, do_sample=False)
    assert torch.equal(got, want)


@pytest.mark.parametrize("projection", [False, True])
def test_gpt2_prefix_folders_load_both_ways_with_peft(projection, ids, tmp_path):
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    valid = mask.bool()
    pcfg = peft.PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=4, prefix_projection=projection)
    theirs = peft.get_peft_model(tiny_gpt2(), pcfg)
    with torch.no_grad():
        for p in theirs.prompt_encoder["default"].parameters():
            p.normal_(0.0, 0.5, generator=torch.Generator().manual_seed(p.numel()))
    theirs.save_pretrained(tmp_path / "peft")  # peft stores the evaluated table, MLP or not
    ours = load_adapter(tiny_gpt2(), tmp_path / "peft").eval()
    want = theirs.eval()(input_ids=ids, attention_mask=mask).logits
    torch.testing.assert_close(ours(input_ids=ids, attention_mask=mask).logits[valid], want[valid],
                               atol=1e-5, rtol=0)
    save_adapter(ours, tmp_path / "ours")
    again = peft.PeftModel.from_pretrained(tiny_gpt2(), tmp_path / "ours").eval()
    torch.testing.assert_close(again(input_ids=ids, attention_mask=mask).logits[valid], want[valid],
                               atol=1e-5, rtol=0)


def test_peft_seq2seq_prefix_folder_is_a_clear_error(tmp_path):
    peft.get_peft_model(tiny_bart(), peft.PrefixTuningConfig(task_type="SEQ_2_SEQ_LM", num_virtual_tokens=3)
                        ).save_pretrained(tmp_path)
    with pytest.raises(ValueError,
                       match="adapter_model.safetensors: a peft PREFIX_TUNING table of an encoder-decoder"):
        load_adapter(tiny_bart(), tmp_path)


def test_gpt2_prefix_left_padding_matches_unpadded(ids):
    """Positions skip left padding (peft counts them), so a left-padded row equals the row alone."""
    model = apply(tiny_gpt2(), PrefixConfig(num_virtual_tokens=4, projection=False))
    row = ids[:1, :7]
    padded = torch.cat([torch.zeros(1, 3, dtype=torch.long), row], 1)
    mask = torch.cat([torch.zeros(1, 3), torch.ones(1, 7)], 1).long()
    torch.testing.assert_close(model(input_ids=padded, attention_mask=mask).logits[:, 3:],
                               model(input_ids=row, attention_mask=torch.ones_like(row)).logits,
                               atol=1e-5, rtol=0)
