"""MultimodalRegressor: fused regression with the sklearn estimator contract."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mmfuse.estimators.base import DataLike, MultimodalEstimator


class MultimodalRegressor(MultimodalEstimator):
    """Predicts a number from records mixing images, text, audio, video and tables.

    See ``MultimodalEstimator`` for the parameters. ``score`` is R² as in scikit-learn.
    """

    _task = "regression"

    def predict(self, data: DataLike) -> np.ndarray:
        """(N,) predictions on the target's original scale."""
        values = self._aligned_outputs(data)  # checks that the model is fitted
        return self.preprocessor_.fitted_target.decode(values)

    def predict_frame(self, data: DataLike) -> tuple[pd.DataFrame, list]:
        """Predictions as a table (row, prediction[, distrusted]) plus rejected records;
        ``distrusted``: the modalities the model's guard treated as missing."""
        values, enc, distrusted = self._outputs(data)
        frame = pd.DataFrame({"row": enc.rows, "prediction": self.preprocessor_.fitted_target.decode(values),
                              **self._distrusted_column(distrusted)})
        return frame, enc.rejected

    def score(self, data: DataLike, y: Any = None) -> float:
        """R² on labelled records (the target column in ``data``, or given as ``y``)."""
        return self.evaluate(data, y)["r2"]
