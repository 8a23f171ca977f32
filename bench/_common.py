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


def start(doc: str, out_name: str, argv, add_options) -> "argparse.Namespace":
    """Parse a benchmark's command line (its own options, added by `add_options(parser)`, plus --threads
    and --out), pin torch's threads if asked, and return the arguments."""
    import argparse

    import torch

    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    add_options(ap)
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / out_name)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    return args


def machine(load_before) -> dict:
    """What a result depends on: the CPU, threads, versions, and the load average before and now."""
    import os
    import platform

    import torch

    return {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
            "torch": torch.__version__, "transformers": __import__("transformers").__version__,
            "load_average_before": load_before,
            "load_average_after": os.getloadavg() if hasattr(os, "getloadavg") else None}
