"""Chapter 9: LoRA (merged = unmerged, only adapters learn, saved alone), the data readers, the loss mask,
the classifier, and a LoRA checkpoint through gpt2lib.checkpoint."""
import json

import pytest
import torch
from hypothesis import given, settings, strategies as st
from safetensors.torch import load_file, save_file

from conftest import random_gpt
from gpt2lib.checkpoint import load_checkpoint, save_checkpoint
from gpt2lib.finetune import (TEMPLATE, ClassificationDataset, InstructionDataset, LoRALinear, accuracy, add_lora,
                              format_prompt, load_lora, merge_lora, read_examples, save_lora, to_classifier)
from gpt2lib.tokenizer import gpt2_tokenizer
from gpt2lib.train import TrainConfig, train

TARGETS = ["attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"]


def moved(model, seed=0, std=0.05):
    """As if trained: random values in every B (which starts at zero)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=g) * std)
    return model


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 1000), rank=st.integers(1, 8), alpha=st.sampled_from([None, 1.0, 16.0]),
       layers=st.integers(1, 3), heads=st.sampled_from([1, 2, 4]),
       targets=st.lists(st.sampled_from(TARGETS), min_size=1, max_size=4, unique=True))
def test_merged_logits_equal_the_adapters(seed, rank, alpha, layers, heads, targets):
    model = moved(add_lora(random_gpt(seed, n_layer=layers, n_head=heads, n_embd=16 * heads), rank, alpha,
                           targets=targets), seed)
    x = torch.randint(0, model.config.vocab_size, (2, 12), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        unmerged = model(x)
        merged = merge_lora(model)(x)
    assert torch.allclose(merged, unmerged, atol=1e-5, rtol=0)
    assert not any(isinstance(m, LoRALinear) for m in model.modules()) and not hasattr(model, "lora_config")


def test_b_starts_at_zero_so_the_model_is_unchanged():
    model = random_gpt(1, std=0.5)
    x = torch.randint(0, 97, (1, 10))
    before = model(x)
    assert torch.equal(add_lora(model, 4, targets=TARGETS)(x), before)


def test_only_the_adapters_change_during_training():
    model = add_lora(random_gpt(2), 4, targets=("attn.c_attn", "mlp.c_fc"))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    train(model, torch.randint(0, 97, (400,)), None, TrainConfig(batch_size=4, block_size=16, max_steps=3, lr=1e-2,
                                                                 warmup_steps=0, device="cpu", progress=False))
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(".lora_" in k for k in changed)
    assert any("lora_A" in k for k in changed) and any("lora_B" in k for k in changed)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {n for n in after if ".lora_" in n}


def test_save_and_load_lora_alone(tmp_path):
    model = moved(add_lora(random_gpt(3), 4, alpha=8.0, targets=["attn.c_attn"]))
    path = tmp_path / "adapter.safetensors"
    save_lora(model, path)
    n = sum(p.numel() for n, p in model.named_parameters() if "lora_" in n)
    assert path.stat().st_size < 4 * n + 2000                       # the adapters and a header, nothing else
    again = load_lora(random_gpt(3), path)
    x = torch.randint(0, 97, (2, 8))
    assert torch.equal(again(x), model(x)) and again.lora_config == model.lora_config
    with pytest.raises(ValueError, match="does not fit"):
        load_lora(random_gpt(3, n_embd=64), path)
    with pytest.raises(ValueError, match="does not fit.*Missing.*h.1.attn.c_attn.lora_B"):   # one adapter short
        tensors = load_file(path)
        del tensors["transformer.h.1.attn.c_attn.lora_B"]
        save_file(tensors, path, metadata={"lora_config": json.dumps(model.lora_config)})
        load_lora(random_gpt(3), path)


@pytest.mark.parametrize("rank, error", [(0, ValueError), (-1, ValueError), (2.5, TypeError), (True, TypeError)])
def test_bad_rank(rank, error):
    model = random_gpt()
    with pytest.raises(error, match="rank"):
        add_lora(model, rank)
    assert not any(isinstance(m, LoRALinear) for m in model.modules())   # nothing changed


def test_unknown_target_names_it_and_changes_nothing():
    model = random_gpt()
    with pytest.raises(ValueError, match="attn.qkv") as e:
        add_lora(model, 2, targets=["attn.c_attn", "attn.qkv"])
    assert "mlp.c_fc" in str(e.value)                               # the names there are
    assert all(p.requires_grad for p in model.parameters())


def test_a_lora_checkpoint_loads_with_its_adapters(tmp_path):
    model = moved(add_lora(random_gpt(4), 2, targets=["attn.c_proj"]))
    save_checkpoint(tmp_path / "run", model, meta={"lora": model.lora_config})
    ck = load_checkpoint(tmp_path / "run")
    x = torch.randint(0, 97, (1, 9))
    assert torch.equal(ck.model.eval()(x), model(x)) and ck.model.lora_config == model.lora_config


# ---- data -------------------------------------------------------------------------------------------

def test_read_jsonl_and_csv(tmp_path):
    rows = [{"instruction": "a, \"b\"", "response": "c\nd"}, {"instruction": "e", "response": "f"}]
    (tmp_path / "x.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + "\n", encoding="utf-8")
    with (tmp_path / "x.csv").open("w", encoding="utf-8", newline="") as f:
        import csv
        w = csv.DictWriter(f, ["instruction", "response"])
        w.writeheader()
        w.writerows(rows)
    for name in ("x.jsonl", "x.csv"):
        got = read_examples(tmp_path / name)
        assert [{k: r[k] for k in ("instruction", "response")} for r in got] == rows


@pytest.mark.parametrize("name, text, line", [
    ("a.jsonl", '{"instruction": "q", "response": "a"}\n{"instruction": "q"}\n', 2),
    ("b.jsonl", '{"instruction": "q", "response": "a"}\n\n{"instruction": "q", "response": 3}\n', 3),
    ("c.jsonl", '{"instruction": "q", "response": "a"}\nnot json\n', 2),
    ("d.csv", "instruction,answer\nq,a\n", 2),
])
def test_a_bad_line_is_named(tmp_path, name, text, line):
    (tmp_path / name).write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=rf"{name}, line {line}"):
        read_examples(tmp_path / name)


def test_the_loss_mask_and_padding():
    tok = gpt2_tokenizer()
    examples = [{"instruction": "Say hi.", "response": "Hi."}, {"instruction": "Count to three.", "response": "1 2 3"}]
    ds = InstructionDataset(examples, tok, 64)
    for e, (x, y) in zip(examples, (ds[0], ds[1])):
        prompt, answer = tok.encode(format_prompt(e["instruction"])), tok.encode(e["response"])
        assert x.tolist() == prompt + answer                        # without the final <|endoftext|>
        assert y.tolist() == [-100] * (len(prompt) - 1) + answer + [tok.eot_token]
    xb, yb = ds.collate([ds[0], ds[1]])
    short = len(ds[0][0])
    assert xb.shape == yb.shape == (2, len(ds[1][0]))
    assert (xb[0, short:] == tok.eot_token).all() and (yb[0, short:] == -100).all()
    assert TEMPLATE.format(instruction="Say hi.") == format_prompt("Say hi.")


def test_an_example_longer_than_the_context():
    tok = gpt2_tokenizer()
    with pytest.raises(ValueError, match="example 1 .*context of 16"):
        InstructionDataset([{"instruction": "a", "response": "b"}, {"instruction": "a", "response": "word " * 20}],
                           tok, 16)


def test_the_classifier_reads_the_last_real_token_and_padding_changes_nothing():
    tok = gpt2_tokenizer()
    model = to_classifier(random_gpt(5, vocab_size=tok.n_vocab, std=0.3), 3).eval()
    ds = ClassificationDataset(["short text", "a somewhat longer text than that"], [2, 0], tok, 32)
    x, y = ds[0]
    assert (y[:-1] == -100).all() and y[-1] == 2
    xb, _ = ds.collate([ds[0], ds[1]])                               # the first row is padded
    with torch.no_grad():
        alone = model(x[None])[0, -1]
        padded = model(xb)[0, len(x) - 1]
    assert torch.allclose(alone, padded, atol=1e-5)
    assert model(x[None]).shape[-1] == 3 and 0.0 <= accuracy(model, ds) <= 1.0


def test_load_pretrained_on_a_lora_run_gives_the_merged_model(tmp_path):
    from gpt2lib.pretrained import load_pretrained

    model = moved(add_lora(random_gpt(6), 4, targets=TARGETS)).eval()
    save_checkpoint(tmp_path / "run", model, meta={"lora": model.lora_config})
    plain = load_pretrained(tmp_path / "run")
    x = torch.randint(0, 97, (2, 11))
    assert not any(isinstance(m, LoRALinear) for m in plain.modules())
    with torch.no_grad():
        assert torch.allclose(plain(x), model(x), atol=1e-5, rtol=0)
