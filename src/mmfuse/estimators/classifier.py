"""MultimodalClassifier: fused classification with the sklearn estimator contract."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mmfuse.estimators.base import DataLike, MultimodalEstimator


class MultimodalClassifier(MultimodalEstimator):
    """Classifies records whose columns mix images, text, audio, video and tables.

    Example::

        clf = MultimodalClassifier(fusion="attention", epochs=20).fit(df, target="label")
        clf.predict(test_df); clf.predict_proba(test_df); clf.score(test_df)

    See ``MultimodalEstimator`` for the parameters. Learned state: ``classes_``, ``schema_``,
    ``model_``, ``history_``, ``metrics_`` (validation), ``rejected_``.
    """

    _task = "classification"

    @property
    def classes_(self) -> np.ndarray:
        self.check_fitted()
        return np.asarray(self.preprocessor_.fitted_target.classes, dtype=object)

    def predict_proba(self, data: DataLike) -> np.ndarray:
        """(N, C) class probabilities, columns in the order of ``classes_``; one row per input
        record (NaN rows for records skipped with ``on_bad_record="skip"``)."""
        return self._aligned_outputs(data)

    def predict(self, data: DataLike) -> np.ndarray:
        """(N,) predicted labels (None for records skipped as bad)."""
        proba = self.predict_proba(data)
        labels = np.full(len(proba), None, dtype=object)
        ok = ~np.isnan(proba).any(1)
        labels[ok] = self.classes_[proba[ok].argmax(1)]
        return labels

    def predict_frame(self, data: DataLike) -> tuple[pd.DataFrame, list]:
        """Predictions as a table (row, prediction, [distrusted,] proba_<class>...) plus rejected
        records; ``distrusted``: the modalities the model's guard treated as missing."""
        proba, enc, distrusted = self._outputs(data)
        frame = pd.DataFrame({"row": enc.rows, "prediction": self.classes_[proba.argmax(1)],
                              **self._distrusted_column(distrusted)})
        # one concat: a column at a time warns (PerformanceWarning) once per class beyond 100
        probas = pd.DataFrame(proba, columns=[f"proba_{label}" for label in self.classes_])
        return pd.concat([frame, probas], axis=1), enc.rejected

    def score(self, data: DataLike, y: Any = None) -> float:
        """Accuracy on labelled records (the target column in ``data``, or given as ``y``)."""
        return self.evaluate(data, y)["accuracy"]
