"""Input-level attribution of one record by occlusion: hide a part, measure the score drop.

Each part of a modality's input is replaced by a neutral value (0 is the training mean of
normalised images, video frames, log-mel spectrograms and standardised numbers; ``<unk>`` for
text tokens and categorical codes; 0 for embedding chunks) and the drop of the target score
(probability of the target class, or the standardised prediction for regression) is that
part's importance. See Zeiler and Fergus, "Visualizing and Understanding Convolutional
Networks", ECCV 2014.

A modality fed to a pretrained network (frozen features, or a fine-tuned network's prepared
input) is occluded in its decoded cell instead (``RawInput``): patches of the picture, frames
of a clip, time segments of the sound or words of the text are hidden, each copy is prepared
and re-encoded by the network the way training data was (never stored in the feature cache),
and the drop is measured against the unoccluded cell re-encoded the same way. So the maps show
image regions, words and moments for every encoder, never feature dimensions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mmfuse.data.preparations import IMAGENET_MEAN, Preparation
from mmfuse.data.tabular import UNKNOWN_CODE
from mmfuse.data.text import PAD, UNK
from mmfuse.evaluation._forward import check_task, on_embeddings, predict
from mmfuse.models.ensemble import EnsembleModel
from mmfuse.models.multimodal import MultimodalModel
from mmfuse.types import InputSpec

Region = tuple[slice, ...]
"""Where one occlusion lands in the attribution map."""

EMBEDDING_CHUNKS = 16
"""An embedding vector is occluded in at most this many contiguous chunks."""

AUDIO_SEGMENTS = 16
"""A decoded waveform is silenced in this many equal time segments, one at a time."""

TEXT_SPANS = 64
"""Words of a decoded text are removed one at a time, or in this many runs of adjacent words."""

RAW_KINDS = ("image", "video", "audio", "text")
"""Kinds of decoded cells that ``raw_occlusions`` can hide parts of."""

RAW_BATCH = 16
"""Occluded cells per pass through a pretrained network."""


@dataclass(frozen=True)
class RawInput:
    """One record's cell of a modality fed to a pretrained network, and the way to its input.

    Attributes:
        decoded: The cell as ``preparation.decode`` returns it: an image (3, H, W) or the
            frames of a clip (N, 3, H, W) in [0, 1], a mono waveform (T,), or a string.
        preparation: Turns ``decoded`` into the network's input (``finish``).
        network: The frozen network, prepared batch -> features (the model's input); None
            when the model takes the prepared input itself (a fine-tuned network).
    """

    decoded: Any
    preparation: Preparation
    network: Callable[[np.ndarray], np.ndarray] | None = None


@torch.no_grad()
def occlusion_attribution(
    model: MultimodalModel | EnsembleModel,
    inputs: Mapping[str, Any],
    mask: Mapping[str, Any],
    specs: Mapping[str, InputSpec],
    task: str,
    target_class: int | None = None,
    batch_size: int = 64,
    raw: Mapping[str, RawInput] | None = None,
) -> dict[str, np.ndarray]:
    """Occlusion maps of one record, for each modality present in it.

    Maps (drop of the target score when that part is hidden; positive = the part supports
    the target): image ``(H, W)`` from square patches of side ``H // 8`` slid by half a patch
    (overlaps averaged); video ``(N,)`` one value per frame; audio ``(F, T)`` from blocks of
    ``(F // 8, T // 10)``; text ``(L,)`` one value per token (0 at padding); tabular ``(K,)``
    one per feature; embedding ``(chunks,)`` one per chunk of the vector.

    Modalities in ``raw`` are occluded in their decoded cell (see ``raw_occlusions``): image
    ``(H, W)`` of the decoded picture, video ``(N,)`` per frame, audio ``(S,)`` per time
    segment, text ``(W,)`` per word.

    Args:
        model: Trained model, or an ensemble of models.
        inputs: Modality -> this record's input, without a batch dimension.
        mask: Modality -> whether it is present in this record.
        specs: Modality -> InputSpec (the kind of each input).
        task: "classification" or "regression".
        target_class: Class whose probability is explained; None: the predicted class.
            Ignored for regression.
        batch_size: Occluded copies per forward pass.
        raw: Modality -> its decoded cell, for modalities fed to a pretrained network (their
            ``inputs`` are the network's features or prepared input).
    """
    check_task(task)
    raw = raw or {}
    model.eval()
    x = {m: torch.as_tensor(np.asarray(inputs[m])).unsqueeze(0) for m in model.modalities}
    present = {m: torch.tensor([bool(mask[m])]) for m in model.modalities}
    # the other modalities are encoded once (an ensemble's members encode: it takes the inputs)
    embedded = model.encode(x, present) if isinstance(model, MultimodalModel) else x
    probs = predict(model(x, present).require_logits(), task)[0]
    if task == "classification" and target_class is None:
        target_class = int(probs.argmax())
    base = float(probs if task == "regression" else probs[target_class])
    maps = {}
    for m in model.modalities:
        if not bool(mask[m]):
            continue
        if m in raw:  # the unoccluded cell re-encoded the same way is the reference
            cells, regions, shape = raw_occlusions(raw[m])
            variants = network_inputs(raw[m], [raw[m].decoded, *cells])
            scores = _scores(model, embedded, present, m, variants, task, target_class, batch_size)
            maps[m] = _averaged(float(scores[0]), scores[1:], regions, shape)
            continue
        variants, regions, shape = _occlusions(specs[m], x[m][0])
        scores = _scores(model, embedded, present, m, variants, task, target_class, batch_size)
        maps[m] = _averaged(base, scores, regions, shape)
    return maps


def _averaged(
    base: float, scores: np.ndarray, regions: list[Region], shape: tuple[int, ...]
) -> np.ndarray:
    """The map: each region's score drop, averaged where regions overlap (0 where none)."""
    total, count = np.zeros(shape), np.zeros(shape)
    for region, score in zip(regions, scores):
        total[region] += base - score
        count[region] += 1
    return total / np.maximum(count, 1)


def _scores(
    model: MultimodalModel | EnsembleModel,
    embedded: Mapping[str, Tensor],
    present: Mapping[str, Tensor],
    modality: str,
    variants: Tensor,
    task: str,
    target_class: int | None,
    batch_size: int,
) -> np.ndarray:
    """Target score for each occluded copy of ``modality`` (the other inputs unchanged).

    Only the occluded modality goes through its encoder; the others reuse ``embedded``. An
    ensemble runs whole on every copy (``embedded`` holds its inputs).
    """
    fast = on_embeddings(model)  # an ensemble: itself, whole
    encode = model.encoders[modality] if isinstance(model, MultimodalModel) else torch.nn.Identity()
    scores = [torch.zeros(0)]
    for chunk in variants.split(batch_size):
        k = chunk.shape[0]
        inputs = {m: v.expand(k, *v.shape[1:]) for m, v in embedded.items()}
        inputs[modality] = encode(chunk)  # (k, D_m), or the ensemble's input
        out = predict(fast(inputs, {m: v.expand(k) for m, v in present.items()}).require_logits(), task)
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


def raw_occlusions(raw: RawInput) -> tuple[list[Any], list[Region], tuple[int, ...]]:
    """Occluded copies of a decoded cell, where each lands in the map, and the map's shape.

    Image: a 7 x 7 grid of square patches of side ``H // 4`` slid by half a patch, filled
    with the ImageNet mean colour (0 after normalisation); video: each frame filled with
    it; audio: ``AUDIO_SEGMENTS`` equal time segments silenced; text: each word removed
    (runs of adjacent words beyond ``TEXT_SPANS`` words).
    """
    kind, x = raw.preparation.kind, raw.decoded
    if kind == "image":
        rows, cols = x.shape[-2:]
        regions = _patches(rows, cols)
        return [_filled(x, (..., *r), IMAGENET_MEAN) for r in regions], regions, (rows, cols)
    if kind == "video":
        regions = [(slice(f, f + 1),) for f in range(x.shape[0])]
        return [_filled(x, r, IMAGENET_MEAN) for r in regions], regions, (x.shape[0],)
    if kind == "audio":
        spans = _spans(len(x), AUDIO_SEGMENTS)
        regions = [(slice(i, i + 1),) for i in range(len(spans))]
        return [_filled(x, (s,), np.float32(0.0)) for s in spans], regions, (len(spans),)
    if kind == "text":
        words = str(x).split()
        spans = _spans(len(words), TEXT_SPANS)
        cells = [" ".join(words[: s.start] + words[s.stop :]) for s in spans]
        return cells, [(s,) for s in spans], (len(words),)
    kinds = ", ".join(RAW_KINDS)
    raise ValueError(f"unknown kind {kind!r} of a decoded cell; choose one of: {kinds}")


def raw_parts(raw: RawInput, size: int) -> list[str]:
    """A label for each entry of a one-dimensional raw map of ``size`` entries: the words,
    ``frame N`` or the time span of each audio segment (seconds where the rate is known)."""
    kind = raw.preparation.kind
    if kind == "text":
        return str(raw.decoded).split()
    if kind == "video":
        return [f"frame {f}" for f in range(size)]
    if kind != "audio":
        raise ValueError(f"a {kind} map has no one-dimensional parts; text, video and audio do")
    rate = getattr(raw.preparation, "sample_rate", None)
    spans = _spans(len(raw.decoded), AUDIO_SEGMENTS)
    if rate is None:
        return [f"samples {s.start}-{s.stop}" for s in spans]
    return [f"{s.start / rate:.2f}-{s.stop / rate:.2f} s" for s in spans]


def image_cells(rows: int, cols: int) -> tuple[list[int], list[int]]:
    """Row and column edges of the cells on which a raw image map of ``(rows, cols)`` is
    constant (where the patches of ``raw_occlusions`` start and end)."""
    patches = _patches(rows, cols)
    row_edges = sorted({p[0].start for p in patches} | {p[0].stop for p in patches})
    col_edges = sorted({p[1].start for p in patches} | {p[1].stop for p in patches})
    return row_edges, col_edges


def _patches(rows: int, cols: int) -> list[Region]:
    """Square patches of side 1/4 of the image, half a patch apart (7 x 7 at 224 x 224)."""
    size = (max(1, rows // 4), max(1, cols // 4))
    return _sliding(rows, cols, size, (max(1, size[0] // 2), max(1, size[1] // 2)))


def hidden_parts(raw: RawInput, shape: tuple[int, ...]) -> str:
    """How ``raw_occlusions`` hid the parts of a cell whose map has ``shape``, in words."""
    kind = raw.preparation.kind
    if kind == "image":
        rows, cols = shape
        return (f"overlapping {rows // 4} x {cols // 4} px patches (half a patch apart) of the "
                f"{rows} x {cols} network input set to the ImageNet mean colour")  # fmt: skip
    if kind == "video":
        return "each frame set to the ImageNet mean colour"
    if kind == "audio":
        return f"each of {shape[0]} time segments silenced"
    if shape[0] <= TEXT_SPANS:
        return "each word removed"
    return f"{TEXT_SPANS} runs of adjacent words removed"


def network_inputs(raw: RawInput, cells: list[Any]) -> Tensor:
    """The model's input for each decoded cell: prepared, then through the frozen network."""
    out = []
    for start in range(0, len(cells), RAW_BATCH):
        prepared = np.stack([raw.preparation.finish(c) for c in cells[start : start + RAW_BATCH]])
        out.append(prepared if raw.network is None else np.asarray(raw.network(prepared)))
    return torch.as_tensor(np.concatenate(out))


def _spans(length: int, parts: int) -> list[slice]:
    """``length`` positions cut into at most ``parts`` contiguous, nearly equal slices."""
    if length == 0:
        return []
    cuts = np.array_split(np.arange(length), min(parts, length))
    return [slice(int(c[0]), int(c[-1]) + 1) for c in cuts]


def _filled(x: np.ndarray, region: tuple[Any, ...], value: Any) -> np.ndarray:
    """A copy of ``x`` with ``region`` set to ``value`` (broadcast)."""
    copy = np.array(x, copy=True)
    copy[region] = value
    return copy
