"""Decoding speed of gpt2lib against Hugging Face transformers, GPT-2 124M, batch 1, greedy.

    python bench/generate.py                  # 128 new tokens, 7 rounds with the KV cache, 3 without
    python bench/generate.py --threads 1      # pin torch's intra-op threads (both libraries alike)

Both models hold the same random weights (speed does not depend on their values) in fp32 on the CPU and
decode an 8-token prompt greedily. transformers is configured so that it never stops early (no
end-of-text token). Runs alternate in one process (gpt2lib, transformers, memory read, then the reverse
order), so that a busy machine slows both alike; the figures are medians.

The bandwidth bound: batch-1 decoding must read every weight once per token (the tied embedding/output
matrix once, plus one row of the position embedding), so tokens/s can be at most
read bandwidth / bytes per token. The read bandwidth is measured here, in the same rounds, as the time
to sum a tensor of the same size as those weights. A second, tighter ceiling is timed too: the step's
matrix products alone (the 4 per block and the output head, at batch 1, back to back, with nothing in
between). No implementation that runs these kernels can decode faster than that, whatever it does
around them; the ratio of that ceiling to transformers' speed is the most any such library could reach.

Prints tokens/s, the ratio gpt2lib / transformers, the cache speed-up and the fraction of the bound,
and writes them to bench/results/generate.json (read by the performance appendix and chapter 5).
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from _common import write_results  # noqa: E402
from gpt2lib.generate import generate  # noqa: E402
from gpt2lib.model import GPT, GPTConfig  # noqa: E402

TARGETS = {"ratio_vs_transformers": 1.3, "bound_fraction": 0.85, "cache_speedup": 3.0}


def to_transformers(model: GPT):
    """transformers' GPT2LMHeadModel holding the same weights (chapter 7's mapping); it never stops early."""
    from transformers.utils import logging as hf_logging
    from gpt2lib.pretrained import to_transformers as convert
    hf_logging.set_verbosity_error()
    hf = convert(model)
    hf.generation_config.eos_token_id = hf.generation_config.bos_token_id = None   # no end-of-text stop
    return hf


def weight_bytes_per_token(model: GPT) -> int:
    """Bytes of weights one batch-1 decoding step reads: every parameter once (named_parameters lists
    the tied wte/lm_head matrix once), except the position table, of which one row is read."""
    total = sum(p.numel() * p.element_size() for name, p in model.named_parameters()
                if name != "transformer.wpe.weight")
    wpe = model.transformer.wpe.weight
    return total + wpe.size(1) * wpe.element_size()


def matrix_products(model: GPT):
    """A function that runs one batch-1 decoding step's matrix products and nothing else: per block the
    QKV, attention-output, MLP-in and MLP-out projections, then the output head (the GEMV floor)."""
    C = model.config.n_embd
    x, x4 = torch.randn(1, 1, C), torch.randn(1, 1, 4 * C)                 # [1, 1, C], [1, 1, 4C]
    layers = [(m, x4 if m.in_features == 4 * C else x) for m in model.modules()
              if isinstance(m, torch.nn.Linear)]                           # 4 per block + lm_head

    def run():
        with torch.inference_mode():
            for lin, inp in layers:
                lin(inp)                                                   # [1, 1, out]
    return run


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--new-tokens", type=int, default=128, help="tokens generated per run (default 128)")
    ap.add_argument("--prompt-len", type=int, default=8, help="prompt length in tokens (default 8)")
    ap.add_argument("--rounds", type=int, default=7, help="alternating rounds with the KV cache (default 7)")
    ap.add_argument("--no-cache-rounds", type=int, default=3, help="rounds without the cache (default 3)")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "generate.json")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None

    torch.manual_seed(0)
    cfg = GPTConfig.from_name("gpt2")
    ours = GPT(cfg).eval()
    theirs = to_transformers(ours)
    idx = torch.randint(0, cfg.vocab_size, (1, args.prompt_len))          # [1, 8]
    N = args.new_tokens
    nbytes = weight_bytes_per_token(ours)
    buf = torch.rand(nbytes // 4)                                          # as large as the weights
    products = matrix_products(ours)

    def run_ours(use_cache):
        return generate(ours, idx, N, temperature=0.0, use_cache=use_cache)

    def run_theirs(use_cache):
        with torch.inference_mode():
            return theirs.generate(idx, attention_mask=torch.ones_like(idx), max_new_tokens=N,
                                   min_new_tokens=N, do_sample=False, use_cache=use_cache, pad_token_id=0)

    def read_all():
        with torch.inference_mode():
            return buf.sum()

    def timed(fn, *a):
        t0 = time.perf_counter()
        out = fn(*a)
        return time.perf_counter() - t0, out

    # warm-up, and a check that both do the same work: identical tokens
    _, a = timed(run_ours, True)
    _, b = timed(run_theirs, True)
    same_tokens = bool(torch.equal(a, b)) and a.shape == (1, args.prompt_len + N)
    for _ in range(3):
        read_all()

    samples = {k: [] for k in ("gpt2lib_cache", "transformers_cache", "read", "products",
                               "gpt2lib_no_cache", "transformers_no_cache")}
    for r in range(args.rounds):
        order = [("gpt2lib_cache", run_ours), ("transformers_cache", run_theirs)]
        for name, fn in (order if r % 2 == 0 else order[::-1]):
            samples[name].append(timed(fn, True)[0])
        samples["read"].append(min(timed(read_all)[0] for _ in range(3)))
        samples["products"].append(statistics.median(timed(products)[0] for _ in range(9)))
        print(f"  round {r + 1}/{args.rounds}: gpt2lib {N / samples['gpt2lib_cache'][-1]:.1f} tok/s, "
              f"transformers {N / samples['transformers_cache'][-1]:.1f} tok/s, "
              f"read {nbytes / samples['read'][-1] / 1e9:.1f} GB/s, "
              f"matrix products alone {1 / samples['products'][-1]:.1f} steps/s", flush=True)
    for r in range(args.no_cache_rounds):
        order = [("gpt2lib_no_cache", run_ours), ("transformers_no_cache", run_theirs)]
        for name, fn in (order if r % 2 == 0 else order[::-1]):
            samples[name].append(timed(fn, False)[0])
        print(f"  no-cache round {r + 1}/{args.no_cache_rounds}: gpt2lib {N / samples['gpt2lib_no_cache'][-1]:.1f} "
              f"tok/s, transformers {N / samples['transformers_no_cache'][-1]:.1f} tok/s", flush=True)

    tps = {k: N / statistics.median(v) for k, v in samples.items() if k not in ("read", "products") and v}
    products_tps = 1 / statistics.median(samples["products"])              # steps (= tokens) per s
    bandwidth = nbytes / statistics.median(samples["read"])                # bytes/s
    bound = bandwidth / nbytes                                             # tokens/s
    res = {
        "benchmark": "greedy decoding, GPT-2 124M configuration, random weights, fp32, batch 1, CPU",
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
                    "torch": torch.__version__, "transformers": __import__("transformers").__version__,
                    "load_average_before": load_before,
                    "load_average_after": os.getloadavg() if hasattr(os, "getloadavg") else None},
        "settings": {"prompt_tokens": args.prompt_len, "new_tokens": N, "rounds": args.rounds,
                     "no_cache_rounds": args.no_cache_rounds, "statistic": "median"},
        "same_tokens": same_tokens,
        "tokens_per_s": tps,
        "ratio_vs_transformers": tps["gpt2lib_cache"] / tps["transformers_cache"],
        "ratio_vs_transformers_no_cache": (tps["gpt2lib_no_cache"] / tps["transformers_no_cache"]
                                           if "gpt2lib_no_cache" in tps else None),
        "cache_speedup": ({"gpt2lib": tps["gpt2lib_cache"] / tps["gpt2lib_no_cache"],
                           "transformers": tps["transformers_cache"] / tps["transformers_no_cache"]}
                          if "gpt2lib_no_cache" in tps else None),
        "bytes_per_token": nbytes,
        "bandwidth_GBps": bandwidth / 1e9,
        "bound_tokens_per_s": bound,
        "bound_fraction": {"gpt2lib": tps["gpt2lib_cache"] / bound,
                           "transformers": tps["transformers_cache"] / bound},
        "matrix_products_tokens_per_s": products_tps,
        "matrix_products_fraction_of_bound": products_tps / bound,
        "ceiling_ratio_vs_transformers": products_tps / tps["transformers_cache"],
        "samples_s": samples,
        "targets": TARGETS,
    }
    res["targets_met"] = {
        "ratio_vs_transformers": res["ratio_vs_transformers"] >= TARGETS["ratio_vs_transformers"],
        "bound_fraction": res["bound_fraction"]["gpt2lib"] >= TARGETS["bound_fraction"],
        "cache_speedup": bool(res["cache_speedup"]) and res["cache_speedup"]["gpt2lib"] >= TARGETS["cache_speedup"],
    }

    print(f"\nGPT-2 124M (random weights), fp32, batch 1, {args.prompt_len}-token prompt, {N} new tokens, "
          f"greedy, {torch.get_num_threads()} threads; medians of {args.rounds} (cache) and "
          f"{args.no_cache_rounds} (no cache) alternating rounds")
    print(f"same tokens from both: {same_tokens}")
    print(f"{'':24s}{'gpt2lib':>10s}{'transformers':>14s}{'ratio':>8s}")
    for label, key in (("KV cache, tokens/s", "cache"), ("no cache, tokens/s", "no_cache")):
        if f"gpt2lib_{key}" in tps:
            g, h = tps[f"gpt2lib_{key}"], tps[f"transformers_{key}"]
            print(f"{label:24s}{g:>10.1f}{h:>14.1f}{g / h:>7.2f}x")
    if res["cache_speedup"]:
        print(f"{'cache speed-up':24s}{res['cache_speedup']['gpt2lib']:>9.1f}x"
              f"{res['cache_speedup']['transformers']:>13.1f}x")
    print(f"bandwidth bound: {nbytes / 1e6:.1f} MB of weights per token, read at {bandwidth / 1e9:.1f} GB/s "
          f"-> {bound:.1f} tokens/s")
    print(f"{'fraction of the bound':24s}{res['bound_fraction']['gpt2lib']:>10.0%}"
          f"{res['bound_fraction']['transformers']:>14.0%}")
    print(f"matrix products alone: {products_tps:.1f} tokens/s ({products_tps / bound:.0%} of the bound); "
          f"a library doing nothing else would be {res['ceiling_ratio_vs_transformers']:.2f}x transformers")
    print(f"load average before/after: {load_before} / {res['machine']['load_average_after']}")
    print("targets: " + ", ".join(f"{k} >= {v}: {'met' if res['targets_met'][k] else 'NOT met'}"
                                  for k, v in TARGETS.items()))

    write_results(args.out, res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
