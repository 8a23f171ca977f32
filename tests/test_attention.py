"""gpt2lib.attention: causal self-attention and the KV cache (chapter 3), against PyTorch's own attention."""
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st

from gpt2lib.attention import CausalSelfAttention, KVCache

TOL = 1e-5  # fp32


def make(n_embd, n_head, block_size=64, bias=True, seed=0):
    torch.manual_seed(seed)
    attn = CausalSelfAttention(n_embd, n_head, block_size, bias=bias).eval()
    if bias:  # nn.Linear starts with small uniform biases; make them matter
        with torch.no_grad():
            attn.c_attn.bias.normal_()
            attn.c_proj.bias.normal_()
    return attn


def reference_sdpa(attn, x):
    """The module's weights, PyTorch's scaled_dot_product_attention(is_causal=True) in between."""
    B, T, C = x.shape
    nh, hd = attn.n_head, C // attn.n_head
    q, k, v = F.linear(x, attn.c_attn.weight, attn.c_attn.bias).split(C, dim=2)
    q, k, v = (t.reshape(B, T, nh, hd).permute(0, 2, 1, 3) for t in (q, k, v))
    y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    return F.linear(y.permute(0, 2, 1, 3).reshape(B, T, C), attn.c_proj.weight, attn.c_proj.bias)


def reference_formula(attn, x):
    """softmax(q k^T / sqrt(hd) + causal mask) v, head by head, in float64."""
    x = x.double()
    B, T, C = x.shape
    nh, hd = attn.n_head, C // attn.n_head
    W = attn.c_attn.weight.double()
    b = attn.c_attn.bias.double() if attn.c_attn.bias is not None else 0.0
    qkv = x @ W.T + b
    future = torch.ones(T, T, dtype=torch.bool).triu(1)
    heads = []
    for h in range(nh):
        q, k, v = (qkv[..., p * C + h * hd: p * C + (h + 1) * hd] for p in range(3))
        s = (q @ k.transpose(1, 2) / math.sqrt(hd)).masked_fill(future, float("-inf"))
        heads.append(torch.softmax(s, -1) @ v)
    y = torch.cat(heads, -1) @ attn.c_proj.weight.double().T
    if attn.c_proj.bias is not None:
        y = y + attn.c_proj.bias.double()
    return y.float()


def reference_mha(attn, x):
    """torch.nn.MultiheadAttention with the module's weights copied in and a causal mask."""
    C, T = attn.n_embd, x.size(1)
    bias = attn.c_attn.bias is not None
    mha = nn.MultiheadAttention(C, attn.n_head, bias=bias, batch_first=True).eval()
    with torch.no_grad():
        mha.in_proj_weight.copy_(attn.c_attn.weight)
        mha.out_proj.weight.copy_(attn.c_proj.weight)
        if bias:
            mha.in_proj_bias.copy_(attn.c_attn.bias)
            mha.out_proj.bias.copy_(attn.c_proj.bias)
    future = torch.ones(T, T, dtype=torch.bool).triu(1)        # True = may not attend
    return mha(x, x, x, attn_mask=future, need_weights=False)[0]


shapes = st.tuples(st.integers(1, 3),        # B
                   st.integers(1, 40),       # T
                   st.integers(1, 6),        # n_head
                   st.integers(1, 24),       # head_dim
                   st.booleans(),            # bias
                   st.integers(0, 2**16))    # seed


@settings(max_examples=60, deadline=None)
@given(shapes)
def test_matches_sdpa_formula_and_multihead_attention(shape):
    B, T, nh, hd, bias, seed = shape
    attn = make(nh * hd, nh, block_size=40, bias=bias, seed=seed)
    x = torch.randn(B, T, nh * hd, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        out = attn(x)
        assert out.shape == x.shape and out.dtype == torch.float32
        torch.testing.assert_close(out, reference_sdpa(attn, x), atol=TOL, rtol=0)
        torch.testing.assert_close(out, reference_formula(attn, x), atol=TOL, rtol=0)
        torch.testing.assert_close(out, reference_mha(attn, x), atol=TOL, rtol=0)


@pytest.mark.parametrize("n_embd, n_head, T", [(768, 12, 64), (128, 1, 7), (96, 96, 5), (1024, 16, 3)])
def test_matches_references_at_fixed_sizes(n_embd, n_head, T):
    attn = make(n_embd, n_head, block_size=1024, seed=n_embd)
    x = torch.randn(2, T, n_embd)
    with torch.no_grad():
        out = attn(x)
        torch.testing.assert_close(out, reference_sdpa(attn, x), atol=TOL, rtol=0)
        torch.testing.assert_close(out, reference_mha(attn, x), atol=TOL, rtol=0)


def test_gpt2_layout():
    attn = CausalSelfAttention(768, 12, 1024)
    assert isinstance(attn.c_attn, nn.Linear) and tuple(attn.c_attn.weight.shape) == (3 * 768, 768)
    assert isinstance(attn.c_proj, nn.Linear) and tuple(attn.c_proj.weight.shape) == (768, 768)
    assert attn.head_dim == 64
    assert sum(p.numel() for p in attn.parameters()) == 4 * 768 * 768 + 4 * 768
    assert CausalSelfAttention(64, 4, 8, bias=False).c_attn.bias is None


def test_causal_no_output_depends_on_a_later_token():
    attn = make(32, 4, block_size=20)
    x = torch.randn(2, 20, 32)
    for t in (0, 7, 19):
        x2 = x.clone()
        x2[:, t] = torch.randn(2, 32)
        with torch.no_grad():
            changed = (attn(x) - attn(x2)).abs().amax(dim=(0, 2)) > 0     # [T]
        assert changed.tolist() == [i >= t for i in range(20)]


# ---------------------------------------------------------------- the KV cache

def run_in_chunks(attn, x, chunks, max_len=None):
    B, T, C = x.shape
    cache = KVCache(B, attn.n_head, max_len or T, C // attn.n_head)
    out, t = [], 0
    for n in chunks:
        out.append(attn(x[:, t:t + n], cache))
        t += n
        assert cache.pos == t
    return torch.cat(out, dim=1), cache


@settings(max_examples=60, deadline=None)
@given(B=st.integers(1, 3), nh=st.integers(1, 4), hd=st.integers(1, 16), seed=st.integers(0, 2**16),
       chunks=st.lists(st.integers(1, 9), min_size=1, max_size=12))
def test_cache_in_any_chunks_equals_no_cache(B, nh, hd, seed, chunks):
    T = sum(chunks)
    attn = make(nh * hd, nh, block_size=T, seed=seed)
    x = torch.randn(B, T, nh * hd, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        full = attn(x)
        cached, _ = run_in_chunks(attn, x, chunks, max_len=T + 3)
    torch.testing.assert_close(cached, full, atol=TOL, rtol=0)


@pytest.mark.parametrize("chunks", [[8] + [1] * 24,           # a prompt, then one token at a time
                                    [1] * 32,                 # from the first token on
                                    [5, 1, 1, 7, 1, 3, 14],   # prompt, tokens, chunks
                                    [32]])
def test_prefill_tokens_and_chunks(chunks):
    attn = make(48, 6, block_size=32)
    x = torch.randn(2, 32, 48)
    with torch.no_grad():
        cached, cache = run_in_chunks(attn, x, chunks)
        torch.testing.assert_close(cached, attn(x), atol=TOL, rtol=0)
        # the cache holds exactly the keys and values of the whole sequence
        q, k, v = attn.c_attn(x).split(48, dim=2)
        torch.testing.assert_close(cache.k, k.view(2, 32, 6, 8).transpose(1, 2), atol=TOL, rtol=0)
        torch.testing.assert_close(cache.v, v.view(2, 32, 6, 8).transpose(1, 2), atol=TOL, rtol=0)


def test_cache_update_returns_views_of_its_buffers():
    cache = KVCache(2, 3, 10, 4)
    k, v = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    k_all, v_all = cache.update(k, v)
    assert cache.pos == 4 and cache.max_len == 10
    assert k_all.shape == (2, 3, 4, 4) and torch.equal(k_all, k) and torch.equal(v_all, v)
    assert k_all.data_ptr() == cache.k.data_ptr() and v_all.data_ptr() == cache.v.data_ptr()  # no copy
    k_all, _ = cache.update(k[:, :, :1], v[:, :, :1])
    assert k_all.shape == (2, 3, 5, 4) and torch.equal(k_all[:, :, 4], k[:, :, 0])
    cache.reset()
    assert cache.pos == 0
    k_all, _ = cache.update(v, k)
    assert torch.equal(k_all, v)


def test_cache_dtype_and_device():
    cache = KVCache(1, 2, 8, 4, device="cpu", dtype=torch.float64)
    assert cache.k.dtype == torch.float64 and cache.k.shape == (1, 2, 8, 4)
    assert KVCache(1, 2, 8, 4).k.dtype == torch.float32


def test_cache_overflow():
    cache = KVCache(1, 2, 5, 4)
    cache.update(torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 4, 4))
    with pytest.raises(ValueError, match=r"KV cache .* <= 5, got 6"):
        cache.update(torch.zeros(1, 2, 2, 4), torch.zeros(1, 2, 2, 4))
    assert cache.pos == 4                                          # a refused update changes nothing
    attn = make(8, 2, block_size=64)
    with torch.no_grad(), pytest.raises(ValueError, match="KV cache .* <= 5, got 6"):
        attn(torch.randn(1, 2, 8), cache)


def test_longer_than_the_context_with_a_cache():
    attn = make(16, 2, block_size=10)
    cache = KVCache(1, 2, 20, 8)
    with torch.no_grad():
        attn(torch.randn(1, 8, 16), cache)
        with pytest.raises(ValueError, match=r"positions \(cached \+ new\) must be <= 10, got 11"):
            attn(torch.randn(1, 3, 16), cache)


# ---------------------------------------------------------------- the context, dropout, gradients

def test_sequence_longer_than_the_context():
    attn = CausalSelfAttention(32, 4, block_size=16)
    attn(torch.randn(1, 16, 32))                                   # exactly the context is fine
    with pytest.raises(ValueError, match=r"positions \(cached \+ new\) must be <= 16, got 17"):
        attn(torch.randn(1, 17, 32))


def test_dropout_acts_in_training_only():
    torch.manual_seed(0)
    attn = CausalSelfAttention(32, 4, 16, dropout=0.5)
    x = torch.randn(2, 16, 32)
    attn.train()
    a, b = attn(x), attn(x)
    assert not torch.allclose(a, b)                                # random masks in training
    attn.eval()
    plain = CausalSelfAttention(32, 4, 16, dropout=0.0).eval()
    plain.load_state_dict(attn.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(attn(x), plain(x), atol=0, rtol=0)   # and none at evaluation


def test_gradients_reach_every_parameter():
    attn = CausalSelfAttention(32, 4, 16)
    attn(torch.randn(2, 16, 32)).square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in attn.parameters())
