"""mmfuse: multimodal data fusion for images, text, audio, video and tables.

Quick start::

    import mmfuse
    clf = mmfuse.MultimodalClassifier(fusion="attention", epochs=20)
    clf.fit("data.csv", target="label")
    clf.predict(test_df)
    clf.save("model_dir"); clf = mmfuse.load("model_dir")

Importing mmfuse is cheap: torch and the media decoders load on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "MultimodalClassifier": "mmfuse.estimators.classifier",
    "MultimodalRegressor": "mmfuse.estimators.regressor",
    "MultimodalRetriever": "mmfuse.estimators.retriever",
    "MultimodalRecommender": "mmfuse.estimators.recommender",
    "load": "mmfuse.estimators.io",
    "load_fitted": "mmfuse.estimators.io",
    "compare": "mmfuse.estimators.compare",
    "list_fusions": "mmfuse.fusion",
    "create_fusion": "mmfuse.fusion",
    "list_encoders": "mmfuse.encoders",
    "create_encoder": "mmfuse.encoders",
    "infer_schema": "mmfuse.data.schema",
    "read_table": "mmfuse.data.readers",
    "make_demo_dataset": "mmfuse.datasets",
    "MmfuseError": "mmfuse.errors",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mmfuse' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
