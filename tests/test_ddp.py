"""Chapter 6: the same `train` under torchrun with DistributedDataParallel (gloo, 2 CPU processes).

Two ranks with batch b each must follow one process with batch 2b: each rank reads its own half of
every global batch, DDP averages the two gradients, and the average of two means over b windows is the
mean over 2b windows. The losses and the final weights agree to float32 rounding.
"""
import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from gpt2lib.model import GPT, GPTConfig
from gpt2lib.train import TrainConfig, train

STEPS, B = 6, 4


WORKER = textwrap.dedent("""
    import json, sys, torch
    import torch.distributed as dist
    from gpt2lib.model import GPT, GPTConfig
    from gpt2lib.train import TrainConfig, train

    dist.init_process_group("gloo")                 # torchrun's environment says who and where
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(0)
    ids = torch.randint(0, 97, (50,)).repeat(80)    # a learnable text: one phrase of 50 tokens, repeated
    val = ids[:301]
    torch.manual_seed(1)
    model = GPT(GPTConfig(block_size=16, vocab_size=97, n_layer=2, n_head=2, n_embd=32))
    cfg = TrainConfig(batch_size=int(sys.argv[2]), block_size=16, max_steps=int(sys.argv[3]), lr=3e-3,
                      warmup_steps=2, eval_interval=3, progress=False, device="cpu", grad_accum=int(sys.argv[4]))
    history = train(model, ids, val, cfg, val_bytes=301)
    if rank == 0:
        with open(sys.argv[1], "w") as f:
            json.dump({"world": world, "loss": history["loss"], "val_loss": history["val_loss"],
                       "weights": {k: v.tolist() for k, v in model.state_dict().items()}}, f)
    dist.destroy_process_group()
""")


def run_torchrun(tmp_path, nproc, batch, steps, accum=1):
    script, out = tmp_path / "worker.py", tmp_path / f"out{nproc}_{batch}_{accum}.json"
    script.write_text(WORKER)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           str(script), str(out), str(batch), str(steps), str(accum)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(out.read_text())


def single_process(batch, steps, accum=1):
    torch.manual_seed(0)
    ids = torch.randint(0, 97, (50,)).repeat(80)
    val = ids[:301]
    torch.manual_seed(1)
    model = GPT(GPTConfig(block_size=16, vocab_size=97, n_layer=2, n_head=2, n_embd=32))
    cfg = TrainConfig(batch_size=batch, block_size=16, max_steps=steps, lr=3e-3, warmup_steps=2,
                      eval_interval=3, progress=False, device="cpu", grad_accum=accum)
    history = train(model, ids, val, cfg, val_bytes=301)
    return history, model


@pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                    reason="this torch has no gloo backend")
def test_two_ranks_equal_one_process_with_double_batch(tmp_path):
    ddp = run_torchrun(tmp_path, nproc=2, batch=B, steps=STEPS)
    assert ddp["world"] == 2
    history, model = single_process(batch=2 * B, steps=STEPS)
    assert len(ddp["loss"]) == STEPS
    torch.testing.assert_close(torch.tensor(ddp["loss"]), torch.tensor(history["loss"]), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(torch.tensor(ddp["val_loss"]), torch.tensor(history["val_loss"]),
                               rtol=1e-5, atol=1e-5)
    for name, value in model.state_dict().items():
        torch.testing.assert_close(torch.tensor(ddp["weights"][name]), value, rtol=1e-4, atol=1e-5)
    # the loss really moved (two frozen runs would agree trivially), and a single process with batch b,
    # which sees half the windows, does not match: the ranks did read different shards
    assert history["loss"][-1] < history["loss"][0] - 0.2
    half, _ = single_process(batch=B, steps=STEPS)
    assert max(abs(a - b) for a, b in zip(half["loss"], ddp["loss"])) > 1e-3


@pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                    reason="this torch has no gloo backend")
def test_single_process_grad_accum_equals_double_batch():
    """Accumulating 2 micro-batches of b is the same step as one batch of 2b (the same windows)."""
    h_accum, m_accum = single_process(batch=B, steps=3, accum=2)
    h_big, m_big = single_process(batch=2 * B, steps=3, accum=1)
    torch.testing.assert_close(torch.tensor(h_accum["loss"]), torch.tensor(h_big["loss"]), rtol=1e-5, atol=1e-5)
    for (name, a), b in zip(m_accum.state_dict().items(), m_big.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=name)
