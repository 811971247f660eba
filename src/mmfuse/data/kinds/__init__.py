"""Per-kind processing: one processor per modality kind, registered by name, one per file.

A processor (``base.KindProcessor``) turns one modality's cells into its model input: ``fit``
learns what the kind needs from training records (a text vocabulary, tabular statistics, an
embedding width), ``spec`` describes the input (``InputSpec``), ``encode`` checks and decodes
every cell of a table, and ``to_dict`` / ``load`` store what was learned in a section of
preprocess.json. ``Preprocessor`` holds one per modality and only looks them up.

A modality that feeds a pretrained network uses the network's preparation instead: the
``"prepared"`` processor (fine-tuning: the prepared input) or the ``"frozen"`` one (the frozen
network's features, from the ``FeatureSource`` it is given). Every other modality uses the
processor registered under its kind. Adding a kind is one new file here with
``@register_processor("kind")`` on its class: the registry imports every module of this
package on first use.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from mmfuse._registry import Registry

if TYPE_CHECKING:
    from mmfuse.data.kinds.base import KindProcessor, Modality
    from mmfuse.data.kinds.frozen import FeatureSource
    from mmfuse.data.preprocess import PreprocessConfig

PROCESSORS: Registry[type[KindProcessor]] = Registry("kind processor", package=__name__)
PREPARED = "prepared"
"""Processor of modalities fed to a fine-tuned pretrained network."""
FROZEN = "frozen"
"""Processor of modalities fed to a frozen pretrained network."""


def register_processor(name: str) -> Callable[[type[KindProcessor]], type[KindProcessor]]:
    """Class decorator registering a kind processor under ``name`` (a modality kind, or
    ``PREPARED`` / ``FROZEN``)."""
    return PROCESSORS.register(name)


def processor_name(modality: Modality) -> str:
    """The registered processor that serves ``modality``."""
    if modality.pretrained is None:
        return modality.kind
    return FROZEN if modality.pretrained.frozen else PREPARED


def create_processor(
    modality: Modality, config: PreprocessConfig, features: FeatureSource
) -> KindProcessor:
    """The processor of ``modality``.

    Args:
        modality: The modality, its columns and its pretrained network, if any.
        config: Sizes and rates.
        features: Frozen networks and feature cache (used by frozen modalities only).
    """
    return PROCESSORS.get(processor_name(modality)).create(modality, config, features)


def list_processors() -> list[str]:
    """Registered processor names, sorted."""
    return PROCESSORS.names()
