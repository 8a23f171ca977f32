"""Small notebook helpers for authors of this book.

    python tools/nbtool.py execute notebooks/01_tokenization.ipynb [...]   # run top to bottom, in place
    python tools/nbtool.py from-py draft.py notebooks/NN_name.ipynb        # percent-format script -> notebook

``execute`` runs each notebook in a fresh kernel from this environment with ``notebooks/`` as the
working directory (as nbval does), numbers the cells 1, 2, 3, ... and drops volatile metadata, so a
committed notebook changes only when its outputs do.

``from-py`` reads the "percent" format: ``# %%`` starts a code cell, ``# %% [markdown]`` a markdown cell
whose lines start with ``# ``. It is a convenience for drafting; the notebook is the source afterwards.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import nbformat

KERNEL = {"display_name": "Python 3", "language": "python", "name": "python3"}


def from_py(src: Path, dest: Path) -> None:
    cells, kind, lines = [], None, []

    def flush():
        text = "\n".join(lines).strip("\n")
        if kind == "markdown":
            text = "\n".join(l[2:] if l.startswith("# ") else l.lstrip("#") for l in text.splitlines())
            cells.append(nbformat.v4.new_markdown_cell(text))
        elif kind == "code" and text:
            cells.append(nbformat.v4.new_code_cell(text))

    for line in src.read_text(encoding="utf-8").splitlines():
        if line.startswith("# %%"):
            flush()
            kind, lines = ("markdown" if "[markdown]" in line else "code"), []
        elif kind is not None:
            lines.append(line)
    flush()
    nb = nbformat.v4.new_notebook(cells=cells, metadata={"kernelspec": KERNEL,
                                                         "language_info": {"name": "python"}})
    nbformat.write(nb, dest)


def clean(nb) -> None:
    nb.metadata = {"kernelspec": KERNEL, "language_info": {"name": "python"},
                   **({"colab": nb.metadata["colab"]} if "colab" in nb.metadata else {})}
    for i, cell in enumerate(nb.cells):
        cell.metadata.pop("execution", None)
        cell["id"] = f"c{i:03d}"


def execute(path: Path, timeout: int = 600) -> float:
    from nbclient import NotebookClient

    # As in the tests: offline unless told otherwise (the online book build sets HF_HUB_OFFLINE=0),
    # one thread so that stored numbers match what `make test` recomputes.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    nb = nbformat.read(path, as_version=4)
    t0 = time.time()
    NotebookClient(nb, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    clean(nb)
    nbformat.write(nb, path)
    return time.time() - t0


def main(argv: list[str]) -> int:
    if len(argv) >= 3 and argv[0] == "from-py":
        from_py(Path(argv[1]), Path(argv[2]))
        return 0
    if len(argv) >= 2 and argv[0] == "execute":
        for p in argv[1:]:
            print(f"{p}: executed in {execute(Path(p)):.1f} s", flush=True)
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
