"""What the exported graph takes: one input per modality, in the model's modality order, then the
presence mask; and the preprocessing that produces those inputs from a table.

A modality fed to a frozen pretrained network takes one of two forms. With the network inside
the graph (the default), its input is the network's prepared input, the same array fine-tuning
feeds (224-px ImageNet crops, WordPiece ids + attention mask, mel partials), and
``graph_preprocessor`` prepares it that way. Without it (``include_networks`` off, or a network
the exporter cannot write), its input is the network's feature vector, computed as ``fit``
computes it.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass

import numpy as np

from mmfuse.data.kinds.base import ColumnProcessor, KindProcessor
from mmfuse.data.preprocess import Encoded, Preprocessor

BATCH = "batch"
"""Name of the dynamic batch axis, the first of every input and output."""
MASK_NAME = "present"
"""Name of the graph's (batch, M) bool mask input: column j is True where the j-th modality of
the graph's order is present."""

FORMS = ("input", "prepared", "features")
"""What a graph input holds: mmfuse's own preprocessing for a from-scratch encoder ("input"), a
pretrained network's prepared input with the network in the graph ("prepared"), or a frozen
network's output features with the network outside the graph ("features")."""


@dataclass(frozen=True)
class GraphInput:
    """One input of the graph.

    Attributes:
        name: The ONNX input name (the modality's name made an identifier).
        modality: The modality it carries.
        kind: Modality kind ("image", "text", "audio", "video", "tabular", "embedding").
        shape: Shape of one record (the graph adds a leading batch axis).
        dtype: numpy dtype name ("float32" or "int64").
        form: One of ``FORMS``.
        backbone: The pretrained network it feeds or comes from ("" for none).
    """

    name: str
    modality: str
    kind: str
    shape: tuple[int, ...]
    dtype: str
    form: str
    backbone: str = ""


def frozen_modalities(pre: Preprocessor) -> list[str]:
    """Modalities fed to a frozen pretrained network, in the model's order."""
    return sorted(m for m, p in pre.pretrained.items() if p.frozen)


def graph_preprocessor(pre: Preprocessor, networks: Collection[str]) -> Preprocessor:
    """A copy of ``pre`` that gives the frozen modalities in ``networks`` their network's
    prepared input instead of its features (the network then runs inside the graph); other
    frozen modalities keep their features, from ``pre``'s networks and cache."""
    stored = pre.to_dict()
    stored["pretrained"] = {
        m: {**p, "frozen": bool(p["frozen"]) and m not in networks}
        for m, p in stored["pretrained"].items()
    }
    outside = [m for m in frozen_modalities(pre) if m not in networks]
    return Preprocessor.from_dict(stored, pre.features.restrict(outside))


def graph_inputs(pre: Preprocessor, networks: Collection[str]) -> list[GraphInput]:
    """The graph's inputs (without the mask) when the networks of ``networks`` are inside it."""
    graph_pre = graph_preprocessor(pre, networks)
    specs = graph_pre.input_specs()
    names = input_names(sorted(specs))
    out = []
    for m in sorted(specs):
        spec = specs[m]
        form = "features" if spec.features else "prepared" if spec.backbone else "input"
        dtype = _dtype(graph_pre.processors[m])
        out.append(
            GraphInput(names[m], m, spec.kind, tuple(spec.shape), dtype, form, spec.backbone)
        )
    return out


def _dtype(processor: KindProcessor) -> str:
    """The numpy dtype name of a processor's input (declared by ``ColumnProcessor``, the base of
    every kind processor)."""
    assert isinstance(processor, ColumnProcessor), type(processor)
    return np.dtype(processor.dtype).name


def input_names(modalities: list[str]) -> dict[str, str]:
    """Modality -> a distinct identifier for ONNX (letters, digits and ``_``; never the mask's
    name)."""
    taken, out = {MASK_NAME}, {}
    for m in modalities:
        base = re.sub(r"\W", "_", m, flags=re.ASCII) or "input"
        base = f"m_{base}" if base[0].isdigit() else base
        name, k = base, 2
        while name in taken:
            name, k = f"{base}_{k}", k + 1
        taken.add(name)
        out[m] = name
    return out


def presence_matrix(mask: Mapping[str, np.ndarray], modalities: list[str]) -> np.ndarray:
    """(N, M) bool: the per-modality masks as the graph's mask input, columns in graph order."""
    return np.stack([np.asarray(mask[m], dtype=bool) for m in modalities], axis=1)


def onnx_feed(inputs: list[GraphInput], records: Encoded) -> dict[str, np.ndarray]:
    """Input name -> array: prepared records as the graph's inputs."""
    feed = {i.name: np.ascontiguousarray(records.inputs[i.modality], dtype=i.dtype) for i in inputs}
    feed[MASK_NAME] = presence_matrix(records.mask, [i.modality for i in inputs])
    return feed
