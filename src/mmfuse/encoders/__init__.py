"""Encoders: one per file, registered as "KIND/NAME" (e.g. "image/cnn", "text/gru").

Every encoder is an ``nn.Module`` built as ``cls(spec: InputSpec, **hparams)``, exposes
``output_dim`` and maps its modality's input tensor (see ``InputSpec``) to ``(B, output_dim)``.
Encoders named ``raw`` have no deep network: they flatten or pool the preprocessed input into a
fixed vector, for data-level (early) fusion. Each encoder declares what it reads (``reads``: the
kind's decoded input and/or a frozen network's features); ``create_encoder`` picks the vector
form of an encoder for features, or refuses, from that declaration.

Adding an encoder is one new file here with ``@register_encoder("kind", "name")`` on its class
(plus its test): the registry imports every module of this package on first use, so no import
line is needed, and ``tests/test_registry_discovery.py`` fails on an encoder class left
unregistered (mark a building block with ``mmfuse._registry.unregistered``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mmfuse._registry import Registry

if TYPE_CHECKING:
    from torch import nn

    from mmfuse.types import InputSpec

ENCODERS: Registry[type[nn.Module]] = Registry("encoder", package=__name__)

DEFAULT_ENCODERS = {
    "image": "cnn",
    "text": "gru",
    "audio": "cnn",
    "video": "cnn",
    "tabular": "mlp",
    "embedding": "mlp",
}
"""Encoder used for each modality kind when the user names none."""


def register_encoder(kind: str, name: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator registering an encoder for ``kind`` under ``name``."""
    return ENCODERS.register(f"{kind}/{name}")


DECODED, FEATURES = "decoded", "features"
"""What an encoder reads (its class attribute ``reads``): the kind's decoded input (pixels,
token ids, log-mel frames, ...; the default), and/or a frozen network's feature vectors."""


def reads(cls: type) -> tuple[str, ...]:
    """The inputs an encoder class declares it reads (default: decoded input only)."""
    return tuple(getattr(cls, "reads", (DECODED,)))


def create_encoder(kind: str, name: str, spec: InputSpec, **hparams: Any) -> nn.Module:
    """Builds the encoder ``name`` for modality kind ``kind``.

    The input decides between an encoder and its vector form: when ``spec`` carries frozen
    features and the encoder reads only decoded input, the embedding encoder of the same name
    (which reads vectors) is used, e.g. ``raw`` flattens features at the early level.
    """
    key = f"{kind}/{name}"
    if key not in ENCODERS:
        valid = [n.split("/", 1)[1] for n in ENCODERS.names() if n.startswith(kind + "/")]
        raise KeyError(f"unknown {kind} encoder {name!r}; choose one of: {', '.join(valid)}")
    cls = ENCODERS.get(key)
    if spec.features and FEATURES not in reads(cls):
        vector_form = f"embedding/{name}"
        if vector_form not in ENCODERS or FEATURES not in reads(ENCODERS.get(vector_form)):
            raise KeyError(f"the {kind} encoder {name!r} reads decoded {kind} input, not the "
                           f"features of a frozen {spec.backbone} network")
        cls = ENCODERS.get(vector_form)
    return cls(spec, **hparams)


def list_encoders(kind: str | None = None) -> list[str]:
    """Registered encoders as "KIND/NAME", optionally only those of one kind."""
    return [n for n in ENCODERS.names() if kind is None or n.startswith(kind + "/")]

