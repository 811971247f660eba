"""Text normalisation, a simple word/punctuation tokenizer and a frequency-ranked vocabulary."""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

PAD, UNK = 0, 1
PAD_TOKEN, UNK_TOKEN = "<pad>", "<unk>"
_TOKEN_PATTERN = re.compile(r"\w+|[^\w\s]")


def normalize_text(s: str) -> str:
    """NFKC-normalise, lowercase, collapse runs of whitespace to one space and strip."""
    return " ".join(unicodedata.normalize("NFKC", s).lower().split())


def tokenize(s: str) -> list[str]:
    """Split normalised text into words (``\\w+``) and single punctuation characters."""
    return _TOKEN_PATTERN.findall(normalize_text(s))


class Vocabulary:
    """Token <-> id mapping; id 0 is ``<pad>``, id 1 is ``<unk>``.

    Args:
        tokens: All tokens in id order, starting with ``<pad>`` and ``<unk>``.
    """

    def __init__(self, tokens: Sequence[str]) -> None:
        tokens = list(tokens)
        if tokens[:2] != [PAD_TOKEN, UNK_TOKEN]:
            raise ValueError(
                f"vocabulary must start with {PAD_TOKEN!r}, {UNK_TOKEN!r}; got {tokens[:2]}"
            )
        if len(set(tokens)) != len(tokens):
            dupes = sorted(t for t, n in Counter(tokens).items() if n > 1)
            raise ValueError(f"vocabulary has duplicate tokens: {dupes[:10]}")
        self.tokens = tokens
        self._index = {token: i for i, token in enumerate(tokens)}

    @classmethod
    def build(cls, texts: Iterable[str], max_size: int = 20000, min_freq: int = 1) -> Vocabulary:
        """Build from a corpus: most frequent tokens first, ties broken alphabetically.

        Args:
            texts: The training texts.
            max_size: Total vocabulary size, including ``<pad>`` and ``<unk>``.
            min_freq: Tokens seen fewer times than this are left out (they become ``<unk>``).

        Returns:
            The vocabulary.
        """
        if max_size < 2:
            raise ValueError(f"max_size must be >= 2 (for <pad> and <unk>), got {max_size}")
        if min_freq < 1:
            raise ValueError(f"min_freq must be >= 1, got {min_freq}")
        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(tokenize(text))
        ranked = sorted(
            (t for t, n in counts.items() if n >= min_freq and t not in (PAD_TOKEN, UNK_TOKEN)),
            key=lambda t: (-counts[t], t),
        )
        return cls([PAD_TOKEN, UNK_TOKEN, *ranked[: max_size - 2]])

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: object) -> bool:
        return token in self._index

    def encode(self, text: str, max_length: int) -> np.ndarray:
        """Token ids of ``text``, truncated or right-padded with ``PAD`` to ``max_length``.

        Returns:
            int64 array of shape (max_length,); unknown tokens are ``UNK``.
        """
        if max_length < 1:
            raise ValueError(f"max_length must be >= 1, got {max_length}")
        ids = np.full(max_length, PAD, dtype=np.int64)
        tokens = tokenize(text)[:max_length]
        ids[: len(tokens)] = [self._index.get(t, UNK) for t in tokens]
        return ids

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Tokens for ``ids``, skipping padding."""
        return [self.tokens[i] for i in ids if i != PAD]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able state: ``{"tokens": [...]}``."""
        return {"tokens": list(self.tokens)}

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> Vocabulary:
        """Inverse of :meth:`to_dict`."""
        tokens = state.get("tokens")
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            raise ValueError(
                f"vocabulary state needs a list of strings under 'tokens', got {state!r:.200}"
            )
        return cls(tokens)

    def __repr__(self) -> str:
        return f"Vocabulary(size={len(self)})"
