"""Open every built chapter in headless Chromium and confirm that it rendered.

    python tools/book_check.py            # after `make book`; screenshots go to _build/screenshots/

For each chapter page it checks: a title, code cells, their outputs, at least one figure image that
actually loaded (for pages that have figures), and, on pages with equations, that MathJax typeset them.
The CDN that serves MathJax is unreachable offline, so the check works on a copy of the built book
(_build/html-check) whose pages load MathJax 3 from a local copy installed from npm (never committed).
Skips, with the reason, where Chromium is not installed (`apt-get install chromium`).
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HTML = ROOT / "_build" / "html"
CHECK = ROOT / "_build" / "html-check"
SHOTS = ROOT / "_build" / "screenshots"
MATHJAX_NPM = ROOT / ".cache" / "mathjax"
MATH_CHECKED = True
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# Runs in the page after load: reports what a reader would see, as attributes `--dump-dom` shows.
PROBE = """<script>
window.addEventListener('load', () => setTimeout(() => {
  const imgs = [...document.querySelectorAll('main .cell_output img, main figure img')];
  const r = {
    title: (document.querySelector('main h1') || {}).textContent || '',
    code_cells: document.querySelectorAll('main div.cell_input').length,
    outputs: document.querySelectorAll('main div.cell_output').length,
    images: imgs.length,
    images_loaded: imgs.filter(i => i.complete && i.naturalWidth > 0).length,
    math: document.querySelectorAll('main .math, main span.math, main div.math').length,
    math_typeset: document.querySelectorAll('main mjx-container').length,
  };
  document.body.setAttribute('data-book-check', JSON.stringify(r));
  if (location.search === '?figure' && imgs.length) {  // 2nd screenshot: the title and the first figure
    const article = document.querySelector('main article') || document.querySelector('main');
    const keep = [article.querySelector('h1').cloneNode(true), (imgs[0].closest('.cell') || imgs[0]).cloneNode(true)];
    article.replaceChildren(...keep);
  }
}, 3000));
</script>"""


def chromium() -> str | None:
    return next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")
                 if shutil.which(n)), None)


def local_mathjax() -> Path:
    es5 = MATHJAX_NPM / "node_modules" / "mathjax" / "es5"
    if not (es5 / "tex-chtml.js").exists():
        MATHJAX_NPM.mkdir(parents=True, exist_ok=True)
        subprocess.run(["npm", "install", "--silent", "--no-audit", "--no-fund", "--prefix",
                        str(MATHJAX_NPM), "mathjax@3"], check=True, timeout=300)
    return es5


def prepare() -> list[Path]:
    if CHECK.exists():
        shutil.rmtree(CHECK)
    shutil.copytree(HTML, CHECK)
    try:
        shutil.copytree(local_mathjax(), CHECK / "_static" / "mathjax-local")
    except (OSError, subprocess.SubprocessError) as e:  # no npm, or no registry: equations stay unchecked
        print(f"note: no local MathJax ({e}); equations cannot be typeset offline and are not checked")
        global MATH_CHECKED
        MATH_CHECKED = False
    pages = sorted((CHECK / "notebooks").glob("*.html"))
    for page in pages:
        text = page.read_text(encoding="utf-8")
        text = re.sub(r'src="https://cdn\.jsdelivr\.net/npm/mathjax@3/es5/([\w.-]+)"',
                      r'src="../_static/mathjax-local/\1"', text)
        page.write_text(text.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    return pages


def inspect(browser: str, page: Path) -> dict:
    with tempfile.TemporaryDirectory() as profile:
        common = [browser, *FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=10000"]
        dom = subprocess.run([*common, "--dump-dom", page.as_uri()], capture_output=True, text=True,
                             timeout=120).stdout
    SHOTS.mkdir(parents=True, exist_ok=True)
    for suffix, query in (("", ""), ("-figure", "?figure")):  # the top of the page, then its first figure
        with tempfile.TemporaryDirectory() as profile:
            subprocess.run([browser, *FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=10000",
                            f"--screenshot={SHOTS / (page.stem + suffix + '.png')}", "--window-size=1280,1600",
                            "--hide-scrollbars", page.as_uri() + query], capture_output=True, timeout=120)
    m = re.search(r"data-book-check=\"([^\"]*)\"", dom)
    if not m:
        return {"error": "the page did not finish loading"}
    return json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&"))


def problems_of(r: dict) -> list[str]:
    if "error" in r:
        return [r["error"]]
    out = []
    if not r["title"].strip():
        out.append("no title")
    if r["code_cells"] == 0:
        out.append("no code cells")
    if r["outputs"] == 0:
        out.append("no outputs")
    if r["images"] and r["images_loaded"] == 0:
        out.append(f"{r['images']} image(s), none loaded")
    if MATH_CHECKED and r["math"] and r["math_typeset"] == 0:
        out.append(f"{r['math']} equation(s), none typeset by MathJax")
    return out


def main() -> int:
    browser = chromium()
    if browser is None:
        print("SKIPPED: Chromium is not installed (apt-get install chromium); the book was not checked")
        return 0
    if not (HTML / "index.html").exists():
        print("no built book in _build/html: run `make book` first", file=sys.stderr)
        return 1
    failed = 0
    print(f"{'page':<34} {'code':>5} {'outputs':>7} {'images':>9} {'math':>9}  verdict")
    pages = prepare()
    for page in pages:
        r = inspect(browser, page)
        bad = problems_of(r)
        failed += bool(bad)
        if "error" in r:
            print(f"{page.stem:<34} {'':>5} {'':>7} {'':>9} {'':>9}  FAIL: {r['error']}")
            continue
        print(f"{page.stem:<34} {r['code_cells']:>5} {r['outputs']:>7} "
              f"{r['images_loaded']:>4}/{r['images']:<4} {r['math_typeset']:>4}/{r['math']:<4}  "
              f"{'ok' if not bad else 'FAIL: ' + '; '.join(bad)}")
    print(f"screenshots in {SHOTS.relative_to(ROOT)}/")
    print(f"{len(pages) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
