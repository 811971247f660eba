"""The fitted model as a function of flat tensors, the form an ONNX graph has.

``GraphModule`` takes one tensor per modality (in the model's modality order) and the
``(batch, M)`` bool presence mask, runs the frozen pretrained networks that belong inside the
graph on their prepared inputs, then the model (encoders, fusion, head) and its task's output
step: ``(probabilities, logits)`` for a classifier, ``value`` (standardised) for a regressor.

``graph_parts`` cuts the same computation into the pieces an export failure is traced to: each
modality's encoder (with its network), and the fusion with the head(s); for an ensemble, each
frozen network alone, then the members on their features.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from mmfuse.encoders.backbones import load_backbone, run_backbone
from mmfuse.models.builder import ModelConfig
from mmfuse.models.ensemble import EnsembleModel
from mmfuse.models.multimodal import MultimodalModel
from mmfuse.tasks import create_task


class FrozenNetwork(nn.Module):
    """A packaged pretrained network inside the graph: prepared input -> features (per frame
    for clips), exactly as the frozen feature extractor computes them.

    MiniLM drops the padding every row of a batch shares, a length read from the data; a traced
    graph keeps the length of the example it was traced with, so the example's first record
    fills every token position (``random_records``), which makes that step a no-op.

    Args:
        backbone: Network name (``mmfuse.pretrained.BACKBONES``).
    """

    def __init__(self, backbone: str) -> None:
        super().__init__()
        self.backbone = backbone
        # a private copy: the shared instance may have been built by the frozen feature
        # extractor under inference mode, and a trace cannot record its inference tensors
        self.net = copy.deepcopy(load_backbone(backbone)).eval()

    def forward(self, x: Tensor) -> Tensor:
        return run_backbone(self.net, self.backbone, x).float()


class GraphModule(nn.Module):
    """Flat tensors in, the task's outputs out.

    Args:
        model: The trained model (eval mode): one model, or an ensemble of models that take the
            same inputs.
        task: "classification" or "regression".
        num_outputs: Classes, or 1.
        networks: Modality -> the frozen network that runs inside the graph on its input.
    """

    def __init__(
        self,
        model: MultimodalModel | EnsembleModel,
        task: str,
        num_outputs: int,
        networks: Mapping[str, str],
    ) -> None:
        super().__init__()
        self.model = model
        self.modalities = list(model.modalities)
        self.task_name, self.num_outputs = task, num_outputs
        self.task = create_task(task, num_outputs)
        self.networks = nn.ModuleDict(
            {m: FrozenNetwork(networks[m]) for m in self.modalities if m in networks}
        )

    def forward(self, *tensors: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        *values, present = tensors
        inputs = dict(zip(self.modalities, values))
        for m, network in self.networks.items():
            inputs[m] = network(inputs[m])
        mask = {m: present[:, j] for j, m in enumerate(self.modalities)}
        output = self.model(inputs, mask)
        if self.task_name == "classification":
            return self.task.predict(output), output.require_logits().float()
        return self.task.predict(output)

    @property
    def output_names(self) -> list[str]:
        return ["probabilities", "logits"] if self.task_name == "classification" else ["value"]


@dataclass(frozen=True)
class GraphPart:
    """One piece of the graph, exportable on its own.

    Attributes:
        name: What it is, as messages name it ("encoder 'image' (cnn)").
        module: The piece.
        example: Example inputs (one batch).
        modality: The modality whose encoder it is ("" for the fusion and head).
        network: True when it holds a frozen network of the graph.
    """

    name: str
    module: nn.Module
    example: tuple[Tensor, ...]
    modality: str = ""
    network: bool = False


class _Encoder(nn.Module):
    """One modality's encoder, after its frozen network when that is in the graph."""

    def __init__(self, encoder: nn.Module, network: nn.Module | None) -> None:
        super().__init__()
        self.encoder, self.network = encoder, network

    def forward(self, x: Tensor) -> Tensor:
        return self.encoder(x if self.network is None else self.network(x))


def part_names(graph: GraphModule, config: ModelConfig) -> list[str]:
    """The graph's parts as messages name them: each modality's encoder (after its network),
    then the fusion with its head(s); for an ensemble, each frozen network in the graph, then
    its members."""
    if not isinstance(graph.model, MultimodalModel):
        networks = [f"network {m!r} ({n.backbone})" for m, n in graph.networks.items()]
        weights = ", ".join(f"{w:.3g}" for w in config.member_weights)
        members = f"an ensemble of {len(config.members)} models (each with its encoders, fusion and head)"
        return [*networks, f"{members}, their outputs averaged with weights {weights}"]
    names = []
    for m in graph.modalities:
        network = graph.networks[m] if m in graph.networks else None
        label = (
            config.encoders[m] if network is None else f"{network.backbone} network + projection"
        )
        names.append(f"encoder {m!r} ({label})")
    heads = "heads" if graph.model.level == "late" else "head"
    return [*names, f"fusion {config.fusion!r} and {heads}"]


def graph_parts(
    graph: GraphModule, example: tuple[Tensor, ...], config: ModelConfig
) -> list[GraphPart]:
    """The parts of ``part_names``, each with example inputs computed from ``example`` (inputs
    of ``graph``)."""
    model, names = graph.model, part_names(graph, config)
    if not isinstance(model, MultimodalModel):
        return _ensemble_parts(graph, example, names)
    parts, embeddings = [], []
    with torch.no_grad():
        for j, m in enumerate(graph.modalities):
            network = graph.networks[m] if m in graph.networks else None
            encoder = _Encoder(model.encoders[m], network).eval()
            parts.append(GraphPart(names[j], encoder, (example[j],), m, network is not None))
            embeddings.append(encoder(example[j]))
    rest = GraphModule(model.on_embeddings(), graph.task_name, graph.num_outputs, {})
    parts.append(GraphPart(names[-1], rest, (*embeddings, example[-1])))
    return parts


def _ensemble_parts(
    graph: GraphModule, example: tuple[Tensor, ...], names: list[str]
) -> list[GraphPart]:
    """An ensemble's parts: each frozen network alone, then every member on the networks'
    features (the members share the networks, not their encoders)."""
    parts, inputs = [], list(example[:-1])
    with torch.no_grad():
        for name, (m, network) in zip(names, graph.networks.items()):
            j = graph.modalities.index(m)
            alone = _Encoder(nn.Identity(), network).eval()
            parts.append(GraphPart(name, alone, (example[j],), m, True))
            inputs[j] = alone(example[j])
    rest = GraphModule(graph.model, graph.task_name, graph.num_outputs, {})
    return [*parts, GraphPart(names[-1], rest, (*inputs, example[-1]))]
