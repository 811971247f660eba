"""Tests for mmfuse.data.text: normalisation, tokenizer, vocabulary build/encode/serialise."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mmfuse.data.text import PAD, UNK, Vocabulary, normalize_text, tokenize


def test_normalize_text_nfkc_lower_whitespace() -> None:
    assert normalize_text("  Hello\t\nWORLD  ") == "hello world"
    assert normalize_text("ﬁne Ｆｕｌｌ") == "fine full"  # ligature and full-width forms
    assert normalize_text("") == ""


def test_tokenize_words_and_punctuation() -> None:
    assert tokenize("Hello, world! It's 2024.") == [
        "hello", ",", "world", "!", "it", "'", "s", "2024", ".",
    ]
    assert tokenize("café   naïve") == ["café", "naïve"]
    assert tokenize("   ") == []


def test_build_orders_by_frequency_then_alphabet() -> None:
    vocab = Vocabulary.build(["b a c", "a b", "a d"])
    # a:3, b:2, then c and d tie at 1 -> alphabetical.
    assert vocab.tokens == ["<pad>", "<unk>", "a", "b", "c", "d"]
    assert len(vocab) == 6 and "a" in vocab and "z" not in vocab


def test_build_max_size_includes_specials_and_min_freq() -> None:
    texts = ["a a a b b c"]
    assert Vocabulary.build(texts, max_size=3).tokens == ["<pad>", "<unk>", "a"]
    assert Vocabulary.build(texts, min_freq=2).tokens == ["<pad>", "<unk>", "a", "b"]
    with pytest.raises(ValueError, match=r"max_size must be >= 2 \(for <pad> and <unk>\), got 1"):
        Vocabulary.build(texts, max_size=1)


def test_special_token_text_does_not_collide() -> None:
    vocab = Vocabulary.build(["<pad> <unk>"])
    assert vocab.tokens[:2] == ["<pad>", "<unk>"]
    assert len(set(vocab.tokens)) == len(vocab)


def test_encode_pads_truncates_and_marks_unknown() -> None:
    vocab = Vocabulary.build(["the cat sat", "the dog"])  # the=2, cat=3, dog=4, sat=5
    ids = vocab.encode("The cat flew", max_length=5)
    assert ids.dtype == np.int64 and ids.shape == (5,)
    np.testing.assert_array_equal(ids, [2, 3, UNK, PAD, PAD])
    np.testing.assert_array_equal(vocab.encode("the dog sat the cat", max_length=3), [2, 4, 5])
    np.testing.assert_array_equal(vocab.encode("", max_length=2), [PAD, PAD])
    assert vocab.decode([2, 3, 0, 0]) == ["the", "cat"]
    with pytest.raises(ValueError, match="max_length must be >= 1, got 0"):
        vocab.encode("x", 0)


def test_dict_round_trip_through_json() -> None:
    vocab = Vocabulary.build(["x y z", "y"])
    restored = Vocabulary.from_dict(json.loads(json.dumps(vocab.to_dict())))
    assert restored.tokens == vocab.tokens
    np.testing.assert_array_equal(restored.encode("z y q", 4), vocab.encode("z y q", 4))


def test_invalid_vocabularies_are_rejected() -> None:
    with pytest.raises(ValueError, match="must start with"):
        Vocabulary(["a", "b"])
    with pytest.raises(ValueError, match=r"duplicate tokens: \['a'\]"):
        Vocabulary(["<pad>", "<unk>", "a", "a"])
    with pytest.raises(ValueError, match="list of strings"):
        Vocabulary.from_dict({"tokens": "abc"})
