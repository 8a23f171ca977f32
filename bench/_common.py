"""What the benchmark scripts share: writing their results file."""
from __future__ import annotations

import json
from pathlib import Path


def write_results(path, data: dict) -> Path:
    """Write ``data`` as JSON to ``path`` through a temporary file and a rename, so that an interrupted
    run leaves the previous results whole (Appendix B and chapter 5 read these files)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    tmp.replace(path)
    print(f"results written to {path}")
    return path
