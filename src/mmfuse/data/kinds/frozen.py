"""Modalities fed to a frozen pretrained network: its output features, computed once and cached.

The processor is given its network and the feature cache when it is built (a
:class:`FeatureSource`, made above the data layer, where networks live). ``encode`` looks every
cell's content up in the cache and runs the network only on the misses
(``mmfuse.data.frozen.extract_features``); the input is the feature vector ``(dim,)``, or one
per frame ``(frames, dim)`` for a video clip.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from mmfuse.data.kinds import FROZEN, register_processor
from mmfuse.data.kinds.base import ColumnProcessor, Modality, ModalityArrays, ReadOptions
from mmfuse.data.kinds.prepared import preparation_of, pretrained_input
from mmfuse.errors import MmfuseError
from mmfuse.types import InputSpec

if TYPE_CHECKING:
    from mmfuse.data.cache import FeatureCache
    from mmfuse.data.frozen import Extractor
    from mmfuse.data.preprocess import PreprocessConfig
    from mmfuse.data.readers import Table


@dataclass(frozen=True)
class FeatureSource:
    """Where frozen pretrained features come from.

    Attributes:
        extractors: Modality -> its frozen network.
        cache: Feature cache shared by the networks (None: compute every feature).
    """

    extractors: Mapping[str, Extractor] = field(default_factory=dict)
    cache: FeatureCache | None = None

    def restrict(self, modalities: Iterable[str]) -> FeatureSource:
        """The same source for some of the modalities only."""
        keep = set(modalities)
        return FeatureSource({m: e for m, e in self.extractors.items() if m in keep}, self.cache)


@register_processor(FROZEN)
class FrozenKind(ColumnProcessor):
    """Features of each cell from a frozen network, through the cache.

    ``options.corrupt`` sees the decoded value (as for fine-tuning); corrupted inputs are
    neither read from nor written to the cache.

    Args:
        modality: The modality (with its ``pretrained`` network).
        config: Sizes and rates.
        extractor: Its frozen network (None: ``encode`` raises, naming the modality).
        cache: The feature cache (None: compute every feature).
    """

    def __init__(
        self,
        modality: Modality,
        config: PreprocessConfig,
        extractor: Extractor | None = None,
        cache: FeatureCache | None = None,
    ) -> None:
        super().__init__(modality, config)
        self.extractor = extractor
        self.cache = cache

    @classmethod
    def create(
        cls, modality: Modality, config: PreprocessConfig, features: FeatureSource
    ) -> FrozenKind:
        """The processor of ``modality`` with its network and the cache from ``features``."""
        return cls(modality, config, features.extractors.get(modality.name), features.cache)

    @property
    def dtype(self) -> type:
        return np.float32

    def spec(self) -> InputSpec:
        p, kind = pretrained_input(self.modality), self.modality.kind
        frames = preparation_of(self.modality).shape[0]
        shape = (frames, p.dim) if kind == "video" else (p.dim,)  # per frame for clips
        return InputSpec(kind, shape, backbone=p.backbone, features=True)

    def encode_column(self, table: Table, options: ReadOptions) -> ModalityArrays:
        """Features of every cell (cache hits first, then the network on the misses)."""
        from mmfuse.data.frozen import Column, extract_features

        m = self.modality
        if self.extractor is None:
            raise MmfuseError(f"no feature extractor for the frozen {m.kind} modality {m.name!r}")
        corrupt, alter = options.corrupt, None
        if corrupt is not None:
            alter = lambda pos, v: corrupt(m.name, v, np.random.default_rng(pos))  # noqa: E731
        cells = list(table.df[m.column])
        column = Column(cells, m.cell_kind, table.base_dir, options.missing_files, m.audio_track)
        x, present, errors = extract_features(
            column,
            preparation_of(m),
            self.extractor,
            self.spec().shape,
            self.cache,
            alter,
            options.num_threads,
            f"encoding {m.name} ({pretrained_input(m).backbone})",
            options.verbose,
        )
        return ModalityArrays(x, present, [(pos, m.column, reason) for pos, reason in errors])
