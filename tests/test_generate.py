"""gpt2lib.generate: greedy equals transformers token for token, the cache changes nothing, sampling
filters keep the right tokens, seeds reproduce, stop tokens, the sliding window, streaming, bad input."""
import math
import warnings

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from conftest import hf_twin, random_gpt
from gpt2lib.generate import generate, next_token_probs, stream, top_k_filter, top_p_filter

transformers = pytest.importorskip("transformers")
from transformers.generation.logits_process import TopKLogitsWarper, TopPLogitsWarper  # noqa: E402

transformers.utils.logging.set_verbosity_error()


def prompts(batch, length, vocab, seed=0):
    return torch.randint(0, vocab, (batch, length), generator=torch.Generator().manual_seed(seed))


def greedy_reference(model, idx, n):
    """The obvious loop: the whole (last block_size tokens of the) sequence at every step."""
    block = model.config.block_size
    with torch.no_grad():
        for _ in range(n):
            nxt = model(idx[:, -block:])[:, -1].argmax(-1, keepdim=True)
            idx = torch.cat([idx, nxt], dim=1)
    return idx


CONFIGS = [
    dict(block_size=80, vocab_size=300, n_layer=2, n_head=2, n_embd=32),
    dict(block_size=128, vocab_size=1000, n_layer=3, n_head=4, n_embd=64),
    dict(block_size=96, vocab_size=777, n_layer=1, n_head=3, n_embd=48, layer_norm_eps=1e-3),
]


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"L{c['n_layer']}H{c['n_head']}C{c['n_embd']}V{c['vocab_size']}")
@pytest.mark.parametrize("batch", [1, 3])
def test_greedy_equals_transformers(cfg, batch):
    model = random_gpt(cfg["n_embd"] + batch, 0.5, **cfg)
    hf = hf_twin(model)
    idx = prompts(batch, 7, cfg["vocab_size"], seed=batch)
    n = 60
    with torch.no_grad():
        theirs = hf.generate(idx, attention_mask=torch.ones_like(idx), max_new_tokens=n, do_sample=False)
    cached = generate(model, idx, n, temperature=0.0)
    uncached = generate(model, idx, n, temperature=0.0, use_cache=False)
    assert theirs.shape == (batch, 7 + n)
    assert torch.equal(cached, theirs)
    assert torch.equal(uncached, theirs)
    assert len(set(cached[0, 7:].tolist())) > 5        # a real test: the continuation is not one token repeated


def test_cache_on_equals_off_and_reference():
    cfg = dict(block_size=64, vocab_size=200, n_layer=2, n_head=4, n_embd=32)
    model = random_gpt(5, 0.5, **cfg)
    idx = prompts(2, 5, cfg["vocab_size"])
    ref = greedy_reference(model, idx, 50)
    assert torch.equal(generate(model, idx, 50, temperature=0.0), ref)
    assert torch.equal(generate(model, idx, 50, temperature=0.0, use_cache=False), ref)


def test_sampling_reproducible_with_seed_or_generator():
    cfg = dict(block_size=64, vocab_size=200, n_layer=2, n_head=2, n_embd=32)
    model = random_gpt(1, 0.1, **cfg)
    idx = prompts(2, 4, cfg["vocab_size"])
    kw = dict(temperature=0.9, top_k=40, top_p=0.95)
    a = generate(model, idx, 40, seed=123, **kw)
    b = generate(model, idx, 40, seed=123, **kw)
    c = generate(model, idx, 40, generator=torch.Generator().manual_seed(123), **kw)
    d = generate(model, idx, 40, seed=124, **kw)
    assert torch.equal(a, b) and torch.equal(a, c)
    assert not torch.equal(a, d)
    assert torch.equal(a[:, :4], idx)


def test_sampled_tokens_respect_top_k_and_top_p():
    cfg = dict(block_size=64, vocab_size=100, n_layer=1, n_head=2, n_embd=16)
    model = random_gpt(2, 0.5, **cfg)
    idx = prompts(1, 3, cfg["vocab_size"])
    for top_k, top_p in [(3, None), (None, 0.3), (5, 0.5)]:
        out = generate(model, idx, 30, temperature=1.0, top_k=top_k, top_p=top_p, seed=0)
        with torch.no_grad():
            logits = model(out[:, :-1])[0, 2:]                                  # the logits each choice saw
        allowed = next_token_probs(logits, 1.0, top_k, top_p) > 0
        chosen = out[0, 3:]
        assert allowed[torch.arange(30), chosen].all()
        if top_k is not None:
            assert (allowed.sum(-1) <= top_k).all()


def reference_top_k(row, k):
    kth = sorted(row, reverse=True)[k - 1]
    return [x >= kth for x in row]


def reference_top_p(probs, p):
    """Keep tokens in decreasing probability while the mass already kept is below p (pure Python)."""
    order = sorted(range(len(probs)), key=lambda i: -probs[i])
    keep, mass = [False] * len(probs), 0.0
    for i in order:
        if mass >= p:
            break
        keep[i] = True
        mass += probs[i]
    return keep


def test_filters_on_hand_made_distributions():
    probs = torch.tensor([0.05, 0.4, 0.1, 0.25, 0.2])
    logits = probs.log()
    kept = lambda t: torch.isfinite(t).tolist()
    assert kept(top_k_filter(logits, 1)) == [False, True, False, False, False]
    assert kept(top_k_filter(logits, 3)) == [False, True, False, True, True]
    assert kept(top_k_filter(logits, 5)) == [True] * 5
    assert kept(top_p_filter(logits, 0.3)) == [False, True, False, False, False]     # 0.4 covers 0.3
    assert kept(top_p_filter(logits, 0.6)) == [False, True, False, True, False]      # 0.4 + 0.25
    assert kept(top_p_filter(logits, 0.9)) == [False, True, True, True, True]        # ... + 0.2 + 0.1
    assert kept(top_p_filter(logits, 1.0)) == [True] * 5
    torch.testing.assert_close(next_token_probs(logits, top_k=2), torch.tensor([0, 0.4, 0, 0.25, 0]) / 0.65)
    torch.testing.assert_close(next_token_probs(logits, temperature=0.0), torch.tensor([0.0, 1, 0, 0, 0]))
    torch.testing.assert_close(next_token_probs(logits, temperature=0.5), (logits / 0.5).softmax(-1))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.floats(-8, 8, allow_nan=False), min_size=2, max_size=40, unique=True),
       st.integers(1, 45), st.floats(0.01, 1.0))
def test_filters_property(values, k, p):
    row = torch.tensor(values, dtype=torch.float32)
    values = row.tolist()                                        # the float32 values, as Python floats
    assume(len(set(values)) == len(values))
    k = min(k, len(values))
    assert torch.isfinite(top_k_filter(row, k)).tolist() == reference_top_k(values, k)
    assert torch.equal(torch.isfinite(top_k_filter(row[None], k)),
                       torch.isfinite(TopKLogitsWarper(top_k=k)(None, row[None].clone())))
    probs = [math.exp(v - max(values)) for v in values]
    probs = [q / sum(probs) for q in probs]
    ranked = sorted(probs, reverse=True)                         # distinct logits can round to (nearly) equal
    assume(all(a - b > 1e-6 for a, b in zip(ranked, ranked[1:])))  # probabilities: their order is then a tie
    partial = 0.0
    for q in sorted(probs, reverse=True):                        # keep p away from the partial sums, where
        partial += q                                             # float32 and float64 may round differently
        assume(abs(partial - p) > 1e-4)
    assert torch.isfinite(top_p_filter(row, p)).tolist() == reference_top_p(probs, p)
    if p < 1.0:
        assert torch.equal(torch.isfinite(top_p_filter(row[None], p)),
                           torch.isfinite(TopPLogitsWarper(top_p=p)(None, row[None].clone())))


def test_sampling_frequencies():
    """One step of generate draws from next_token_probs: the frequencies of 40,000 rows match it."""
    model = random_gpt(3, 0.3, block_size=8, vocab_size=5, n_layer=1, n_head=1, n_embd=8)
    idx = torch.zeros(40_000, 1, dtype=torch.long)
    draws = generate(model, idx, 1, temperature=0.7, top_k=4, seed=0)[:, 1]
    with torch.no_grad():
        expected = next_token_probs(model(idx[:1])[0, -1], 0.7, 4)
    freq = torch.bincount(draws, minlength=5) / 40_000
    assert (freq - expected).abs().max() < 0.01 and (expected == 0).sum() == 1
    assert torch.equal(generate(model, idx[:1], 1, temperature=0.0)[0, 1], expected.argmax())


def test_eos_stops_each_row_and_pads():
    cfg = dict(block_size=64, vocab_size=300, n_layer=2, n_head=2, n_embd=32)
    model = random_gpt(7, 0.5, **cfg)
    idx = prompts(3, 4, cfg["vocab_size"], seed=3)
    free = generate(model, idx, 30, temperature=0.0)
    eos = int(free[0, 4 + 5])                                   # row 0's sixth new token
    assert eos not in free[0, 4:4 + 5].tolist()
    out = generate(model, idx, 30, temperature=0.0, eos_id=eos)
    for row in range(3):
        new = free[row, 4:].tolist()
        stop = new.index(eos) if eos in new else None
        if stop is None:
            assert out.size(1) == 34 and out[row].tolist() == free[row].tolist()
        else:                                                   # the same tokens up to eos, then eos only
            assert out[row, :4 + stop + 1].tolist() == free[row, :4 + stop + 1].tolist()
            assert (out[row, 4 + stop:] == eos).all()
    assert out.size(1) <= 34
    single = generate(model, idx[:1], 30, temperature=0.0, eos_id=eos)
    assert single.tolist() == [free[0, :4 + 6].tolist()]       # stops right after eos
    streamed = list(stream(model, idx[:1], 30, temperature=0.0, eos_id=eos))
    assert streamed == free[0, 4:4 + 6].tolist()


def test_all_rows_finish_early():
    cfg = dict(block_size=64, vocab_size=300, n_layer=2, n_head=2, n_embd=32)
    model = random_gpt(8, 0.5, **cfg)
    idx = prompts(1, 4, cfg["vocab_size"]).repeat(2, 1)             # two identical rows finish together
    eos = int(generate(model, idx, 3, temperature=0.0)[0, -1])
    out = generate(model, idx, 40, temperature=0.0, eos_id=eos)
    assert out.size(1) <= 4 + 3 and (out[:, -1] == eos).all()


def test_sliding_window_when_context_overflows():
    cfg = dict(block_size=16, vocab_size=100, n_layer=2, n_head=2, n_embd=16)
    model = random_gpt(9, 0.5, **cfg)
    idx = prompts(2, 10, cfg["vocab_size"])
    ref = greedy_reference(model, idx, 25)
    with pytest.warns(UserWarning, match="exceed the context of 16 tokens.*window slides"):
        cached = generate(model, idx, 25, temperature=0.0)
    with pytest.warns(UserWarning, match="window slides"):
        uncached = generate(model, idx, 25, temperature=0.0, use_cache=False)
    assert cached.shape == (2, 35)
    assert torch.equal(cached, ref) and torch.equal(uncached, ref)
    with pytest.warns(UserWarning, match="window slides"):
        streamed = list(stream(model, idx[:1], 25, temperature=0.0))
    assert streamed == ref[0, 10:].tolist()


def test_prompt_longer_than_context_is_cropped():
    cfg = dict(block_size=16, vocab_size=100, n_layer=1, n_head=2, n_embd=16)
    model = random_gpt(10, 0.5, **cfg)
    idx = prompts(1, 40, cfg["vocab_size"])
    with pytest.warns(UserWarning, match="prompt has 40 tokens but the model's context holds 16"):
        out = generate(model, idx, 5, temperature=0.0)
    assert torch.equal(out[:, :40], idx)
    assert torch.equal(out[:, 40:], greedy_reference(model, idx[:, -16:], 5)[:, 16:])


def test_no_warning_when_it_fits():
    cfg = dict(block_size=16, vocab_size=100, n_layer=1, n_head=2, n_embd=16)
    model = random_gpt(11, 0.5, **cfg)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = generate(model, prompts(1, 6, 100), 10, temperature=0.0)   # exactly block_size in all
    assert out.shape == (1, 16)


def test_stream_types_and_equality():
    cfg = dict(block_size=64, vocab_size=200, n_layer=2, n_head=2, n_embd=32)
    model = random_gpt(12, 0.1, **cfg)
    one = prompts(1, 5, 200)
    items = list(stream(model, one, 20, temperature=0.8, top_p=0.9, seed=3))
    assert all(type(t) is int for t in items)
    assert items == generate(model, one, 20, temperature=0.8, top_p=0.9, seed=3)[0, 5:].tolist()
    two = prompts(2, 5, 200)
    steps = list(stream(model, two, 10, temperature=0.0))
    assert all(isinstance(t, torch.Tensor) and t.shape == (2,) for t in steps)
    assert torch.equal(torch.stack(steps, dim=1), generate(model, two, 10, temperature=0.0)[:, 5:])


def test_training_flag_restored_and_output_usable_for_training():
    cfg = dict(block_size=32, vocab_size=100, n_layer=1, n_head=2, n_embd=16, dropout=0.5)
    model = random_gpt(13, 0.5, **cfg)
    model.train()
    idx = prompts(1, 4, 100)
    a = generate(model, idx, 10, temperature=0.0)               # eval mode inside: dropout off, deterministic
    b = generate(model, idx, 10, temperature=0.0)
    assert torch.equal(a, b) and model.training
    s = stream(model, idx, 5, temperature=0.0)
    next(s)
    s.close()
    assert model.training
    loss = model(a).logsumexp(-1).mean()                        # not an inference tensor: autograd works
    loss.backward()
    model.eval()
    generate(model, idx, 3)
    assert not model.training


def test_zero_new_tokens_returns_prompt():
    model = random_gpt(0, 0.5, block_size=16, vocab_size=50, n_layer=1, n_head=1, n_embd=8)
    idx = prompts(2, 3, 50)
    assert torch.equal(generate(model, idx, 0), idx)
    assert list(stream(model, idx, 0)) == []


@pytest.fixture(scope="module")
def tiny():
    return random_gpt(0, block_size=16, vocab_size=50, n_layer=1, n_head=1, n_embd=8)


@pytest.mark.parametrize("kwargs, error, fact", [
    (dict(top_p=0.0), ValueError, "top_p.*0.0"),
    (dict(top_p=1.01), ValueError, "top_p.*1.01"),
    (dict(top_k=0), ValueError, "top_k.*0"),
    (dict(top_k=2.5), TypeError, "top_k.*2.5"),
    (dict(temperature=-0.1), ValueError, "temperature.*-0.1"),
    (dict(temperature=float("nan")), ValueError, "temperature.*nan"),
    (dict(max_new_tokens=-1), ValueError, "max_new_tokens.*-1"),
    (dict(eos_id=50), ValueError, "eos_id.*49"),
    (dict(seed=1, generator=torch.Generator()), ValueError, "seed or generator"),
    (dict(seed="1"), TypeError, "seed"),
])
@pytest.mark.parametrize("fn", [generate, stream])
def test_bad_options_fail_at_the_call(tiny, fn, kwargs, error, fact):
    kwargs = {"idx": torch.tensor([[1, 2, 3]]), "max_new_tokens": 4, **kwargs}
    with pytest.raises(error, match=fact):
        fn(tiny, **kwargs)                                         # stream too: before any token


@pytest.mark.parametrize("idx, fact", [
    (torch.zeros(1, 0, dtype=torch.long), "0"),
    (torch.tensor([[1, 50]]), "50"),
    (torch.tensor([[-2, 1]]), "-2"),
    (torch.tensor([1, 2]), r"\[B, T\]"),                          # 1-D: generate's own check
    (torch.tensor([[1.0, 2.0]]), "float"),
])
def test_bad_prompts_fail_in_the_models_check(tiny, idx, fact):
    with pytest.raises(ValueError, match=fact):
        generate(tiny, idx, 4)
    with pytest.raises(ValueError, match=fact):
        next(stream(tiny, idx, 4))                                 # at the first step
