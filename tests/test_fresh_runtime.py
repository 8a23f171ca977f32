"""A reader's fresh runtime (Colab, a new laptop): gpt2lib from a wheel, one chapter alone in a folder.

A new virtual environment outside the repository gets what a Colab runtime already has (PyTorch,
matplotlib, a Jupyter kernel) plus a wheel of gpt2lib built from this repository; then one chapter
notebook, copied alone into an empty folder, must execute there from top to bottom.
"""
import os
import shutil
import subprocess
import sys
import venv

import pytest

from conftest import ROOT

CHAPTER = "01_tokenization.ipynb"
RUN = """
import sys, nbformat
from nbclient import NotebookClient
nb = nbformat.read(sys.argv[1], as_version=4)
NotebookClient(nb, timeout=600, kernel_name="python3").execute(cwd=sys.argv[2])
for c in nb.cells:
    for o in c.get("outputs", []):
        if o["output_type"] == "error":
            sys.exit(f"error output: {o['ename']}: {o['evalue']}")
setup = next(c for c in nb.cells if "show_versions" in c.source)
print("".join(o.get("text", "") for o in setup.outputs if o["output_type"] == "stream"))
"""


def _torch_spec() -> str:
    import torch  # the same release as this environment's, so pip can reuse its wheel

    return f"torch=={torch.__version__.split('+')[0]}"


@pytest.mark.skipif(not (ROOT / "notebooks" / CHAPTER).exists(), reason=f"{CHAPTER} not written yet")
def test_one_chapter_runs_alone_with_gpt2lib_from_a_wheel(tmp_path):
    wheels, env_dir, work = tmp_path / "wheels", tmp_path / "venv", tmp_path / "empty"
    work.mkdir()
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "-w", str(wheels), str(ROOT)], check=True, capture_output=True)
    wheel = next(wheels.glob("gpt2lib-*.whl"))
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    pip = [str(py), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, _torch_spec()], check=True, env=env, capture_output=True)
    subprocess.run([*pip, str(wheel), "matplotlib", "ipykernel", "nbclient", "nbformat"], check=True,
                   env=env, capture_output=True)
    shutil.copy(ROOT / "notebooks" / CHAPTER, work / CHAPTER)
    out = subprocess.run([str(py), "-c", RUN, str(work / CHAPTER), str(work)], cwd=work, env=env,
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "gpt2lib" in out.stdout  # the first cell printed the versions it runs with
    assert not (work / "gpt2lib").exists()  # nothing from the repository came along
