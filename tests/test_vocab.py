"""GPT-2's vocabulary offline: tools/fetch_gpt2_vocab.py fills tiktoken's cache only with verified files."""
import shutil
import subprocess
import sys

import pytest

import fetch_gpt2_vocab as fv  # tools/ (conftest puts it on the path)


@pytest.fixture
def good_files(tmp_path):
    """The two genuine files, from the cache `make setup` filled (skip if this machine has none)."""
    src = tmp_path / "src"
    src.mkdir()
    for name in fv.FILES:
        path = fv.cache_path(name)
        if not fv._good(path, name):
            pytest.skip("tiktoken's cache holds no verified GPT-2 vocabulary here; run `make setup`")
        shutil.copyfile(path, src / name)
    return src


def test_fill_places_verified_files_where_tiktoken_looks(good_files, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(cache))
    assert fv.fill(good_files, quiet=True)
    # a fresh interpreter, so tiktoken cannot reuse an encoding it already built
    out = subprocess.run([sys.executable, "-c", "import tiktoken; print(tiktoken.get_encoding('gpt2').encode('Hello world'))"],
                         capture_output=True, text=True, env={**__import__("os").environ, "TIKTOKEN_CACHE_DIR": str(cache)})
    assert out.stdout.strip() == "[15496, 995]", out.stderr


def test_a_corrupted_file_never_reaches_the_cache(good_files, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(cache))
    data = (good_files / "vocab.bpe").read_bytes()
    (good_files / "vocab.bpe").write_bytes(data[: len(data) // 2])  # truncated
    assert not fv.fill(good_files, quiet=True)
    assert not cache.exists() or not any(cache.iterdir())


def test_cache_dir_follows_tiktoken_rules(monkeypatch, tmp_path):
    monkeypatch.delenv("TIKTOKEN_CACHE_DIR", raising=False)
    monkeypatch.setenv("DATA_GYM_CACHE_DIR", str(tmp_path / "dg"))
    assert fv.cache_dir() == tmp_path / "dg"
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "tk"))
    assert fv.cache_dir() == tmp_path / "tk"
