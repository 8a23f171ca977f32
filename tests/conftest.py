"""Shared test settings: offline, quiet, and the tools/ folder importable."""
import os
import sys
from pathlib import Path

# Without this, an offline `from_pretrained("gpt2")` waits ~25 s for a network that is not there.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
