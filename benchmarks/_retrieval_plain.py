"""The plain-PyTorch baseline of ``retrieval_baseline.py``: a linear dual encoder on frozen
features, trained with symmetric InfoNCE on exactly the validation split mmfuse makes."""

from __future__ import annotations

import copy
import math
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn

BATCH, EMBED_DIM, LR, WEIGHT_DECAY, TEMPERATURE = 128, 256, 1e-3, 1e-4, 0.07
VALID_FRACTION = 0.2


class LinearDualEncoder(nn.Module):
    """One linear projection per side into a shared L2-normalised space; learnable 1/T."""

    def __init__(self, dim_a: int, dim_b: int) -> None:
        super().__init__()
        self.proj_a, self.proj_b = nn.Linear(dim_a, EMBED_DIM), nn.Linear(dim_b, EMBED_DIM)
        self.log_scale = nn.Parameter(torch.tensor(math.log(1.0 / TEMPERATURE)))

    def forward(self, xa: Tensor, xb: Tensor) -> tuple[Tensor, Tensor]:
        return F.normalize(self.proj_a(xa), dim=-1), F.normalize(self.proj_b(xb), dim=-1)

    def scale(self) -> Tensor:
        return self.log_scale.exp().clamp(max=100.0)


def clip_loss(
    za: Tensor, zb: Tensor, scale: Tensor, ia: Tensor, ib: Tensor, multi_positive: bool
) -> Tensor:
    """Symmetric InfoNCE; ``multi_positive``: rows sharing an A or B item are soft positives."""
    logits = scale * za @ zb.T  # (B, B)
    if not multi_positive:
        labels = torch.arange(len(za))
        return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
    pos = ((ia[:, None] == ia[None, :]) | (ib[:, None] == ib[None, :])).float()  # symmetric
    target = pos / pos.sum(1, keepdim=True)  # (B, B), rows sum to 1
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def valid_split(
    items_a: list[str], items_b: list[str], kinds: tuple[str, str] = ("image", "text"), seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, valid rows): exactly the split MultimodalRetriever(seed=seed) makes."""
    from mmfuse.data.readers import Table
    from mmfuse.estimators.retriever import MultimodalRetriever

    df = pd.DataFrame({"a": list(items_a), "b": list(items_b)})
    schema = SimpleNamespace(kinds={"a": kinds[0], "b": kinds[1]})
    train, valid = MultimodalRetriever(pair="a,b", valid_fraction=VALID_FRACTION, seed=seed).validation_split(
        Table(df, Path("."), "pairs"), None, schema
    )
    return train.df.index.to_numpy(), valid.df.index.to_numpy()


def recall_mean(metrics: dict[str, dict[str, float]]) -> float:
    """mmfuse's validation metric: mean of R@1, R@5 and R@10 over both directions."""
    return float(np.mean([d[k] for d in metrics.values() for k in ("R@1", "R@5", "R@10")]))


def better(key: tuple[float, float], best: tuple[float, float]) -> bool:
    """(valid recall_mean, -valid loss), compared as mmfuse's trainer does."""
    return key[0] > best[0] + 1e-9 or (abs(key[0] - best[0]) <= 1e-9 and key[1] > best[1] + 1e-6)


def fit_baseline(
    fa: np.ndarray, fb: np.ndarray, items: tuple[list[str], list[str]], epochs: int,
    multi_positive: bool, seed: int = 0, all_pairs: bool = False,
) -> tuple[LinearDualEncoder, dict[str, Any]]:  # fmt: skip
    """Trains on the train part of the rows and keeps the epoch with the best valid
    recall_mean; with ``all_pairs``, trains on every row for all epochs and keeps the last."""
    from mmfuse.retrieval.metrics import bidirectional_metrics

    torch.manual_seed(seed)
    tr, va = valid_split(*items, seed=seed)
    if all_pairs:
        tr = np.arange(len(fa))
    xa, xb = torch.from_numpy(fa), torch.from_numpy(fb)
    ia, ib = (torch.from_numpy(pd.factorize(pd.Series(v))[0]) for v in items)
    valid_items = [[v[i] for i in va] for v in items]
    model = LinearDualEncoder(xa.shape[1], xb.shape[1])
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    gen = torch.Generator().manual_seed(seed)
    best, best_state, best_epoch = (-math.inf, -math.inf), copy.deepcopy(model.state_dict()), 0
    started = time.perf_counter()
    for epoch in range(1, epochs + 1):
        model.train()
        for rows in torch.from_numpy(tr)[torch.randperm(len(tr), generator=gen)].split(BATCH):
            za, zb = model(xa[rows], xb[rows])
            loss = clip_loss(za, zb, model.scale(), ia[rows], ib[rows], multi_positive)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            za, zb = model(xa[va], xb[va])
            valid_loss = float(clip_loss(za, zb, model.scale(), ia[va], ib[va], multi_positive))
        m = bidirectional_metrics(za.numpy(), zb.numpy(), *valid_items)
        key = (recall_mean(m), -valid_loss)
        if better(key, best) or all_pairs:
            best, best_state, best_epoch = key, copy.deepcopy(model.state_dict()), epoch
    model.load_state_dict(best_state)
    info = {
        "epochs_run": epochs, "best_epoch": best_epoch, "valid_recall_mean": round(best[0], 4),
        "train_seconds": round(time.perf_counter() - started, 2), "n_train": len(tr),
        "n_valid": len(va), "final_temperature": round(float(1 / model.scale().detach()), 4),
    }  # fmt: skip
    return model.eval(), info
