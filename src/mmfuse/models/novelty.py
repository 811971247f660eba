"""How far a feature vector (a pretrained network's frozen features, an embedding column) lies
from the training ones: the input half of the modality guard (``models.guard``).

A pretrained network's features of an image drowned in noise are far from those of any training
image, yet the model's trained projection can map them among the training embeddings (its
LayerNorm divides out their size), where the guard's embedding test cannot see them. Measured on
spoken digits with a picture (``benchmarks/robust_defaults.py``' data, EfficientNet features,
Gaussian pixel noise at severities 0.25 to 1): every noised picture scored at least 24 times the
embedding test's line (2.5 x the 90th percentile of clean validation pictures), and no clean
test picture reached it (0.82 of it at most).

The score is the squared Mahalanobis distance over the width under a Ledoit-Wolf shrunk
covariance, kept at rank ``RANK`` (its top eigenvectors; the other eigenvalues replaced by their
mean, which is exact while the training records number at most ``RANK`` + 1): 184 KB for 1,440
EfficientNet features, where their full precision matrix would take 8 MB. Ranks 32, 64, 128 and
256 flagged exactly the same test records on the spoken digits and on the demo data.

The threshold is ``MARGIN`` times the largest score of validation records, not a percentile: a
network whose features of new sources have a long tail (a speaker embedding of voices never
heard) gets a threshold high enough to leave them alone (measured on the same data: 1 of 180
clean test clips of unseen speakers over it, against 6 at 2.5 times the 90th percentile), while
the noise above stays far past it.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

RANK = 32
"""Eigenvectors kept of the shrunk covariance."""

MARGIN = 2.0
"""How far past the largest validation score an input must lie to be distrusted."""


class InputNovelty(nn.Module):
    """Mean, top eigenvectors and threshold of one modality's feature vectors (buffers, saved
    with the model); unfitted, the threshold is infinite: never distrusted.

    Args:
        width: The feature vector's width (the last dimension of the input).
    """

    def __init__(self, width: int) -> None:
        super().__init__()
        rank = min(width, RANK)
        self.register_buffer("mean", torch.zeros(width))
        self.register_buffer("basis", torch.zeros(rank, width))  # rows: eigenvectors
        self.register_buffer("inverse", torch.zeros(rank))  # 1 / their eigenvalues
        self.register_buffer("residual", torch.ones(()))  # 1 / the mean of the other eigenvalues
        self.register_buffer("threshold", torch.full((), float("inf")))

    def score(self, x: Tensor) -> Tensor:
        """(B,) squared Mahalanobis distance over the width of (B, D) features, or of the mean
        over frames of (B, N, D) ones."""
        x = x.float()
        if x.dim() == 3:
            x = x.mean(1)
        d = x - self.mean
        c = d @ self.basis.T
        rest = d - c @ self.basis  # the part off the kept eigenvectors
        return (self.residual * (rest * rest).sum(-1) + (c * c * self.inverse).sum(-1)) / d.shape[-1]

    def ratio(self, x: Tensor) -> Tensor:
        """(B,) score over the threshold: above 1 is distrusted."""
        return self.score(x) / self.threshold

    def fit(self, train: Tensor, valid: Tensor) -> float:
        """Sets the statistics from ``train`` (N, D) (or (N, F, D) frames) and the threshold
        from ``valid``; returns the threshold."""
        from sklearn.covariance import ledoit_wolf_shrinkage

        x = (train.mean(1) if train.dim() == 3 else train).double().numpy()
        mean = x.mean(0)
        centred = x - mean
        n, width = centred.shape
        shrinkage = float(ledoit_wolf_shrinkage(centred, assume_centered=True))
        _, s, vt = np.linalg.svd(centred, full_matrices=False)
        eig = s**2 / n  # the sample covariance's eigenvalues, largest first
        mu = float(eig.sum()) / width
        rank = min(len(self.inverse), len(eig))
        top = (1 - shrinkage) * eig[:rank] + shrinkage * mu
        rest = (1 - shrinkage) * float(eig[rank:].sum()) / max(width - rank, 1) + shrinkage * mu
        floor = 1e-6 * mu  # a direction that never varied is not infinitely telling
        self.threshold.fill_(float("inf"))
        if not mu > 0 or not np.isfinite(mu):  # constant features tell nothing
            return float("inf")
        self.mean.copy_(torch.from_numpy(mean))
        self.basis.zero_()
        self.inverse.zero_()
        self.basis[:rank] = torch.from_numpy(vt[:rank])
        self.inverse[:rank] = torch.from_numpy(1 / np.maximum(top, floor))
        self.residual.fill_(1 / max(rest, floor))
        threshold = MARGIN * float(self.score(valid).max())
        self.threshold.fill_(threshold if threshold > 0 else float("inf"))  # valid all at the mean
        return float(self.threshold)
