"""gpt2lib.data: the corpus, the train/validation split, the windows and the batches (chapter 2)."""
import re

import pytest
import tiktoken
import torch
from hypothesis import given, settings, strategies as st

from conftest import ROOT
from gpt2lib.data import CORPUS_SHA256, WindowDataset, batch_indices, get_batch, load_corpus, split_text


@pytest.fixture(scope="module")
def enc():
    return tiktoken.get_encoding("gpt2")


# ---------------------------------------------------------------- load_corpus

def test_default_corpus_is_the_shipped_file_with_its_hash():
    import hashlib

    text = load_corpus()
    data = (ROOT / "gpt2lib" / "corpus" / "python_docs.txt").read_bytes()
    assert text.encode("utf-8") == data                  # byte for byte, whatever this Python's own docs say
    assert hashlib.sha256(data).hexdigest() == CORPUS_SHA256
    assert len(data) == 466_273 and text.startswith('The "assert" statement')
    assert load_corpus(None) == text


def test_a_damaged_corpus_file_is_refused(monkeypatch, tmp_path):
    import gpt2lib.data as data_mod

    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "python_docs.txt").write_bytes(b"The \"assert\" statement, edited\n")
    monkeypatch.setattr(data_mod, "files", lambda package: tmp_path)
    with pytest.raises(ValueError, match="SHA-256"):
        load_corpus()


def test_a_file_is_read_as_utf8_byte_for_byte(tmp_path):
    content = "Grüße, 世界!\r\nline two\n\n€ and an emoji 🐍\n"
    p = tmp_path / "t.txt"
    p.write_bytes(content.encode("utf-8"))
    assert load_corpus(p) == content
    assert load_corpus(str(p)) == content


def test_missing_file_names_it(tmp_path):
    p = tmp_path / "nowhere" / "missing.txt"
    with pytest.raises(FileNotFoundError, match=re.escape(str(p))):
        load_corpus(p)


def test_a_folder_is_not_a_file(tmp_path):
    with pytest.raises(IsADirectoryError, match=re.escape(str(tmp_path))):
        load_corpus(tmp_path)


@pytest.mark.parametrize("data, offset", [
    ("Café".encode("latin-1"), 3),                 # a lone 0xe9
    (b"\xff\xfeh\x00i\x00", 0),                     # UTF-16 with its byte-order mark
    (("ok " * 100).encode() + b"\x80 tail", 300),   # a stray continuation byte, later in the file
])
def test_non_utf8_file_says_so_and_where(tmp_path, data, offset):
    p = tmp_path / "bad.txt"
    p.write_bytes(data)
    with pytest.raises(ValueError, match=rf"not UTF-8.*byte offset {offset}\b") as info:
        load_corpus(p)
    assert str(p) in str(info.value)
    assert data[:offset].decode("utf-8") is not None  # the bytes before the offset are valid
    with pytest.raises(UnicodeDecodeError):
        data[:offset + 4].decode("utf-8")


@pytest.mark.parametrize("content", [b"", b"   \n\n\t "])
def test_empty_file_is_refused(tmp_path, content):
    p = tmp_path / "empty.txt"
    p.write_bytes(content)
    with pytest.raises(ValueError, match="empty"):
        load_corpus(p)


# ---------------------------------------------------------------- split_text

def test_corpus_split_is_at_a_line_start_and_keeps_gpt2_tokens(enc):
    text = load_corpus()
    train, val = split_text(text, 0.1)
    assert train + val == text
    assert train.endswith("\n") and not val[0].isspace()
    assert abs(len(val) / len(text) - 0.1) < 0.05
    # the cut is where GPT-2's tokenizer would cut anyway: no token straddles the two parts
    assert enc.encode_ordinary(train) + enc.encode_ordinary(val) == enc.encode_ordinary(text)


@settings(max_examples=150, deadline=None)
@given(text=st.text(st.sampled_from("ab \n.é"), min_size=2, max_size=400),
       frac=st.floats(0.01, 0.99))
def test_split_partitions_the_text_near_the_fraction(text, frac):
    train, val = split_text(text, frac)
    assert train + val == text                      # nothing lost, nothing duplicated
    assert train and val                            # both parts are usable
    n = len(text)
    slack = max(1, round(n * min(frac, 1 - frac) / 2))
    assert abs(len(train) - round(n * (1 - frac))) <= slack + 1
    # a line boundary is preferred whenever one lies in the allowed range
    lo, hi = max(1, round(n * (1 - frac)) - slack), min(n - 1, round(n * (1 - frac)) + slack)
    if any(text[i - 1] == "\n" for i in range(max(lo, 1), hi + 1)):
        assert train.endswith("\n")


def test_single_line_text_is_cut_at_a_word():
    text = " ".join(f"w{i}" for i in range(100))
    train, val = split_text(text, 0.2)
    assert train + val == text and train.endswith(" ") and not val.startswith(" ")
    assert abs(len(val) / len(text) - 0.2) < 0.05


def test_no_window_straddles_the_split():
    # ids that encode their own position: a window's ids say which part of the text they came from
    text = "".join(f"line {i:05d}\n" for i in range(3000))
    train, val = split_text(text, 0.25)
    train_ids = [int(l.split()[1]) for l in train.splitlines()]
    val_ids = [int(l.split()[1]) for l in val.splitlines()]
    assert train_ids == list(range(len(train_ids))) and val_ids == list(range(len(train_ids), 3000))
    boundary = len(train_ids)
    for ids, is_train in [(train_ids, True), (val_ids, False)]:
        for x, y in WindowDataset(ids, 16, stride=3):
            window = torch.cat([x, y[-1:]])
            assert bool((window < boundary).all()) if is_train else bool((window >= boundary).all())


@pytest.mark.parametrize("frac, fact", [(0, "val_fraction must be > 0"), (-0.1, "> 0, got -0.1"),
                                        (1, r"1 - val_fraction must be > 0"), (1.5, "<= 1, got 1.5"),
                                        (float("nan"), "val_fraction must be a number")])
def test_bad_fraction(frac, fact):
    with pytest.raises(ValueError, match=fact):
        split_text("some text\nmore text\n", frac)


@pytest.mark.parametrize("frac", ["0.1", None, True])
def test_fraction_must_be_a_number(frac):
    with pytest.raises(TypeError, match="val_fraction"):
        split_text("some text\nmore text\n", frac)


@pytest.mark.parametrize("text", ["", "x"])
def test_text_too_short_to_split(text):
    with pytest.raises(ValueError, match=rf"len\(text\) must be >= 2, got {len(text)}"):
        split_text(text, 0.1)


def test_split_wants_str():
    with pytest.raises(TypeError, match="bytes"):
        split_text(b"bytes\nare not text\n", 0.1)


# ---------------------------------------------------------------- WindowDataset

@settings(max_examples=100, deadline=None)
@given(n=st.integers(2, 200), block_size=st.integers(1, 40), stride=st.one_of(st.none(), st.integers(1, 50)))
def test_windows_equal_unfold(n, block_size, stride):
    ids = torch.randint(0, 50257, (n,), generator=torch.Generator().manual_seed(n))
    if n < block_size + 1:
        with pytest.raises(ValueError, match=f"at least {block_size + 1} tokens"):
            WindowDataset(ids, block_size, stride)
        return
    ds = WindowDataset(ids, block_size, stride)
    ref = ids.unfold(0, block_size + 1, stride or block_size)     # PyTorch's own windowing
    assert len(ds) == ref.shape[0]
    for i in range(len(ds)):
        x, y = ds[i]
        assert x.dtype == y.dtype == torch.long and x.shape == y.shape == (block_size,)
        assert torch.equal(x, ref[i, :-1]) and torch.equal(y, ref[i, 1:])
    assert torch.equal(ds[-1][0], ref[-1, :-1])
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_window_contents_by_hand():
    ds = WindowDataset(list(range(10)), block_size=3)
    assert len(ds) == 3                                           # (10 - 3 - 1) // 3 + 1
    assert [ds[i][0].tolist() for i in range(3)] == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    assert [ds[i][1].tolist() for i in range(3)] == [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
    ds = WindowDataset(range(10), block_size=4, stride=2)
    assert [ds[i][0].tolist() for i in range(len(ds))] == [[0, 1, 2, 3], [2, 3, 4, 5], [4, 5, 6, 7]]


def test_items_do_not_alias_the_ids():
    ids = torch.arange(20)
    x, _ = WindowDataset(ids, 4)[0]
    x.zero_()
    assert ids[:4].tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize("ids", [[], [1, 2, 3]])
def test_too_short_says_how_many_tokens(ids):
    with pytest.raises(ValueError, match=r"needs at least 5 tokens"):
        WindowDataset(ids, 4)


@pytest.mark.parametrize("kw, fact", [(dict(block_size=0), "block_size must be >= 1, got 0"),
                                      (dict(block_size=-3), "block_size must be >= 1, got -3"),
                                      (dict(block_size=4, stride=0), "stride must be >= 1, got 0"),
                                      (dict(block_size=4, stride=-1), "stride must be >= 1, got -1")])
def test_non_positive_sizes(kw, fact):
    with pytest.raises(ValueError, match=fact):
        WindowDataset(list(range(100)), **kw)


def test_bad_ids():
    with pytest.raises(TypeError, match="integer token ids, got torch.float32"):
        WindowDataset(torch.rand(100), 4)
    with pytest.raises(TypeError, match=r"1-D .*\(10, 10\)"):
        WindowDataset(torch.zeros(10, 10, dtype=torch.long), 4)
    with pytest.raises(TypeError, match="block_size must be an integer, got 4.0"):
        WindowDataset(list(range(100)), 4.0)


def test_ids_of_any_integer_kind():
    import numpy as np

    ref = WindowDataset(list(range(50)), 6, stride=5)
    for ids in (torch.arange(50, dtype=torch.int32), np.arange(50), np.arange(50, dtype=np.uint16), range(50),
                tuple(range(50)), (i for i in range(50))):
        ds = WindowDataset(ids, 6, stride=5)
        assert len(ds) == len(ref) == 9
        assert all(torch.equal(ds[i][0], ref[i][0]) and ds[i][0].dtype == torch.long for i in range(len(ds)))


# ---------------------------------------------------------------- batch_indices and get_batch

def test_batches_are_slices_of_one_seeded_permutation_per_epoch():
    n, b = 124, 4
    for epoch in range(3):                                        # the seed formula: training runs depend on it
        order = torch.randperm(n, generator=torch.Generator().manual_seed(3 * 1_000_003 + epoch))
        steps = torch.cat([batch_indices(n, b, epoch * (n // b) + k, seed=3) for k in range(n // b)])
        assert torch.equal(steps, order)                          # 124 = 31 x 4: every window once per epoch


def test_batches_do_not_depend_on_the_global_rng():
    a = [batch_indices(1000, 8, k, seed=7) for k in range(200)]
    torch.manual_seed(12345)
    torch.rand(7)
    assert all(torch.equal(u, batch_indices(1000, 8, k, seed=7)) for k, u in enumerate(a))
    assert not torch.equal(batch_indices(1000, 8, 0, seed=8), a[0])
    assert not torch.equal(a[0], a[1000 // 8])                    # the next epoch: another order


def test_leftover_windows_sit_out_an_epoch():
    n, b = 10, 3                                                  # 3 batches per epoch, 1 window left out
    epoch = torch.cat([batch_indices(n, b, k) for k in range(3)])
    assert len(set(epoch.tolist())) == 9 and batch_indices(n, b, 3).tolist() != epoch[:3].tolist()


def test_a_batch_larger_than_the_data():
    with pytest.raises(ValueError, match="batch needs 16 windows.*only 10"):
        batch_indices(10, 8, 0, world_size=2)


def test_get_batch_stacks_windows():
    ds = WindowDataset(torch.arange(1000) * 7 % 50257, 8, stride=4)
    idx = torch.tensor([5, 0, 200])
    x, y = get_batch(ds, idx)
    assert x.dtype == y.dtype == torch.long and x.shape == y.shape == (3, 8)
    for row, i in enumerate(idx.tolist()):
        assert torch.equal(x[row], ds[i][0]) and torch.equal(y[row], ds[i][1])


def test_get_batch_calls_the_datasets_collate():
    class Ragged(torch.utils.data.Dataset):
        seqs = [[1, 2, 3, 4], [5, 6], [7, 8, 9]]

        def __len__(self):
            return 3

        def __getitem__(self, i):
            return torch.tensor(self.seqs[i][:-1]), torch.tensor(self.seqs[i][1:])

        def collate(self, items):
            T = max(len(x) for x, _ in items)
            pad = lambda t, v: torch.cat([t, torch.full((T - len(t),), v)])   # noqa: E731
            return torch.stack([pad(x, 0) for x, _ in items]), torch.stack([pad(y, -100) for _, y in items])

    x, y = get_batch(Ragged(), torch.tensor([1, 0]))
    assert x.tolist() == [[5, 0, 0], [1, 2, 3]] and y.tolist() == [[6, -100, -100], [2, 3, 4]]
