"""How fast is GPT-2 in pure Python? Decoding speed of gpt2lib.purepy.PureGPT, with the KV cache.

    .venv/bin/python bench/purepy.py            # small config + the 124M config (~2 minutes, ~5 GB RAM)
    .venv/bin/python bench/purepy.py --small    # the small config only (a few seconds)

Builds a randomly initialised gpt2lib GPT (speed does not depend on the weights' values), copies it
into PureGPT, feeds a short prompt, then times single decoding steps exactly as
``PureGPT.generate`` runs them (one new position against the KV cache) and reports the median.
It also times the inner product ``sum(map(mul, row, x))`` alone, to show that the model's cost is
(multiply-adds per token) x (Python's time per multiply-add). Results go to bench/results/purepy.json.
It measures and prints; it asserts nothing.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import statistics
import time
from operator import mul
from pathlib import Path

import torch

from _common import write_results
from gpt2lib.model import GPT, GPTConfig
from gpt2lib.purepy import PureGPT

OUT = Path(__file__).resolve().parent / "results" / "purepy.json"
SMALL = dict(n_layer=4, n_head=4, n_embd=128, block_size=128, vocab_size=1024)  # as in appendix A


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def multiply_adds_per_token(c: GPTConfig, context: int) -> int:
    """Multiply-adds of one decoding step: every weight matrix once, plus attention over the context."""
    C = c.n_embd
    matrices = c.n_layer * (3 * C * C + C * C + 4 * C * C + 4 * C * C) + c.vocab_size * C
    attention = c.n_layer * 2 * context * C          # q.k for every key, then the weighted values
    return matrices + attention


def ns_per_multiply_add(n: int = 768, rows: int = 2000, repeats: int = 5) -> float:
    """Python's time for one multiply-add inside sum(map(mul, row, x)), median of a few runs."""
    rnd = random.Random(0)
    W = [[rnd.gauss(0, 1) for _ in range(n)] for _ in range(rows)]
    x = [rnd.gauss(0, 1) for _ in range(n)]
    times, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        [sum(map(mul, row, x)) for row in W]
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return statistics.median(times) / (n * rows) * 1e9, statistics.median(cpu) / (n * rows) * 1e9


def time_decoding(cfg: GPTConfig, prompt_len: int, steps: int) -> dict:
    torch.manual_seed(0)
    t0 = time.perf_counter()
    model = GPT(cfg).eval()
    t_build = time.perf_counter() - t0
    rnd = random.Random(0)
    prompt = [rnd.randrange(cfg.vocab_size) for _ in range(prompt_len)]
    torch_times = []            # the same steps in PyTorch (float32, KV cache, one thread like Python)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with torch.no_grad():
        cache = model.new_cache()
        logits = model(torch.tensor([prompt]), cache=cache, last_only=True)[0, -1]
        for _ in range(20):
            tok = logits.argmax().view(1, 1)
            t0 = time.perf_counter()
            logits = model(tok, cache=cache, last_only=True)[0, -1]
            torch_times.append(time.perf_counter() - t0)
    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    pm = PureGPT.from_torch(model)
    t_convert = time.perf_counter() - t0
    del model
    cache = pm.new_cache()
    t0 = time.perf_counter()
    logits = pm._run(prompt, cache, last_only=True)[0]          # the prompt, all positions at once
    t_prefill = time.perf_counter() - t0
    step_times, step_cpu = [], []
    for _ in range(steps):                                      # what generate() does per token
        tok = max(range(len(logits)), key=logits.__getitem__)
        t0, c0 = time.perf_counter(), time.process_time()
        logits = pm._run([tok], cache, last_only=True)[0]
        step_times.append(time.perf_counter() - t0)
        step_cpu.append(time.process_time() - c0)
    context = prompt_len + steps // 2
    return dict(config=cfg.to_dict(), params=pm.num_params(), prompt_len=prompt_len, steps=steps,
                build_torch_model_s=round(t_build, 3), convert_s=round(t_convert, 3),
                prefill_s=round(t_prefill, 4), step_s=[round(t, 5) for t in step_times],
                median_step_s=round(statistics.median(step_times), 5),
                torch_float32_median_step_s=round(statistics.median(torch_times), 5),
                step_cpu_s=[round(t, 5) for t in step_cpu],
                median_step_cpu_s=round(statistics.median(step_cpu), 5),
                multiply_adds_per_token=multiply_adds_per_token(cfg, context))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small", action="store_true", help="only the small configuration")
    ap.add_argument("--steps", type=int, default=5, help="decoding steps timed at 124M (default 5)")
    args = ap.parse_args()

    load_before = os.getloadavg()
    ns, ns_cpu = ns_per_multiply_add()
    print(f"load average (1, 5, 15 min): {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f} "
          f"on {os.cpu_count()} CPUs (wall-clock times suffer when it is above the CPU count; "
          f"CPU times, also reported, much less)")
    print(f"one multiply-add in sum(map(mul, row, x)): {ns:.1f} ns wall, {ns_cpu:.1f} ns CPU")
    results = dict(python=platform.python_version(), machine=platform.machine(),
                   processor=cpu_name(), cpus=os.cpu_count(),
                   loadavg_before=[round(v, 2) for v in load_before], ns_per_multiply_add=round(ns, 2),
                   ns_per_multiply_add_cpu=round(ns_cpu, 2))

    small = time_decoding(GPTConfig(**SMALL), prompt_len=8, steps=50)
    ms = small["median_step_s"] * 1e3
    print(f"small {SMALL}: {small['params']:,} params, {ms:.2f} ms/token (median of 50; "
          f"CPU {small['median_step_cpu_s'] * 1e3:.2f} ms; PyTorch float32, 1 thread "
          f"{small['torch_float32_median_step_s'] * 1e3:.2f} ms), "
          f"predicted {small['multiply_adds_per_token'] * ns / 1e6:.2f} ms from the multiply-adds")
    results["small"] = dict(small, median_ms_per_token=round(ms, 3))

    if not args.small:
        big = time_decoding(GPTConfig.from_name("gpt2"), prompt_len=8, steps=args.steps)
        s = big["median_step_s"]
        print(f"gpt2 (124M): {big['params']:,} params, converted in {big['convert_s']:.1f} s, "
              f"prompt of 8 in {big['prefill_s']:.1f} s, {s:.2f} s/token (median of {args.steps}: "
              f"{', '.join(f'{t:.2f}' for t in big['step_s'])}; CPU time "
              f"{big['median_step_cpu_s']:.2f} s; PyTorch float32, 1 thread "
              f"{big['torch_float32_median_step_s'] * 1e3:.0f} ms); predicted from the multiply-adds: "
              f"{big['multiply_adds_per_token'] * ns / 1e9:.2f} s wall, "
              f"{big['multiply_adds_per_token'] * ns_cpu / 1e9:.2f} s CPU")
        results["gpt2"] = dict(big, median_s_per_token=round(s, 3))

    results["peak_rss_gb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
    results["loadavg_after"] = [round(v, 2) for v in os.getloadavg()]
    print(f"peak memory (RSS): {results['peak_rss_gb']:.1f} GB")
    print(f"load average after: {' '.join(f'{v:.2f}' for v in results['loadavg_after'])}")
    if OUT.exists() and args.small:            # keep an earlier 124M figure when only --small ran
        old = json.loads(OUT.read_text())
        if "gpt2" in old:
            results["gpt2"] = old["gpt2"]
            results["gpt2_from_earlier_run"] = True
    write_results(OUT, results)


if __name__ == "__main__":
    main()
