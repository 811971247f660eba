"""The demo data's own ceiling on a benchmark's test records, clean and with 30 % missing.

Shared by ``presets.py`` and ``preset_choice.py``: both test on ``test.csv`` of a demo dataset
(``make_demo_dataset(..., n, seed)``) and hide each modality in 30 % of the records with
``Views.build(enc, seed).missing``. The Bayes-optimal prediction given what a model is shown
(``mmfuse.datasets.demo_oracle``: every vote read perfectly, ``income`` weighed by its
likelihood) scored on the same records and the same hidden cells is the ceiling of any model,
and its drop is what hiding the modalities costs the data itself.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mmfuse.data.preprocess import Encoded
from mmfuse.data.schema import TABULAR
from mmfuse.datasets import DEMO_MODALITY_COLUMNS, DEMO_TARGET, demo_votes
from mmfuse.datasets.demo_oracle import demo_oracle_accuracy, demo_posterior
from mmfuse.search.validation import Views


def ceiling(enc: Encoded, test: Path, n: int, seed: int, features: list[str]) -> dict[str, float]:
    """The oracle's test accuracy on ``enc`` (``test`` prepared with ``features``) and on its
    ``missing30`` copy, and the drop between them."""
    df = pd.read_csv(test)
    votes = {k: v[df["id"].to_numpy()[enc.rows]] for k, v in demo_votes(n, seed).items()}
    positive = df[DEMO_TARGET].to_numpy()[enc.rows] == "positive"
    income = df["income"].to_numpy(float)[enc.rows] if "income" in features else None
    missing = Views.build(enc, seed).missing
    assert missing is not None, "two modalities or more are needed"

    def accuracy_seeing(seen: Encoded) -> float:
        media = {DEMO_MODALITY_COLUMNS[m]: w for m, w in seen.mask.items()
                 if m in DEMO_MODALITY_COLUMNS}  # fmt: skip
        shown = None
        if income is not None and TABULAR in seen.mask:
            shown = np.where(seen.mask[TABULAR], income, np.nan)
        return round(demo_oracle_accuracy(demo_posterior(votes, media, shown), positive), 4)

    clean, hidden = accuracy_seeing(enc), accuracy_seeing(missing)
    return {"clean": clean, "missing30": hidden, "drop": round(clean - hidden, 4)}
