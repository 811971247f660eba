"""Label-safe training-time augmentation on preprocessed batches, per modality kind.

``light`` (default): images shift by up to 2 px and jitter brightness; audio shifts in time,
changes gain and masks one frequency and one time band; text drops 10 % of tokens (to the
unknown token); tabular adds N(0, 0.05) noise to numeric features; video as images, per clip.
``strong`` doubles the magnitudes. ``none`` disables augmentation. Frozen pretrained features
and the prepared inputs of pretrained text and audio networks are left as they are.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from mmfuse.types import InputSpec

AUGMENT_LEVELS = ("none", "light", "strong")
_UNK = 1


def augment_batch(
    inputs: Mapping[str, Tensor],
    specs: Mapping[str, InputSpec],
    level: str,
    generator: torch.Generator,
) -> dict[str, Tensor]:
    """Returns augmented copies of ``inputs`` (the originals are not modified)."""
    if level == "none":
        return dict(inputs)
    scale = 2.0 if level == "strong" else 1.0
    out = {}
    for m, x in inputs.items():
        kind = specs[m].kind
        if specs[m].features or (specs[m].backbone and kind in ("text", "audio")):
            out[m] = x  # frozen features, or token ids / mel partials of a pretrained network
        elif kind == "image":
            out[m] = _image(x, scale, generator)
        elif kind == "video":
            b, n = x.shape[:2]
            out[m] = _image(x.flatten(1, 2).reshape(b, n * 3, *x.shape[-2:]), scale, generator).reshape(x.shape)
        elif kind == "audio":
            out[m] = _audio(x, scale, generator)
        elif kind == "text":
            out[m] = _text(x, 0.1 * scale, generator)
        elif kind == "tabular":
            out[m] = _tabular(x, specs[m].num_numeric, 0.05 * scale, generator)
        else:
            out[m] = x
    return out


def _rand(shape: tuple[int, ...], generator: torch.Generator, device: torch.device) -> Tensor:
    return torch.rand(shape, generator=generator).to(device)


def _image(x: Tensor, scale: float, g: torch.Generator) -> Tensor:
    """Random shift by up to 2*scale px (edge padding) and brightness jitter."""
    b = x.shape[0]
    pad = int(2 * scale)
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad), mode="replicate")
    dx, dy = (int(v) for v in torch.randint(0, 2 * pad + 1, (2,), generator=g))
    h, w = x.shape[-2:]
    shifted = padded[..., dy : dy + h, dx : dx + w]
    bright = (_rand((b,), g, x.device) - 0.5) * 0.2 * scale
    return shifted + bright.view(b, *([1] * (x.dim() - 1)))


def _audio(x: Tensor, scale: float, g: torch.Generator) -> Tensor:
    """Time shift, gain (an offset in log-mel space) and one frequency + one time mask."""
    b, f, t = x.shape
    shift = int(torch.randint(-int(5 * scale), int(5 * scale) + 1, (1,), generator=g))
    y = torch.roll(x, shift, dims=-1)
    y = y + ((_rand((b, 1, 1), g, x.device) - 0.5) * 0.2 * scale)
    fw, tw = max(1, int(f * 0.1 * scale)), max(1, int(t * 0.1 * scale))
    f0 = int(torch.randint(0, f - fw + 1, (1,), generator=g))
    t0 = int(torch.randint(0, t - tw + 1, (1,), generator=g))
    y = y.clone()
    y[:, f0 : f0 + fw, :] = 0.0
    y[:, :, t0 : t0 + tw] = 0.0
    return y


def _text(x: Tensor, p: float, g: torch.Generator) -> Tensor:
    """Replaces a fraction ``p`` of the (non-padding) tokens with the unknown token."""
    drop = (_rand(tuple(x.shape), g, x.device) < p) & (x > _UNK)
    return x.masked_fill(drop, _UNK)


def _tabular(x: Tensor, num_numeric: int, sigma: float, g: torch.Generator) -> Tensor:
    if num_numeric == 0:
        return x
    noise = torch.randn((x.shape[0], num_numeric), generator=g).to(x.device) * sigma
    y = x.clone()
    y[:, :num_numeric] += noise
    return y
