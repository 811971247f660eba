"""The modality guard: a modality whose embedding lies far outside what training saw is treated
as missing for that record, so that a model trained with missing modalities falls back on the
modalities it can trust instead of fusing garbage (an image drowned in noise, a dead microphone).

Each modality's embeddings are scored by their squared Mahalanobis distance to the training
embeddings, divided by the width (about 1 for a typical training record), under a shrunk
covariance (Ledoit-Wolf). A record is distrusted in a modality when its score exceeds that
modality's threshold: ``MARGIN`` times the ``QUANTILE`` of the scores of validation records the
model never trained on, so that records like the validation ones (new speakers, new items) stay
trusted and only far outliers are dropped. A record whose every present modality exceeds its
threshold keeps the least anomalous one (relative to its threshold): a model must predict from
something. The guard acts in eval mode only (training hides modalities by modality dropout), with
tensor operations only, so export and serving apply it as predict does.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import Tensor, nn


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
    """

    def __init__(self, dims: Mapping[str, int]) -> None:
        super().__init__()
        self.modalities = sorted(dims)
        for m in self.modalities:
            self.register_buffer(f"mean_{m}", torch.zeros(dims[m]))
            self.register_buffer(f"precision_{m}", torch.eye(dims[m]))
            self.register_buffer(f"threshold_{m}", torch.full((), float("inf")))

    def score(self, modality: str, z: Tensor) -> Tensor:
        """(B,) squared Mahalanobis distance of ``modality``'s (B, D) embeddings over the width."""
        d = z.float() - getattr(self, f"mean_{modality}")
        return ((d @ getattr(self, f"precision_{modality}")) * d).sum(-1) / d.shape[-1]

    def thresholds(self) -> dict[str, float]:
        """Modality -> its threshold (inf: never distrusted)."""
        return {m: float(getattr(self, f"threshold_{m}")) for m in self.modalities}

    def forward(self, embeddings: Mapping[str, Tensor], mask: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """The presence mask with the distrusted rows of each modality turned off."""
        ratio = torch.stack([self.score(m, embeddings[m]) / getattr(self, f"threshold_{m}") for m in self.modalities], 1)
        present = torch.stack([mask[m] for m in self.modalities], 1)
        trusted = present & (ratio <= 1)
        # a record with nothing left keeps its least anomalous present modality
        ratio = torch.where(present, ratio, torch.full_like(ratio, float("inf")))
        least = nn.functional.one_hot(ratio.argmin(1), len(self.modalities)).bool() & present
        keep = trusted | (least & ~trusted.any(1, keepdim=True))  # logical ops: ONNX Where takes no bools
        return {**mask, **{m: keep[:, i] for i, m in enumerate(self.modalities)}}

    def fit(self, train: Mapping[str, Tensor], valid: Mapping[str, Tensor]) -> dict[str, float]:
        """Sets each modality's statistics from ``train`` (modality -> (N, D) embeddings of the
        training records where it is present) and its threshold from ``valid`` (the same, for
        validation records); a modality with fewer than ``MIN_RECORDS`` of either stays
        unfitted. Returns modality -> threshold (inf where unfitted)."""
        from sklearn.covariance import LedoitWolf

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
