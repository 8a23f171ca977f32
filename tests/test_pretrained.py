"""Chapter 7: loading GPT-2 checkpoints into gpt2lib, checked against Hugging Face transformers.

Every model here is a randomly initialised transformers.GPT2LMHeadModel (no download; conftest's hf_folder
writes it): the loader must give logits within 1e-4 of transformers and the same greedy continuation, whatever
the source format.
"""
import copy
import pathlib
import sys
import types

import pytest
import torch
from hypothesis import given, settings, strategies as st
from safetensors.torch import save_file
from transformers import GPT2LMHeadModel

from conftest import hf_folder, hf_twin, random_gpt
from gpt2lib.checkpoint import save_checkpoint
from gpt2lib.generate import generate
from gpt2lib.model import GPT, GPTConfig
from gpt2lib.pretrained import (CONV1D, HUB_NAMES, WeightsError, load_pretrained, normalize_keys, parity_report,
                                to_transformers)

ATOL = 1e-4
N_NEW = 60   # greedy tokens compared


def hf_gpt2(folder, seed=0, initializer_range=0.05, **kw):
    """A random transformers GPT-2 saved in `folder` (conftest's hf_folder) and read back; weights of std 0.05
    (not 0.02), so that greedy decoding says more than one token again and again."""
    hf_folder(folder, seed=seed, initializer_range=initializer_range, bos_token_id=None, eos_token_id=None, **kw)
    return GPT2LMHeadModel.from_pretrained(folder).eval()


def prompt_ids(vocab_size, n=9, seed=1):
    return torch.randint(0, vocab_size, (1, n), generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def hf_greedy(hf, idx, n=N_NEW):
    out = hf.generate(idx, attention_mask=torch.ones_like(idx), max_new_tokens=n, do_sample=False,
                      eos_token_id=[], pad_token_id=0)
    return out[0, idx.shape[1]:].tolist()


@torch.no_grad()
def assert_parity(model, hf, idx, greedy=None):
    """Logits within ATOL of transformers, and the same greedy continuation (gpt2lib's own generate)."""
    assert isinstance(model, GPT) and not model.training
    assert model.lm_head.weight is model.transformer.wte.weight            # the head stays tied
    assert model.num_params() == sum(p.numel() for p in hf.parameters())
    diff = (model(idx) - hf(idx).logits).abs().max().item()
    assert diff <= ATOL, f"max |logit diff| {diff:.2e}"
    ours = generate(model, idx, N_NEW, temperature=0.0)[0, idx.shape[1]:].tolist()
    theirs = greedy if greedy is not None else hf_greedy(hf, idx)
    assert len(ours) == N_NEW and ours == theirs
    assert len(set(ours)) > 3        # a continuation that says something, not one token repeated


# ----------------------------------------------------------------------------------------------------
# Parity at several shapes: each released size's width and heads, with 2 layers and a small vocabulary.

SHAPES = [
    dict(n_layer=2, n_head=12, n_embd=768, vocab_size=1000, n_positions=128),    # gpt2
    dict(n_layer=2, n_head=16, n_embd=1024, vocab_size=1000, n_positions=128),   # gpt2-medium
    dict(n_layer=2, n_head=20, n_embd=1280, vocab_size=1000, n_positions=128),   # gpt2-large
    dict(n_layer=2, n_head=25, n_embd=1600, vocab_size=1000, n_positions=128),   # gpt2-xl
    dict(n_layer=3, n_head=3, n_embd=48, vocab_size=257, n_positions=80, layer_norm_epsilon=1e-6,
         initializer_range=0.3),   # a small model needs larger weights to say more than one token
]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"C{s['n_embd']}-H{s['n_head']}-L{s['n_layer']}")
def test_parity_folder_from_save_pretrained(tmp_path, shape):
    hf = hf_gpt2(tmp_path, **shape)
    model = load_pretrained(tmp_path)
    c = model.config
    assert (c.n_layer, c.n_head, c.n_embd, c.vocab_size, c.block_size) == (
        shape["n_layer"], shape["n_head"], shape["n_embd"], shape["vocab_size"], shape["n_positions"])
    assert c.layer_norm_eps == shape.get("layer_norm_epsilon", 1e-5)
    assert_parity(model, hf, prompt_ids(shape["vocab_size"]))


# ----------------------------------------------------------------------------------------------------
# Every source kind gives the same model. One small config; n_embd=128 with 4 heads, so that the
# n_embd // 64 default (2 heads) would be wrong: files without a config must be told n_head.

SMALL = dict(n_layer=2, n_head=4, n_embd=128, vocab_size=500, n_positions=96)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    hf = hf_gpt2(tmp_path_factory.mktemp("small"), seed=3, **SMALL)
    idx = prompt_ids(SMALL["vocab_size"])
    return hf, idx, hf_greedy(hf, idx)


def hf_sd(hf):
    """transformers' own state dict, as save_pretrained writes it: no lm_head (it is tied)."""
    return {k: v.contiguous() for k, v in hf.state_dict().items() if k != "lm_head.weight"}


def legacy_sd(hf):
    """The layout of the checkpoints on the hub: no `transformer.` prefix, the causal mask stored per block."""
    sd = {k.removeprefix("transformer."): v for k, v in hf_sd(hf).items()}
    n = SMALL["n_positions"]
    for i in range(SMALL["n_layer"]):
        sd[f"h.{i}.attn.bias"] = torch.tril(torch.ones(n, n)).view(1, 1, n, n)
        sd[f"h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
    return sd


def gpt2lib_sd(hf):
    """gpt2lib's own layout (nn.Linear, (out, in)), as a training run would save it."""
    return {k: (v.t() if k.endswith(CONV1D) else v).contiguous() for k, v in hf.state_dict().items()}


def write(tmp_path, kind, hf):
    if kind == "folder":
        hf.save_pretrained(tmp_path)
        return tmp_path
    if kind == "folder-sharded":       # large models are saved in pieces, with an index
        hf.save_pretrained(tmp_path, max_shard_size="300KB")
        assert (tmp_path / "model.safetensors.index.json").is_file()
        return tmp_path
    if kind == "folder-bin":           # an older folder: config.json + pytorch_model.bin
        hf.config.save_pretrained(tmp_path)
        torch.save(legacy_sd(hf), tmp_path / "pytorch_model.bin")
        return tmp_path
    if kind == "safetensors":
        save_file(hf_sd(hf), tmp_path / "model.safetensors")
        return tmp_path / "model.safetensors"
    if kind == "safetensors-legacy":
        save_file(legacy_sd(hf), tmp_path / "w.safetensors")
        return tmp_path / "w.safetensors"
    if kind == "pt-ddp":               # DistributedDataParallel wraps every key in `module.`
        torch.save({"module." + k: v for k, v in hf_sd(hf).items()}, tmp_path / "w.pt")
        return tmp_path / "w.pt"
    if kind == "pt-compiled-gpt2lib":  # torch.compile adds `_orig_mod.`; gpt2lib layout, head included
        torch.save({"_orig_mod." + k: v for k, v in gpt2lib_sd(hf).items()}, tmp_path / "w.pth")
        return tmp_path / "w.pth"
    if kind == "pt-no-prefix-gpt2lib":
        torch.save({k.removeprefix("transformer."): v for k, v in gpt2lib_sd(hf).items()}, tmp_path / "w.bin")
        return tmp_path / "w.bin"
    if kind == "pt-ddp-compiled":
        torch.save({"module._orig_mod." + k: v for k, v in hf_sd(hf).items()}, tmp_path / "w.ckpt")
        return tmp_path / "w.ckpt"
    raise AssertionError(kind)


KINDS = ["folder", "folder-sharded", "folder-bin", "safetensors", "safetensors-legacy", "pt-ddp", "pt-compiled-gpt2lib",
         "pt-no-prefix-gpt2lib", "pt-ddp-compiled"]


@pytest.mark.parametrize("kind", KINDS)
def test_every_source_kind_loads_the_same_model(tmp_path, small, kind):
    hf, idx, greedy = small
    path = write(tmp_path, kind, hf)
    has_config = kind.startswith("folder")
    model = load_pretrained(path, n_head=None if has_config else SMALL["n_head"])
    assert model.config.n_head == SMALL["n_head"]
    assert_parity(model, hf, idx, greedy)


def test_training_checkpoint_with_its_config(tmp_path, small):
    hf, idx, greedy = small
    cfg = GPTConfig(n_layer=2, n_head=4, n_embd=128, vocab_size=500, block_size=96)
    torch.save({"model": {"_orig_mod." + k: v for k, v in gpt2lib_sd(hf).items()}, "model_args": cfg.to_dict(),
                "step": 100, "optimizer": {"lr": 3e-4}}, tmp_path / "ckpt.pt")
    model = load_pretrained(tmp_path / "ckpt.pt")        # n_head comes from the checkpoint's config
    assert model.config.n_head == 4
    assert_parity(model, hf, idx, greedy)
    torch.save({"state_dict": gpt2lib_sd(hf), "epoch": 3}, tmp_path / "other.ckpt")   # the other common form
    assert_parity(load_pretrained(tmp_path / "other.ckpt", n_head=4), hf, idx, greedy)


def test_n_head_defaults_to_64_dimensions_per_head(tmp_path):
    hf = hf_gpt2(tmp_path / "hf", n_layer=1, n_head=2, n_embd=128, vocab_size=300, n_positions=64)   # 128 // 64 = 2 heads
    save_file(hf_sd(hf), tmp_path / "w.safetensors")
    model = load_pretrained(tmp_path / "w.safetensors")
    assert model.config.n_head == 2
    idx = prompt_ids(300)
    with torch.no_grad():
        assert (model(idx) - hf(idx).logits).abs().max().item() <= ATOL


def test_a_weights_file_reads_the_config_json_beside_it(tmp_path):
    """model.safetensors inside a save_pretrained folder: n_head comes from config.json, not n_embd // 64."""
    hf = hf_gpt2(tmp_path, n_layer=2, n_head=4, n_embd=96, vocab_size=300, n_positions=128,  # 24 dims per head
                 initializer_range=0.1)
    model = load_pretrained(tmp_path / "model.safetensors")
    assert model.config.n_head == 4
    idx = prompt_ids(300)
    assert_parity(model, hf, idx)


@pytest.mark.parametrize("bias", [True, False])
def test_a_gpt2lib_model_round_trips(tmp_path, bias):
    ours = random_gpt(0, n_layer=2, n_head=4, n_embd=64, vocab_size=300, block_size=64, bias=bias)
    torch.save(ours.state_dict(), tmp_path / "ours.pt")
    back = load_pretrained(tmp_path / "ours.pt", n_head=4)
    assert back.config == ours.config
    assert back.state_dict().keys() == ours.state_dict().keys()
    for k, a in ours.state_dict().items():
        assert torch.equal(a, back.state_dict()[k]), k
    if not bias:                               # transformers' GPT-2 always has biases: no twin to compare with
        with pytest.raises(WeightsError, match="always has biases"):
            to_transformers(ours)
        return
    hf = to_transformers(ours)                 # the four transposes undone: transformers agrees
    twin = hf_twin(ours)                       # ... and equals conftest's independent twin
    assert all(torch.equal(v, twin.state_dict()[k]) for k, v in hf.state_dict().items())
    idx = prompt_ids(300)
    with torch.no_grad():
        assert (ours(idx) - hf(idx).logits).abs().max().item() <= ATOL


def test_a_training_run_loads(tmp_path):
    """A run folder of chapter 6 (with its `latest` file) and one of its snapshot folders give the saved model."""
    ours = random_gpt(4)
    snapshot = save_checkpoint(tmp_path / "run", ours, step=7)
    for source in (tmp_path / "run", snapshot):
        back = load_pretrained(source, dtype=torch.float64)
        assert isinstance(back, GPT) and not back.training and back.config == ours.config
        assert back.lm_head.weight is back.transformer.wte.weight
        assert all(torch.equal(v.double(), back.state_dict()[k]) for k, v in ours.state_dict().items())
    (snapshot / "model.safetensors").write_bytes(b"broken")
    with pytest.raises(WeightsError, match="model.safetensors.*corrupted"):
        load_pretrained(tmp_path / "run")


def test_a_run_with_lora_adapters_comes_back_merged(tmp_path, monkeypatch):
    """A model that holds LoRA layers (chapter 9) goes through finetune.merge_lora: a plain GPT comes back."""
    import gpt2lib.checkpoint as checkpoint
    save_checkpoint(tmp_path / "run", random_gpt(5), step=1)
    loaded, merged = random_gpt(6), random_gpt(7)
    loaded.transformer.h[0].attn.c_attn.lora_A = torch.nn.Parameter(torch.zeros(2, 32))    # a LoRA layer's mark
    monkeypatch.setattr(checkpoint, "load_checkpoint", lambda path: types.SimpleNamespace(model=loaded))
    calls = []
    finetune = types.ModuleType("gpt2lib.finetune")
    finetune.merge_lora = lambda model: calls.append(model) or merged
    monkeypatch.setitem(sys.modules, "gpt2lib.finetune", finetune)
    assert load_pretrained(tmp_path / "run") is merged and calls == [loaded]
    monkeypatch.setattr(checkpoint, "load_checkpoint", lambda path: types.SimpleNamespace(model=merged))
    assert load_pretrained(tmp_path / "run") is merged and calls == [loaded]    # no adapters: no merge


def test_device_and_dtype(tmp_path, small):
    hf, idx, _ = small
    hf.save_pretrained(tmp_path)
    model = load_pretrained(tmp_path, device="cpu", dtype=torch.float64)
    assert {p.dtype for p in model.parameters()} == {torch.float64}
    assert model.lm_head.weight is model.transformer.wte.weight
    with torch.no_grad():
        assert (model(idx) - copy.deepcopy(hf).double()(idx).logits).abs().max().item() <= 1e-9


# ----------------------------------------------------------------------------------------------------
# The parity report: it passes on a faithful copy and fails when a single weight is off.

def test_parity_report_passes_and_fails(tmp_path, small):
    hf, idx, _ = small
    hf.save_pretrained(tmp_path)
    good = parity_report(tmp_path, prompt=idx[0].tolist(), max_new_tokens=N_NEW, verbose=False)
    assert good.passed and good.params[0] == good.params[1] == sum(p.numel() for p in hf.parameters())
    assert good.tensors == good.tensors_equal == 2 + 12 * SMALL["n_layer"] + 2
    assert good.weight_max_diff == 0.0 and good.logit_max_diff <= ATOL and len(good.greedy[0]) == N_NEW
    model = load_pretrained(tmp_path)
    with torch.no_grad():
        model.transformer.h[1].attn.c_proj.weight.data = model.transformer.h[1].attn.c_proj.weight.data.t().clone()
    bad = parity_report(model, hf_model=hf, prompt=idx[0].tolist(), max_new_tokens=N_NEW, verbose=False)
    assert not bad.passed and bad.tensors_equal == bad.tensors - 1 and bad.logit_max_diff > ATOL
    assert "FAIL" in bad.table()


def test_parity_report_of_a_file_says_which_reference_it_used(tmp_path, small):
    hf, idx, _ = small
    torch.save(gpt2lib_sd(hf), tmp_path / "w.pt")
    r = parity_report(tmp_path / "w.pt", prompt=idx[0].tolist(), max_new_tokens=5, n_head=4, verbose=False)
    assert r.passed and r.params[0] == sum(p.numel() for p in hf.parameters())
    assert any("own weights" in n for n in r.notes) and "own weights" in r.table()


def test_parity_report_with_text_prompt_prints_a_table(tmp_path, capsys):
    hf = hf_gpt2(tmp_path, n_layer=1, n_head=2, n_embd=64, vocab_size=50257, n_positions=64)
    r = parity_report(tmp_path, prompt="Once upon a time", max_new_tokens=8)
    assert r.prompt_ids == [7454, 2402, 257, 640] and r.passed and r.texts[0] == r.texts[1]
    out = capsys.readouterr().out
    assert f"{sum(p.numel() for p in hf.parameters()):,}" in out and "PASS" in out and "max |logit diff|" in out


# ----------------------------------------------------------------------------------------------------
# Bad input: a clear, one-line error of a type the command line can catch.

@pytest.fixture
def folder(tmp_path, small):
    small[0].save_pretrained(tmp_path / "m")
    return tmp_path / "m"


def test_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file or folder.*gpt2-medium"):
        load_pretrained(tmp_path / "nope.safetensors")
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        load_pretrained("weights/not/here")


def test_unknown_name():
    assert HUB_NAMES == tuple(GPTConfig.PRESETS) == ("gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl")
    with pytest.raises(WeightsError, match=r"unknown model name 'gpt3'.*gpt2, gpt2-medium, gpt2-large, gpt2-xl"):
        load_pretrained("gpt3")


def test_truncated_safetensors(folder):
    f = folder / "model.safetensors"
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    with pytest.raises(WeightsError, match="truncated or corrupted"):
        load_pretrained(folder)


def test_corrupted_safetensors_header(tmp_path, folder):
    data = bytearray((folder / "model.safetensors").read_bytes())
    data[8:40] = b"\x00\xff" * 16                  # the JSON header now is garbage
    (tmp_path / "bad.safetensors").write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="truncated or corrupted"):
        load_pretrained(tmp_path / "bad.safetensors", n_head=4)


def test_corrupted_safetensors_values(folder):
    f = folder / "model.safetensors"
    data = bytearray(f.read_bytes())
    data[-4000:] = b"\xff" * 4000                  # float32 0xffffffff is NaN
    f.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="finite.*corrupted"):
        load_pretrained(folder)


def test_not_a_checkpoint(tmp_path, small):
    (tmp_path / "notes.pt").write_text("hello")
    with pytest.raises(WeightsError, match="notes.pt as a PyTorch checkpoint"):
        load_pretrained(tmp_path / "notes.pt")
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(WeightsError, match="list.pt holds a list, not a state dict"):
        load_pretrained(tmp_path / "list.pt")
    torch.save({**hf_sd(small[0]), "step": 5}, tmp_path / "step.pt")
    with pytest.raises(WeightsError, match="'step' is not a tensor"):
        load_pretrained(tmp_path / "step.pt", n_head=4)


def test_missing_key(tmp_path, small):
    sd = hf_sd(small[0])
    del sd["transformer.h.1.mlp.c_fc.bias"]
    save_file(sd, tmp_path / "w.safetensors")
    with pytest.raises(WeightsError, match=r"Missing key.*transformer\.h\.1\.mlp\.c_fc\.bias"):
        load_pretrained(tmp_path / "w.safetensors", n_head=4)


def test_wrong_shape(tmp_path, small):
    sd = hf_sd(small[0])
    sd["transformer.h.0.mlp.c_fc.weight"] = sd["transformer.h.0.mlp.c_fc.weight"][:, :500].contiguous()
    save_file(sd, tmp_path / "w.safetensors")
    with pytest.raises(WeightsError, match=r"transformer\.h\.0\.mlp\.c_fc\.weight.*\[500, 128\].*\[512, 128\]"):
        load_pretrained(tmp_path / "w.safetensors", n_head=4)


def test_config_json_disagrees_with_tensors(folder):
    text = (folder / "config.json").read_text().replace('"n_positions": 96', '"n_positions": 100')
    (folder / "config.json").write_text(text)
    with pytest.raises(WeightsError, match=r"transformer\.wpe\.weight.*\[96, 128\].*\[100, 128\]"):
        load_pretrained(folder)


def test_unexpected_key(tmp_path, small):
    sd = hf_sd(small[0])
    sd["transformer.h.0.attn.rotary.inv_freq"] = torch.zeros(4)
    torch.save(sd, tmp_path / "w.pt")
    with pytest.raises(WeightsError, match=r"Unexpected key.*transformer\.h\.0\.attn\.rotary\.inv_freq"):
        load_pretrained(tmp_path / "w.pt", n_head=4)


def test_untied_head_is_refused(tmp_path, small):
    sd = hf_sd(small[0])
    sd["lm_head.weight"] = torch.randn_like(sd["transformer.wte.weight"])
    torch.save(sd, tmp_path / "w.pt")
    with pytest.raises(WeightsError, match="lm_head.weight differs from transformer.wte.weight"):
        load_pretrained(tmp_path / "w.pt", n_head=4)


def test_variant_config_is_refused(folder):
    text = (folder / "config.json").read_text().replace('"gelu_new"', '"relu"')
    (folder / "config.json").write_text(text)
    with pytest.raises(WeightsError, match="activation_function='relu'"):
        load_pretrained(folder)


def test_folder_without_weights(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(WeightsError, match="holds no weights"):
        load_pretrained(tmp_path)


def test_bad_n_head(tmp_path, small):
    save_file(hf_sd(small[0]), tmp_path / "w.safetensors")
    with pytest.raises(WeightsError, match="divisible by n_head"):
        load_pretrained(tmp_path / "w.safetensors", n_head=3)
    hf = hf_gpt2(tmp_path / "hf", n_layer=1, n_head=2, n_embd=96, vocab_size=100, n_positions=32)
    save_file(hf_sd(hf), tmp_path / "w96.safetensors")
    with pytest.raises(WeightsError, match="pass n_head="):
        load_pretrained(tmp_path / "w96.safetensors")


class Payload:
    """Unpickling this would create a file: the proof that pickled code ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def test_pickled_code_is_refused(tmp_path, small):
    marker = tmp_path / "code-ran"
    sd = hf_sd(small[0])
    sd["transformer.wte.weight"] = Payload(marker)
    torch.save(sd, tmp_path / "evil.pt")
    with pytest.raises(WeightsError, match="evil.pt.*pickled Python objects.*could run code"):
        load_pretrained(tmp_path / "evil.pt", n_head=4)
    assert not marker.exists()


def test_hub_name_found_in_the_cache_loads_offline(tmp_path, monkeypatch, small):
    import huggingface_hub.constants as hub
    hf, idx, greedy = small
    repo = tmp_path / "models--gpt2"                # huggingface_hub's cache layout: refs/main -> snapshot
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0" * 40)
    hf.save_pretrained(repo / "snapshots" / ("0" * 40))
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert_parity(load_pretrained("gpt2"), hf, idx, greedy)


def test_errors_are_one_line(tmp_path, small):
    (tmp_path / "notes.pt").write_text("hello")
    sd = hf_sd(small[0])
    del sd["transformer.h.0.ln_1.bias"], sd["transformer.h.1.ln_2.weight"]
    sd["transformer.wpe.weight"] = sd["transformer.wpe.weight"][:50].contiguous()
    save_file({**sd, "extra": torch.zeros(1)}, tmp_path / "many.safetensors")    # three kinds of problem at once
    for bad in (tmp_path / "notes.pt", "gpt3", tmp_path / "missing", tmp_path / "many.safetensors"):
        with pytest.raises((WeightsError, FileNotFoundError)) as e:
            load_pretrained(bad)
        assert "\n" not in str(e.value)


# ----------------------------------------------------------------------------------------------------
# Key normalization, as a property: any mix of wrappers and prefixes names the same tensors.

NAMES = ["transformer.wte.weight", "transformer.wpe.weight", "transformer.h.0.attn.c_attn.weight",
         "transformer.h.0.attn.c_attn.bias", "transformer.h.11.mlp.c_proj.weight", "transformer.ln_f.bias",
         "lm_head.weight"]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["module.", "_orig_mod."]), max_size=3), st.booleans(), st.booleans())
def test_normalize_keys_property(wrappers, drop_transformer, with_buffers):
    t = {name: torch.zeros(1) for name in NAMES}
    sd = {}
    for name, v in t.items():
        bare = name.removeprefix("transformer.") if drop_transformer else name
        sd["".join(wrappers) + bare] = v
    if with_buffers:
        sd["".join(wrappers) + "h.0.attn.bias"] = torch.ones(1, 1, 4, 4)
        sd["".join(wrappers) + "transformer.h.0.attn.masked_bias"] = torch.tensor(-1e4)
    out = normalize_keys(sd)
    assert list(out) == NAMES and all(out[k] is t[k] for k in NAMES)
