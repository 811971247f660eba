"""The preprocessing JSON written next to an exported graph (``model.onnx`` ->
``model.preprocess.json``): everything a program needs to feed the graph and read its outputs.

It lists the inputs in order (name, shape, dtype and how each is prepared: image size and
normalisation, tokenizer and length, sample rate and mel settings, tabular statistics and
category lists), the mask convention, the outputs (with the classes, or how to turn a
standardised value back into the target's units), which frozen networks are inside the graph
and which stayed outside and why, the parity check, and the preprocessor's own record
(``Preprocessor.to_dict``, as a model directory's preprocess.json holds it), from which
``OnnxModel.prepare`` rebuilds mmfuse's preprocessing.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mmfuse import __version__
from mmfuse.data.preprocess import Preprocessor
from mmfuse.export.graph_inputs import BATCH, MASK_NAME, GraphInput
from mmfuse.models.builder import ModelConfig
from mmfuse.pretrained import BACKBONES

FORMAT = "mmfuse-onnx-preprocess"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class GraphOrigin:
    """Where a graph comes from and how it was written.

    Attributes:
        model_dir: The model directory it was exported from ("" for an estimator in memory).
        fingerprint: The SHA-256 of that directory's weights ("" when unknown).
        config: The model's architecture.
        exporter: The torch.onnx exporter used.
        opset: The ONNX opset.
        onnx_file: The graph's file name.
    """

    model_dir: str
    fingerprint: str
    config: ModelConfig
    exporter: str
    opset: int
    onnx_file: str


def build_manifest(
    origin: GraphOrigin,
    inputs: list[GraphInput],
    pre: Preprocessor,
    networks: Mapping[str, str],
    outside: Mapping[str, str],
) -> dict[str, Any]:
    """The JSON document (without the parity result, added once the check ran).

    Args:
        origin: Where the graph comes from.
        inputs: The graph's inputs, without the mask.
        pre: The preprocessing that feeds the graph (``graph_preprocessor``).
        networks: Frozen modality -> its network, run inside the graph.
        outside: Frozen modality -> why its network is not in the graph.
    """
    config = origin.config
    model = {
        "directory": origin.model_dir,
        "fingerprint": origin.fingerprint,
        "task": config.task,
        "level": config.level,
        "fusion": config.fusion,
        "encoders": dict(config.encoders),
    }
    mask = {
        "name": MASK_NAME,
        "shape": [BATCH, len(inputs)],
        "dtype": "bool",
        "columns": [i.modality for i in inputs],
        "meaning": "column j is True where the j-th input's modality is present; a missing "
        "modality's input values are ignored (feed zeros)",
    }
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "mmfuse_version": __version__,
        "onnx_file": origin.onnx_file,
        "model": model,
        "exporter": {"name": origin.exporter, "opset": origin.opset},
        "inputs": [{**_as_json(i), "preprocessing": describe_input(i, pre)} for i in inputs],
        "mask": mask,
        "outputs": outputs(config),
        **target_section(config, pre),
        "frozen_networks_in_graph": dict(networks),
        "outside_the_graph": [
            {"modality": m, "network": pre.pretrained[m].backbone, "reason": why}
            for m, why in outside.items()
        ],
        "preprocessor": pre.to_dict(),
    }


def _as_json(i: GraphInput) -> dict[str, Any]:
    return {**dataclasses.asdict(i), "shape": [BATCH, *i.shape]}


def outputs(config: ModelConfig) -> list[dict[str, Any]]:
    """The graph's outputs, in order."""
    if config.task == "classification":
        width = [BATCH, config.num_outputs]
        return [
            {"name": "probabilities", "shape": width, "dtype": "float32",
             "meaning": "class probabilities (softmax), columns in the order of `classes`"},
            {"name": "logits", "shape": width, "dtype": "float32",
             "meaning": "the scores before the softmax"},
        ]  # fmt: skip
    meaning = "the standardised prediction; in the target's units: value * target.std + target.mean"
    return [{"name": "value", "shape": [BATCH], "dtype": "float32", "meaning": meaning}]


def target_section(config: ModelConfig, pre: Preprocessor) -> dict[str, Any]:
    """``classes`` (classification) or ``target`` with the mean and std that decode a value."""
    target, column = pre.fitted_target, pre.schema.target
    if config.task == "classification":
        return {"classes": list(target.classes), "target": {"column": column}}
    decode = {"mean": target.mean, "std": target.std, "decode": "value * std + mean"}
    return {"target": {"column": column, **decode}}


def describe_input(i: GraphInput, pre: Preprocessor) -> dict[str, Any]:
    """How the records' cells become input ``i``."""
    if i.form == "features":
        return _features(i, pre)
    if i.form == "prepared":
        return _prepared(i, pre)
    return _FROM_SCRATCH[i.kind](i, pre)


def _prepared(i: GraphInput, pre: Preprocessor) -> dict[str, Any]:
    from mmfuse.data.preparations import get_preparation

    prep = get_preparation(pre.pretrained[i.modality].preparation)
    fixed = ("name", "kind", "shape", "dtype")
    settings = {k: v for k, v in dataclasses.asdict(prep).items() if k not in fixed}
    packages = BACKBONES[i.backbone].packages
    out = {
        "network": i.backbone,
        "network_in_graph": True,
        "packages": list(packages),
        "preparation": prep.name,
        "steps": _first_paragraph(type(prep)),
        **settings,
    }
    if prep.kind == "text":
        out["tokenizer"] = f"tokenizer.json of the {packages[0]} package (WordPiece, lower-cased)"
        out["rows"] = [
            "token ids ([CLS] ... [SEP], 0-padded)",
            "attention mask (1 for tokens, 0 for padding)",
        ]
    if prep.kind in ("image", "video"):
        out.update(_imagenet())
    return out


def _features(i: GraphInput, pre: Preprocessor) -> dict[str, Any]:
    from mmfuse.data.preparations import get_preparation

    p = pre.pretrained[i.modality]
    prep, info = get_preparation(p.preparation), BACKBONES[p.backbone]
    computed_by = (
        f"the frozen {p.backbone} network ({info.summary}) on its prepared input ({prep.name}: "
        f"{_first_paragraph(type(prep))}), as mmfuse's frozen feature extractor computes it "
        "(OnnxModel.prepare does)"
    )
    return {
        "network": p.backbone,
        "network_in_graph": False,
        "width": p.dim,
        "packages": list(info.packages),
        "computed_by": computed_by,
    }


def _imagenet() -> dict[str, Any]:
    from mmfuse.data.image import IMAGENET_MEAN, IMAGENET_STD

    return {"scale": "pixels / 255", "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)}


def _image(i: GraphInput, pre: Preprocessor) -> dict[str, Any]:
    size = pre.config.image_size
    steps = (
        f"RGB, resized to {size} x {size} (bilinear, no crop), pixels / 255, then "
        "(x - mean) / std per channel"
    )
    return {"steps": steps, "size": size, **_imagenet()}


def _video(i: GraphInput, pre: Preprocessor) -> dict[str, Any]:
    frames, size = pre.config.video_frames, pre.config.video_size
    steps = (
        f"{frames} frames sampled evenly (repeated when the clip has fewer), each RGB resized to "
        f"{size} x {size} (bilinear), pixels / 255, then (x - mean) / std per channel"
    )
    return {"steps": steps, "frames": frames, "size": size, **_imagenet()}


def _audio(i: GraphInput, pre: Preprocessor) -> dict[str, Any]:
    from mmfuse.data.audio import log_mel_spectrogram

    c, defaults = pre.config, inspect.signature(log_mel_spectrogram).parameters
    n_fft, hop = defaults["n_fft"].default, defaults["hop_length"].default
    steps = (
        f"mono at {c.sample_rate} Hz; STFT (Hann window of {n_fft}, hop {hop}, centred), power, "
        f"{c.n_mels} mel bands, log(x + 1e-6), standardised over the whole spectrogram, "
        f"centre-cropped or right-padded with zeros to {c.audio_frames} frames"
    )
    return {
        "steps": steps,
        "sample_rate": c.sample_rate,
        "n_fft": n_fft,
        "hop_length": hop,
        "n_mels": c.n_mels,
        "frames": c.audio_frames,
    }


def _text(i: GraphInput, pre: Preprocessor) -> dict[str, Any]:
    length = pre.config.text_max_length
    steps = (
        r"NFKC-normalised, lower-cased, split into words and punctuation (regex \w+|[^\w\s]); ids "
        f"from the vocabulary (0 padding, 1 unknown), truncated or right-padded with 0 to {length}"
    )
    vocabulary = f"preprocessor.vocabularies[{i.modality!r}] (the id is the index)"
    return {"steps": steps, "max_length": length, "vocabulary": vocabulary}


def _tabular(i: GraphInput, pre: Preprocessor) -> dict[str, Any]:
    stats = pre.tabular.to_dict() if pre.tabular is not None else {}
    numeric = [
        {"column": c, "median": stats["medians"][k], "mean": stats["means"][k],
         "std": stats["stds"][k]}
        for k, c in enumerate(stats.get("numeric", []))
    ]  # fmt: skip
    categorical = [
        {"column": c, "categories": stats["vocabularies"][k]}
        for k, c in enumerate(stats.get("categorical", []))
    ]
    steps = (
        "the numeric columns first, a missing number replaced by the median, then "
        "(x - mean) / std; then one code per categorical column, as a float: 0 missing, "
        "1 unseen, 2 + the category's index in `categories`"
    )
    return {"steps": steps, "numeric": numeric, "categorical": categorical}


def _embedding(i: GraphInput, pre: Preprocessor) -> dict[str, Any]:
    steps = "the vector as given in the table (a list, or a .npy file)"
    return {"steps": steps, "width": i.shape[0]}


_FROM_SCRATCH = {
    "image": _image,
    "video": _video,
    "audio": _audio,
    "text": _text,
    "tabular": _tabular,
    "embedding": _embedding,
}


def _first_paragraph(cls: type) -> str:
    return " ".join((inspect.getdoc(cls) or "").split("\n\n")[0].split())
