"""Appendix A: GPT-2 in pure Python (gpt2lib.purepy) against gpt2lib's PyTorch model, in float64.

The configurations here are not the ones in the notebook. References: gpt2lib.model.GPT (float64),
gpt2lib.generate.generate (greedy, KV cache, sliding window), torch.softmax and
transformers.GPT2LMHeadModel.
"""
import ast
import copy
import math
import random
import subprocess
import sys
import warnings
from collections import Counter
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import hf_folder, random_gpt
from gpt2lib import purepy
from gpt2lib.pretrained import load_pretrained
from gpt2lib.purepy import PureConfig, PureGPT, sample_next

ROOT = Path(__file__).resolve().parent.parent

from gpt2lib.generate import generate as gpt2lib_generate


def torch_greedy(model, ids, n):
    """gpt2lib's greedy generation (it warns when the window slides: not the point here)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return gpt2lib_generate(model, torch.tensor([ids]), n, temperature=0.0)[0].tolist()


def pure_generate(pm, ids, n, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pm.generate(ids, n, **kw)


def make_model(seed, dtype=torch.float64, std=0.3, **cfg):
    """conftest's random_gpt with weights large enough for spread-out logits (no near-ties), in `dtype`."""
    return random_gpt(seed, std, **cfg).to(dtype)


class Wrapper(torch.nn.Module):
    """What DDP (`module.`) and torch.compile (`_orig_mod.`) do to a model's parameter names."""

    def __init__(self, inner, name):
        super().__init__()
        self.add_module(name, inner)
        self.config = inner.config


def torch_logits(model, ids):
    with torch.no_grad():
        return model(torch.tensor([ids]))[0]


CONFIGS = [
    dict(n_layer=1, n_head=1, n_embd=8, block_size=8, vocab_size=17),
    dict(n_layer=3, n_head=2, n_embd=24, block_size=20, vocab_size=53),
    dict(n_layer=2, n_head=3, n_embd=36, block_size=12, vocab_size=40, bias=False),
    dict(n_layer=2, n_head=6, n_embd=48, block_size=10, vocab_size=97, layer_norm_eps=1e-3),
]


# --- the module uses the standard library only ------------------------------------------------

def test_imports_are_standard_library_only():
    """Only from_torch, which is handed a PyTorch model, imports gpt2lib's torch modules (lazily)."""
    tree = ast.parse((ROOT / "gpt2lib" / "purepy.py").read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "relative import in purepy.py"
            found.add(node.module.split(".")[0])
    assert found, "no imports found: wrong file?"
    outside = sorted(found - set(sys.stdlib_module_names) - {"gpt2lib"})
    assert not outside, f"purepy.py imports modules outside the standard library: {outside}"
    lazy = [node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef) and node.name != "from_torch"
            for sub in ast.walk(node) if isinstance(sub, (ast.Import, ast.ImportFrom))]
    assert not lazy, "only from_torch may import"


def test_runs_with_torch_and_numpy_unimportable():
    """In a fresh interpreter where importing torch or numpy fails, purepy still loads and runs."""
    code = (
        "import sys, random\n"
        "sys.modules['torch'] = None; sys.modules['numpy'] = None\n"
        "from gpt2lib.purepy import PureConfig, PureGPT\n"
        "r = random.Random(0)\n"
        "M = lambda n, m: [[r.gauss(0, 0.2) for _ in range(m)] for _ in range(n)]\n"
        "V = lambda n: [r.gauss(0, 0.2) for _ in range(n)]\n"
        "C = 8\n"
        "block = {'ln_1.weight': V(C), 'ln_1.bias': V(C), 'ln_2.weight': V(C), 'ln_2.bias': V(C),\n"
        "         'attn.c_attn.weight': M(3 * C, C), 'attn.c_attn.bias': V(3 * C),\n"
        "         'attn.c_proj.weight': M(C, C), 'attn.c_proj.bias': V(C),\n"
        "         'mlp.c_fc.weight': M(4 * C, C), 'mlp.c_fc.bias': V(4 * C),\n"
        "         'mlp.c_proj.weight': M(C, 4 * C), 'mlp.c_proj.bias': V(C)}\n"
        "pm = PureGPT(PureConfig(11, 6, 1, 2, C), M(11, C), M(6, C), [block], {'weight': V(C), 'bias': V(C)})\n"
        "out = pm.generate([1, 2, 3], 3)\n"
        "assert len(pm.forward([1, 2])) == 2 and len(out) == 6\n"
        "assert 'torch' not in [m.split('.')[0] for m in sys.modules if sys.modules[m] is not None]\n"
        "print('ok')\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr


# --- parity with gpt2lib's GPT in float64 -------------------------------------------------------

@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"L{c['n_layer']}H{c['n_head']}C{c['n_embd']}")
def test_logits_match_gpt2lib(cfg):
    model = make_model(1, **cfg)
    pm = PureGPT.from_torch(model)
    rnd = random.Random(2)
    for T in (1, cfg["block_size"]):
        ids = [rnd.randrange(cfg["vocab_size"]) for _ in range(T)]
        ref = torch_logits(model, ids)
        assert ref.abs().max() > 1.0            # a real spread of logits, not all near zero
        got = torch.tensor(pm.forward(ids), dtype=torch.float64)
        assert got.shape == ref.shape
        assert (got - ref).abs().max().item() < 1e-9


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"L{c['n_layer']}H{c['n_head']}C{c['n_embd']}")
def test_greedy_generation_matches_gpt2lib(cfg):
    model = make_model(3, **cfg)
    pm = PureGPT.from_torch(model)
    rnd = random.Random(4)
    n = cfg["block_size"]
    prompt = [rnd.randrange(cfg["vocab_size"]) for _ in range(3)]
    new = n - 3 + 4                              # the last four steps slide the window
    ref = torch_greedy(model, prompt, new)
    assert pure_generate(pm, prompt, new) == ref                       # KV cache
    assert pure_generate(pm, prompt, new, use_cache=False) == ref      # whole context every step


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n_layer=st.integers(1, 3), n_head=st.integers(1, 3), head_dim=st.integers(1, 6),
       block_size=st.integers(2, 9), vocab_size=st.integers(2, 40), bias=st.booleans(),
       seed=st.integers(0, 2**16), data=st.data())
def test_random_configs(n_layer, n_head, head_dim, block_size, vocab_size, bias, seed, data):
    cfg = dict(n_layer=n_layer, n_head=n_head, n_embd=n_head * head_dim, block_size=block_size,
               vocab_size=vocab_size, bias=bias)
    model = make_model(seed, **cfg)
    pm = PureGPT.from_torch(model)
    ids = data.draw(st.lists(st.integers(0, vocab_size - 1), min_size=1, max_size=block_size))
    got = torch.tensor(pm.forward(ids), dtype=torch.float64)
    assert (got - torch_logits(model, ids)).abs().max().item() < 1e-9
    new = data.draw(st.integers(0, block_size + 2))
    assert pure_generate(pm, ids, new) == torch_greedy(model, ids, new)


def test_from_a_float32_model_and_wrapped_ones():
    cfg = CONFIGS[1]
    model32 = make_model(5, dtype=torch.float32, **cfg)
    ids = [5, 0, 52, 17, 17, 3]
    ref = torch_logits(copy.deepcopy(model32).double(), ids)   # float32 weights, float64 arithmetic
    for src in [model32, Wrapper(model32, "module"), Wrapper(Wrapper(model32, "_orig_mod"), "module")]:
        pm = PureGPT.from_torch(src)
        assert pm.config == PureConfig(53, 20, 3, 2, 24, 1e-5)
        got = torch.tensor(pm.forward(ids), dtype=torch.float64)
        assert (got - ref).abs().max().item() < 1e-9
        assert pm.lm_head is pm.wte                  # the tied head is not copied twice
        assert pm.num_params() == model32.num_params()


def test_untied_head_is_used():
    model = make_model(6, **CONFIGS[0])
    model.lm_head = torch.nn.Linear(8, 17, bias=False).double()    # a head of its own, untied
    pm = PureGPT.from_torch(model)
    assert pm.lm_head is not pm.wte
    assert pm.num_params() == sum(p.numel() for p in model.parameters())
    ids = [1, 2, 3]
    got = torch.tensor(pm.forward(ids), dtype=torch.float64)
    assert (got - torch_logits(model, ids)).abs().max().item() < 1e-9


def test_transformers_gpt2_weights_through_load_pretrained(tmp_path):
    transformers = pytest.importorskip("transformers")
    hf_folder(tmp_path, seed=7, n_layer=2, n_head=2, n_embd=20, n_positions=9, vocab_size=31,
              bos_token_id=0, eos_token_id=0, layer_norm_epsilon=1e-4)
    hf = transformers.GPT2LMHeadModel.from_pretrained(tmp_path).double().eval()
    pm = PureGPT.from_torch(load_pretrained(tmp_path, dtype=torch.float64))
    assert (pm.config.block_size, pm.config.n_head, pm.config.layer_norm_eps) == (9, 2, 1e-4)
    ids = [3, 30, 0, 7, 7, 12, 1, 2, 29]
    with torch.no_grad():
        ref = hf(torch.tensor([ids])).logits[0]
    assert (torch.tensor(pm.forward(ids), dtype=torch.float64) - ref).abs().max().item() < 1e-9


# --- the KV cache: one position per new token ---------------------------------------------------

@pytest.mark.parametrize("use_cache", [True, False])
def test_kv_cache_runs_one_position_per_token(monkeypatch, use_cache):
    cfg = CONFIGS[1]
    pm = PureGPT.from_torch(make_model(8, **cfg))
    calls = Counter()
    linear, matvec = purepy.linear, purepy.matvec

    def counting_linear(x, W, b=None):
        calls["linear"] += 1
        return linear(x, W, b)

    def counting_matvec(W, x):
        calls["head" if len(W) == cfg["vocab_size"] else "other"] += 1
        return matvec(W, x)

    monkeypatch.setattr(purepy, "linear", counting_linear)
    monkeypatch.setattr(purepy, "matvec", counting_matvec)
    T, n, L = 4, 6, cfg["n_layer"]
    pm.generate([1, 2, 3, 4], n, use_cache=use_cache)
    positions = T + (n - 1) if use_cache else sum(T + s for s in range(n))
    assert calls["linear"] == 4 * L * positions        # c_attn, c_proj, c_fc, c_proj per position
    assert calls["head"] == n                           # the head only for the last position


# --- sampling -----------------------------------------------------------------------------------

def test_sampling_is_reproducible_with_a_seed():
    cfg = CONFIGS[3]
    pm = PureGPT.from_torch(make_model(9, std=0.1, **cfg))
    kw = dict(temperature=1.3, top_k=20)
    a = pm.generate([5, 6], 8, seed=123, **kw)
    assert a == pm.generate([5, 6], 8, seed=123, **kw)
    assert a != pm.generate([5, 6], 8, seed=124, **kw)
    state = random.getstate()
    pm.generate([5, 6], 3, temperature=1.0)            # no seed: draws, but from its own generator
    assert random.getstate() == state


def test_top_k_one_is_greedy_and_samples_stay_in_the_top_k():
    cfg = CONFIGS[1]
    model = make_model(10, std=0.1, **cfg)
    pm = PureGPT.from_torch(model)
    prompt = [1, 2, 3]
    assert pm.generate(prompt, 10, temperature=5.0, top_k=1, seed=0) == torch_greedy(model, prompt, 10)
    out = pm.generate(prompt, 15, temperature=2.0, top_k=3, seed=1)
    for t in range(len(prompt), len(out)):
        top3 = torch_logits(model, out[max(0, t - cfg["block_size"]):t])[-1].topk(3).indices.tolist()
        assert out[t] in top3


@pytest.mark.parametrize("temperature, top_k", [(1.0, None), (0.5, None), (2.0, 3)])
def test_sample_next_follows_the_softmax(temperature, top_k):
    logits = [0.3, -1.0, 2.0, 1.1, 0.0]
    z = torch.tensor(logits, dtype=torch.float64) / temperature
    if top_k is not None:
        z[z < z.topk(top_k).values[-1]] = -math.inf
    p = torch.softmax(z, 0).tolist()
    rng, n = random.Random(0), 20000
    freq = Counter(sample_next(logits, temperature, top_k, rng) for _ in range(n))
    for i, pi in enumerate(p):
        assert abs(freq[i] / n - pi) < 4 * math.sqrt(pi * (1 - pi) / n) + 1e-12, (i, freq[i] / n, pi)
    assert sample_next(logits) == 2 and sample_next(logits, 0.0, 2) == 2


# --- bad input ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pm():
    return PureGPT.from_torch(make_model(11, **CONFIGS[0]))     # vocab 17, block_size 8


@pytest.mark.parametrize("ids, error, match", [
    ([], ValueError, "empty"),
    ([3, 17], ValueError, r"ids\[1\] must be <= 16, got 17"),
    ([-1], ValueError, r"ids\[0\] must be >= 0, got -1"),
    (list(range(9)), ValueError, r"longer than the context \(block_size=8\).*crop"),
    ("hello", TypeError, "encode text first"),
    ([[1, 2]], TypeError, r"ids\[0\] must be an integer"),
    ([1, 1.5], TypeError, r"ids\[1\] must be an integer"),
    (None, TypeError, "list of token ids.*NoneType"),
])
def test_forward_bad_ids(pm, ids, error, match):
    with pytest.raises(error, match=match):
        pm.forward(ids)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(max_new_tokens=-1), ValueError, "max_new_tokens must be >= 0"),
    (dict(max_new_tokens=2.5), TypeError, "max_new_tokens must be an integer"),
    (dict(max_new_tokens=2, temperature=-0.1), ValueError, "temperature"),
    (dict(max_new_tokens=2, temperature=float("nan")), ValueError, "temperature.*nan"),
    (dict(max_new_tokens=2, temperature="hot"), TypeError, "temperature must be a number"),
    (dict(max_new_tokens=2, temperature=1.0, top_k=0), ValueError, "top_k must be >= 1"),
])
def test_generate_bad_arguments(pm, kwargs, error, match):
    with pytest.raises(error, match=match):
        pm.generate([1, 2], **kwargs)
    with pytest.raises(ValueError, match="empty"):
        pm.generate([], 3)


def test_generate_edge_cases_and_window_warnings(pm):
    assert pm.generate([1, 2], 0) == [1, 2]
    with warnings.catch_warnings():
        warnings.simplefilter("error")                  # within the window: no warning
        assert len(pm.generate([1, 2], 6)) == 8
    with pytest.warns(UserWarning, match=r"after 6 new tokens the window slides"):
        assert len(pm.generate([1, 2], 7)) == 9
    long = [i % 17 for i in range(11)]                 # longer than block_size: the model sees the last 8
    with pytest.warns(UserWarning, match="the prompt has 11 tokens and the context holds 8"):
        out = pm.generate(long, 2)
    assert out[:11] == long and len(out) == 13
    assert out[11:] == pure_generate(pm, long[-8:], 2)[8:]


def test_from_torch_takes_a_gpt2lib_gpt():
    with pytest.raises(TypeError, match="gpt2lib GPT.*load_pretrained.*int"):
        PureGPT.from_torch(42)
    with pytest.raises(TypeError, match="gpt2lib GPT.*OrderedDict"):
        PureGPT.from_torch(make_model(12, **CONFIGS[1]).state_dict())
    transformers = pytest.importorskip("transformers")
    hf = transformers.GPT2LMHeadModel(transformers.GPT2Config(n_layer=1, n_head=2, n_embd=8, n_positions=8,
                                                              vocab_size=11))
    with pytest.raises(TypeError, match="gpt2lib GPT.*load_pretrained.*GPT2LMHeadModel"):
        PureGPT.from_torch(hf)
