"""Loading a model by hub name (chapter 7): huggingface_hub's functions replaced by stand-ins, and then the
real huggingface_hub against a stand-in for the Hugging Face hub on 127.0.0.1.

The stand-in serves a tiny GPT-2 the way huggingface_hub expects (HEAD and GET on
/{repo}/resolve/{revision}/{file}), or answers 500, or accepts connections and never answers. huggingface_hub
reads HF_ENDPOINT and HF_HUB_OFFLINE once, at import, so the loads run in fresh processes with those set,
as a user would set them. The children that wait on a failing hub run at the same time.
"""
import contextlib
import hashlib
import http.server
import os
import socket
import subprocess
import sys
import threading
import time

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

import huggingface_hub

from conftest import ROOT
from gpt2lib.pretrained import WeightsError, load_pretrained

IDX = torch.arange(16)[None]     # [1, 16] token ids: the logits compared
BOUND = 90                       # seconds: a bound on a hang, not a speed test
COMMIT = "0123456789abcdef0123456789abcdef01234567"
LOAD = """
import sys, torch
from gpt2lib.pretrained import WeightsError, load_pretrained
try:
    model = load_pretrained("gpt2")
except WeightsError as e:
    sys.exit(f"WeightsError: {e}")
with torch.no_grad():
    torch.save(model(torch.arange(16)[None]), sys.argv[1])
"""


# ---- huggingface_hub replaced: which of its functions load_pretrained calls, and what it makes of their errors

def fake_hub(monkeypatch, cached, folder=None, fail=None):
    """Stand-ins for the three huggingface_hub functions resolve uses; returns the log of their calls."""
    calls = []

    def metadata(url, timeout=None):
        calls.append(("ask", url, timeout))
        if fail:
            raise fail

    def download(repo, filename):
        calls.append(("download", repo, filename))
        if fail:
            raise fail
        return str(folder / filename)

    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache",
                        lambda repo, filename: str(folder / filename) if cached else None)
    monkeypatch.setattr(huggingface_hub, "get_hf_file_metadata", metadata)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    return calls


def test_a_cached_model_loads_without_asking_the_hub(monkeypatch, hf_dir):
    calls = fake_hub(monkeypatch, cached=True, folder=hf_dir)
    model = load_pretrained("openai-community/gpt2")
    assert model.config.n_embd == 64 and calls == [("download", "openai-community/gpt2", "config.json"),
                                                   ("download", "openai-community/gpt2", "model.safetensors")]


def test_with_nothing_cached_the_hub_is_asked_once_before_the_download(monkeypatch, hf_dir):
    from huggingface_hub import constants
    calls = fake_hub(monkeypatch, cached=False, folder=hf_dir)
    load_pretrained("gpt2")
    assert [c[0] for c in calls] == ["ask", "download", "download"]
    assert calls[0][1].endswith("/gpt2/resolve/main/config.json") and calls[0][2] == constants.HF_HUB_ETAG_TIMEOUT


@pytest.mark.parametrize("cached", [False, True])
def test_what_huggingface_hub_raises_becomes_one_weights_error(monkeypatch, cached):
    from huggingface_hub.errors import LocalEntryNotFoundError
    fake_hub(monkeypatch, cached=cached, folder=ROOT, fail=LocalEntryNotFoundError("not in the cache\nmore"))
    with pytest.raises(WeightsError, match=r"'gpt2-large'.*LocalEntryNotFoundError: not in the cache\).*local "
                                           r"copy.*online") as e:
        load_pretrained("gpt2-large")
    assert "\n" not in str(e.value)


# ---- the real huggingface_hub, and a hub on 127.0.0.1 -------------------------------------------------------

class Hub(http.server.ThreadingHTTPServer):
    """The hub's file endpoint: each file of `files` at /gpt2/resolve/main/NAME, with the headers that
    huggingface_hub needs (X-Repo-Commit, ETag, Content-Length); or every request answered with `status`."""
    daemon_threads = True

    def __init__(self, files=None, status=200):
        super().__init__(("127.0.0.1", 0), Answer)
        self.files, self.status, self.requests = files or {}, status, []
        self.url = f"http://127.0.0.1:{self.server_address[1]}"


class Answer(http.server.BaseHTTPRequestHandler):
    def do_HEAD(self):
        self.answer(body=False)

    def do_GET(self):
        self.answer(body=True)

    def answer(self, body):
        hub = self.server
        hub.requests.append(f"{self.command} {self.path}")
        data = hub.files.get(self.path.removeprefix("/gpt2/resolve/main/"))
        if hub.status != 200 or data is None:
            self.send_response(hub.status if hub.status != 200 else 404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("X-Repo-Commit", COMMIT)
        self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if body:
            self.wfile.write(data)

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serving(hub):
    thread = threading.Thread(target=hub.serve_forever, daemon=True)
    thread.start()
    try:
        yield hub
    finally:
        hub.shutdown()
        hub.server_close()


@contextlib.contextmanager
def silent_hub():
    """A port that accepts connections (the kernel completes them into the backlog) and never answers."""
    with socket.create_server(("127.0.0.1", 0), backlog=16) as s:
        yield f"http://127.0.0.1:{s.getsockname()[1]}"


def closed_port() -> str:
    with socket.create_server(("127.0.0.1", 0)) as s:
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"                # nothing listens there any more


def env_for(endpoint, home, offline="0"):
    """The environment of a child: this hub, online (unless told), and an HF_HOME of its own."""
    env = {k: v for k, v in os.environ.items() if "PROXY" not in k.upper() and k not in
           ("TRANSFORMERS_OFFLINE", "HF_HUB_ETAG_TIMEOUT", "HF_HUB_DOWNLOAD_TIMEOUT", "HF_TOKEN")}
    return {**env, "HF_ENDPOINT": endpoint, "HF_HUB_OFFLINE": offline, "HF_HOME": str(home),
            "HF_HUB_CACHE": str(home / "hub"), "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


def start(args, env):
    p = subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, encoding="utf-8")
    return p, time.monotonic()


def finish(started):
    """(returncode, stdout, stderr, seconds) of a child from start()."""
    p, t0 = started
    try:
        out, err = p.communicate(timeout=BOUND + 30)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
    return p.returncode, out, err, time.monotonic() - t0


def load(endpoint, home, offline="0"):
    """load_pretrained("gpt2") in a fresh process: (returncode, stderr, logits or None)."""
    logits = home / "logits.pt"
    code, _, err, _ = finish(start(["-c", LOAD, str(logits)], env_for(endpoint, home, offline)))
    return code, err, (torch.load(logits) if code == 0 else None)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny random transformers GPT-2 and the bytes of its save_pretrained files."""
    torch.manual_seed(0)
    hf = GPT2LMHeadModel(GPT2Config(n_layer=1, n_head=2, n_embd=16, n_positions=32, vocab_size=64)).eval()
    folder = tmp_path_factory.mktemp("tiny")
    hf.save_pretrained(folder)
    with torch.no_grad():
        logits = hf(IDX).logits                                     # [1, 16, 64]
    return {f: (folder / f).read_bytes() for f in ("config.json", "model.safetensors")}, logits


@pytest.fixture(scope="module")
def downloaded(tiny, tmp_path_factory):
    """A download from the stand-in hub: (HF_HOME now holding the model, its logits, the gone hub's URL)."""
    home = tmp_path_factory.mktemp("hf-home")
    with serving(Hub(tiny[0])) as hub:
        code, err, logits = load(hub.url, home)
    assert code == 0, err
    assert "HEAD /gpt2/resolve/main/config.json" in hub.requests
    assert "GET /gpt2/resolve/main/model.safetensors" in hub.requests
    return home, logits, hub.url


def test_a_hub_name_downloads_the_model(tiny, downloaded):
    torch.testing.assert_close(downloaded[1], tiny[1], atol=1e-5, rtol=0)


def test_the_cache_serves_when_the_hub_is_gone(tiny, downloaded):
    home, _, gone = downloaded
    code, err, logits = load(gone, home)                            # online, but nothing listens there
    assert code == 0, err
    torch.testing.assert_close(logits, tiny[1], atol=1e-5, rtol=0)


def test_the_cache_serves_offline(tiny, downloaded, monkeypatch):
    import huggingface_hub.constants as hub
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(downloaded[0] / "hub"))
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)
    with torch.no_grad():
        torch.testing.assert_close(load_pretrained("gpt2")(IDX), tiny[1], atol=1e-5, rtol=0)


def test_offline_with_an_empty_cache_says_so(tmp_path, monkeypatch):
    import huggingface_hub.constants as hub
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)
    t0 = time.monotonic()
    with pytest.raises(WeightsError, match=r"'gpt2-medium'.*offline.*load_pretrained\('path"):
        load_pretrained("gpt2-medium")
    assert time.monotonic() - t0 < 15


@pytest.fixture(scope="module")
def failing(tmp_path_factory):
    """Children started at once against hubs that fail: {case: (endpoint, returncode, stderr, seconds)}."""
    home = lambda: tmp_path_factory.mktemp("empty-hf-home")
    closed = closed_port()
    with serving(Hub(status=500)) as broken, silent_hub() as silent:
        runs = {"500": (broken.url, start(["-c", LOAD, os.devnull], env_for(broken.url, home()))),
                "silent": (silent, start(["-c", LOAD, os.devnull], env_for(silent, home()))),
                "closed": (closed, start(["-c", LOAD, os.devnull], env_for(closed, home()))),
                **{f"cli {case}": (url, start(["-m", "gpt2lib", "generate", "--model", "gpt2", "--prompt", "hi"],
                                              env_for(url, home())))
                   for case, url in (("silent", silent), ("500", broken.url))}}
        return {case: (url, *finish(p)) for case, (url, p) in runs.items()}


@pytest.mark.parametrize("case", ["500", "silent", "closed"])
def test_a_failing_hub_ends_in_one_clear_error(failing, case):
    endpoint, code, out, err, seconds = failing[case]
    assert seconds < BOUND, f"{case}: {seconds:.0f} s"
    assert code == 1 and "Traceback" not in err, err
    last = err.strip().splitlines()[-1]          # before it, huggingface_hub may log what it tried
    assert last.startswith("WeightsError: cannot get 'gpt2'"), err
    assert endpoint in last and "local copy" in last and "--weights PATH" in last
    assert {"500": "500", "silent": "Timeout", "closed": "ConnectError"}[case] in last


@pytest.mark.parametrize("case", ["silent", "500"])
def test_the_command_line_ends_in_one_line_when_the_hub_fails(failing, case):
    endpoint, code, out, err, seconds = failing[f"cli {case}"]
    assert seconds < BOUND, f"{seconds:.0f} s"
    assert code == 1 and out == ""
    lines = err.strip("\n").splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert endpoint in lines[0] and ("Timeout" if case == "silent" else "500") in lines[0]
