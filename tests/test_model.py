"""gpt2lib.model: parameter counts, equality with transformers' GPT2LMHeadModel, the cache, bad input."""
import math

import pytest
import torch
import torch.nn.functional as F

from conftest import hf_twin, random_gpt
from gpt2lib.model import GPT, MLP, Block, GPTConfig

transformers = pytest.importorskip("transformers")

transformers.utils.logging.set_verbosity_error()
PUBLISHED = {"gpt2": 124_439_808, "gpt2-medium": 354_823_168, "gpt2-large": 774_030_080,
             "gpt2-xl": 1_557_611_200}   # the sizes Hugging Face reports for OpenAI's checkpoints


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_num_params_match_published_and_transformers(name):
    cfg = GPTConfig.from_name(name)
    with torch.device("meta"):
        ours = GPT(cfg)
        theirs = hf_twin(ours)
    assert ours.num_params() == PUBLISHED[name] == theirs.num_parameters()
    embeddings = cfg.vocab_size * cfg.n_embd + cfg.block_size * cfg.n_embd
    assert ours.num_params(non_embedding=True) == PUBLISHED[name] - embeddings


def test_num_params_formula_free_config():
    cfg = GPTConfig(block_size=32, vocab_size=100, n_layer=3, n_head=2, n_embd=16)
    C = cfg.n_embd
    expected = cfg.vocab_size * C + cfg.block_size * C + cfg.n_layer * (12 * C * C + 13 * C) + 2 * C
    assert GPT(cfg).num_params() == expected


def test_weight_tying_and_names():
    model = GPT(GPTConfig(block_size=16, vocab_size=50, n_layer=2, n_head=2, n_embd=8))
    assert model.lm_head.weight is model.transformer.wte.weight
    names = set(model.state_dict())
    for key in ("transformer.wte.weight", "transformer.wpe.weight", "transformer.h.1.ln_1.weight",
                "transformer.h.1.attn.c_attn.weight", "transformer.h.1.attn.c_proj.bias",
                "transformer.h.1.ln_2.bias", "transformer.h.1.mlp.c_fc.weight", "transformer.h.1.mlp.c_proj.weight",
                "transformer.ln_f.weight", "lm_head.weight"):
        assert key in names, key


def test_initialization_stds():
    torch.manual_seed(0)
    cfg = GPTConfig(block_size=64, vocab_size=4000, n_layer=8, n_head=4, n_embd=128)
    model = GPT(cfg)
    params = dict(model.named_parameters())
    proj = torch.cat([p.flatten() for n, p in params.items() if n.endswith("c_proj.weight")])
    other = torch.cat([p.flatten() for n, p in params.items() if n.endswith(("c_attn.weight", "c_fc.weight"))])
    assert proj.std().item() == pytest.approx(0.02 / math.sqrt(2 * cfg.n_layer), rel=0.02)
    assert other.std().item() == pytest.approx(0.02, rel=0.02)
    assert params["transformer.wte.weight"].std().item() == pytest.approx(0.02, rel=0.02)
    assert params["transformer.wpe.weight"].std().item() == pytest.approx(0.02, rel=0.05)
    assert all(p.abs().max() == 0 for n, p in params.items() if n.endswith("attn.bias") or n.endswith("fc.bias"))
    assert all(torch.all(p == 1) for n, p in params.items() if "ln" in n and n.endswith("weight"))


@pytest.mark.parametrize("cfg", [
    dict(block_size=32, vocab_size=97, n_layer=1, n_head=1, n_embd=16),
    dict(block_size=64, vocab_size=500, n_layer=3, n_head=4, n_embd=48),
    dict(block_size=40, vocab_size=1000, n_layer=2, n_head=6, n_embd=96, layer_norm_eps=1e-3),
])
def test_logits_equal_transformers(cfg):
    model = random_gpt(cfg["n_embd"], 0.05, **cfg)
    hf, cfg = hf_twin(model), model.config
    idx = torch.randint(0, cfg.vocab_size, (3, cfg.block_size), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours, theirs = model(idx), hf(idx).logits
    assert ours.shape == theirs.shape == (3, cfg.block_size, cfg.vocab_size)
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)


def test_blocks_equal_reference_functions():
    torch.manual_seed(0)
    cfg = GPTConfig(block_size=16, vocab_size=50, n_layer=1, n_head=2, n_embd=32)
    mlp = MLP(cfg)
    x = torch.randn(2, 5, 32)
    ref = F.linear(F.gelu(F.linear(x, mlp.c_fc.weight, mlp.c_fc.bias), approximate="tanh"),
                   mlp.c_proj.weight, mlp.c_proj.bias)
    torch.testing.assert_close(mlp(x), ref)
    block = Block(cfg).eval()
    h = x + block.attn(F.layer_norm(x, (32,), block.ln_1.weight, block.ln_1.bias, 1e-5))
    torch.testing.assert_close(block(x), h + block.mlp(F.layer_norm(h, (32,), block.ln_2.weight, block.ln_2.bias, 1e-5)))


def test_last_only_and_cache_match_full_forward():
    model = random_gpt(3, 0.1, block_size=24, vocab_size=200, n_layer=2, n_head=4, n_embd=32)
    cfg = model.config
    idx = torch.randint(0, cfg.vocab_size, (2, 24), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        full = model(idx)
        torch.testing.assert_close(model(idx, last_only=True), full[:, -1:])
        cache = model.new_cache(batch_size=2)
        pieces = [model(idx[:, :10], cache), model(idx[:, 10:13], cache)]
        pieces += [model(idx[:, t:t + 1], cache) for t in range(13, 24)]
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, atol=1e-5, rtol=1e-5)
    assert cache[0].pos == 24


def test_untrained_loss_near_log_vocab():
    torch.manual_seed(0)
    cfg = GPTConfig(block_size=64, vocab_size=2000, n_layer=2, n_head=2, n_embd=64)
    model = GPT(cfg).eval()
    idx = torch.randint(0, cfg.vocab_size, (4, 65))
    with torch.no_grad():
        logits = model(idx[:, :-1])
    loss = F.cross_entropy(logits.flatten(0, 1), idx[:, 1:].flatten()).item()
    assert abs(loss - math.log(cfg.vocab_size)) < 0.1


def test_dropout_only_in_training():
    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=16, vocab_size=50, n_layer=2, n_head=2, n_embd=16, dropout=0.5))
    idx = torch.randint(0, 50, (1, 16))
    model.eval()
    torch.testing.assert_close(model(idx), model(idx))
    model.train()
    assert not torch.allclose(model(idx), model(idx))


def test_presets_and_overrides():
    cfg = GPTConfig.from_name("gpt2-medium", block_size=256, dropout=0.1)
    assert (cfg.n_layer, cfg.n_head, cfg.n_embd, cfg.block_size, cfg.dropout) == (24, 16, 1024, 256, 0.1)
    assert GPTConfig(**cfg.to_dict()) == cfg
    assert GPTConfig.from_name("gpt2") == GPTConfig()


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(n_embd=10, n_head=3), ValueError, r"n_embd \(10\) must be divisible by n_head \(3\)"),
    (dict(n_embd=768, n_head=7), ValueError, r"n_embd \(768\) must be divisible by n_head \(7\)"),
    (dict(n_layer=0), ValueError, "n_layer must be >= 1, got 0"),
    (dict(vocab_size=-5), ValueError, "vocab_size must be >= 1, got -5"),
    (dict(block_size=2.5), TypeError, "block_size must be an integer, got 2.5"),
    (dict(dropout=1.5), ValueError, "dropout must be <= 1, got 1.5"),
    (dict(dropout=-0.1), ValueError, "dropout must be >= 0, got -0.1"),
    (dict(layer_norm_eps=0.0), ValueError, "layer_norm_eps must be > 0, got 0.0"),
])
def test_bad_config(kwargs, error, match):
    with pytest.raises(error, match=match):
        GPTConfig(**kwargs)


def test_unknown_preset():
    with pytest.raises(ValueError, match="unknown model name 'gpt3'.*gpt2-medium"):
        GPTConfig.from_name("gpt3")


@pytest.fixture(scope="module")
def small():
    return random_gpt(block_size=16, vocab_size=50, n_layer=1, n_head=2, n_embd=8)


@pytest.mark.parametrize("idx, error, match", [
    (torch.tensor([[1, 50]]), ValueError, "token ids must be <= 49, got 50"),
    (torch.tensor([[-1, 3]]), ValueError, "token ids must be >= 0, got -1"),
    (torch.zeros(1, 17, dtype=torch.long), ValueError, r"positions \(cached \+ new\) must be <= 16, got 17"),
    (torch.zeros(1, 0, dtype=torch.long), ValueError, r"positions \(cached \+ new\) must be >= 1, got 0"),
])
def test_bad_input(small, idx, error, match):
    with pytest.raises(error, match=match):
        small(idx)


def test_cache_overflow_is_a_clear_error(small):
    cache = small.new_cache()
    small(torch.zeros(1, 12, dtype=torch.long), cache)
    with pytest.raises(ValueError, match=r"positions \(cached \+ new\) must be <= 16, got 17"):
        small(torch.zeros(1, 5, dtype=torch.long), cache)
