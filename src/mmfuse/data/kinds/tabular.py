"""The tabular modality: every numeric and categorical column together, as one float vector.

``fit`` learns medians, means and standard deviations of the numeric columns and the category
lists of the categorical ones (``mmfuse.data.tabular.TabularProcessor``); a record becomes its
standardised numbers (median-imputed) followed by its category codes (0 missing, 1 unknown).
A record whose tabular cells are all empty lacks the modality. The statistics are stored in
preprocess.json's ``tabular`` section.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mmfuse.data.cells import is_empty
from mmfuse.data.kinds import register_processor
from mmfuse.data.kinds.base import ColumnProcessor, ModalityArrays, ReadOptions
from mmfuse.data.readers import Table
from mmfuse.data.tabular import TabularProcessor
from mmfuse.errors import DecodeError
from mmfuse.types import InputSpec


@register_processor("tabular")
class TabularKind(ColumnProcessor):
    """Standardises numbers and codes categories; an absent column is empty in every record.

    ``options.corrupt`` sees the whole standardised matrix (N, width), with the generator of
    seed 0.
    """

    section = "tabular"

    @property
    def numeric(self) -> list[str]:
        return self.modality.columns_of("numeric")

    @property
    def categorical(self) -> list[str]:
        return self.modality.columns_of("categorical")

    def fit(self, table: Table) -> None:
        """Learns the statistics and category lists from the training records."""
        self.learned = TabularProcessor(self.numeric, self.categorical).fit(table.df)

    def spec(self) -> InputSpec:
        tab = self._fitted()
        cards = tuple(tab.cardinalities)
        width = tab.num_numeric + len(cards)
        return InputSpec("tabular", (width,), num_numeric=tab.num_numeric, cardinalities=cards)

    def encode(self, table: Table, options: ReadOptions) -> ModalityArrays:
        """Checks each number, then transforms the columns at once (absent ones as empty)."""
        tab, df = self._fitted(), table.df
        cols = tab.numeric + tab.categorical
        frame = pd.DataFrame({c: df[c] if c in df.columns else None for c in cols}, index=df.index)
        errors = []
        for col in tab.numeric:
            for pos, value in enumerate(frame[col]):
                try:
                    tab.check_value(col, value)
                except DecodeError as err:
                    errors.append((pos, col, str(err)))
        matrix = tab.transform(frame).astype(np.float32)
        if options.corrupt is not None:
            altered = options.corrupt(self.modality.name, matrix, np.random.default_rng(0))
            matrix = np.asarray(altered, dtype=np.float32)
        # a record with every tabular cell empty lacks the tabular modality
        present = ~frame.map(is_empty).all(axis=1).to_numpy() if cols else np.ones(len(df), bool)
        return ModalityArrays(matrix, present, errors)

    def load(self, state: Any) -> None:
        self.learned = TabularProcessor.from_dict(state)

    @property
    def subject(self) -> str:
        return "the tabular modality"

    def _fitted(self) -> TabularProcessor:
        tab: TabularProcessor = self.fitted_state("statistics")
        return tab
