"""The second book's seq2seq data and Tiny Shakespeare: verified files, the book's vocabulary and
split, ids that stay integers."""


import numpy as np
import pytest

from handgrad import data as D
from handgrad.data.fetch import DataError

from conftest import SHARED_DATA  # noqa: E402
needs_book2 = pytest.mark.skipif(not (SHARED_DATA / "book2-seq2seq" / "addition.txt").is_file(),
                                 reason=f"book2-seq2seq not found under {SHARED_DATA}")
needs_shakespeare = pytest.mark.skipif(not (SHARED_DATA / "tinyshakespeare" / "input.txt").is_file(),
                                       reason=f"tinyshakespeare not found under {SHARED_DATA}")


@pytest.fixture(autouse=True)
def isolated_roots(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("HANDGRAD_DATA", raising=False)


def test_vocabulary_encodes_and_decodes_and_names_unknown_characters():
    vocab = D.CharVocab.in_order_of_appearance(["ab_", "ba c"])
    assert vocab.chars == ("a", "b", "_", " ", "c")
    ids = vocab.encode("cab")
    assert ids.dtype == np.int64 and ids.tolist() == [4, 0, 1]
    assert vocab.decode(ids) == "cab"
    with pytest.raises(ValueError, match=r"characters 'xz' are not in the vocabulary of 5 characters"):
        vocab.encode("axz")
    with pytest.raises(ValueError, match=r"ids must be integers in \[0, 5\)"):
        vocab.decode([0, 5])
    with pytest.raises(ValueError, match="ids must be integers"):
        vocab.decode(np.array([0.0, 1.0]))


@needs_book2
def test_addition_is_the_books_data_vocabulary_and_split():
    (x, t), (x_test, t_test), vocab = D.load_seq2seq("addition", data_dir=SHARED_DATA)
    assert x.shape == (45000, 7) and t.shape == (45000, 5) and x_test.shape == (5000, 7) and t_test.shape == (5000, 5)
    assert x.dtype == np.int64 and t.dtype == np.int64
    # The book prints these for its first training sample and vocabulary (chapter 7).
    assert "".join(vocab.chars) == "16+75 _920384"
    assert x[0].tolist() == [3, 0, 2, 0, 0, 11, 5] and t[0].tolist() == [6, 0, 11, 7, 5]
    assert vocab.decode(x[0]) == "71+118 " and vocab.decode(t[0]) == "_189 "
    assert all(vocab.decode(row)[0] == "_" for row in t[:100])
    (x2, _), _ = D.load_dataset("addition", data_dir=SHARED_DATA)
    np.testing.assert_array_equal(x2, x)


@needs_book2
def test_dates_questions_and_iso_answers():
    (x, t), (x_test, t_test), vocab = D.load_seq2seq("dates", data_dir=SHARED_DATA)
    assert x.shape == (45000, 29) and t.shape == (45000, 11) and len(x_test) == 5000
    answer = vocab.decode(t_test[0])
    assert answer[0] == "_" and answer[5] == "-" and answer[8] == "-" and answer[1:5].isdigit()


def test_a_tampered_text_file_is_refused_naming_it(tmp_path):
    folder = tmp_path / "root" / "book2-seq2seq"
    folder.mkdir(parents=True)
    (folder / "addition.txt").write_text("1+1    _2    \n")
    with pytest.raises(DataError, match=f"{folder / 'addition.txt'}: checksum mismatch"):
        D.load_seq2seq("addition", data_dir=tmp_path / "root", download=False)
    with pytest.raises(ValueError, match="unknown dataset 'subtraction'"):
        D.load_seq2seq("subtraction")


@needs_shakespeare
def test_shakespeare_follows_nanogpts_convention():
    train, val, vocab = D.load_shakespeare(data_dir=SHARED_DATA)
    assert len(vocab) == 65 and vocab.chars[:3] == ("\n", " ", "!")
    assert len(train) == 1003854 and len(val) == 111540 and train.dtype == np.int64
    assert vocab.decode(train[:14]) == "First Citizen:"


@needs_shakespeare
def test_shakespeare_through_load_dataset_is_inputs_and_next_tokens():
    (x, t), (x_val, t_val) = D.load_dataset("shakespeare", data_dir=SHARED_DATA)
    train, val, _ = D.load_shakespeare(data_dir=SHARED_DATA)
    np.testing.assert_array_equal(x, train[:-1])
    np.testing.assert_array_equal(t, train[1:])
    assert len(x_val) == len(val) - 1 and x.dtype == np.int64
