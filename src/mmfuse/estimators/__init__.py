"""sklearn-style facades over the PyTorch core: fit / predict / score / save / load."""

from mmfuse.estimators.classifier import MultimodalClassifier
from mmfuse.estimators.io import load
from mmfuse.estimators.recommender import MultimodalRecommender
from mmfuse.estimators.regressor import MultimodalRegressor
from mmfuse.estimators.retriever import MultimodalRetriever

__all__ = ["MultimodalClassifier", "MultimodalRecommender", "MultimodalRegressor", "MultimodalRetriever",
           "load"]
