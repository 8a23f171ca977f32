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
