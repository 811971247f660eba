"""Embedding vectors given in the table: parsed, and checked against the width seen in training.

A cell is a vector written as a list ("[0.1, 0.2]", numbers separated by spaces or commas), a
path to a ``.npy`` file, or an in-memory 1-D array (see ``mmfuse.data.embedding``). ``fit``
records the width of the first readable vector; the input is that many float32 values. The
width is stored in preprocess.json's ``embedding_dims`` section.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mmfuse.data.cells import checked_dim, is_empty
from mmfuse.data.kinds import register_processor
from mmfuse.data.kinds.base import Alter, CellProcessor
from mmfuse.data.readers import Table
from mmfuse.errors import DecodeError, MmfuseError
from mmfuse.types import InputSpec


@register_processor("embedding")
class EmbeddingKind(CellProcessor):
    """Parses each vector and checks its width; ``alter`` sees the vector (D,)."""

    section = "embedding_dims"

    def fit(self, table: Table) -> None:
        """Records the width of the first readable vector.

        Raises:
            MmfuseError: No cell of the column holds a readable vector.
        """
        from mmfuse.data.embedding import parse_embedding

        column = self.modality.column
        for value in table.df[column]:
            if is_empty(value):
                continue
            try:
                self.learned = int(parse_embedding(value, table.base_dir).shape[0])
                return
            except DecodeError:
                continue
        raise MmfuseError(f"{table.name}, column {column!r}: no readable embedding vector")

    def spec(self) -> InputSpec:
        return InputSpec("embedding", (self._dim(),))

    def decode(self, cell: Any, base_dir: Path, alter: Alter) -> np.ndarray:
        from mmfuse.data.embedding import parse_embedding

        return alter(checked_dim(parse_embedding(cell, base_dir), self._dim()))

    def load(self, state: Any) -> None:
        self.learned = int(state)

    def _dim(self) -> int:
        return int(self.fitted_state("width"))
