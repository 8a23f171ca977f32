"""Chapter 6 (gpt2lib.train): losses and bits per byte, optimizer groups, schedule, checkpoints, resume.

References: PyTorch's own cross-entropy, AdamW and CosineAnnealingLR, Python's gzip/lzma, and the
uninterrupted run itself (a resumed run must reproduce it bit for bit on the CPU).
"""
import json
import lzma
import math
import os
import subprocess
import sys
import textwrap
from collections import Counter

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st

from gpt2lib.model import GPT, GPTConfig
from conftest import hf_folder, random_gpt
from gpt2lib.checkpoint import find_checkpoint
from gpt2lib.data import WindowDataset
from gpt2lib.train import (IGNORE_INDEX, CheckpointError, TrainConfig, batch_indices, bits_per_byte,
                           configure_optimizer, eval_windows, evaluate, flops_per_token, lm_loss, load_checkpoint,
                           lr_at, save_checkpoint, train)

V = 61


def tiny(dropout=0.0, seed=1, **kw):
    return random_gpt(seed, **{**dict(block_size=16, vocab_size=V, n_embd=24, dropout=dropout), **kw}).train()


def data(n=1500, seed=0):
    g = torch.Generator().manual_seed(seed)
    phrase = torch.randint(0, V, (37,), generator=g)
    ids = phrase.repeat(n // 37 + 1)[:n].clone()                        # learnable: a repeated phrase
    noise = torch.rand(n, generator=g) < 0.1
    ids[noise] = torch.randint(0, V, (int(noise.sum()),), generator=g)  # ... with 10% noise
    return ids


def cfg(**kw):
    return TrainConfig(**{**dict(batch_size=4, block_size=16, max_steps=10, lr=3e-3, warmup_steps=3,
                                 eval_interval=4, progress=False, device="cpu"), **kw})


# ---- the objective -----------------------------------------------------------------------------

def test_lm_loss_is_mean_negative_log_likelihood():
    torch.manual_seed(0)
    logits, y = torch.randn(2, 5, V), torch.randint(0, V, (2, 5))
    manual = -torch.log_softmax(logits, -1).gather(-1, y[..., None]).mean()
    torch.testing.assert_close(lm_loss(logits, y), manual)
    assert bits_per_byte(8 * math.log(2), 4) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="n_bytes must be >= 1, got 0"):
        bits_per_byte(1.0, 0)


def test_lm_loss_skips_ignored_targets_and_takes_class_logits():
    torch.manual_seed(0)
    logits, y = torch.randn(2, 5, V), torch.randint(0, V, (2, 5))
    masked = y.clone()
    masked[:, :2] = IGNORE_INDEX                                 # e.g. the prompt of an instruction
    torch.testing.assert_close(lm_loss(logits, masked), lm_loss(logits[:, 2:], y[:, 2:]))
    assert lm_loss(logits, masked, reduction="none").view(2, 5)[:, :2].eq(0).all()
    classes, labels = torch.randn(4, 3), torch.tensor([0, 2, 1, 2])     # a classifier: [B, C] and [B]
    torch.testing.assert_close(lm_loss(classes, labels), F.cross_entropy(classes, labels))


def test_untrained_model_loss_is_near_ln_vocab():
    model, ids = tiny(), data()
    r = evaluate(model, ids, n_bytes=len(ids))
    assert abs(r["loss"] - math.log(V)) < 0.15


@settings(max_examples=60, deadline=None)
@given(n=st.integers(2, 200), T=st.integers(1, 40), frac=st.floats(0.01, 1.0))
def test_eval_windows_score_every_token_once(n, T, frac):
    stride = max(1, int(min(T, n - 1) * frac))
    windows = eval_windows(n, T, stride)
    Tw = min(T, n - 1)
    scored = []
    for start, k in windows:
        assert 0 <= start and start + Tw <= n - 1 and 1 <= k <= Tw
        scored += range(start + Tw - k + 1, start + Tw + 1)     # target positions of this window
    assert scored == list(range(1, n))                           # each of tokens 1..n-1, once, in order
    for start, k in windows[1:]:
        assert Tw - k >= Tw - stride                             # at least T - stride tokens of context


@pytest.mark.parametrize("stride", [None, 5, 1])
def test_evaluate_equals_one_forward_pass_when_everything_fits(stride):
    model, ids = tiny(block_size=64), data(40)
    with torch.no_grad():
        nll = F.cross_entropy(model(ids[None, :-1])[0], ids[1:], reduction="sum").item()
    r = evaluate(model, ids, block_size=64, stride=stride, n_bytes=100)
    assert r["tokens"] == 40
    assert r["loss"] == pytest.approx(nll / 39, rel=1e-5)
    assert r["bpb"] == pytest.approx((nll + math.log(V)) / math.log(2) / 100, rel=1e-5)


def test_evaluate_with_stride_block_equals_manual_windows():
    model, ids = tiny(), data(100)
    T, total, count = 16, 0.0, 0
    with torch.no_grad():
        for s in range(0, 99, T):                      # windows 0..15, 16..31, ...; the last moved back
            e = min(s + T, 99)
            x, y = ids[e - T:e][None], ids[e - T + 1:e + 1]
            nll = F.cross_entropy(model(x)[0], y, reduction="none")
            total += nll[T - (e - s):].sum().item()
            count += e - s
    assert count == 99
    assert evaluate(model, ids, batch_size=3)["loss"] == pytest.approx(total / count, rel=1e-5)


# ---- optimizer and schedule ----------------------------------------------------------------------

def test_optimizer_groups_decay_only_matrices():
    model = tiny()
    decay, no_decay = configure_optimizer(model, lr=1e-3, weight_decay=0.1).param_groups
    names = {id(p): n for n, p in model.named_parameters()}
    assert {names[id(p)] for p in decay["params"]} == {n for n, p in model.named_parameters() if p.dim() == 2}
    assert all(names[id(p)].endswith(("bias", "ln_1.weight", "ln_2.weight", "ln_f.weight"))
               for p in no_decay["params"])
    assert (decay["weight_decay"], no_decay["weight_decay"]) == (0.1, 0.0)
    counted = sum(p.numel() for g in (decay, no_decay) for p in g["params"])
    assert counted == model.num_params()                   # the tied wte / lm_head counted once
    assert model.lm_head.weight is model.transformer.wte.weight


def test_configure_optimizer_decays_matrices_only_and_is_fused():
    model = tiny()
    opt = configure_optimizer(model, lr=0.1, weight_decay=0.5)
    assert opt.defaults["fused"] is True                   # torch >= 2.4 has a fused AdamW on the CPU
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)                       # Adam's own step is 0: only decay moves p
    opt.step()
    for n, p in model.named_parameters():
        factor = 1 - 0.1 * 0.5 if p.dim() >= 2 else 1.0
        torch.testing.assert_close(p.detach(), before[n] * factor, msg=n)


def test_configure_optimizer_matches_torch_adamw_step():
    a, b = tiny(), tiny()
    opt_a = configure_optimizer(a, lr=1e-2, weight_decay=0.1, betas=(0.9, 0.95), fused=False)
    groups = [{"params": [p for p in b.parameters() if p.dim() == 2], "weight_decay": 0.1},   # written out again
              {"params": [p for p in b.parameters() if p.dim() == 1], "weight_decay": 0.0}]
    opt_b = torch.optim.AdamW(groups, lr=1e-2, betas=(0.9, 0.95))
    x = data(17)[None]
    for model, opt in ((a, opt_a), (b, opt_b)):
        lm_loss(model(x[:, :-1]), x[:, 1:]).backward()
        opt.step()
    for pa, pb in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(pa, pb)


@pytest.mark.parametrize("lr", [0.0, -1e-3])
def test_nonpositive_learning_rate_is_refused(lr):
    with pytest.raises(ValueError, match=f"TrainConfig.lr must be > 0, got {lr}"):
        TrainConfig(lr=lr)


@pytest.mark.parametrize("bad, error, fact", [
    (dict(min_lr=2e-3), ValueError, "min_lr must be <= 0.001"), (dict(batch_size=0), ValueError, "batch_size"),
    (dict(batch_size=2.5), TypeError, "batch_size"), (dict(warmup_steps=-1), ValueError, "warmup_steps"),
    (dict(stride=0), ValueError, "stride"), (dict(grad_clip=-1.0), ValueError, "grad_clip"),
    (dict(max_seconds=-1), ValueError, "max_seconds"), (dict(dtype="float16"), ValueError, "float16"),
    (dict(lr=float("nan")), ValueError, "lr.*nan"), (dict(grad_clip=float("nan")), ValueError, "grad_clip")])
def test_impossible_settings_are_refused_by_the_config(bad, error, fact):
    with pytest.raises(error, match=fact):
        TrainConfig(**{"lr": 1e-3, **bad})


def test_schedule_values_at_known_steps():
    lr, lo, W, S = 1e-3, 1e-4, 10, 110
    assert lr_at(0, lr, W, S, lo) == pytest.approx(lr / W)
    assert lr_at(4, lr, W, S, lo) == pytest.approx(5 * lr / W)
    assert lr_at(W - 1, lr, W, S, lo) == pytest.approx(lr)
    assert lr_at(W, lr, W, S, lo) == pytest.approx(lr)
    assert lr_at(W + (S - W) // 2, lr, W, S, lo) == pytest.approx((lr + lo) / 2)
    assert lr_at(S, lr, W, S, lo) == lr_at(S + 1000, lr, W, S, lo) == lo
    # the decay is PyTorch's CosineAnnealingLR, shifted by the warm-up
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=lr)
    ref = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=S - W, eta_min=lo)
    for step in range(W, S + 1):
        assert lr_at(step, lr, W, S, lo) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-9, abs=1e-15)
        opt.step()
        ref.step()


# ---- data order -----------------------------------------------------------------------------------

def test_batch_indices_shard_a_global_batch():
    n, b = 103, 4
    for step in range(60):                                   # crosses several epochs
        whole = batch_indices(n, 2 * b, step, seed=3)
        halves = torch.cat([batch_indices(n, b, step, seed=3, rank=r, world_size=2) for r in range(2)])
        assert torch.equal(whole, halves)
    epoch = torch.cat([batch_indices(n, b, s, seed=3) for s in range(n // b)])
    assert len(set(epoch.tolist())) == len(epoch)            # no window twice within an epoch


def test_batch_larger_than_data_is_refused():
    with pytest.raises(ValueError, match="batch needs 64 windows"):
        train(tiny(), data(40), None, cfg(batch_size=64, stride=None))
    with pytest.raises(ValueError, match="10 tokens|tokens, got 10"):
        train(tiny(), data(10), None, cfg())
    with pytest.raises(ValueError, match="block_size must be <= 16, got 32"):
        train(tiny(), data(), None, cfg(block_size=32))
    with pytest.raises(TypeError, match="needs a model.*got None"):
        train(None, data(), None, cfg())


# ---- training, checkpoints, resume ----------------------------------------------------------------

def test_training_lowers_the_validation_loss():
    ids = data(2000)
    model = tiny()
    before = evaluate(model, ids[1700:])["loss"]
    history = train(model, ids[:1700], ids[1700:], cfg(max_steps=30, eval_interval=10), val_bytes=300)
    assert history["val_step"] == [10, 20, 30]
    assert history["val_loss"][-1] < before - 0.5
    assert history["val_loss"][-1] == pytest.approx(evaluate(model, ids[1700:])["loss"])
    assert len(history["loss"]) == 30 and history["tokens"] == 30 * 4 * 16
    assert history["lr"][:3] == [pytest.approx(3e-3 * k / 3) for k in (1, 2, 3)]



def short_loop(model, train_ids, val_ids, steps, batch_size, block_size, lr, warmup_steps, eval_every, seed=0):
    """Chapter 6's `simple_train`: the loop with nothing but the essentials."""
    n_windows = len(train_ids) - block_size
    per_epoch = n_windows // batch_size
    optimizer = configure_optimizer(model, lr)
    losses, val_losses = [], []
    model.train()
    for step in range(steps):
        epoch, i = divmod(step, per_epoch)
        order = torch.randperm(n_windows, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))
        starts = order[i * batch_size:(i + 1) * batch_size].tolist()
        x = torch.stack([train_ids[s:s + block_size] for s in starts])
        y = torch.stack([train_ids[s + 1:s + block_size + 1] for s in starts])
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, lr, warmup_steps, steps, min_lr=lr / 10)
        loss = lm_loss(model(x), y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        if (step + 1) % eval_every == 0 or step + 1 == steps:
            val_losses.append(evaluate(model, val_ids, block_size)["loss"])
    return losses, val_losses


@pytest.mark.parametrize("seed", [0, 3])
def test_train_without_clipping_is_the_short_loop_of_the_chapter(seed):
    # The chapter shows the two-dozen-line loop first and asserts that train() reproduces it; whatever
    # train() becomes, with grad_clip=0 it must still compute exactly this, bit for bit. On 60 tokens an epoch
    # is (60 - 16) // 4 = 11 steps, so 30 steps also cross two epoch boundaries.
    for n in (1400, 60):
        ids = data(n + 400)
        losses, val = short_loop(tiny(), ids[:n], ids[n:], steps=30, batch_size=4, block_size=16, lr=3e-3,
                                 warmup_steps=3, eval_every=10, seed=seed)
        h = train(tiny(), ids[:n], ids[n:], cfg(max_steps=30, eval_interval=10, eval_batch_size=8, grad_clip=0,
                                                 seed=seed))
        assert h["loss"] == losses and h["val_loss"] == val


class Stop(Exception):
    pass


def stop_at(k):
    def callback(step, history):
        if step == k:
            raise Stop
    return callback


def test_resume_is_bit_for_bit(tmp_path):
    ids = data(1200)
    c = cfg(max_steps=10, out_dir=str(tmp_path / "run"), ckpt_interval=3)
    full = train(tiny(dropout=0.1), ids[:1000], ids[1000:], cfg(max_steps=10), val_bytes=200)
    with pytest.raises(Stop):
        train(tiny(dropout=0.1), ids[:1000], ids[1000:], c, val_bytes=200, callback=stop_at(6))
    assert load_checkpoint(c.out_dir).step == 6
    fresh = tiny(dropout=0.1, seed=99)                     # other weights: the checkpoint must replace them
    resumed = train(fresh, ids[:1000], ids[1000:], c, val_bytes=200, resume=True)
    assert resumed["loss"] == full["loss"]                 # exact equality, not a tolerance
    assert resumed["val_loss"] == full["val_loss"]


def test_ctrl_c_saves_and_resumes_exactly(tmp_path):
    """A KeyboardInterrupt in the middle of a step: the checkpoint holds the steps before it."""
    ids = data(1200)
    c = cfg(max_steps=8, out_dir=str(tmp_path / "run"), grad_accum=2)
    full = train(tiny(dropout=0.1), ids[:1000], None, cfg(max_steps=8, grad_accum=2))
    model, calls = tiny(dropout=0.1), []

    def hook(module, args):
        calls.append(1)
        if len(calls) == 2 * 5 + 2:                        # the second micro-batch of step 6
            raise KeyboardInterrupt
    handle = model.register_forward_pre_hook(hook)
    with pytest.raises(KeyboardInterrupt):
        train(model, ids[:1000], None, c)
    handle.remove()
    ck = load_checkpoint(c.out_dir)
    assert ck.step == 5 and ck.history["loss"] == full["loss"][:5]
    resumed = train(tiny(dropout=0.1), ids[:1000], None, c, resume=True)
    assert resumed["loss"] == full["loss"]


def test_checkpoint_round_trip_for_inference(tmp_path):
    from gpt2lib.tokenizer import BPETokenizer

    tok = BPETokenizer.train("the cat sat on the mat; the dog sat on the log. " * 20, 270)
    model = tiny(vocab_size=tok.n_vocab)
    path = save_checkpoint(tmp_path / "run", model, step=7, tokenizer=tok)
    assert path.name == "step-0000007" and (tmp_path / "run" / "latest").read_text().strip() == path.name
    ck = load_checkpoint(tmp_path / "run")                 # builds the model from the saved config
    x = torch.tensor([tok.encode("the cat sat")])
    torch.testing.assert_close(ck.model(x), model(x), rtol=0, atol=0)
    assert ck.model.lm_head.weight is ck.model.transformer.wte.weight
    assert ck.tokenizer.encode("the dog") == tok.encode("the dog") and ck.step == 7
    assert load_checkpoint(path).step == 7                 # a snapshot folder works too
    # nothing in the folder needs pickle: safetensors plus tensors-only torch.save
    from safetensors.torch import load_file
    assert "lm_head.weight" not in load_file(path / "model.safetensors")
    state = torch.load(path / "state.pt", weights_only=True)
    assert state["rng"]["torch"].dtype == torch.uint8


def test_gpt2_tokenizer_is_stored_as_a_name(tmp_path):
    from gpt2lib.tokenizer import gpt2_tokenizer

    path = save_checkpoint(tmp_path, tiny(), tokenizer=gpt2_tokenizer())
    meta = json.loads((path / "checkpoint.json").read_text())
    assert meta["tokenizer"] == {"kind": "gpt2"} and not (path / "tokenizer.json").exists()
    assert load_checkpoint(tmp_path).tokenizer.encode("Once upon a time") == [7454, 2402, 257, 640]


def test_keep_prunes_old_snapshots(tmp_path):
    model = tiny()
    for step in (1, 2, 3, 3):
        save_checkpoint(tmp_path, model, step=step, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest", "step-0000003", "step-0000003.1"]
    assert load_checkpoint(tmp_path).path.name == "step-0000003.1"


def test_failed_save_leaves_previous_checkpoint(tmp_path, monkeypatch):
    model = tiny()
    opt = configure_optimizer(model, 1e-3)
    save_checkpoint(tmp_path, model, opt, step=1)
    w = model.transformer.wte.weight.detach().clone()
    with torch.no_grad():
        model.transformer.wte.weight.add_(1.0)

    def crash(*args, **kwargs):                            # the disk fills up halfway through
        with open(args[1], "wb") as f:
            f.write(b"half a file")
        raise OSError("No space left on device")
    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="No space"):
        save_checkpoint(tmp_path, model, opt, step=2)
    monkeypatch.undo()
    ck = load_checkpoint(tmp_path, optimizer=configure_optimizer(tiny(), 1e-3))
    assert ck.step == 1
    torch.testing.assert_close(ck.model.transformer.wte.weight, w, rtol=0, atol=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest", "step-0000001"]


def test_killed_process_mid_save_leaves_previous_checkpoint(tmp_path):
    """A real crash: the process dies (os._exit) while writing, with no chance to clean up."""
    script = textwrap.dedent(f"""
        import os, torch
        from gpt2lib.model import GPT, GPTConfig
        from gpt2lib.checkpoint import save_checkpoint
        torch.manual_seed(0)
        model = GPT(GPTConfig(block_size=8, vocab_size=50, n_layer=1, n_head=1, n_embd=8))
        save_checkpoint({str(tmp_path)!r}, model, step=1)
        real_save = torch.save
        def dying_save(obj, f, *a, **k):
            real_save(obj, f, *a, **k)
            os._exit(3)                                    # killed after one file of the new snapshot
        torch.save = dying_save
        save_checkpoint({str(tmp_path)!r}, model, step=2)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert any(p.name.startswith(".tmp-") for p in tmp_path.iterdir())   # the half-written snapshot
    assert load_checkpoint(tmp_path).step == 1
    save_checkpoint(tmp_path, load_checkpoint(tmp_path).model, step=2)   # the next save cleans up
    assert not any(p.name.startswith(".tmp-") for p in tmp_path.iterdir())
    assert load_checkpoint(tmp_path).step == 2


# ---- bad checkpoints ------------------------------------------------------------------------------

def test_corrupted_and_truncated_checkpoints_are_refused(tmp_path):
    path = save_checkpoint(tmp_path, tiny(), configure_optimizer(tiny(), 1e-3), step=3)
    weights = path / "model.safetensors"
    good = weights.read_bytes()
    corrupted = bytearray(good)
    corrupted[len(good) // 2] ^= 0xFF
    weights.write_bytes(bytes(corrupted))
    with pytest.raises(CheckpointError, match="model.safetensors is missing or corrupted or truncated"):
        load_checkpoint(tmp_path)
    weights.write_bytes(good[:len(good) // 3])
    with pytest.raises(CheckpointError, match="model.safetensors is missing or corrupted or truncated"):
        load_checkpoint(tmp_path)
    weights.unlink()
    with pytest.raises(CheckpointError, match="model.safetensors is missing"):
        load_checkpoint(tmp_path)
    weights.write_bytes(good)
    meta = path / "checkpoint.json"
    meta.write_text(meta.read_text()[:50])
    with pytest.raises(CheckpointError, match="checkpoint.json is corrupted or truncated"):
        load_checkpoint(tmp_path)


def test_truncated_optimizer_state_is_refused(tmp_path):
    path = save_checkpoint(tmp_path, tiny(), configure_optimizer(tiny(), 1e-3), step=3)
    state = path / "state.pt"
    state.write_bytes(state.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="state.pt is missing or corrupted or truncated"):
        load_checkpoint(tmp_path, optimizer=configure_optimizer(tiny(), 1e-3))


def test_checkpoint_for_another_config_is_refused(tmp_path):
    save_checkpoint(tmp_path, tiny(), step=1)
    with pytest.raises(CheckpointError, match="n_embd: model has 32, checkpoint has 24"):
        load_checkpoint(tmp_path, model=tiny(n_embd=32))


def test_missing_or_foreign_checkpoint_paths(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "nope")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(CheckpointError, match="not a gpt2lib checkpoint"):
        load_checkpoint(tmp_path)
    (tmp_path / "latest").write_text("step-0000009\n")
    with pytest.raises(CheckpointError, match="not a complete snapshot"):
        load_checkpoint(tmp_path)


def test_resume_true_without_checkpoint_is_an_error_naming_the_folder(tmp_path):
    ids = data(600)
    with pytest.raises(FileNotFoundError, match="new"):
        train(tiny(), ids, None, cfg(max_steps=3, out_dir=str(tmp_path / "new")), resume=True)
    assert not (tmp_path / "new").exists()                 # no run was started
    with pytest.raises(FileNotFoundError, match="out_dir=None"):
        train(tiny(), ids, None, cfg(), resume=True)
    assert find_checkpoint(tmp_path) is None


def test_checkpoint_records_the_whole_config_and_meta(tmp_path):
    c = cfg(max_steps=2, out_dir=str(tmp_path), lr=2e-3, grad_accum=2, seed=5)
    train(tiny(), data(600), None, c, meta={"note": "mine", "lora": None})
    ck = load_checkpoint(tmp_path)
    assert TrainConfig(**ck.train_config) == c and ck.meta == {"note": "mine", "lora": None}
    assert find_checkpoint(tmp_path) == ck.path == tmp_path / "step-0000002"


def test_train_from_init_weights(tmp_path):
    from gpt2lib.pretrained import load_pretrained

    hf = hf_folder(tmp_path / "hf", vocab_size=V, n_positions=16, n_embd=24, n_head=2)
    ids, c = data(600), cfg(max_steps=3, out_dir=str(tmp_path / "run"))
    start = load_pretrained(str(hf))
    loaded = start.transformer.wte.weight.detach().clone()
    train(start, ids, None, c, meta={"init": str(hf)})          # the loaded weights train in place
    ck = load_checkpoint(c.out_dir)
    assert ck.meta == {"init": str(hf)} and ck.step == 3
    assert torch.equal(ck.model.transformer.wte.weight, start.transformer.wte.weight)
    assert not torch.equal(start.transformer.wte.weight, loaded)


def test_only_parameters_that_require_grad_are_trained():
    model = tiny()
    for name, p in model.named_parameters():
        p.requires_grad_(name.startswith("transformer.ln_f"))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    train(model, data(600), None, cfg(max_steps=3, weight_decay=0.5))
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed == {"transformer.ln_f.weight", "transformer.ln_f.bias"}
    assert sum(len(g["params"]) for g in configure_optimizer(model, lr=1e-3).param_groups) == 2


def test_a_dataset_of_pairs_trains_like_the_ids_it_holds():
    ids = data(900)
    a = train(tiny(), ids[:700], ids[700:], cfg(max_steps=6, grad_clip=0))
    b = train(tiny(), WindowDataset(ids[:700], 16, 1), ids[700:], cfg(max_steps=6, grad_clip=0))
    assert a["loss"] == b["loss"] and a["val_loss"] == b["val_loss"]


class Pairs(torch.utils.data.Dataset):
    """Instruction-like pairs: the first half of each target is -100 (no loss), the rest the next token."""

    def __init__(self, ids, T=16):
        self.ids, self.T = ids, T

    def __len__(self):
        return (len(self.ids) - 1) // self.T

    def __getitem__(self, i):
        x, y = self.ids[i * self.T:(i + 1) * self.T], self.ids[i * self.T + 1:(i + 1) * self.T + 1].clone()
        y[:self.T // 2] = IGNORE_INDEX
        return x, y


def test_dataset_with_ignored_targets_trains_and_evaluates_on_the_others():
    ids, model = data(1300), tiny()
    pairs = Pairs(ids[1000:])
    with torch.no_grad():
        model.eval()
        x, y = (torch.stack(t) for t in zip(*(pairs[i] for i in range(len(pairs)))))
        manual = F.cross_entropy(model(x)[:, 8:].flatten(0, 1), y[:, 8:].flatten()).item()
    r = evaluate(model, pairs, batch_size=5)
    assert r["loss"] == pytest.approx(manual, rel=1e-5) and "bpb" not in r
    h = train(model, Pairs(ids[:1000]), pairs, cfg(max_steps=20, eval_interval=10))
    assert h["val_loss"][-1] < r["loss"] - 0.3


def test_flops_per_token_counts_every_matrix_product_and_the_tied_head():
    """Compared with PyTorch's FLOP counter over one forward and backward pass. On the CPU the counter does
    not see inside scaled_dot_product_attention, so the two attention products are counted separately."""
    from torch.utils.flop_counter import FlopCounterMode

    model, T = tiny(), 16
    c = model.config
    x = torch.randint(0, V, (1, T))
    with FlopCounterMode(display=False) as matmuls:
        lm_loss(model(x), x).backward()
    q, k, v = (torch.randn(1, c.n_head, T, c.n_embd // c.n_head, requires_grad=True) for _ in range(3))
    with FlopCounterMode(display=False) as attention:
        ((q @ k.transpose(-2, -1)) @ v).sum().backward()   # scores and the weighted sum, full T x T
    total = matmuls.get_total_flops() + c.n_layer * attention.get_total_flops()
    assert flops_per_token(model, T) * T == total
    assert matmuls.get_flop_counts()["GPT.lm_head"]       # the head is a real matrix product
