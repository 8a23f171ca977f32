"""gpt2lib.tokenizer (chapter 1): equality with tiktoken, round trips, and every bad input's error."""
import json
import os
from collections import Counter

import pytest
import regex
import tiktoken
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tiktoken_ext.openai_public import r50k_pat_str

from gpt2lib.data import load_corpus
from gpt2lib.tokenizer import GPT2_PATTERN, BPETokenizer, gpt2_tokenizer

os.environ.setdefault("HF_HUB_OFFLINE", "1")
CORPUS = load_corpus()
ENC = tiktoken.get_encoding("gpt2")
GPT2 = gpt2_tokenizer()
SMALL = BPETokenizer.train(CORPUS[:60_000], 400, special_tokens=["<|endoftext|>"])

# Pieces that make tokenizers disagree when they are subtly wrong: contractions (any case), whitespace of
# every kind and length, Windows line ends, digits of several scripts, emoji with modifiers and joiners,
# CJK, accents composed and decomposed, and halves of the special token.
FRAGMENTS = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'LL", "'", " ", "  ", "   ", "\t", "\n",
             "\n\n", "\r\n", "\r", "\u00a0", "\u3000", "\u200b", "\x0b", "\x0c", "\x85", "0", "12", "3.14",
             "1,000", "١٢٣", "Ⅻ", "👋", "👋🏽", "👨\u200d👩\u200d👧", "🇫🇷", "東京", "中文字", "한국어", "ｶﾀｶﾅ",
             "é", "e\u0301", "naïve", "Ångström", "ß", "hello", "World", "the", "<|", "|>", "endoftext",
             "!!", "...", "—", "#", "\\", "\x00", "\x7f", "ÿ"]
hard_text = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=4)), max_size=25).map("".join)
any_text = st.one_of(st.text(), hard_text)
ROUND_TRIP = settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --- GPT-2's vocabulary: the same ids as tiktoken ----------------------------------------------------

def test_gpt2_equals_tiktoken_on_the_whole_corpus():
    assert GPT2.encode(CORPUS) == ENC.encode(CORPUS)
    assert GPT2.n_vocab == ENC.n_vocab == 50257 and GPT2.eot_token == ENC.eot_token == 50256


@pytest.mark.parametrize("s", ["", " ", "Once upon a time", "  \n\n \t\r\n\r\n  x  ", "I'M don't WE'LL it's",
                               "👋🏽👨‍👩‍👧‍👦🇫🇷", "東京タワー 北京 한국", "naïve nai\u0308ve", "١٢٣ 2024 3.14159",
                               "\x00\x01\x7f\x80", "trailing   ", "\ud800 lone surrogate \udfff"])
def test_gpt2_equals_tiktoken_on_hard_strings(s):
    assert GPT2.encode(s) == ENC.encode(s)


@settings(max_examples=1000, deadline=None)
@given(any_text)
def test_gpt2_equals_tiktoken_on_random_text(s):
    assert GPT2.encode(s, disallowed_special=()) == ENC.encode(s, disallowed_special=())


@settings(max_examples=300, deadline=None)
@given(st.lists(st.characters(min_codepoint=0x0370), min_size=1, max_size=40).map("".join))
def test_gpt2_equals_tiktoken_beyond_ascii(s):
    # Unicode letters that the regex module and tiktoken's engine know from different Unicode versions
    assert GPT2.encode_ordinary(s) == ENC.encode_ordinary(s)


def test_gpt2_equals_tiktoken_on_the_newest_letters():
    # Letters and digits that this Python's own Unicode tables do not know yet, but the regex module does:
    # tiktoken's Rust engine knows some of them, so exactly here the two engines can disagree.
    import unicodedata
    unassigned = "".join(c for c in map(chr, range(0x80, 0x110000)) if unicodedata.category(c) == "Cn")
    newest = regex.findall(r"[\p{L}\p{N}]", unassigned)
    assert newest, "this Python knows every letter the regex module knows: nothing to test"
    contexts = ["a", "1", "\u89db", " ", "!", "'s", "\u00e9", "\x94"]
    s = "".join(c + d for d in newest for c in contexts)
    assert GPT2.encode_ordinary(s) == ENC.encode_ordinary(s)


@settings(max_examples=500, deadline=None)
@given(any_text)
def test_tiktokens_possessive_pattern_splits_like_gpt2s(s):
    assert regex.findall(r50k_pat_str, s) == regex.findall(GPT2_PATTERN, s)


def test_gpt2_tokenizer_is_loaded_once():
    assert gpt2_tokenizer() is gpt2_tokenizer()


# --- round trips ----------------------------------------------------------------------------------

@ROUND_TRIP
@given(any_text)
def test_gpt2_decode_encode_round_trip(s):
    assert GPT2.decode(GPT2.encode(s, disallowed_special=())) == s


@ROUND_TRIP
@given(any_text)
def test_trained_decode_encode_round_trip(s):
    assert SMALL.decode(SMALL.encode(s, disallowed_special=())) == s


def test_round_trip_on_corpus():
    assert SMALL.decode(SMALL.encode(CORPUS)) == CORPUS


def test_decode_accepts_tensors_and_numpy():
    torch = pytest.importorskip("torch")
    ids = GPT2.encode("Once upon a time")
    assert GPT2.decode(torch.tensor(ids)) == "Once upon a time"
    assert GPT2.decode(torch.tensor(ids).numpy()) == "Once upon a time"


# --- training -------------------------------------------------------------------------------------

def test_train_sizes_and_first_merge():
    text = CORPUS[:30_000]
    tok = BPETokenizer.train(text, 300)
    assert tok.n_vocab == 300 and len(tok.ranks) == 300
    pairs = Counter()                     # the first merge is the most frequent pair inside the chunks
    for chunk in regex.findall(GPT2_PATTERN, text):
        b = chunk.encode("utf-8")
        pairs.update(zip(b, b[1:]))
    (a, b), _ = pairs.most_common(1)[0]
    assert tok.ranks[bytes([a, b])] == 256
    assert BPETokenizer.train(text, 256).n_vocab == 256
    assert BPETokenizer.train(text, 300, special_tokens=["<|endoftext|>"]).eot_token == 299


def test_training_is_deterministic_and_prefix_consistent():
    small, big = BPETokenizer.train(CORPUS[:20_000], 300), BPETokenizer.train(CORPUS[:20_000], 400)
    assert small.ranks == BPETokenizer.train(CORPUS[:20_000], 300).ranks
    assert all(big.ranks[t] == i for t, i in small.ranks.items())   # greedy: a smaller vocab is a prefix


def test_train_on_tiny_text_warns_and_stops():
    with pytest.warns(UserWarning, match="only supports"):
        tok = BPETokenizer.train("aaab", 1000)
    assert tok.decode(tok.encode("aaab")) == "aaab"


@pytest.mark.parametrize("size", [0, 100, 255, -1])
def test_vocab_size_below_256_is_refused(size):
    with pytest.raises(ValueError, match="vocab_size.*256"):
        BPETokenizer.train(CORPUS[:1000], size)


def test_vocab_size_must_leave_room_for_special_tokens():
    with pytest.raises(ValueError, match="257"):
        BPETokenizer.train(CORPUS[:1000], 256, special_tokens=["<|endoftext|>"])


def test_train_bad_types():
    with pytest.raises(TypeError, match="str"):
        BPETokenizer.train(b"bytes", 300)
    with pytest.raises(TypeError, match="int"):
        BPETokenizer.train("text", 300.0)


# --- bad input to encode / decode -----------------------------------------------------------------

@pytest.mark.parametrize("bad", [b"bytes", None, 123, ["a", "list"]])
def test_encode_non_str_is_a_type_error(bad):
    with pytest.raises(TypeError, match="takes a str"):
        GPT2.encode(bad)
    with pytest.raises(TypeError, match="takes a str"):
        SMALL.encode(bad)


def test_special_token_in_text_is_refused_unless_allowed():
    s = "end<|endoftext|>start"
    with pytest.raises(ValueError, match="allowed_special"):
        GPT2.encode(s)
    with pytest.raises(ValueError):
        ENC.encode(s)                     # the reference refuses it too
    for kw in [dict(allowed_special={"<|endoftext|>"}), dict(allowed_special="all"), dict(disallowed_special=())]:
        assert GPT2.encode(s, **kw) == ENC.encode(s, **kw)
    assert GPT2.encode(s, allowed_special="all").count(50256) == 1


def test_special_tokens_of_a_trained_tokenizer():
    s = "a<|endoftext|>b"
    with pytest.raises(ValueError, match="<\\|endoftext\\|>"):
        SMALL.encode(s)
    ids = SMALL.encode(s, allowed_special="all")
    assert SMALL.eot_token in ids and SMALL.decode(ids) == s
    assert SMALL.eot_token not in SMALL.encode(s, disallowed_special=())


def test_eot_token_missing_is_explained():
    with pytest.raises(ValueError, match="special_tokens"):
        BPETokenizer.train("abc", 256).eot_token


@pytest.mark.parametrize("bad", [[50257], [-1], [10**9]])
def test_decode_unknown_id(bad):
    with pytest.raises(ValueError, match="not in the vocabulary"):
        GPT2.decode(bad)


def test_decode_bad_types():
    with pytest.raises(TypeError):
        GPT2.decode(["a"])
    with pytest.raises((TypeError, ValueError)):
        GPT2.decode("abc")


# --- save / load ----------------------------------------------------------------------------------

def test_save_load_round_trip(tmp_path):
    path = tmp_path / "tok.json"
    SMALL.save(path)
    back = BPETokenizer.load(path)
    assert back.ranks == SMALL.ranks and back.special_tokens == SMALL.special_tokens
    assert back.encode(CORPUS[:5000]) == SMALL.encode(CORPUS[:5000])
    json.loads(path.read_text(encoding="utf-8"))          # one UTF-8 JSON file


def test_gpt2_save_load_still_equals_tiktoken(tmp_path):
    GPT2.save(tmp_path / "gpt2.json")
    back = BPETokenizer.load(str(tmp_path / "gpt2.json"))
    s = "Hello 👋 東京 it's\r\n  x" + CORPUS[:3000]
    assert back.encode(s) == ENC.encode(s) and back.n_vocab == 50257


def test_load_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.json"):
        BPETokenizer.load(tmp_path / "nope.json")


def test_load_truncated_file(tmp_path):
    path = tmp_path / "tok.json"
    SMALL.save(path)
    path.write_text(path.read_text(encoding="utf-8")[:1000], encoding="utf-8")
    with pytest.raises(ValueError, match="tok.json"):
        BPETokenizer.load(path)


def _saved(tmp_path, **changes):
    path = tmp_path / "tok.json"
    SMALL.save(path)
    data = json.loads(path.read_text(encoding="utf-8"))
    data.update(changes)
    path.write_text(json.dumps(data), encoding="utf-8")
    return path, data


@pytest.mark.parametrize("changes, message", [
    (dict(format="something-else"), "something-else"),
    (dict(version=99), "version 99"),
    (dict(pattern=42), "must be a string"),
    (dict(pattern="(unclosed"), "not a valid tokenizer file"),
    (dict(vocab={"a": 0}), "256 single bytes"),
    (dict(special_tokens={"<|endoftext|>": 300}), "distinct"),
])
def test_load_corrupted_content(tmp_path, changes, message):
    path, _ = _saved(tmp_path, **changes)
    with pytest.raises(ValueError, match=message):
        BPETokenizer.load(path)


def test_load_shuffled_or_foreign_tokens(tmp_path):
    path, data = _saved(tmp_path)
    vocab = data["vocab"]
    longest = max(vocab, key=len)          # at least 3 bytes: it cannot be made from two single bytes
    first = next(t for t, i in vocab.items() if i == 256)
    vocab[longest], vocab[first] = 256, vocab[longest]   # ... so it cannot be the first merge
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ValueError, match="cannot be made by merging"):
        BPETokenizer.load(path)
    path, data = _saved(tmp_path)
    data["vocab"]["\u4e00"] = 5000          # a character outside GPT-2's byte table
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ValueError, match="not a valid tokenizer file"):
        BPETokenizer.load(path)


def test_load_binary_garbage_and_directories(tmp_path):
    (tmp_path / "bin.json").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ValueError, match="bin.json"):
        BPETokenizer.load(tmp_path / "bin.json")
    with pytest.raises(IsADirectoryError):
        BPETokenizer.load(tmp_path)


# --- no vocabulary files and no network -------------------------------------------------------------

def test_missing_gpt2_vocabulary_says_what_to_do(tmp_path, monkeypatch):
    import tiktoken.load

    def offline(url):
        raise ConnectionError(f"cannot reach {url}")

    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))   # an empty cache
    monkeypatch.setattr(tiktoken.load, "read_file", offline)
    with pytest.raises(RuntimeError, match=r"Connect to the internet once.*fetch_gpt2_vocab\.py.*make setup"):
        gpt2_tokenizer.__wrapped__()
