"""The command line (chapter 8): each command in-process through main([...]) and as a subprocess.

The models are tiny and local: a random `transformers.GPT2LMHeadModel` written by `save_pretrained`
(GPT-2's vocabulary, so GPT-2's tokenizer applies) and a checkpoint from a few steps of `train`.
"""
import contextlib
import functools
import io
import os
import subprocess
import sys

import pytest
import tiktoken
import torch
from hypothesis import given, settings, strategies as st

from conftest import ROOT, hf_folder
from gpt2lib import cli
from gpt2lib.tokenizer import gpt2_tokenizer

PROMPT = "Once upon a time, in a small village"
# One thread per process: on a small shared CPU, oversubscribed threads make tiny models 10x slower.
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONIOENCODING": "utf-8",
       "OMP_NUM_THREADS": "1"}


def run_cli(*args, input=None, env=None):
    """`python -m gpt2lib ARGS` in a fresh process: (returncode, stdout, stderr)."""
    p = subprocess.run([sys.executable, "-m", "gpt2lib", *args], input=input, capture_output=True,
                       text=True, encoding="utf-8", env=env or ENV, cwd=ROOT, timeout=120)
    return p.returncode, p.stdout, p.stderr


def one_error_line(err: str) -> str:
    """stderr must be exactly one line, `error: ...`, with no traceback."""
    lines = err.strip("\n").splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), f"expected one error line, got:\n{err}"
    assert "Traceback" not in err
    return lines[0]


# ---- fixtures: a tiny Hugging Face folder and what transformers generates from it ----------------

@functools.lru_cache(maxsize=None)
def _hf_model(path):
    from transformers import GPT2LMHeadModel

    return GPT2LMHeadModel.from_pretrained(path).eval()


def hf_greedy(path, prompt: str, max_new_tokens: int) -> list[int]:
    """transformers' own greedy continuation (new token ids only) of `prompt`, from the folder."""
    model = _hf_model(path)
    ids = tiktoken.get_encoding("gpt2").encode(prompt)
    out = model.generate(torch.tensor([ids]), max_new_tokens=max_new_tokens, do_sample=False,
                         pad_token_id=50256)
    return out[0, len(ids):].tolist()


# ---- the command line itself ---------------------------------------------------------------------

def test_help_of_every_command_has_examples(capsys):
    assert cli.main(["--help"]) == 0
    top = capsys.readouterr().out
    for command in ("generate", "chat", "validate", "train"):
        assert command in top
        assert cli.main([command, "--help"]) == 0
        text = capsys.readouterr().out
        assert "examples:" in text and f"python -m gpt2lib {command}" in text
        assert ("--device" in text) == (command != "validate")   # validate loads on the CPU


@pytest.mark.parametrize("argv, needle", [
    ([], "choose a command"),
    (["bogus"], "invalid choice"),
    (["generate"], "--prompt"),
    (["generate", "--prompt", "x", "--temperature", "-1"], "--temperature"),
    (["generate", "--prompt", "x", "--temperature", "nan"], "--temperature"),
    (["generate", "--prompt", "x", "--top-p", "0"], "--top-p"),
    (["generate", "--prompt", "x", "--top-p", "1.5"], "--top-p"),
    (["generate", "--prompt", "x", "--top-k", "0"], "--top-k"),
    (["generate", "--prompt", "x", "--max-new-tokens", "-3"], "--max-new-tokens"),
    (["generate", "--prompt", "x", "--seed", "abc"], "--seed"),
    (["generate", "--prompt", "x", "--greedy", "--top-k", "5"], "--greedy"),
    (["generate", "--prompt", "x", "--weights", "a", "--ckpt", "b"], "not allowed with"),
    (["chat", "--temperature", "hot"], "--temperature"),
])
def test_bad_command_lines_give_one_line_and_exit_2(capsys, argv, needle):
    assert cli.main(argv) == 2
    out, err = capsys.readouterr()
    assert needle in one_error_line(err) and out == ""


def test_missing_weights_path(capsys, tmp_path):
    missing = tmp_path / "no_such_model"
    assert cli.main(["generate", "--weights", str(missing), "--prompt", "Hi"]) == 1
    out, err = capsys.readouterr()
    line = one_error_line(err)
    assert str(missing) in line and "no such file" in line and out == ""
    assert cli.main(["generate", "--weights", "gpt2", "--prompt", "Hi"]) == 1   # a hub name given as a path
    assert "--model gpt2" in one_error_line(capsys.readouterr().err)


def test_unavailable_device(capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert cli.main(["generate", "--device", "cuda", "--prompt", "Hi"]) == 1
    assert "--device cpu" in one_error_line(capsys.readouterr().err)
    assert cli.main(["generate", "--device", "tpu9", "--prompt", "Hi"]) == 1
    assert "--device tpu9" in one_error_line(capsys.readouterr().err)


# ---- streaming text ------------------------------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(st.text(max_size=40))
def test_streamed_pieces_add_up_to_the_text(text):
    tok = gpt2_tokenizer()
    ids = tiktoken.get_encoding("gpt2").encode(text, disallowed_special=())
    stream = cli.TextStream(tok)
    pieces = [stream.push(i) for i in ids] + [stream.flush()]
    assert "".join(pieces) == text                    # (st.text has no lone surrogates: it round-trips)
    if "\ufffd" not in text:
        assert not any("\ufffd" in p for p in pieces)  # never half a character on screen


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 50256), max_size=12))
def test_streamed_pieces_of_any_ids_equal_decode(ids):
    stream = cli.TextStream(gpt2_tokenizer())
    pieces = [stream.push(i) for i in ids] + [stream.flush()]
    assert "".join(pieces) == tiktoken.get_encoding("gpt2").decode(ids)


def test_a_character_split_across_tokens_is_printed_whole():
    enc = tiktoken.get_encoding("gpt2")
    ids = enc.encode("🦙 llama")
    assert enc.decode([ids[0]]) == "\ufffd"           # the emoji's bytes are spread over several tokens
    stream = cli.TextStream(gpt2_tokenizer())
    pieces = [stream.push(i) for i in ids]
    assert pieces[0] == "" and "🦙" in pieces and "\ufffd" not in "".join(pieces)


# ---- train, and a checkpoint with its own tokenizer ----------------------------------------------

TINY_TRAIN = ["--n-layer", "1", "--n-head", "2", "--n-embd", "32", "--block-size", "32", "--batch-size", "4",
              "--vocab-size", "300", "--eval-interval", "2", "--ckpt-interval", "2", "--no-progress"]


@pytest.fixture(scope="session")
def text_file(tmp_path_factory):
    from gpt2lib.data import load_corpus

    path = tmp_path_factory.mktemp("text") / "tiny.txt"
    path.write_text(load_corpus()[:6000], encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def ckpt(tmp_path_factory, text_file):
    """A run folder written by `train` --max-steps 4: Ctrl-C after step 2, then the same command with --resume."""
    import gpt2lib.train

    out = tmp_path_factory.mktemp("run") / "out"
    argv = ["train", "--data", str(text_file), "--out", str(out), "--max-steps", "4", *TINY_TRAIN]
    real = gpt2lib.train.batch_indices

    def interrupted(n_windows, batch_size, micro_step, *rest):
        if micro_step == 2:                     # the user presses Ctrl-C during step 3
            raise KeyboardInterrupt
        return real(n_windows, batch_size, micro_step, *rest)

    err = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stderr(err):
        mp.setattr(gpt2lib.train, "batch_indices", interrupted)
        assert cli.main(argv) == 130            # the shell's code for Ctrl-C; a checkpoint is saved
    last = err.getvalue().splitlines()[-1]
    assert last.startswith("interrupted") and str(out) in last and "--resume" in last
    assert (out / "latest").read_text().strip() == "step-0000002"
    assert cli.main(argv + ["--resume"]) == 0
    return out


def test_train_interrupted_and_resumed_equals_one_run(ckpt, text_file, tmp_path, capsys):
    from safetensors.torch import load_file
    from gpt2lib.train import load_checkpoint

    resumed = load_checkpoint(ckpt)
    assert resumed.step == 4 and resumed.tokenizer.n_vocab == 300
    straight = tmp_path / "straight"            # the same 4 steps without a stop: the same weights
    assert cli.main(["train", "--data", str(text_file), "--out", str(straight), "--max-steps", "4",
                     *TINY_TRAIN]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-2].startswith("step 4: train loss") and f"--ckpt {straight}" in lines[-1]
    a = load_file(resumed.path / "model.safetensors")
    b = load_file(load_checkpoint(straight).path / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6)


def test_resume_with_another_shape_is_refused(ckpt, text_file, capsys):
    assert cli.main(["train", "--data", str(text_file), "--out", str(ckpt), "--resume", "--n-layer", "3",
                     "--max-steps", "6"]) == 1
    line = one_error_line(capsys.readouterr().err)
    assert "n_layer" in line and "1" in line and "3" in line


def _kill_after(argv, marker, wait_s):
    """Start `gpt2lib train` as a process and SIGKILL it `wait_s` seconds after the file `marker` appears."""
    import signal
    import time

    proc = subprocess.Popen([sys.executable, "-m", "gpt2lib", *argv], env=ENV, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(wait_s)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


@pytest.mark.parametrize("marker, wait_s", [("cli.json", 0.0), ("latest", 0.0), ("latest", 0.37)])
def test_kill_9_then_resume_with_no_other_flag_gives_the_same_losses(text_file, tmp_path, marker, wait_s):
    from gpt2lib.checkpoint import load_checkpoint

    flags = ["--data", str(text_file), "--max-steps", "40", "--seed", "3", "--lr", "3e-3", "--batch-size", "3",
             "--warmup-steps", "5", *TINY_TRAIN]
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    assert run_cli("train", "--out", str(straight), *flags)[0] == 0
    _kill_after(["train", "--out", str(killed), *flags], killed / marker, wait_s)   # cli.json: before any checkpoint
    code, _, err = run_cli("train", "--out", str(killed), "--resume")
    assert code == 0, err
    want, got = load_checkpoint(straight).history, load_checkpoint(killed).history
    assert got["step"] == want["step"] == list(range(1, 41))
    assert got["loss"] == want["loss"] and got["val_loss"] == want["val_loss"]


def test_resume_with_no_checkpoint_is_one_error_not_a_new_run(tmp_path, capsys):
    assert cli.main(["train", "--out", str(tmp_path / "empty"), "--resume"]) == 1
    assert str(tmp_path / "empty") in one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "empty").exists() or not any((tmp_path / "empty").iterdir())


def test_resume_says_which_typed_flags_override_the_run(ckpt, capsys):
    assert cli.main(["train", "--out", str(ckpt), "--resume", "--max-steps", "4", "--lr", "2e-3"]) == 0
    err = capsys.readouterr().err
    assert "--lr 0.002 (was 0.001)" in err and "--max-steps" not in err   # 4 is what the run had


def test_train_init_from_a_hugging_face_folder_lowers_the_loss(hf_dir, text_file, tmp_path, capsys):
    from gpt2lib.checkpoint import load_checkpoint
    from gpt2lib.pretrained import load_pretrained
    from gpt2lib.train import evaluate

    out = tmp_path / "tuned"
    assert cli.main(["train", "--init", str(hf_dir), "--data", str(text_file), "--out", str(out), "--max-steps", "12",
                     "--block-size", "32", "--batch-size", "4", "--lr", "3e-3", "--eval-interval", "6",
                     "--no-progress"]) == 0
    ck = load_checkpoint(out)
    assert ck.config.n_layer == 2 and ck.config.n_embd == 64 and ck.tokenizer.n_vocab == 50257   # the folder's
    ids = gpt2_tokenizer().encode(text_file.read_text(encoding="utf-8"))
    before = evaluate(load_pretrained(hf_dir), ids, 32)["loss"]
    after = evaluate(ck.model, ids, 32)["loss"]
    assert after < before - 0.5, (before, after)
    capsys.readouterr()
    assert cli.main(["generate", "--ckpt", str(out), "--prompt", "def", "--greedy", "--max-new-tokens", "5"]) == 0
    # --block-size of an --init run is the windows' length, not the model's context: retyping it resumes
    assert cli.main(["train", "--out", str(out), "--resume", "--block-size", "32", "--max-steps", "14"]) == 0
    assert load_checkpoint(out).step == 14


@pytest.mark.parametrize("flag", ["--n-layer", "--vocab-size"])
def test_train_init_refuses_a_shape_flag(hf_dir, text_file, tmp_path, capsys, flag):
    assert cli.main(["train", "--init", str(hf_dir), "--data", str(text_file), "--out", str(tmp_path / "o"),
                     flag, "3"]) == 1
    assert flag in one_error_line(capsys.readouterr().err)


def test_train_init_whose_vocabulary_cannot_hold_gpt2s_ids(text_file, tmp_path, capsys):
    folder = hf_folder(tmp_path / "small_vocab", vocab_size=1000, n_layer=1, n_embd=32, n_head=2)
    capsys.readouterr()                          # transformers' own notes while saving
    assert cli.main(["train", "--init", str(folder), "--data", str(text_file), "--out", str(tmp_path / "o")]) == 1
    err = one_error_line(capsys.readouterr().err)
    assert "1000" in err and "50256" in err
    assert not (tmp_path / "o").exists()


def test_train_bad_data(tmp_path, capsys):
    assert cli.main(["train", "--data", str(tmp_path / "nope.txt"), "--out", str(tmp_path / "o")]) == 1
    assert "no such file" in one_error_line(capsys.readouterr().err)
    binary = tmp_path / "latin1.txt"
    binary.write_bytes("caf\xe9 au lait".encode("latin-1") * 10)
    assert cli.main(["train", "--data", str(binary), "--out", str(tmp_path / "o")]) == 1
    assert "UTF-8" in one_error_line(capsys.readouterr().err)


# ---- generate ------------------------------------------------------------------------------------

def test_generate_greedy_matches_transformers_in_process(hf_dir, capsys):
    expected = hf_greedy(hf_dir, PROMPT, 20)
    assert cli.main(["generate", "--weights", str(hf_dir), "--greedy", "--max-new-tokens", "20",
                     "--show-ids", "--prompt", PROMPT]) == 0
    out, err = capsys.readouterr()
    text, prompt_line, new_line = out.splitlines()[:-2], out.splitlines()[-2], out.splitlines()[-1]
    assert "\n".join(text) == PROMPT + gpt2_tokenizer().decode(expected)
    assert prompt_line == f"prompt ids ({len(tiktoken.get_encoding('gpt2').encode(PROMPT))}): " \
                          f"{tiktoken.get_encoding('gpt2').encode(PROMPT)}"
    assert new_line == f"generated ids ({len(expected)}): {expected}"


def test_generate_greedy_matches_transformers_as_a_subprocess(hf_dir):
    """The reviewers' check: `python -m gpt2lib generate --weights DIR --greedy` = transformers' greedy text."""
    prompt = "The meaning of life is"
    expected = tiktoken.get_encoding("gpt2").decode(hf_greedy(hf_dir, prompt, 30))
    code, out, err = run_cli("generate", "--weights", str(hf_dir), "--greedy", "--max-new-tokens", "30",
                             "--prompt", prompt)
    assert code == 0, err
    assert out == prompt + expected + "\n"


def test_generate_streams_text_while_it_generates(hf_dir, monkeypatch):
    """Text reaches stdout between forward passes, not all at the end."""
    from gpt2lib.model import GPT

    events, forward = [], GPT.forward

    def logged_forward(self, *a, **k):
        events.append("forward")
        return forward(self, *a, **k)

    class Stdout(io.StringIO):
        def write(self, s):
            if s:
                events.append("write")
            return super().write(s)

    monkeypatch.setattr(GPT, "forward", logged_forward)
    monkeypatch.setattr(sys, "stdout", Stdout())
    assert cli.main(["generate", "--weights", str(hf_dir), "--greedy", "--max-new-tokens", "8",
                     "--prompt", PROMPT]) == 0
    last_forward = len(events) - 1 - events[::-1].index("forward")
    # the prompt, then at least one piece of the continuation, are written before the last forward pass
    assert events[:last_forward].count("write") >= 2


def test_generate_sampling_is_seeded(hf_dir, capsys):
    argv = ["generate", "--weights", str(hf_dir), "--temperature", "0.9", "--top-k", "20", "--top-p", "0.95",
            "--max-new-tokens", "12", "--prompt", PROMPT]
    runs = []
    for seed in ("1", "1", "2"):
        assert cli.main(argv + ["--seed", seed]) == 0
        runs.append(capsys.readouterr().out)
    assert runs[0] == runs[1] != runs[2]
    assert all(r.startswith(PROMPT) for r in runs)


def test_generate_from_a_training_checkpoint_matches_transformers(ckpt, capsys):
    """--ckpt: the checkpoint's own tokenizer (a 300-token BPE) and weights; transformers as the reference."""
    from gpt2lib.pretrained import to_transformers
    from gpt2lib.train import load_checkpoint

    ck = load_checkpoint(ckpt)
    prompt = "The return value"
    ids = ck.tokenizer.encode(prompt)
    ref = to_transformers(ck.model.eval()).generate(torch.tensor([ids]), max_new_tokens=10, do_sample=False,
                                                    eos_token_id=[], pad_token_id=0)[0, len(ids):].tolist()
    assert cli.main(["generate", "--ckpt", str(ckpt), "--greedy", "--max-new-tokens", "10", "--show-ids",
                     "--prompt", prompt]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[-1] == f"generated ids (10): {ref}"
    assert out.startswith(prompt + ck.tokenizer.decode(ref))


def test_prompt_longer_than_the_context(hf_dir, capsys):
    assert cli.main(["generate", "--weights", str(hf_dir), "--prompt", "word " * 200]) == 1
    out, err = capsys.readouterr()
    n = len(tiktoken.get_encoding("gpt2").encode("word " * 200))
    line = one_error_line(err)
    assert str(n) in line and "128" in line and out == ""            # the length and the limit


def test_ctrl_c_during_generate_exits_130(hf_dir, capsys, monkeypatch):
    import gpt2lib.generate as gen

    def interrupted(*args, **kwargs):
        yield 11
        raise KeyboardInterrupt

    monkeypatch.setattr(gen, "stream", interrupted)
    assert cli.main(["generate", "--weights", str(hf_dir), "--prompt", "Hi"]) == 130
    out, err = capsys.readouterr()
    assert out == "Hi,\n" and err.strip() == "interrupted"          # token 11 is ","


# ---- bad weights ---------------------------------------------------------------------------------

def _copy_folder(src, dst):
    dst.mkdir()
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_corrupted_weights_give_one_line(hf_dir, tmp_path, capsys, damage):
    bad = _copy_folder(hf_dir, tmp_path / "bad")
    weights = bad / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes({"garbage": bytes(range(256)) * 4, "truncated": data[: len(data) // 2],
                         "empty": b""}[damage])
    assert cli.main(["generate", "--weights", str(bad), "--prompt", "Hi"]) == 1
    out, err = capsys.readouterr()
    assert "model.safetensors" in one_error_line(err) and out == ""


def test_weights_of_the_wrong_shape(hf_dir, tmp_path, capsys):
    import json

    bad = _copy_folder(hf_dir, tmp_path / "wrong_shape")
    config = json.loads((bad / "config.json").read_text())
    config["n_layer"] = 3                                   # the file holds 2 blocks
    (bad / "config.json").write_text(json.dumps(config))
    assert cli.main(["generate", "--weights", str(bad), "--prompt", "Hi"]) == 1
    assert "transformer.h.2" in one_error_line(capsys.readouterr().err)
    pt = tmp_path / "not_a_model.pt"
    torch.save({"weight": torch.zeros(3, 3)}, pt)
    assert cli.main(["generate", "--weights", str(pt), "--prompt", "Hi"]) == 1
    one_error_line(capsys.readouterr().err)


def test_bad_and_corrupted_weights_as_a_subprocess(hf_dir, tmp_path):
    code, out, err = run_cli("generate", "--weights", str(tmp_path / "missing"), "--prompt", "Hi")
    assert code == 1 and out == "" and "no such file" in one_error_line(err)
    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(b"\x00" * 64)
    code, out, err = run_cli("generate", "--weights", str(bad), "--prompt", "Hi")
    assert code == 1 and out == "" and "broken.safetensors" in one_error_line(err)


def test_no_network_for_a_hub_name(tmp_path):
    env = {**ENV, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "empty-cache")}
    code, out, err = run_cli("generate", "--model", "gpt2", "--prompt", "Hi", env=env)
    assert code == 1 and out == ""
    line = one_error_line(err)
    assert "gpt2" in line and "offline" in line


# ---- chat ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("ending", ["exit\n", "quit\n", "  QUIT  \n", ""])   # "" = end of input (Ctrl-D)
def test_chat_through_stdin(hf_dir, capsys, monkeypatch, ending):
    expected = gpt2_tokenizer().decode(hf_greedy(hf_dir, PROMPT, 6))
    monkeypatch.setattr(sys, "stdin", io.StringIO(f"{PROMPT}\n\n{ending}never read\n" if ending else PROMPT + "\n"))
    assert cli.main(["chat", "--weights", str(hf_dir), "--greedy", "--max-new-tokens", "6"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"Prompt > {PROMPT}\n{expected}\nPrompt > \n")
    assert "never read" not in out


def test_chat_ctrl_c_stops_one_answer_and_an_error_does_not_end_the_loop(hf_dir, capsys, monkeypatch):
    import gpt2lib.generate as gen

    real, calls = gen.stream, []

    def first_answer_interrupted(*args, **kwargs):
        calls.append(1)
        for i, token in enumerate(real(*args, **kwargs)):
            if len(calls) == 1 and i == 2:
                raise KeyboardInterrupt
            yield token

    monkeypatch.setattr(gen, "stream", first_answer_interrupted)
    monkeypatch.setattr(sys, "stdin", io.StringIO(f"{PROMPT}\n{'word ' * 200}\n{PROMPT}\nexit\n"))
    assert cli.main(["chat", "--weights", str(hf_dir), "--greedy", "--max-new-tokens", "6"]) == 0
    out, err = capsys.readouterr()
    full = gpt2_tokenizer().decode(hf_greedy(hf_dir, PROMPT, 6))
    answers = [line for line in out.splitlines() if not line.startswith("Prompt > ")]
    assert answers[0].endswith(" [stopped]") and full.startswith(answers[0][:-len(" [stopped]")])
    assert answers[-1] == full                              # the loop went on after Ctrl-C and the error
    assert "context" in [l for l in err.splitlines() if l.startswith("error: ")][0]


def test_chat_as_a_subprocess(hf_dir):
    expected = tiktoken.get_encoding("gpt2").decode(hf_greedy(hf_dir, "Hello", 5))
    code, out, err = run_cli("chat", "--weights", str(hf_dir), "--greedy", "--max-new-tokens", "5",
                             input="Hello\nexit\n")
    assert code == 0, err
    assert out == f"Prompt > Hello\n{expected}\nPrompt > exit\n"


# ---- validate ------------------------------------------------------------------------------------

def test_validate_passes_on_a_save_pretrained_folder(hf_dir, capsys):
    assert cli.main(["validate", "--weights", str(hf_dir), "--max-new-tokens", "8"]) == 0
    out = capsys.readouterr().out
    assert "PASS" in out.splitlines()[-1] and "FAIL" not in out


def test_validate_fails_when_the_models_disagree(hf_dir, capsys, monkeypatch):
    import gpt2lib.pretrained as pretrained

    load = pretrained.load_pretrained

    def off_by_a_little(*args, **kwargs):           # a loader bug: one bias shifted by 0.01
        model = load(*args, **kwargs)
        with torch.no_grad():
            model.transformer.ln_f.bias += 0.01
        return model

    monkeypatch.setattr(pretrained, "load_pretrained", off_by_a_little)
    assert cli.main(["validate", "--weights", str(hf_dir), "--max-new-tokens", "4"]) == 1
    out, err = capsys.readouterr()
    assert "FAIL" in out.splitlines()[-1] and "logits" in one_error_line(err)


def test_a_corrupted_training_checkpoint(ckpt, tmp_path, capsys):
    import shutil

    bad = tmp_path / "run"
    shutil.copytree(ckpt, bad)
    snapshot = bad / (bad / "latest").read_text().strip()
    weights = snapshot / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    assert cli.main(["generate", "--ckpt", str(bad), "--prompt", "Hi"]) == 1
    assert "corrupted" in one_error_line(capsys.readouterr().err)


def test_validate_as_a_subprocess(hf_dir):
    code, out, err = run_cli("validate", "--weights", str(hf_dir), "--max-new-tokens", "5", "--prompt", "Hi there")
    assert code == 0 and "PASS" in out.splitlines()[-1], err


def test_train_as_a_subprocess(text_file, tmp_path):
    code, out, err = run_cli("train", "--data", str(text_file), "--out", str(tmp_path / "o"), "--max-steps", "1",
                             *TINY_TRAIN)
    assert code == 0, err
    assert out.startswith("step 1: train loss") and (tmp_path / "o" / "latest").is_file()


def test_console_script_and_module_agree():
    script = os.path.join(os.path.dirname(sys.executable), "gpt2lib")
    if not os.path.exists(script):
        pytest.skip("gpt2lib is not installed with its console script here")
    p = subprocess.run([script, "chat", "--help"], capture_output=True, text=True, env=ENV, timeout=60)
    assert p.returncode == 0 and "examples:" in p.stdout


def test_ckpt_and_weights_mixed_up(hf_dir, ckpt, capsys):
    assert cli.main(["generate", "--ckpt", str(hf_dir), "--prompt", "Hi"]) == 1
    assert f"use --weights {hf_dir}" in one_error_line(capsys.readouterr().err)
    assert cli.main(["generate", "--weights", str(ckpt), "--prompt", "Hi"]) == 1
    assert f"use --ckpt {ckpt}" in one_error_line(capsys.readouterr().err)


def test_a_long_generation_slides_the_window_with_a_one_line_note(hf_dir, capsys):
    prompt = "word " * 110                                  # 111 tokens + 30 new > 128 positions
    assert cli.main(["generate", "--weights", str(hf_dir), "--greedy", "--max-new-tokens", "30",
                     "--show-ids", "--prompt", prompt]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[-1].startswith("generated ids (30): ")
    assert [l for l in err.splitlines() if l] == [l for l in err.splitlines() if l.startswith("note: ")] != []


def test_empty_prompt_starts_from_end_of_text_as_transformers_does(hf_dir, capsys):
    model = _hf_model(hf_dir)
    ref = model.generate(torch.tensor([[50256]]), max_new_tokens=8, do_sample=False,
                         pad_token_id=50256)[0, 1:].tolist()
    assert cli.main(["generate", "--weights", str(hf_dir), "--greedy", "--max-new-tokens", "8", "--show-ids",
                     "--prompt", ""]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[-2:] == ["prompt ids (1): [50256]", f"generated ids ({len(ref)}): {ref}"]


def test_prompt_from_stdin(hf_dir, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO(PROMPT))
    assert cli.main(["generate", "--weights", str(hf_dir), "--greedy", "--max-new-tokens", "5", "--prompt", "-"]) == 0
    assert capsys.readouterr().out == PROMPT + gpt2_tokenizer().decode(hf_greedy(hf_dir, PROMPT, 5)) + "\n"


def test_ctrl_c_at_the_chat_prompt_does_not_leave(hf_dir, capsys, monkeypatch):
    answers = iter([KeyboardInterrupt, "quit"])

    def read_prompt(prompt="Prompt > "):
        a = next(answers)
        if a is KeyboardInterrupt:
            raise KeyboardInterrupt
        return a

    monkeypatch.setattr(cli, "read_prompt", read_prompt)
    assert cli.main(["chat", "--weights", str(hf_dir)]) == 0
    assert "exit or quit" in capsys.readouterr().err


def test_unknown_hub_name(capsys):
    assert cli.main(["generate", "--model", "gpt3", "--prompt", "Hi"]) == 1
    assert "gpt2-medium" in one_error_line(capsys.readouterr().err)


def test_write_survives_a_terminal_that_cannot_show_the_text():
    raw = io.BytesIO()
    ascii_terminal = io.TextIOWrapper(raw, encoding="ascii")
    cli.write("caf\u00e9 \U0001f999\n", ascii_terminal)
    assert raw.getvalue() == b"caf? ?\n"


def test_debug_shows_the_traceback_and_a_bug_still_gets_one_line(capsys, monkeypatch, tmp_path):
    with pytest.raises(cli.CLIError, match="no such file"):
        cli.main(["--debug", "generate", "--weights", str(tmp_path / "missing"), "--prompt", "Hi"])

    def buggy(args):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(cli, "cmd_generate", buggy)
    assert cli.main(["generate", "--prompt", "Hi"]) == 1
    assert one_error_line(capsys.readouterr().err) == \
        "error: ZeroDivisionError: division by zero (run with --debug for the traceback)"


def test_a_bare_safetensors_file_with_n_head(hf_dir, ckpt, capsys):
    """No config.json beside the file: --n-head gives what no tensor shape reveals (here 4, not 64 // 64)."""
    expected = hf_greedy(hf_dir, PROMPT, 10)
    assert cli.main(["generate", "--weights", str(hf_dir / "model.safetensors"), "--n-head", "4", "--greedy",
                     "--max-new-tokens", "10", "--show-ids", "--prompt", PROMPT]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"generated ids (10): {expected}"
    assert cli.main(["generate", "--ckpt", str(ckpt), "--n-head", "4", "--prompt", PROMPT]) == 2
    assert "--n-head" in one_error_line(capsys.readouterr().err)


def test_a_small_vocabulary_with_gpt2s_tokenizer(tmp_path, capsys):
    """Weights with fewer than 50257 tokens: prompts whose ids fit work (and match transformers); others fail."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(1)
    config = GPT2Config(n_layer=1, n_embd=32, n_head=2, n_positions=64, vocab_size=1000, initializer_range=0.3,
                        bos_token_id=None, eos_token_id=None)
    model = GPT2LMHeadModel(config).eval()
    model.save_pretrained(tmp_path)
    ids = tiktoken.get_encoding("gpt2").encode("a, b. c")
    assert max(ids) < 1000
    ref = model.generate(torch.tensor([ids]), max_new_tokens=6, do_sample=False, pad_token_id=0)[0, len(ids):]
    assert cli.main(["generate", "--weights", str(tmp_path), "--greedy", "--max-new-tokens", "6", "--show-ids",
                     "--prompt", "a, b. c"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"generated ids (6): {ref.tolist()}"
    assert cli.main(["generate", "--weights", str(tmp_path), "--prompt", "Hello"]) == 1
    assert "1000" in one_error_line(capsys.readouterr().err)                 # the vocabulary it has


# ---- fine-tuning from the command line (chapter 9) -----------------------------------------------

PAIRS = [{"instruction": f"What does {name}() return?", "response": f"{name}() returns {what}."}
         for name, what in [("len", "the number of items"), ("abs", "the absolute value"), ("str", "a string"),
                            ("sorted", "a new sorted list"), ("repr", "a printable form"), ("id", "an integer")]]
TUNE = ["--max-steps", "3", "--block-size", "32", "--batch-size", "2", "--eval-interval", "3", "--no-progress"]


@pytest.fixture
def pairs_file(tmp_path):
    import json

    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in PAIRS), encoding="utf-8")
    return path


def test_train_lora_changes_only_the_adapters(hf_dir, text_file, tmp_path, capsys):
    from gpt2lib.checkpoint import load_checkpoint
    from gpt2lib.pretrained import load_pretrained

    out = tmp_path / "lora"
    assert cli.main(["train", "--init", str(hf_dir), "--data", str(text_file), "--out", str(out), *TUNE,
                     "--lora-rank", "2", "--lora-targets", "attn.c_attn,mlp.c_fc"]) == 0
    assert "trained" in capsys.readouterr().err
    ck = load_checkpoint(out)
    assert ck.meta["lora"]["rank"] == 2 and set(ck.meta["lora"]["targets"]) == {"attn.c_attn", "mlp.c_fc"}
    base = load_pretrained(hf_dir).state_dict()
    tuned = ck.model.state_dict()
    adapters = [k for k in tuned if "lora_" in k]
    assert adapters and all(torch.equal(base[k], tuned[k]) for k in base if k in tuned)   # the weights: frozen
    assert any(tuned[k].abs().sum() > 0 for k in adapters if "lora_B" in k)              # B starts at 0, moved
    assert cli.main(["train", "--out", str(out), "--resume", "--max-steps", "4"]) == 0    # resumes with adapters
    assert load_checkpoint(out).step == 4


def test_instruction_tuning_then_chat_and_generate_use_the_template(hf_dir, pairs_file, tmp_path, capsys,
                                                                     monkeypatch):
    from gpt2lib.checkpoint import load_checkpoint
    from gpt2lib.finetune import TEMPLATE

    out = tmp_path / "tuned"
    assert cli.main(["train", "--init", str(hf_dir), "--data", str(pairs_file), "--out", str(out), *TUNE,
                     "--val-fraction", "0.34"]) == 0
    assert "4 training and 2 validation examples" in capsys.readouterr().err
    assert load_checkpoint(out).meta["template"] == TEMPLATE
    question = "What does max() return?"
    assert cli.main(["generate", "--ckpt", str(out), "--greedy", "--max-new-tokens", "4", "--show-ids",
                     "--prompt", question]) == 0
    text = capsys.readouterr().out
    expected = gpt2_tokenizer().encode(TEMPLATE.format(instruction=question))
    assert text.startswith(TEMPLATE.format(instruction=question)) and f"prompt ids ({len(expected)}): {expected}" in text
    monkeypatch.setattr(sys, "stdin", io.StringIO(question + "\nquit\n"))
    assert cli.main(["chat", "--ckpt", str(out), "--greedy", "--max-new-tokens", "4", "--show-ids"]) == 0
    assert f"prompt ids ({len(expected)}): {expected}" in capsys.readouterr().out


def test_bad_fine_tuning_input_is_one_line_and_loses_nothing(hf_dir, pairs_file, tmp_path, capsys):
    argv = ["train", "--init", str(hf_dir), "--out", str(tmp_path / "o"), *TUNE]
    assert cli.main(argv + ["--data", str(pairs_file), "--lora-rank", "0"]) == 2
    assert "--lora-rank" in one_error_line(capsys.readouterr().err)
    assert cli.main(argv + ["--data", str(pairs_file), "--lora-rank", "2", "--lora-targets", "attn.nope"]) == 1
    assert "attn.nope" in one_error_line(capsys.readouterr().err)
    broken = tmp_path / "broken.jsonl"
    broken.write_text(pairs_file.read_text(encoding="utf-8") + '{"instruction": "no answer"}\n', encoding="utf-8")
    assert cli.main(argv + ["--data", str(broken)]) == 1
    err = one_error_line(capsys.readouterr().err)
    assert "broken.jsonl" in err and str(len(PAIRS) + 1) in err and "response" in err
    long = tmp_path / "long.jsonl"
    long.write_text(pairs_file.read_text(encoding="utf-8") + '{"instruction": "x", "response": "%s"}\n'
                    % ("word " * 100), encoding="utf-8")
    assert cli.main(argv + ["--data", str(long)]) == 1
    assert "32" in one_error_line(capsys.readouterr().err)
    assert broken.read_text(encoding="utf-8").count("\n") == len(PAIRS) + 1            # the data is untouched
