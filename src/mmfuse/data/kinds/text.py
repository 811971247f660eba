"""Text for the from-scratch encoders: word ids from a vocabulary learned on the training text.

``fit`` builds the vocabulary (at most ``vocab_size`` words, by frequency) from the valid,
non-empty cells; a cell becomes ``text_max_length`` int64 ids, 0-padded, unknown words 1.
The vocabulary is stored in preprocess.json's ``vocabularies`` section.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mmfuse.data.cells import valid_texts
from mmfuse.data.kinds import register_processor
from mmfuse.data.kinds.base import Alter, CellProcessor
from mmfuse.data.readers import Table
from mmfuse.data.text import Vocabulary
from mmfuse.types import InputSpec


@register_processor("text")
class TextKind(CellProcessor):
    """Tokenises each text with the learned vocabulary; ``alter`` sees the text string."""

    section = "vocabularies"

    def fit(self, table: Table) -> None:
        """Builds the vocabulary (undecodable cells are left out; ``encode`` reports them)."""
        texts = valid_texts(table.df[self.modality.column])
        self.learned = Vocabulary.build(texts, max_size=self.config.vocab_size)

    def spec(self) -> InputSpec:
        return InputSpec("text", (self.config.text_max_length,), vocab_size=len(self._vocabulary()))

    def decode(self, cell: Any, base_dir: Path, alter: Alter) -> np.ndarray:
        return self._vocabulary().encode(alter(cell), self.config.text_max_length)

    def load(self, state: Any) -> None:
        self.learned = Vocabulary.from_dict(state)

    def _vocabulary(self) -> Vocabulary:
        vocabulary: Vocabulary = self.fitted_state("vocabulary")
        return vocabulary
