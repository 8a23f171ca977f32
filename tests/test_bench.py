"""The decoding benchmark's accounting: what it counts as the bytes of one step and as its matrix products.

The benchmark's speeds are never asserted (they belong to a machine); its arithmetic is.
"""
import importlib.util
import json
import sys

import torch
from conftest import ROOT

from gpt2lib.model import GPT, GPTConfig


sys.path.insert(0, str(ROOT / "bench"))          # the scripts import their shared helpers from there
from _common import write_results  # noqa: E402


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_generate", ROOT / "bench" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def small_model(n_layer=3, n_embd=48, n_head=4, vocab_size=211, block_size=37):
    torch.manual_seed(0)
    return GPT(GPTConfig(n_layer=n_layer, n_embd=n_embd, n_head=n_head, vocab_size=vocab_size,
                         block_size=block_size)).eval()


def test_bytes_per_token_counts_every_weight_once_and_one_position_row():
    bench, m = load_bench(), small_model()
    L, C, V = 3, 48, 211
    per_block = (C * 3 * C + 3 * C) + (C * C + C) + (C * 4 * C + 4 * C) + (4 * C * C + C) + 4 * C  # + 2 LNs
    expected = 4 * (L * per_block + V * C + 2 * C + C)          # blocks, tied wte/head, ln_f, one wpe row
    assert bench.weight_bytes_per_token(m) == expected


def test_matrix_products_run_each_linear_once_with_batch_one_inputs():
    bench, m = load_bench(), small_model(n_layer=2)
    seen = []
    hooks = [lin.register_forward_hook(lambda mod, inp, out: seen.append((mod, tuple(inp[0].shape), out.shape)))
             for lin in m.modules() if isinstance(lin, torch.nn.Linear)]
    bench.matrix_products(m)()
    for h in hooks:
        h.remove()
    linears = [x for x in m.modules() if isinstance(x, torch.nn.Linear)]
    assert len(linears) == 4 * 2 + 1 and [s[0] for s in seen] == linears
    for mod, in_shape, out_shape in seen:
        assert in_shape == (1, 1, mod.in_features) and tuple(out_shape) == (1, 1, mod.out_features)


def test_results_file_is_replaced_whole(tmp_path):
    out = tmp_path / "new" / "r.json"
    write_results(out, {"a": 1})
    write_results(out, {"b": [1.5, None]})
    assert json.loads(out.read_text()) == {"b": [1.5, None]}
    assert sorted(p.name for p in out.parent.iterdir()) == ["r.json"]      # no temporary file left
