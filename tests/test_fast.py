"""Chapter 10: int8 weights and batches of prompts of different lengths."""
import copy

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import hf_folder, random_gpt
from gpt2lib.fast import KERNELS, Int8Linear, absmax_int8, generate_batch, left_pad, quantize
from gpt2lib.generate import generate

CONFIGS = [
    dict(n_layer=2, n_head=4, n_embd=64, block_size=64, vocab_size=300),
    dict(n_layer=1, n_head=2, n_embd=32, block_size=48, vocab_size=97, bias=False),
    dict(n_layer=3, n_head=3, n_embd=48, block_size=40, vocab_size=131),
]


def random_prompts(vocab: int, lengths, seed: int = 0) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, vocab, (n,), generator=g).tolist() for n in lengths]


@settings(max_examples=40, deadline=None)
@given(rows=st.integers(1, 6), cols=st.integers(1, 9), zero_row=st.booleans(), seed=st.integers(0, 10_000))
def test_absmax_int8_is_within_half_a_step(rows, cols, zero_row, seed):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(rows, cols, generator=g) * torch.rand(rows, 1, generator=g) * 3   # rows of all scales
    if zero_row:
        w[0] = 0
    q, s = absmax_int8(w)
    assert q.dtype == torch.int8 and q.shape == w.shape and s.shape == (rows,)
    assert ((q.float() * s[:, None] - w).abs() <= s[:, None] / 2 + 1e-6).all()
    nonzero = w.abs().amax(1) > 0
    assert (q.abs().amax(1)[nonzero] == 127).all()                       # each row uses the full range


@pytest.mark.parametrize("cfg", CONFIGS)
def test_quantize_replaces_every_linear_and_stays_close(cfg):
    model = random_gpt(**cfg)
    q8 = quantize(copy.deepcopy(model))
    n_linear = 4 * cfg["n_layer"] + 1
    assert sum(isinstance(m, Int8Linear) for m in q8.modules()) == n_linear
    assert not any(isinstance(m, torch.nn.Linear) for m in q8.modules())
    assert q8.transformer.wte.weight.dtype == torch.float32
    idx = torch.randint(0, cfg["vocab_size"], (2, 9))
    with torch.no_grad():
        exact, approx = model(idx), q8(idx)
    assert ((approx - exact).norm() / exact.norm()) < 0.05


@pytest.mark.parametrize("kernel", [k for k in KERNELS if k != "reference"])
def test_kernels_compute_the_reference_layer(kernel):
    torch.manual_seed(1)
    lin = torch.nn.Linear(40, 24)
    x = torch.randn(3, 5, 40)
    with torch.no_grad():
        ref = Int8Linear(lin, "reference")(x)
        got = Int8Linear(lin, kernel)(x)
    assert got.shape == ref.shape == (3, 5, 24)
    tol = 1e-4 if kernel == "int8pack" else 0.05 * ref.abs().max().item()   # fbgemm also rounds x
    torch.testing.assert_close(got, ref, rtol=0, atol=tol)


def test_int8_weights_are_a_quarter_of_the_bytes():
    model = random_gpt(**CONFIGS[0])
    fp = sum(m.weight.numel() * 4 for m in model.modules() if isinstance(m, torch.nn.Linear))
    q8 = quantize(copy.deepcopy(model))
    i8 = sum(m.weight_int8.numel() + 4 * m.scale.numel() for m in q8.modules() if isinstance(m, Int8Linear))
    assert abs(i8 / fp - 0.25) < 0.02


@pytest.mark.parametrize("cfg", CONFIGS)
@pytest.mark.parametrize("use_cache", [True, False])
def test_batched_ragged_greedy_equals_one_by_one(cfg, use_cache):
    model = random_gpt(3, **cfg)
    prompts = random_prompts(cfg["vocab_size"], (1, 7, 4, 12, 2), seed=cfg["n_embd"])
    together = generate(model, prompts, 9, temperature=0.0, use_cache=use_cache)
    alone = [generate(model, torch.tensor([p]), 9, temperature=0.0)[0].tolist() for p in prompts]
    assert together == alone


@pytest.mark.parametrize("cfg", [c for c in CONFIGS if c.get("bias", True)])
def test_batched_ragged_greedy_equals_transformers(cfg):
    from gpt2lib.pretrained import to_transformers

    model = random_gpt(5, **cfg)
    hf = to_transformers(model)
    hf.generation_config.eos_token_id = None
    prompts = random_prompts(cfg["vocab_size"], (5, 2, 9), seed=7)
    T = max(map(len, prompts))
    ids = torch.tensor([[0] * (T - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (T - len(p)) + [1] * len(p) for p in prompts])
    with torch.inference_mode():
        out = hf.generate(ids, attention_mask=mask, max_new_tokens=10, min_new_tokens=10, do_sample=False,
                          pad_token_id=0)
    theirs = [row[T - len(p):].tolist() for row, p in zip(out, prompts)]
    assert generate(model, prompts, 10, temperature=0.0) == theirs


def test_each_row_stops_at_its_own_eos():
    model = random_gpt(**CONFIGS[0])
    prompts = random_prompts(300, (3, 6), seed=2)
    free = generate(model, prompts, 8, temperature=0.0)
    eos = free[0][len(prompts[0]) + 2]                         # row 0's third new token
    rows = generate(model, prompts, 8, temperature=0.0, eos_id=eos)
    assert len(rows[0]) <= len(prompts[0]) + 3 < len(free[0])              # row 0 was cut short
    for row, full, p in zip(rows, free, prompts):
        new = full[len(p):]
        cut = new.index(eos) + 1 if eos in new else len(new)
        assert row == full[:len(p) + cut]


def test_sampling_a_batch_is_reproducible():
    model = random_gpt(**CONFIGS[0])
    prompts = random_prompts(300, (2, 5, 3))
    a = generate(model, prompts, 6, temperature=0.9, top_k=20, seed=11)
    b = generate(model, prompts, 6, temperature=0.9, top_k=20, seed=11)
    assert a == b and [len(r) for r in a] == [8, 11, 9]


def test_left_pad():
    idx, pad = left_pad([[7], [1, 2, 3]], pad_id=5)
    assert idx.tolist() == [[5, 5, 7], [1, 2, 3]] and pad.tolist() == [2, 0]


@pytest.mark.parametrize("prompts, fact", [([[]], "at least one token"), ([[1], [1] * 60], "60.*64")])
def test_bad_prompts(prompts, fact):
    with pytest.raises(ValueError, match=fact):
        generate_batch(random_gpt(**CONFIGS[0]), prompts, 10)


@pytest.mark.parametrize("train", [False, True])
def test_generate_batch_gives_the_model_its_mode_back(train):
    model = random_gpt(**CONFIGS[0]).train(train)
    generate(model, [[1, 2], [3]], 4, temperature=0.0)
    assert model.training is train


def test_bad_quantize():
    model = random_gpt(**CONFIGS[0])
    with pytest.raises(ValueError, match="int4"):
        quantize(model, kernel="int4")
    quantize(model)
    with pytest.raises(ValueError, match="already"):
        quantize(model)


# ---- the command line and load_pretrained ----------------------------------------------------------

@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    """GPT-2's vocabulary with a context of 64 (conftest's hf_dir has 128)."""
    return hf_folder(tmp_path_factory.mktemp("tiny_gpt2_fast"), n_positions=64)


def test_load_pretrained_int8(hf_dir):
    from gpt2lib.pretrained import load_pretrained

    fp32 = load_pretrained(hf_dir)
    q8 = load_pretrained(hf_dir, quantize="int8")
    assert sum(isinstance(m, Int8Linear) for m in q8.modules()) == 4 * 2 + 1
    idx = torch.randint(0, 50257, (1, 6))
    with torch.no_grad():
        assert ((q8(idx) - fp32(idx)).norm() / fp32(idx).norm()) < 0.05
    with pytest.raises(ValueError, match="int4"):
        load_pretrained(hf_dir, quantize="int4")


def test_cli_prompts_file_equals_each_prompt_alone(hf_dir, tmp_path, capsys):
    from gpt2lib import cli

    prompts = ["Once upon a time", "", "The meaning of life is", "Hi"]
    f = tmp_path / "prompts.txt"
    f.write_text("\n".join(prompts) + "\n", encoding="utf-8")
    assert cli.main(["generate", "--weights", str(hf_dir), "--greedy", "--max-new-tokens", "12",
                     "--prompts-file", str(f)]) == 0
    batch = capsys.readouterr().out
    alone = []
    for p in filter(None, prompts):
        assert cli.main(["generate", "--weights", str(hf_dir), "--greedy", "--max-new-tokens", "12",
                         "--prompt", p]) == 0
        alone.append(capsys.readouterr().out.rstrip("\n"))
    assert batch == "".join(a + "\n\n" for a in alone)


def test_cli_int8_generates(hf_dir, capsys):
    from gpt2lib import cli

    assert cli.main(["generate", "--weights", str(hf_dir), "--int8", "--greedy", "--max-new-tokens", "8",
                     "--prompt", "Hello"]) == 0
    assert capsys.readouterr().out.startswith("Hello")


@pytest.mark.parametrize("content, flags, fact", [
    ("\n\n", [], "no prompts"),
    (None, [], "no such file"),
    ("a\n", ["--max-new-tokens", "80"], "64"),
    ("a\n", ["--int8", "--dtype", "bfloat16"], "--dtype"),
])
def test_cli_fast_bad_input(hf_dir, tmp_path, capsys, content, flags, fact):
    from gpt2lib import cli

    f = tmp_path / "p.txt"
    if content is not None:
        f.write_text(content, encoding="utf-8")
    code = cli.main(["generate", "--weights", str(hf_dir), "--prompts-file", str(f), *flags])
    err = capsys.readouterr().err.strip().splitlines()
    assert code in (1, 2) and len(err) == 1 and fact in err[0]
