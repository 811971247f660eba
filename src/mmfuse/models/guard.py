"""The modality guard: a modality whose embedding lies far outside what training saw is treated
as missing for that record, so that a model trained with missing modalities falls back on the
modalities it can trust instead of fusing garbage (an image drowned in noise, a dead microphone).
A modality whose input is a feature vector (a pretrained network's frozen features, an embedding
column) is also tested on that vector, before its encoder runs (``models.novelty``: noise the
trained projection hides can be plain there).

Each modality's embeddings are scored by their squared Mahalanobis distance to the training
embeddings, divided by the width (about 1 for a typical training record), under a shrunk
covariance (Ledoit-Wolf). A record is distrusted in a modality when its score exceeds that
modality's threshold: ``MARGIN`` times the ``QUANTILE`` of the scores of validation records the
model never trained on, so that records like the validation ones (new speakers, new items) stay
trusted and only far outliers are dropped. A record whose every present modality exceeds its
threshold keeps the least anomalous one (relative to its threshold): a model must predict from
something; the input test, then the embedding test, each keeps one. The guard acts in eval mode
only (training hides modalities by modality dropout), with tensor operations only, so export and
serving apply it as predict does.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import Tensor, nn

from mmfuse.models.novelty import InputNovelty

QUANTILE = 0.9
"""Which validation score sets the threshold (before ``MARGIN``): the 90th percentile, stable
with a few dozen validation records, where the maximum is one record's accident."""

MARGIN = 2.5
"""How far past the validation records' ``QUANTILE`` a score must lie to be distrusted."""

MAX_WIDTH = 2048
"""A model whose embeddings are wider than this gets no guard (a width x width precision matrix)."""

MIN_RECORDS = 20
"""Fewer training or validation records with a modality than this leave it always trusted."""


class ModalityGuard(nn.Module):
    """Per modality: the training embeddings' mean, the inverse of their shrunk covariance and
    the threshold (buffers, saved with the model). An unfitted modality's threshold is infinite:
    never distrusted.

    Args:
        dims: Modality -> embedding width.
        inputs: Modality -> width of its feature vector, for those tested on their input too
            (``check_inputs``).
    """

    def __init__(self, dims: Mapping[str, int], inputs: Mapping[str, int] | None = None) -> None:
        super().__init__()
        self.modalities = sorted(dims)
        self.inputs = nn.ModuleDict({m: InputNovelty(w) for m, w in sorted((inputs or {}).items())})
        for m in self.modalities:
            self.register_buffer(f"mean_{m}", torch.zeros(dims[m]))
            self.register_buffer(f"precision_{m}", torch.eye(dims[m]))
            self.register_buffer(f"threshold_{m}", torch.full((), float("inf")))

    def score(self, modality: str, z: Tensor) -> Tensor:
        """(B,) squared Mahalanobis distance of ``modality``'s (B, D) embeddings over the width."""
        d = z.float() - getattr(self, f"mean_{modality}")
        return ((d @ getattr(self, f"precision_{modality}")) * d).sum(-1) / d.shape[-1]

    def thresholds(self) -> dict[str, float]:
        """Modality -> its embedding threshold (inf: never distrusted)."""
        return {m: float(getattr(self, f"threshold_{m}")) for m in self.modalities}

    def input_thresholds(self) -> dict[str, float]:
        """Modality -> its input threshold, for those tested on their input."""
        return {m: float(novelty.threshold) for m, novelty in self.inputs.items()}

    def without_inputs(self) -> ModalityGuard:
        """The embedding test alone (the same buffers), for a model that is given embeddings."""
        other = ModalityGuard({})
        other.modalities = self.modalities
        for name, buffer in self.named_buffers(recurse=False):
            other.register_buffer(name, buffer)
        return other

    def check_inputs(self, inputs: Mapping[str, Tensor], mask: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """The presence mask with the rows whose feature vector is distrusted turned off."""
        if not len(self.inputs):
            return dict(mask)
        zero = torch.zeros(mask[self.modalities[0]].shape[0], device=mask[self.modalities[0]].device)
        ratio = torch.stack([self.inputs[m].ratio(inputs[m]) if m in self.inputs else zero
                             for m in self.modalities], 1)  # fmt: skip
        return self._keep(ratio, mask)

    def forward(self, embeddings: Mapping[str, Tensor], mask: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """The presence mask with the rows whose embedding is distrusted turned off."""
        ratio = torch.stack([self.score(m, embeddings[m]) / getattr(self, f"threshold_{m}") for m in self.modalities], 1)
        return self._keep(ratio, mask)

    def _keep(self, ratio: Tensor, mask: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """``mask`` without the present rows whose (B, M) ``ratio`` is above 1, except that a
        record with nothing left keeps its least anomalous present modality."""
        present = torch.stack([mask[m] for m in self.modalities], 1)
        trusted = present & (ratio <= 1)
        ratio = torch.where(present, ratio, torch.full_like(ratio, float("inf")))
        least = nn.functional.one_hot(ratio.argmin(1), len(self.modalities)).bool() & present
        keep = trusted | (least & ~trusted.any(1, keepdim=True))  # logical ops: ONNX Where takes no bools
        return {**mask, **{m: keep[:, i] for i, m in enumerate(self.modalities)}}

    def fit(
        self,
        train: Mapping[str, Tensor],
        valid: Mapping[str, Tensor],
        train_inputs: Mapping[str, Tensor] | None = None,
        valid_inputs: Mapping[str, Tensor] | None = None,
    ) -> dict[str, float]:
        """Sets each modality's statistics from ``train`` (modality -> (N, D) embeddings of the
        training records where it is present) and its threshold from ``valid`` (the same, for
        validation records); a modality with fewer than ``MIN_RECORDS`` of either stays
        unfitted. ``train_inputs`` and ``valid_inputs``: the same for the feature vectors of the
        modalities in ``inputs``. Returns modality -> embedding threshold (inf where unfitted)."""
        from sklearn.covariance import LedoitWolf

        for m, novelty in self.inputs.items():
            x, v = (train_inputs or {}).get(m), (valid_inputs or {}).get(m)
            if x is None or v is None or len(x) < MIN_RECORDS or len(v) < MIN_RECORDS:
                novelty.threshold.fill_(float("inf"))
            else:
                novelty.fit(x, v)
        for m in self.modalities:
            z, v = train.get(m), valid.get(m)
            if z is None or v is None or len(z) < MIN_RECORDS or len(v) < MIN_RECORDS:
                getattr(self, f"threshold_{m}").fill_(float("inf"))
                continue
            lw = LedoitWolf().fit(z.double().numpy())
            getattr(self, f"mean_{m}").copy_(torch.from_numpy(lw.location_))
            getattr(self, f"precision_{m}").copy_(torch.from_numpy(lw.precision_))
            held = self.score(m, v)
            getattr(self, f"threshold_{m}").fill_(MARGIN * float(np.quantile(held.numpy(), QUANTILE)))
        return self.thresholds()
