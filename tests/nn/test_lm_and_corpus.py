import pytest
import torch

from deepnotes.nn.corpus import file_docstrings, stdlib_docstrings
from deepnotes.nn.tiny_lm import LMConfig, TinyLM, batch_windows


@pytest.fixture(scope="session")
def fake_stdlib(tmp_path_factory):
    root = tmp_path_factory.mktemp("stdlib")
    for i in range(30):
        (root / f"mod{i:02d}.py").write_text(
            f'"""Module {i} docstring, long enough to count: ' + "words " * 60 + '"""\n\n'
            f'def f{i}():\n    """Function {i}: ' + "more text " * 20 + '"""\n', encoding="utf-8")
    (root / "broken.py").write_text("def (:\n", encoding="utf-8")
    (root / "_private.py").write_text('"""never read"""\n', encoding="utf-8")
    return root


def test_corpus_is_deterministic_split_by_file_and_reports_bad_files(fake_stdlib):
    a = stdlib_docstrings(stdlib_dir=fake_stdlib, val_every=3)
    b = stdlib_docstrings(stdlib_dir=fake_stdlib, val_every=3)
    assert torch.equal(a.train, b.train) and torch.equal(a.val, b.val)
    assert a.skipped == ["broken.py: SyntaxError"]
    train_text, val_text = bytes(a.train.tolist()).decode(), bytes(a.val.tolist()).decode()
    train_mods = {line.split()[1] for line in train_text.splitlines() if line.startswith("Module ")}
    val_mods = {line.split()[1] for line in val_text.splitlines() if line.startswith("Module ")}
    assert train_mods and val_mods and not train_mods & val_mods
    assert "never read" not in train_text + val_text


def test_file_docstrings_reads_module_class_and_function_docs(tmp_path):
    p = tmp_path / "m.py"
    p.write_text('"""Top."""\nclass A:\n    """Class doc\n    indented."""\n'
                 '    def g(self):\n        """Gee."""\n')
    assert file_docstrings(p) == ["Top.", "Class doc\nindented.", "Gee."]


def test_real_stdlib_corpus_has_text():
    c = stdlib_docstrings(max_bytes=20_000)
    assert len(c.train) == 20_000 and len(c.val) == 2_000
    assert b"Return" in bytes(c.train.tolist())


def test_tiny_lm_is_causal_and_gated_ffn_matches_plain_size():
    torch.manual_seed(0)
    model = TinyLM(LMConfig(context=16, d_model=32, layers=2, heads=4, ffn="swiglu"))
    ids = torch.randint(0, 256, (2, 16))
    out = model(ids)
    changed = ids.clone()
    changed[:, 10] = (changed[:, 10] + 1) % 256
    out2 = model(changed)
    torch.testing.assert_close(out[:, :10], out2[:, :10])  # the future cannot leak into the past
    assert not torch.allclose(out[:, 10:], out2[:, 10:])
    plain = TinyLM(LMConfig(context=16, d_model=32, layers=2, heads=4, ffn="mlp"))
    assert abs(model.ffn_parameters() - plain.ffn_parameters()) <= 3 * 32 * 2
    with pytest.raises(ValueError, match="context"):
        model(torch.zeros(1, 17, dtype=torch.long))


def test_batch_windows_targets_are_inputs_shifted_by_one():
    data = torch.arange(100, dtype=torch.uint8)
    x, y = batch_windows(data, torch.tensor([0, 50]), 8)
    assert x.shape == y.shape == (2, 8)
    torch.testing.assert_close(y[:, :-1], x[:, 1:])
    assert x[1, 0].item() == 50 and y[1, -1].item() == 58
