"""Shared test settings: offline, quiet, and the tools/ folder importable."""
import os
import sys
from pathlib import Path

import pytest

# Without this, an offline `from_pretrained("gpt2")` waits ~25 s for a network that is not there.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

# CI runs the property tests on a fixed sequence of examples, so that a red run can be replayed
# exactly; elsewhere hypothesis explores new examples on every run.
from hypothesis import settings  # noqa: E402

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One PyTorch thread per test process: the test models are small, and on a busy 2-core machine two
    threads mostly wait for each other (10x slower and more, measured while writing the chapters)."""
    import torch

    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


# ---- shared builders: every test file makes its tiny models and their transformers twins here ----

TINY = dict(block_size=32, vocab_size=97, n_layer=2, n_head=2, n_embd=32)
CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


def random_gpt(seed: int = 0, std: float | None = None, **config):
    """A small random gpt2lib GPT in eval mode (TINY, with `config` overriding it).

    std=None keeps GPT-2's own initialisation. A std (0.5, say) draws large weights, and position
    embeddings larger still: a GPT-2-initialised model repeats one token forever, which would make
    token-for-token comparisons too easy."""
    import torch
    from gpt2lib.model import GPT, GPTConfig

    torch.manual_seed(seed)
    model = GPT(GPTConfig(**{"dropout": 0.0, **TINY, **config})).eval()
    if std is not None:
        with torch.no_grad():
            for name, p in model.named_parameters():
                if ".ln_" in name:
                    p.normal_(1.0 if name.endswith("weight") else 0.0, 0.1)
                else:
                    p.normal_(0.0, 0.3 if "wte" in name else 1.0 if "wpe" in name else std)
    return model


def hf_twin(model):
    """transformers' GPT2LMHeadModel with the weights of a gpt2lib GPT, written here independently of
    gpt2lib.pretrained (the four Conv1D weights transposed), so that parity tests test something."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    c = model.config
    hf = GPT2LMHeadModel(GPT2Config(vocab_size=c.vocab_size, n_positions=c.block_size, n_layer=c.n_layer,
                                    n_head=c.n_head, n_embd=c.n_embd, layer_norm_epsilon=c.layer_norm_eps,
                                    resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                                    bos_token_id=None, eos_token_id=None, pad_token_id=None)).eval()
    ours = model.state_dict()
    with torch.no_grad():
        for key, p in hf.state_dict().items():
            p.copy_(ours[key].t() if key.endswith(CONV1D) else ours[key])
    return hf


def hf_folder(path, seed: int = 0, initializer_range: float = 0.3, **config):
    """A random transformers GPT-2 written by save_pretrained into `path` (config.json and
    model.safetensors: what a download from the hub gives). Returns the path."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    settings = {"n_layer": 2, "n_embd": 64, "n_head": 4, "n_positions": 128, "vocab_size": 50257, **config}
    GPT2LMHeadModel(GPT2Config(initializer_range=initializer_range, **settings)).eval().save_pretrained(path)
    return path


@pytest.fixture
def tiny_model():
    """A fresh small random GPT (see random_gpt)."""
    return random_gpt()


@pytest.fixture(scope="session")
def hf_dir(tmp_path_factory):
    """A tiny Hugging Face folder with GPT-2's full vocabulary, made once per test session."""
    return hf_folder(tmp_path_factory.mktemp("tiny_gpt2"))
