"""Input-level attribution of one record by occlusion: hide a part, measure the score drop.

Each part of a modality's input is replaced by a neutral value (0 is the training mean of
normalised images, video frames, log-mel spectrograms and standardised numbers; ``<unk>`` for
text tokens and categorical codes; 0 for embedding chunks) and the drop of the target score
(probability of the target class, or the standardised prediction for regression) is that
part's importance. See Zeiler and Fergus, "Visualizing and Understanding Convolutional
Networks", ECCV 2014.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mmfuse.data.tabular import UNKNOWN_CODE
from mmfuse.data.text import PAD, UNK
from mmfuse.evaluation._forward import check_task, on_embeddings, predict
from mmfuse.models.multimodal import MultimodalModel
from mmfuse.types import InputSpec

Region = tuple[slice, ...]
"""Where one occlusion lands in the attribution map."""

EMBEDDING_CHUNKS = 16
"""An embedding vector is occluded in at most this many contiguous chunks."""


@torch.no_grad()
def occlusion_attribution(
    model: MultimodalModel,
    inputs: Mapping[str, Any],
    mask: Mapping[str, Any],
    specs: Mapping[str, InputSpec],
    task: str,
    target_class: int | None = None,
    batch_size: int = 64,
) -> dict[str, np.ndarray]:
    """Occlusion maps of one record, for each modality present in it.

    Maps (drop of the target score when that part is hidden; positive = the part supports
    the target): image ``(H, W)`` from square patches of side ``H // 8`` slid by half a patch
    (overlaps averaged); video ``(N,)`` one value per frame; audio ``(F, T)`` from blocks of
    ``(F // 8, T // 10)``; text ``(L,)`` one value per token (0 at padding); tabular ``(K,)``
    one per feature; embedding ``(chunks,)`` one per chunk of the vector.

    Args:
        model: Trained model.
        inputs: Modality -> this record's input, without a batch dimension.
        mask: Modality -> whether it is present in this record.
        specs: Modality -> InputSpec (the kind of each input).
        task: "classification" or "regression".
        target_class: Class whose probability is explained; None: the predicted class.
            Ignored for regression.
        batch_size: Occluded copies per forward pass.
    """
    check_task(task)
    model.eval()
    x = {m: torch.as_tensor(np.asarray(inputs[m])).unsqueeze(0) for m in model.modalities}
    present = {m: torch.tensor([bool(mask[m])]) for m in model.modalities}
    embedded = model.encode(x, present)  # the other modalities are encoded once
    probs = predict(model(x, present).logits, task)[0]
    if task == "classification" and target_class is None:
        target_class = int(probs.argmax())
    base = float(probs if task == "regression" else probs[target_class])
    maps = {}
    for m in model.modalities:
        if not bool(mask[m]):
            continue
        variants, regions, shape = _occlusions(specs[m], x[m][0])
        scores = _scores(model, embedded, present, m, variants, task, target_class, batch_size)
        total, count = np.zeros(shape), np.zeros(shape)
        for region, score in zip(regions, scores):
            total[region] += base - score
            count[region] += 1
        maps[m] = total / np.maximum(count, 1)
    return maps


def _scores(
    model: MultimodalModel,
    embedded: Mapping[str, Tensor],
    present: Mapping[str, Tensor],
    modality: str,
    variants: Tensor,
    task: str,
    target_class: int | None,
    batch_size: int,
) -> np.ndarray:
    """Target score for each occluded copy of ``modality`` (the other inputs unchanged).

    Only the occluded modality goes through its encoder; the others reuse ``embedded``.
    """
    fast = on_embeddings(model)
    scores = [torch.zeros(0)]
    for chunk in variants.split(batch_size):
        k = chunk.shape[0]
        inputs = {m: v.expand(k, -1) for m, v in embedded.items()}
        inputs[modality] = model.encoders[modality](chunk)  # (k, D_m)
        out = predict(fast(inputs, {m: v.expand(k) for m, v in present.items()}).logits, task)
        scores.append(out if task == "regression" else out[:, target_class])
    return torch.cat(scores).double().numpy()


def _occlusions(spec: InputSpec, x: Tensor) -> tuple[Tensor, list[Region], tuple[int, ...]]:
    """Occluded copies (K, *x.shape), where each lands in the map, and the map's shape."""
    regions: list[Region]
    if spec.kind == "embedding" or spec.features:  # vectors (or frozen features): value chunks
        flat = x.flatten()
        parts = np.array_split(np.arange(flat.shape[0]), min(EMBEDDING_CHUNKS, flat.shape[0]))
        spans = [slice(int(p[0]), int(p[-1]) + 1) for p in parts]
        variants = _hide(flat, [(s,) for s in spans], 0.0).view(len(spans), *x.shape)
        return variants, [(slice(i, i + 1),) for i in range(len(spans))], (len(spans),)
    if spec.kind in ("image", "audio"):
        rows, cols = x.shape[-2:]
        if spec.kind == "image":
            size = (max(1, rows // 8), max(1, cols // 8))
            regions = _sliding(rows, cols, size, (max(1, size[0] // 2), max(1, size[1] // 2)))
        else:
            size = (max(1, rows // 8), max(1, cols // 10))
            regions = _sliding(rows, cols, size, size)
        return _hide(x, [(..., *r) for r in regions], 0.0), regions, (rows, cols)
    if spec.kind == "video":
        regions = [(slice(f, f + 1),) for f in range(x.shape[0])]
        return _hide(x, regions, 0.0), regions, (x.shape[0],)
    if spec.kind == "text":
        regions = [(slice(i, i + 1),) for i in range(x.shape[0]) if int(x[i]) != PAD]
        return _hide(x, regions, UNK), regions, (x.shape[0],)
    if spec.kind == "tabular":
        k = x.shape[0]
        variants = x.unsqueeze(0).repeat(k, 1)
        for i in range(k):  # numbers -> 0 (training mean), categories -> unknown
            variants[i, i] = 0.0 if i < spec.num_numeric else float(UNKNOWN_CODE)
        return variants, [(slice(i, i + 1),) for i in range(k)], (k,)
    raise ValueError(f"unknown input kind {spec.kind!r} for occlusion")


def _sliding(rows: int, cols: int, size: tuple[int, int], stride: tuple[int, int]) -> list[Region]:
    """Windows of ``size`` every ``stride`` that cover the whole (rows, cols) grid."""

    def starts(length: int, window: int, step: int) -> list[int]:
        first = list(range(0, max(length - window, 0) + 1, step))
        return first if first[-1] + window >= length else [*first, length - window]

    return [
        (slice(r, r + size[0]), slice(c, c + size[1]))
        for r in starts(rows, size[0], stride[0])
        for c in starts(cols, size[1], stride[1])
    ]


def _hide(x: Tensor, regions: list[tuple[Any, ...]], value: float) -> Tensor:
    """One copy of ``x`` per region with that region set to ``value``: (K, *x.shape)."""
    variants = x.unsqueeze(0).repeat(len(regions), *([1] * x.dim()))
    for i, region in enumerate(regions):
        variants[i][region] = value
    return variants
