"""Training-step throughput: gpt2lib against transformers.GPT2LMHeadModel, both the 124M GPT-2.

    python bench/train.py                      # CPU: batch 4 x 128 tokens, 5 timed steps per variant
    python bench/train.py --batch 8 --seq 1024 --rounds 10 --compile   # on a GPU

One full training step is timed: forward, loss, backward, optimizer step, zero_grad. The variants run
in turn, round after round, in one process (so a change of machine load hits all of them alike), each
after one untimed warm-up step; the medians are compared. Each side uses its natural set-up:

  gpt2lib            GPT(GPTConfig.from_name("gpt2")), dropout 0 (GPTConfig's default), loss from the
                     logits with gpt2lib.train.lm_loss, configure_optimizer(): AdamW with weight decay
                     on matrices only, fused kernel (torch >= 2.4 has one on the CPU too)
  transformers       GPT2LMHeadModel(GPT2Config()) (the default config: dropout 0.1 on embeddings,
                     attention and residuals, SDPA attention), loss through labels=, and
                     torch.optim.AdamW(model.parameters()): the default AdamW, which is what a plain
                     PyTorch loop and transformers' own run_clm_no_trainer example use
  transformers+fused the same model with AdamW(fused=True), the default that transformers' Trainer
                     picks for torch >= 2.8 (reported for reference)
  transformers+fused, dropout 0
                     the same again with every dropout set to 0: the architecture alone (reference)

The ratio reported first is gpt2lib / transformers. On CUDA both sides run under bf16 autocast with TF32
matmuls, and an MFU estimate is printed. Results go to bench/results/train.json.
"""
import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

from _common import write_results
from gpt2lib import default_device
from gpt2lib.model import GPT, GPTConfig
from gpt2lib.train import configure_optimizer, estimate_mfu, lm_loss

ROOT = Path(__file__).resolve().parent.parent


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--device", default=None)
    p.add_argument("--compile", action="store_true", help="torch.compile both models (GPU)")
    p.add_argument("--out", default=str(ROOT / "bench/results/train.json"))
    args = p.parse_args(argv)

    import transformers
    from transformers import GPT2Config, GPT2LMHeadModel
    transformers.logging.set_verbosity_error()

    device = torch.device(args.device or default_device())
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    amp = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if cuda else (lambda: torch.autocast("cpu", enabled=False))
    torch.manual_seed(0)
    ours = GPT(GPTConfig.from_name("gpt2")).to(device).train()
    hf = GPT2LMHeadModel(GPT2Config()).to(device).train()
    ours_step_model = torch.compile(ours) if args.compile else ours
    hf_step_model = torch.compile(hf) if args.compile else hf
    opt_ours = configure_optimizer(ours, lr=6e-4, weight_decay=0.1)
    opt_hf = torch.optim.AdamW(hf.parameters(), lr=6e-4)
    opt_hf_fused = torch.optim.AdamW(hf.parameters(), lr=6e-4, fused=True)
    dropouts = [m for m in hf.modules() if isinstance(m, torch.nn.Dropout)]
    x = torch.randint(0, 50257, (args.batch, args.seq + 1), device=device)   # [B, T+1]

    def step_ours():
        with amp():
            loss = lm_loss(ours_step_model(x[:, :-1]), x[:, 1:])                # [B, T, V] -> scalar
        loss.backward()
        opt_ours.step()
        opt_ours.zero_grad(set_to_none=True)

    def step_hf(opt, dropout=None):
        def step():
            saved = [m.p for m in dropouts]
            if dropout is not None:
                for m in dropouts:
                    m.p = dropout
            with amp():
                loss = hf_step_model(input_ids=x[:, :-1], labels=x[:, :-1]).loss  # shifts inside
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            for m, p_ in zip(dropouts, saved):
                m.p = p_
        return step

    variants = {"gpt2lib": step_ours, "transformers": step_hf(opt_hf),
                "transformers+fused": step_hf(opt_hf_fused),
                "transformers+fused, dropout 0": step_hf(opt_hf_fused, dropout=0.0)}
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    for f in variants.values():                 # warm-up: allocations, optimizer state, compilation
        f()
    times = {k: [] for k in variants}
    for _ in range(args.rounds):
        for name, f in variants.items():
            sync()
            t0 = time.perf_counter()
            f()
            sync()
            times[name].append(time.perf_counter() - t0)
    tokens = args.batch * args.seq
    result = {"device": str(device), "batch": args.batch, "seq": args.seq, "rounds": args.rounds,
              "compile": args.compile, "params_gpt2lib": ours.num_params(),
              "params_transformers": hf.num_parameters(), "threads": torch.get_num_threads(),
              "loadavg": os.getloadavg(), "torch": torch.__version__, "transformers": transformers.__version__,
              "python": platform.python_version(), "variants": {}}
    print(f"training step, {args.batch} x {args.seq} tokens on {device}, median of {args.rounds} "
          f"(load average {', '.join(f'{v:.1f}' for v in os.getloadavg())} on {os.cpu_count()} cores)")
    for name, ts in times.items():
        med = statistics.median(ts)
        result["variants"][name] = {"seconds": ts, "median_s": med, "tokens_per_s": tokens / med}
        line = f"{name:<32} {tokens / med:10.1f} tokens/s  ({med * 1000:.0f} ms/step)"
        if cuda and name == "gpt2lib":
            mfu = estimate_mfu(ours, args.seq, tokens / med)
            result["mfu_gpt2lib"] = mfu
            line += f"  MFU {100 * mfu:.1f}%" if mfu is not None else ""
        print(line)
    v = result["variants"]
    for ref in ("transformers", "transformers+fused", "transformers+fused, dropout 0"):
        ratio = v["gpt2lib"]["tokens_per_s"] / v[ref]["tokens_per_s"]
        result[f"ratio vs {ref}"] = ratio
        print(f"gpt2lib / {ref:<30} {ratio:.2f}x")
    write_results(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
