"""What every mmfuse estimator shares: scikit-learn's parameter contract, reading tables, the
fitted pipeline, and the fitted check.

``MultimodalEstimator`` (classification, regression) and ``MultimodalRetriever`` are siblings
that both derive from ``Facade``; neither inherits the other's ``fit``. Each declares its
parameters once, as a params class of ``mmfuse.params`` (``takes_params``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeAlias

import pandas as pd

from mmfuse.data.readers import Table, read_table
from mmfuse.errors import MmfuseError
from mmfuse.estimators.pipeline import Pipeline
from mmfuse.params import defaults, names

DataLike: TypeAlias = "str | Path | pd.DataFrame | Table"


class Facade:
    """scikit-learn's estimator contract over a params class (set by ``takes_params``).

    ``__init__`` only stores parameters; learned state ends in ``_``.
    """

    params_class: type  # set by mmfuse.params.takes_params
    _task = "classification"

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Constructor parameters and their current values."""
        return {name: getattr(self, name) for name in names(self.params_class)}

    def set_params(self, **params: Any) -> Facade:
        """Sets constructor parameters; unknown names raise."""
        valid = names(self.params_class)
        for name, value in params.items():
            if name not in valid:
                raise ValueError(f"unknown parameter {name!r}; valid: {', '.join(valid)}")
            setattr(self, name, value)
        return self

    def frozen_params(self) -> Any:
        """The current parameters as a frozen ``params_class`` value, for functions that need
        the parameters and nothing else of the estimator."""
        return self.params_class(**self.get_params())

    def __repr__(self) -> str:
        initial = defaults(self.params_class)
        changed = {k: v for k, v in self.get_params().items() if v != initial[k]}
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in changed.items())})"

    @property
    def task_(self) -> str:
        """"classification", "regression" or "retrieval": what this estimator learns."""
        return self._task

    def read(self, data: DataLike) -> Table:
        """A table from a file, folder or DataFrame; relative media paths resolve against
        ``base_dir`` when it is set, else a file's folder (a DataFrame's: the current folder)."""
        return read_table(data, self.base_dir)

    def check_fitted(self) -> None:
        """Raises MmfuseError unless ``fit`` (or ``mmfuse.load``) has run."""
        if not hasattr(self, "model_"):
            raise MmfuseError(f"this {type(self).__name__} is not fitted yet; call fit first")

    @property
    def pipeline_(self) -> Pipeline:
        """The fitted pipeline, run with this estimator's current options."""
        self.check_fitted()
        return Pipeline.around(self.preprocessor_, self)
