"""The guard's input test: a low-rank shrunk Mahalanobis distance and its threshold."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.covariance import LedoitWolf

from mmfuse.models.novelty import MARGIN, RANK, InputNovelty


def _data(n: int, d: int, seed: int) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    scales = np.linspace(0.1, 3.0, d)  # unequal variances and a correlation, as features have
    x = rng.normal(size=(n, d)) * scales
    x[:, 1] += x[:, 0]
    return torch.from_numpy(x)


def _ledoit_wolf_score(train: torch.Tensor, z: torch.Tensor) -> np.ndarray:
    lw = LedoitWolf().fit(train.numpy())
    d = z.numpy() - lw.location_
    return ((d @ lw.precision_) * d).sum(1) / d.shape[1]


@pytest.mark.parametrize(("n", "width"), [(300, 12), (RANK + 1, RANK + 72)])
def test_the_score_is_the_ledoit_wolf_mahalanobis_distance_while_it_is_exact(n: int, width: int) -> None:
    # every eigenvector kept (width <= RANK), or no more records than RANK + 1 (the rest are equal)
    train, z = _data(n, width, 0), _data(40, width, 1)
    novelty = InputNovelty(width)
    novelty.fit(train.float(), _data(50, width, 2).float())
    np.testing.assert_allclose(novelty.score(z.float()).numpy(), _ledoit_wolf_score(train, z), rtol=1e-3)


def test_the_threshold_is_the_margin_times_the_largest_validation_score() -> None:
    novelty = InputNovelty(8)
    valid = _data(50, 8, 2).float()
    assert novelty.fit(_data(300, 8, 0).float(), valid) == pytest.approx(MARGIN * float(novelty.score(valid).max()))
    assert float(novelty.threshold) == pytest.approx(MARGIN * float(novelty.score(valid).max()))


def test_noise_far_from_the_features_is_distrusted_and_new_records_like_them_are_not() -> None:
    width = RANK + 72  # wider than the kept eigenvectors, more records than their number
    novelty = InputNovelty(width)
    novelty.fit(_data(500, width, 0).float(), _data(100, width, 1).float())
    assert (novelty.ratio(_data(200, width, 3).float()) <= 1).all()
    noise = torch.from_numpy(np.random.default_rng(4).normal(size=(20, width)) * 5).float()
    assert (novelty.ratio(noise) > 1).all()


def test_frames_are_scored_by_their_mean() -> None:
    novelty = InputNovelty(6)
    novelty.fit(_data(100, 6, 0).float(), _data(40, 6, 1).float())
    frames = _data(30, 6, 2).float().reshape(5, 6, 6)  # 5 clips of 6 frames
    torch.testing.assert_close(novelty.score(frames), novelty.score(frames.mean(1)))


def test_unfitted_or_fitted_on_constant_features_it_trusts_everything() -> None:
    far = torch.full((3, 4), 1e6)
    assert InputNovelty(4).ratio(far).tolist() == [0.0] * 3
    constant = InputNovelty(4)
    assert constant.fit(torch.ones(50, 4), torch.ones(30, 4)) == float("inf")
    assert constant.ratio(far).tolist() == [0.0] * 3
