"""Our pure-Python GPT-2 encoder against tiktoken's Rust one, on the book's default corpus, in one process.

    python bench/tokenizer.py [--runs 7]

Runs alternate (ours, tiktoken, ours, ...) so that a busy machine slows both alike; we report medians.
"warm" is the encoder as used: its per-chunk cache already holds the corpus's chunks. "cold" empties that
cache before every run, so each distinct chunk is merged again. Exit status 1 if the ids differ.
"""
import argparse
import os
import platform
import statistics
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import tiktoken  # noqa: E402

from _common import write_results  # noqa: E402
from gpt2lib.data import load_corpus  # noqa: E402
from gpt2lib.tokenizer import gpt2_tokenizer  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "tokenizer.json")


def timed(f):
    t0 = time.perf_counter()
    out = f()
    return time.perf_counter() - t0, out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=7)
    args = p.parse_args(argv)
    text = load_corpus()
    ours, ref = gpt2_tokenizer(), tiktoken.get_encoding("gpt2")
    ids_ours, ids_ref = ours.encode(text), ref.encode(text)
    same = ids_ours == ids_ref
    cold, warm, theirs = [], [], []
    for _ in range(args.runs):
        ours._cache.clear()
        cold.append(timed(lambda: ours.encode(text))[0])
        theirs.append(timed(lambda: ref.encode(text))[0])
        warm.append(timed(lambda: ours.encode(text))[0])
    t_cold, t_warm, t_ref = map(statistics.median, (cold, warm, theirs))
    print(f"corpus: {len(text):,} characters, {len(ids_ref):,} tokens; {args.runs} alternating runs, medians")
    print(f"tiktoken           {t_ref * 1000:8.1f} ms")
    print(f"gpt2lib (warm)     {t_warm * 1000:8.1f} ms   ratio {t_warm / t_ref:.2f}x")
    print(f"gpt2lib (cold)     {t_cold * 1000:8.1f} ms   ratio {t_cold / t_ref:.2f}x")
    print(f"ids identical: {same}")
    result = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
              "python": platform.python_version(), "tiktoken": tiktoken.__version__,
              "loadavg": os.getloadavg(), "runs": args.runs, "characters": len(text),
              "tokens": len(ids_ref), "tiktoken_s": t_ref, "gpt2lib_warm_s": t_warm,
              "gpt2lib_cold_s": t_cold, "ratio_warm": t_warm / t_ref, "ratio_cold": t_cold / t_ref,
              "ids_identical": same}
    write_results(RESULTS, result)
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
