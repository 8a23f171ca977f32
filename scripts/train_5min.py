"""Chapter 6's budget run: a small GPT trained on the default corpus for at most 5 CPU minutes.

    python scripts/train_5min.py                    # writes bench/results/train_5min.json
    python scripts/train_5min.py --steps 200 --out /tmp/x.json   # a quicker look

The run is a fixed number of optimizer steps (so that its result is the same on every machine with
the same torch), on one thread by default, and stops early if the process has used its CPU budget
(user + system time of all its threads, which other programs on the machine do not inflate, unlike
wall-clock time). It then scores the whole validation text and compares bits per byte with a unigram
model, gzip and xz on the same bytes, alone and given the training text.
"""
import argparse
import os
import platform
import sys
import time
from pathlib import Path

import torch

from gpt2lib.data import load_corpus, split_text
from gpt2lib.model import GPT, GPTConfig
from gpt2lib.tokenizer import BPETokenizer
from gpt2lib.train import TrainConfig, bits_per_byte, evaluate, train

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from _common import write_results  # noqa: E402


# The baselines of chapter 6 (defined there in unexported cells: the library does not need them).
def unigram_bpb(train_ids, val_ids, vocab_size: int, n_bytes: int, alpha: float = 1.0) -> float:
    """Bits per byte of ``val_ids`` under token frequencies counted on ``train_ids`` (add-alpha smoothing).

    With bytes as tokens (``list(text.encode())``, vocab_size=256) this is the classic order-0 model.
    """
    train_ids = torch.as_tensor(train_ids, dtype=torch.long).flatten()
    val_ids = torch.as_tensor(val_ids, dtype=torch.long).flatten()
    counts = torch.bincount(train_ids, minlength=vocab_size).double() + alpha      # [V]
    logp = counts.log() - counts.sum().log()                                     # [V] log-probabilities
    return bits_per_byte(-logp[val_ids].sum().item(), n_bytes)


def compressor_bpb(train_text: str, val_text: str) -> dict:
    """Bits per byte of the validation text for gzip -9 and xz -9e, alone and given the training text.

    "Given" is size(compress(train + val)) - size(compress(train)): what the compressor pays for the
    validation bytes once it has read the training bytes.
    """
    import gzip
    import lzma

    tb, vb = train_text.encode("utf-8"), val_text.encode("utf-8")
    size = {"gzip -9": lambda b: len(gzip.compress(b, compresslevel=9, mtime=0)),
            "xz -9e": lambda b: len(lzma.compress(b, preset=9 | lzma.PRESET_EXTREME))}
    out = {}
    for name, f in size.items():
        out[name] = 8 * f(vb) / len(vb)
        out[name + " given train"] = 8 * (f(tb + vb) - f(tb)) / len(vb)
    return out


class OutOfBudget(Exception):
    pass


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--vocab", type=int, default=1024)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--embd", type=int, default=128)
    p.add_argument("--block", type=int, default=128)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--eval-stride", type=int, default=None, help="final evaluation stride (default block/2)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--budget", type=float, default=300.0, help="CPU seconds for tokenizer + training")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(ROOT / "bench/results/train_5min.json"))
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    text = load_corpus()
    train_text, val_text = split_text(text, 0.1)
    val_bytes = len(val_text.encode("utf-8"))
    tok = BPETokenizer.train(train_text, args.vocab)
    train_ids, val_ids = tok.encode(train_text), tok.encode(val_text)
    assert tok.decode(val_ids) == val_text
    torch.manual_seed(args.seed)
    model = GPT(GPTConfig(block_size=args.block, vocab_size=tok.n_vocab, n_layer=args.layers,
                          n_head=args.heads, n_embd=args.embd, dropout=args.dropout))
    cfg = TrainConfig(batch_size=args.batch, block_size=args.block, max_steps=args.steps, lr=args.lr,
                      warmup_steps=args.warmup, weight_decay=args.weight_decay, eval_interval=args.steps // 7,
                      eval_batch_size=32, seed=args.seed, device="cpu", progress=sys.stderr.isatty())
    print(f"{len(train_ids):,} training tokens, {len(val_ids):,} validation tokens ({val_bytes:,} bytes), "
          f"model {model.num_params():,} parameters, {args.steps} steps of {args.batch}x{args.block} tokens",
          flush=True)

    def budget(step, history):
        if step % 50 == 0:
            print(f"step {step:5d}  loss {history['loss'][-1]:.3f}  cpu {time.process_time() - cpu0:6.1f} s  "
                  f"wall {time.perf_counter() - wall0:6.1f} s", flush=True)
        if time.process_time() - cpu0 > args.budget:
            raise OutOfBudget(step)

    stopped_at = None
    try:
        history = train(model, train_ids, val_ids, cfg, tokenizer=tok, val_bytes=val_bytes, callback=budget)
    except OutOfBudget as e:
        stopped_at = e.args[0]
        history = None
    cpu_train, wall_train = time.process_time() - cpu0, time.perf_counter() - wall0
    stride = args.eval_stride or args.block // 2
    final = evaluate(model, val_ids, args.block, 32, val_bytes, stride=stride)
    plain = evaluate(model, val_ids, args.block, 32, val_bytes)
    baselines = {"unigram (bytes)": unigram_bpb(list(train_text.encode()), list(val_text.encode()), 256, val_bytes),
                 f"unigram (BPE {tok.n_vocab})": unigram_bpb(train_ids, val_ids, tok.n_vocab, val_bytes),
                 **compressor_bpb(train_text, val_text)}
    result = {
        "model_bpb": final["bpb"], "model_bpb_stride_block": plain["bpb"], "eval_stride": stride,
        "val_loss": final["loss"], "val_ppl": final["ppl"], "baselines": baselines,
        "beats_xz_alone": final["bpb"] < baselines["xz -9e"],
        "gap_to_xz_given_train": final["bpb"] - baselines["xz -9e given train"],
        "cpu_seconds": cpu_train, "wall_seconds": wall_train, "stopped_early_at_step": stopped_at,
        "threads": args.threads, "loadavg_at_end": os.getloadavg(), "cpu_count": os.cpu_count(),
        "args": vars(args), "n_params": model.num_params(), "tokens_seen": (history or {}).get("tokens"),
        "history": {k: history[k] for k in ("step", "loss", "val_step", "val_loss", "val_bpb")} if history else None,
        "torch": torch.__version__, "python": platform.python_version(), "machine": platform.machine(),
    }
    print(f"\ntraining used {cpu_train:.1f} CPU s ({wall_train:.1f} s wall, load average "
          f"{', '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores)")
    print(f"{'model':<28} {'bits/byte':>9}")
    print(f"{'GPT, stride ' + str(stride):<28} {final['bpb']:9.3f}")
    print(f"{'GPT, stride ' + str(args.block):<28} {plain['bpb']:9.3f}")
    for k, v in baselines.items():
        print(f"{k:<28} {v:9.3f}")
    write_results(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
