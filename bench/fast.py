"""Fast generation (chapter 10): int8 weights at batch 1, and batches of prompts of different lengths.

    python bench/fast.py                 # 64 new tokens, 5 alternating rounds
    python bench/fast.py --threads 2     # pin torch's intra-op threads (both libraries alike)

GPT-2 124M configuration, random weights (speed does not depend on their values), greedy, CPU.

1. Kernels: one decoding step's 49 matrix products (4 per block and the output head) at batch 1, in
   float32 and with int8 weights through each candidate kernel.
2. Batch 1: gpt2lib with int8 weights, gpt2lib float32 and transformers float32, alternating in one
   process; the ratio int8 / transformers is the headline figure.
3. Batches: prompts of 4 to 32 tokens, left-padded, at batch 1, 8 and 32; gpt2lib's generate with a
   list of prompts against transformers' batched generate with an attention mask, tokens/s summed over
   all rows, and whether both chose the same tokens.

Writes bench/results/fast.json (read by chapter 10 and the performance appendix).
"""
from __future__ import annotations

import copy
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from _common import machine, start, write_results  # noqa: E402
from generate import to_transformers  # noqa: E402
from gpt2lib.fast import KERNELS, Int8Linear, quantize  # noqa: E402
from gpt2lib.generate import generate  # noqa: E402
from gpt2lib.model import GPT, GPTConfig  # noqa: E402

TARGETS = {"int8_vs_transformers_fp32": 3.0, "batch8_vs_transformers": 1.0}


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def kernel_times(model: GPT, reps: int = 5) -> dict:
    """Seconds for one step's matrix products at batch 1: float32, then int8 through each kernel."""
    C = model.config.n_embd
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]      # 4 per block + head
    inputs = {C: torch.randn(1, 1, C), 4 * C: torch.randn(1, 1, 4 * C)}          # [1, 1, C], [1, 1, 4C]
    out = {}
    for kernel in ("float32",) + tuple(k for k in KERNELS if k != "auto"):
        layers = linears if kernel == "float32" else [Int8Linear(m, kernel) for m in linears]

        def step():
            with torch.inference_mode():
                for lin in layers:
                    lin(inputs[lin.in_features])                                  # [1, 1, out]
        step()
        out[kernel] = statistics.median(timed(step) for _ in range(reps if kernel != "reference" else 2))
    return out


def ragged_prompts(batch: int, vocab: int, seed: int) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(4, 33, (batch,), generator=g).tolist()
    return [torch.randint(0, vocab, (n,), generator=g).tolist() for n in lengths]


def hf_batch(hf, prompts: list[list[int]], n: int) -> list[list[int]]:
    T = max(map(len, prompts))
    ids = torch.tensor([[0] * (T - len(p)) + p for p in prompts])                # [B, T]
    mask = torch.tensor([[0] * (T - len(p)) + [1] * len(p) for p in prompts])    # [B, T]
    with torch.inference_mode():
        out = hf.generate(ids, attention_mask=mask, max_new_tokens=n, min_new_tokens=n, do_sample=False,
                          pad_token_id=0)                                         # [B, T + n]
    return [row[T - len(p):].tolist() for row, p in zip(out, prompts)]


def main(argv=None) -> int:
    def options(ap):
        ap.add_argument("--new-tokens", type=int, default=64, help="tokens generated per run (default 64)")
        ap.add_argument("--rounds", type=int, default=5, help="alternating rounds (default 5)")
        ap.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32], help="batch sizes (default 1 8 32)")

    args = start(__doc__, "fast.json", argv, options)
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
    torch.manual_seed(0)
    cfg = GPTConfig.from_name("gpt2")
    fp32 = GPT(cfg).eval()
    hf = to_transformers(fp32)
    int8 = quantize(copy.deepcopy(fp32))
    N = args.new_tokens
    idx = torch.randint(0, cfg.vocab_size, (1, 8))                                # [1, 8]

    kernels = kernel_times(fp32)
    print("one step's matrix products, batch 1: " + ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in kernels.items()))

    runs = {"gpt2lib_int8": lambda: generate(int8, idx, N, temperature=0.0),
            "gpt2lib_fp32": lambda: generate(fp32, idx, N, temperature=0.0),
            "transformers_fp32": lambda: hf_batch(hf, idx.tolist(), N)}
    for fn in runs.values():
        fn()                                                                      # warm-up
    samples = {k: [] for k in runs}
    for r in range(args.rounds):
        for name in (list(runs) if r % 2 == 0 else list(runs)[::-1]):
            samples[name].append(timed(runs[name]))
        print(f"  round {r + 1}/{args.rounds}: " + ", ".join(f"{k} {N / v[-1]:.1f} tok/s" for k, v in samples.items()),
              flush=True)
    tps = {k: N / statistics.median(v) for k, v in samples.items()}

    batched = {}
    for B in args.batches:
        prompts = ragged_prompts(B, cfg.vocab_size, seed=B)
        ours = generate(fp32, prompts, N, temperature=0.0)
        theirs = hf_batch(hf, prompts, N)
        t = {"gpt2lib": [], "transformers": []}
        for r in range(max(2, args.rounds // 2)):
            order = [("gpt2lib", lambda: generate(fp32, prompts, N, temperature=0.0)),
                     ("transformers", lambda: hf_batch(hf, prompts, N))]
            for name, fn in (order if r % 2 == 0 else order[::-1]):
                t[name].append(timed(fn))
        row = {k: B * N / statistics.median(v) for k, v in t.items()}
        row["ratio"] = row["gpt2lib"] / row["transformers"]
        row["same_tokens_rows"] = sum(a == b for a, b in zip(ours, theirs))
        row["prompt_lengths"] = [len(p) for p in prompts]
        batched[str(B)] = row
        print(f"  batch {B}: gpt2lib {row['gpt2lib']:.1f} tok/s, transformers {row['transformers']:.1f} tok/s, "
              f"ratio {row['ratio']:.2f}x, same tokens in {row['same_tokens_rows']}/{B} rows", flush=True)

    res = {
        "benchmark": "greedy decoding, GPT-2 124M configuration, random weights, CPU",
        "machine": machine(load_before),
        "settings": {"new_tokens": N, "rounds": args.rounds, "prompt_tokens_batch1": idx.size(1),
                     "batches": args.batches, "statistic": "median"},
        "matrix_products_s": kernels,
        "tokens_per_s": tps,
        "int8_vs_transformers_fp32": tps["gpt2lib_int8"] / tps["transformers_fp32"],
        "int8_vs_gpt2lib_fp32": tps["gpt2lib_int8"] / tps["gpt2lib_fp32"],
        "fp32_vs_transformers_fp32": tps["gpt2lib_fp32"] / tps["transformers_fp32"],
        "batched": batched,
        "samples_s": samples,
        "targets": TARGETS,
    }
    res["targets_met"] = {"int8_vs_transformers_fp32": res["int8_vs_transformers_fp32"] >= 3.0,
                          "batch8_vs_transformers": "8" in batched and batched["8"]["ratio"] >= 1.0}
    print(f"\nbatch 1, {N} new tokens: int8 {tps['gpt2lib_int8']:.1f} tok/s, gpt2lib fp32 "
          f"{tps['gpt2lib_fp32']:.1f}, transformers fp32 {tps['transformers_fp32']:.1f}; "
          f"int8 / transformers = {res['int8_vs_transformers_fp32']:.2f}x "
          f"(same settings, fp32 / fp32 = {res['fp32_vs_transformers_fp32']:.2f}x)")
    print(f"load average before/after: {load_before} / {res['machine']['load_average_after']}")
    write_results(args.out, res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
