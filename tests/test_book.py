"""The book's structure: every chapter in the table of contents, executed, pointing at one repository."""
import json
import re

import pytest

from conftest import ROOT

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def repo_url() -> str:
    m = re.search(r"^repository:\s*\n\s+url:\s*(\S+)", (ROOT / "_config.yml").read_text(), re.M)
    assert m, "_config.yml must name the repository URL under repository: url:"
    return m.group(1).rstrip("/")


def cells(nb):
    return json.loads(nb.read_text(encoding="utf-8"))["cells"]


def test_there_are_chapters():
    assert NOTEBOOKS, "notebooks/ holds no chapter"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.name)
def test_chapter_is_in_the_table_of_contents(nb):
    assert f"file: notebooks/{nb.stem}" in (ROOT / "_toc.yml").read_text(), f"add {nb.name} to _toc.yml"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.name)
def test_chapter_points_at_the_repository_of_config(nb):
    url = repo_url()
    slug = url.removeprefix("https://github.com/")
    first_md = "".join(cells(nb)[0]["source"])
    badge = f"https://colab.research.google.com/github/{slug}/blob/main/notebooks/{nb.name}"
    assert badge in first_md, f"{nb.name}: the first cell needs the Colab badge linking {badge}"
    setup = next(src for c in cells(nb) if c["cell_type"] == "code"
                 if not (src := "".join(c["source"])).startswith("#| default_exp"))
    assert f'"gpt2lib @ git+{url}"' in setup, f"{nb.name}: the first code cell must install gpt2lib from {url}"
    assert "gpt2lib.show_versions()" in setup


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.name)
def test_chapter_is_committed_executed_top_to_bottom(nb):
    code = [c for c in cells(nb) if c["cell_type"] == "code" and "".join(c["source"]).strip()]
    counts = [c["execution_count"] for c in code]
    assert counts == list(range(1, len(code) + 1)), f"{nb.name}: run `make execute NB=notebooks/{nb.name}`"
    errors = [o for c in code for o in c["outputs"] if o["output_type"] == "error"]
    assert not errors, f"{nb.name}: a stored error output ({errors[0]['ename']})"
    assert nb.stat().st_size < 3_000_000, f"{nb.name}: keep stored outputs small"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.name)
def test_chapter_has_one_title(nb):
    titles = []
    for c in cells(nb):
        if c["cell_type"] == "markdown":
            prose = re.sub(r"^(```|~~~).*?^\1", "", "".join(c["source"]), flags=re.M | re.S)  # not code blocks
            titles += [line for line in prose.splitlines() if re.match(r"# \S", line)]
    assert len(titles) == 1, f"{nb.name}: one '# Title' heading expected, found {titles}"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.name)
def test_test_machinery_is_in_tags_not_in_the_code_readers_see(nb):
    """nbval's markers live in cell metadata (tags), and the exporter's directive in a removed cell."""
    for c in cells(nb):
        src = "".join(c["source"])
        if c["cell_type"] != "code":
            continue
        assert "NBVAL_" not in src, f"{nb.name}: use the cell tag nbval-ignore-output, not {src[:60]!r}"
        if "#| default_exp" in src:
            assert "remove-cell" in c["metadata"].get("tags", []), f"{nb.name}: tag the default_exp cell remove-cell"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.name)
def test_set_up_cell_is_collapsed_in_the_book(nb):
    """The install-and-versions cell is there for Colab; the rendered page folds it away (hide-cell)."""
    setup = [c for c in cells(nb) if c["cell_type"] == "code" and "pip install" in "".join(c["source"])]
    assert setup, f"{nb.name}: no set-up (install) cell"
    assert "hide-cell" in setup[0]["metadata"].get("tags", []), f"{nb.name}: tag the set-up cell hide-cell"
