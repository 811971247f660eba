"""Built-in demo data generators.

``make_demo_dataset`` writes real media files (PNG/JPEG images, WAV/FLAC audio, MP4 video),
inline review text and tabular columns, whose binary target needs every modality; see
:mod:`mmfuse.datasets.demo` for the generative story. ``make_paired_dataset`` writes
image-caption pairs (several captions per image) for retrieval. ``make_recommendation_dataset``
writes a recommendation dataset (interactions, item text and images, users, friendships, cold
items and users); see :mod:`mmfuse.datasets.recommendation`.
"""

from __future__ import annotations

from mmfuse.datasets.demo import (
    DEMO_MODALITY_COLUMNS,
    DEMO_TARGET,
    demo_votes,
    make_demo_dataset,
)
from mmfuse.datasets.pairs import make_paired_dataset
from mmfuse.datasets.recommendation import make_recommendation_dataset

__all__ = [
    "DEMO_MODALITY_COLUMNS",
    "DEMO_TARGET",
    "demo_votes",
    "make_demo_dataset",
    "make_paired_dataset",
    "make_recommendation_dataset",
]
