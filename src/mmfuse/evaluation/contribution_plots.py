"""Figures for modality contributions and per-record occlusion maps (matplotlib, Agg).

matplotlib is imported inside each function so that ``import mmfuse`` stays cheap.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mmfuse.types import InputSpec

if TYPE_CHECKING:
    from mmfuse.evaluation.contribution import ShapleyResult

DPI = 110
POSITIVE, NEGATIVE = "#c0392b", "#2e6da4"  # supports / works against the target


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    _pyplot().close(fig)
    return path


def plot_contributions(result: ShapleyResult, path: str | Path, title: str | None = None) -> Path:
    """Horizontal bars of mean |Shapley value| per modality (95% intervals), signed mean dots.

    Args:
        result: What ``modality_shapley`` returned.
        path: PNG file to write.
        title: Figure title (default: what is shown and on how many records).
    """
    plt = _pyplot()
    order = np.argsort(result.mean_abs)  # largest at the top
    names = [result.modalities[i] for i in order]
    y = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(7.5, 1.2 + 0.55 * max(len(names), 2)))
    abs_err = np.abs(result.mean_abs_ci[order].T - result.mean_abs[order])
    ax.barh(y, result.mean_abs[order], xerr=abs_err, color="#7f8c8d", alpha=0.85, capsize=4,
            error_kw={"elinewidth": 1.2}, label="mean |Shapley value| (95% CI)")  # fmt: skip
    sign_err = np.abs(result.mean_ci[order].T - result.mean[order])
    ax.errorbar(result.mean[order], y, xerr=sign_err, fmt="D", color="black", markersize=6,
                capsize=3, elinewidth=1, label="mean signed Shapley value (95% CI)")  # fmt: skip
    ax.axvline(0.0, color="black", linewidth=0.8)
    for yi, value, high in zip(y, result.mean_abs[order], result.mean_abs_ci[order, 1]):
        ax.annotate(f"{value:.3f}", (max(high, 0.0), yi), xytext=(5, 0),
                    textcoords="offset points", fontsize=9, va="center")  # fmt: skip
    ax.margins(x=0.12)
    ax.set_yticks(y, names, fontsize=10)
    ax.set_ylim(-0.6, len(names) - 0.4 + 0.5)
    ax.set_xlabel(f"Shapley value: {result.units}")
    ax.set_ylabel("modality")
    n = len(result.values)
    fig.suptitle(title or f"Modality contributions ({n} records)", fontsize=12)
    ax.set_title(
        f"mean over records: {result.base.mean():.3f} with no modality, "
        f"{result.full.mean():.3f} with all; the signed values add up to the difference",
        fontsize=8.5, color="#444444",
    )  # fmt: skip
    ax.legend(loc="lower right", fontsize=8.5, framealpha=0.9)
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)


def plot_sample(
    modality: str,
    spec: InputSpec,
    x: np.ndarray,
    attribution: np.ndarray,
    path: str | Path,
    score_label: str = "score",
    title: str | None = None,
    tokens: Sequence[str] | None = None,
    feature_names: Sequence[str] | None = None,
) -> Path:
    """One modality of one record with its occlusion map (see ``occlusion_attribution``).

    Image: the picture and the map over it; video: the frames with one bar per frame; audio:
    the log-mel spectrogram beside the map; text: the words coloured by importance (needs
    the vocabulary ``tokens``); tabular: one bar per feature (``feature_names``); embedding:
    one bar per chunk of the vector.

    Args:
        modality: Modality name (for labels).
        spec: Its InputSpec.
        x: The record's preprocessed input (no batch dimension).
        attribution: The occlusion map of this modality.
        path: PNG file to write.
        score_label: What the drop is measured in, e.g. ``"P(positive)"``.
        title: Figure title.
        tokens: Text: the vocabulary, token id -> token.
        feature_names: Tabular: one name per feature column.
    """
    draw = {
        "image": _image, "video": _video, "audio": _audio, "text": _text,
        "tabular": _bars, "embedding": _bars,
    }  # fmt: skip
    kind = "embedding" if spec.features else spec.kind  # frozen features: a vector
    if kind not in draw:
        raise ValueError(f"unknown input kind {spec.kind!r}; choose one of: {', '.join(draw)}")
    if kind == "text":
        tokens = tokens if tokens is not None else [str(i) for i in range(int(x.max()) + 1)]
        names: Sequence[str] | None = tokens
    elif kind == "tabular":
        names = feature_names or [f"feature {i}" for i in range(len(attribution))]
    else:
        names = None
    fig = draw[kind](np.asarray(x), np.asarray(attribution), score_label, names, spec)
    fig.suptitle(title or f"{modality} ({spec.kind})", fontsize=11.5, y=1.04)
    return _save(fig, path)


def plot_raw_sample(
    kind: str,
    decoded: Any,
    attribution: np.ndarray,
    path: str | Path,
    score_label: str = "score",
    title: str | None = None,
    parts: Sequence[str] | None = None,
    sample_rate: int | None = None,
) -> Path:
    """A modality fed to a pretrained network, as decoded for it, with its occlusion map
    (see ``mmfuse.evaluation.occlusion.raw_occlusions``).

    Image: the picture the network sees and the map over it; video: the frames with one bar
    per frame; audio: the waveform shaded by each time segment's value, and one bar per
    segment; text: the words coloured by importance.

    Args:
        kind: "image", "video", "audio" or "text".
        decoded: The decoded cell: (3, H, W) or (N, 3, H, W) in [0, 1], a waveform, a string.
        attribution: Its occlusion map.
        path: PNG file to write.
        score_label: What the drop is measured in, e.g. ``"P(positive)"``.
        title: Figure title (any number of lines).
        parts: Audio: one label per segment.
        sample_rate: Audio: samples per second (None: the time axis counts samples).
    """
    a = np.asarray(attribution)
    if kind == "image":
        fig = _picture(np.asarray(decoded).transpose(1, 2, 0), a, score_label)
    elif kind == "video":
        fig = _frames(np.asarray(decoded).transpose(0, 2, 3, 1), a, score_label)
    elif kind == "audio":
        fig = _waveform(np.asarray(decoded), a, score_label, parts, sample_rate)
    elif kind == "text":
        fig = _words(str(decoded).split(), a, score_label, "word removed")
    else:
        kinds = "image, video, audio, text"
        raise ValueError(f"unknown kind {kind!r} of a decoded cell; choose one of: {kinds}")
    fig.suptitle(title or kind, fontsize=11.5, y=1.01, va="bottom")  # grows upwards
    return _save(fig, path)


def _colour_legend(ax: Any, score_label: str) -> None:
    from matplotlib.patches import Patch

    handles = [Patch(color=POSITIVE, label=f"raises {score_label}"),
               Patch(color=NEGATIVE, label=f"lowers {score_label}")]  # fmt: skip
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8.5)


def _limit(a: np.ndarray) -> float:
    return float(max(np.abs(a).max(initial=0.0), 1e-6))


def _unnormalise(x: np.ndarray) -> np.ndarray:
    """(3, H, W) ImageNet-normalised -> (H, W, 3) in [0, 1]."""
    from mmfuse.data.image import IMAGENET_MEAN, IMAGENET_STD

    mean = np.asarray(IMAGENET_MEAN).reshape(3, 1, 1)
    std = np.asarray(IMAGENET_STD).reshape(3, 1, 1)
    return np.clip(x * std + mean, 0.0, 1.0).transpose(1, 2, 0)


def _image(x: np.ndarray, a: np.ndarray, score: str, names: Any, spec: InputSpec) -> Any:
    return _picture(_unnormalise(x), a, score)


def _picture(picture: np.ndarray, a: np.ndarray, score: str) -> Any:
    """(H, W, 3) picture in [0, 1] beside its (H, W) occlusion map over a grey copy."""
    plt = _pyplot()
    label = f"drop in {score} when hidden"
    fig, (left, right) = plt.subplots(1, 2, figsize=(8.4, 4.0))
    left.imshow(picture, interpolation="nearest")
    left.set_title("input image", fontsize=10)
    right.imshow(picture.mean(-1), cmap="gray", interpolation="nearest")
    lim = _limit(a)
    heat = right.imshow(a, cmap="RdBu_r", vmin=-lim, vmax=lim, alpha=0.6, interpolation="bilinear")
    right.set_title(f"occlusion map (red: raises {score}, blue: lowers it)", fontsize=9)
    for ax in (left, right):
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(heat, ax=right, fraction=0.046, pad=0.04).set_label(label, fontsize=9)
    return fig


def _video(x: np.ndarray, a: np.ndarray, score: str, names: Any, spec: InputSpec) -> Any:
    return _frames(np.stack([_unnormalise(f) for f in x]), a, score)


def _frames(frames: np.ndarray, a: np.ndarray, score: str) -> Any:
    """(N, H, W, 3) frames in [0, 1] above one bar per frame."""
    plt = _pyplot()
    label = f"drop in {score} when hidden"
    n = frames.shape[0]
    fig = plt.figure(figsize=(max(6.0, 1.1 * n), 3.6))
    grid = fig.add_gridspec(2, n, height_ratios=[1.0, 1.1], hspace=0.35)
    for f in range(n):
        ax = fig.add_subplot(grid[0, f])
        ax.imshow(frames[f], interpolation="nearest")
        ax.set_title(f"frame {f}", fontsize=8)
        ax.axis("off")
    bars = fig.add_subplot(grid[1, :])
    bars.bar(np.arange(n), a, color=[POSITIVE if v >= 0 else NEGATIVE for v in a])
    bars.axhline(0.0, color="black", linewidth=0.8)
    bars.set_xticks(np.arange(n), [f"frame {f}" for f in range(n)], fontsize=8)
    bars.set_xlim(-0.5, n - 0.5)
    bars.set_ylabel(label, fontsize=9)
    bars.grid(axis="y", alpha=0.3)
    _colour_legend(bars, score)
    return fig


def _audio(x: np.ndarray, a: np.ndarray, score: str, names: Any, spec: InputSpec) -> Any:
    plt = _pyplot()
    label = f"drop in {score} when hidden"
    fig, (left, right) = plt.subplots(1, 2, figsize=(10.0, 3.8))
    spec_img = left.imshow(x, origin="lower", aspect="auto", cmap="magma")
    left.set_title("log-mel spectrogram (normalised)", fontsize=10)
    fig.colorbar(spec_img, ax=left, pad=0.02).set_label("log power (z-score)", fontsize=9)
    lim = _limit(a)
    heat = right.imshow(a, origin="lower", aspect="auto", cmap="RdBu_r", vmin=-lim, vmax=lim)
    right.set_title(f"occlusion map (red: raises {score}, blue: lowers it)", fontsize=9)
    fig.colorbar(heat, ax=right, pad=0.02).set_label(label, fontsize=9)
    level = 0.5 * _limit(a)  # outline the blocks that matter most, by sign
    outlines = [(a >= level, "cyan", "solid", f"raises {score} most"),
                (a <= -level, "white", "dashed", f"lowers {score} most")]  # fmt: skip
    for region, colour, style, text in outlines:
        if region.any():
            left.contour(region.astype(float), levels=[0.5], colors=colour, linewidths=1.3,
                         linestyles=style, origin="lower")  # fmt: skip
            left.plot([], [], color=colour, linestyle=style, label=text)
    if left.get_legend_handles_labels()[0]:
        left.legend(loc="upper right", fontsize=7.5, facecolor="#333333", labelcolor="white")
    for ax in (left, right):
        ax.set_xlabel("time frame")
        ax.set_ylabel("mel band")
    return fig


def _waveform(
    wave: np.ndarray, a: np.ndarray, score: str, parts: Sequence[str] | None, rate: int | None
) -> Any:
    """The waveform with each time segment shaded by its value, above one bar per segment."""
    plt = _pyplot()
    from matplotlib.colors import Normalize

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9.0, 5.0), height_ratios=[1.0, 1.2])
    scale, step = float(rate or 1), max(1, len(wave) // 4000)  # long clips: an envelope
    bins = wave[: len(wave) // step * step].reshape(-1, step)
    top.fill_between(np.arange(len(bins)) * step / scale, bins.min(1), bins.max(1), color="black",
                     linewidth=0.5, zorder=2)  # fmt: skip
    cmap, norm = plt.get_cmap("RdBu_r"), Normalize(-_limit(a), _limit(a))
    for span, value in zip(np.array_split(np.arange(len(wave)), max(len(a), 1)), a):
        top.axvspan(span[0] / scale, (span[-1] + 1) / scale, color=cmap(norm(value)), alpha=0.7,
                    linewidth=0, zorder=0)  # fmt: skip
    top.set_xlim(0, len(wave) / scale)
    top.set_xlabel("time (s)" if rate else "sample", fontsize=9)
    top.set_ylabel("amplitude", fontsize=9)
    top.set_title(f"waveform; segments coloured by the drop (red: raises {score}, blue: lowers it)",
                  fontsize=9)  # fmt: skip
    x = np.arange(len(a))
    bottom.bar(x, a, color=[POSITIVE if v >= 0 else NEGATIVE for v in a])
    bottom.axhline(0.0, color="black", linewidth=0.8)
    bottom.set_xticks(x, list(parts) if parts else [str(i) for i in x], fontsize=7.5, rotation=45,
                      ha="right")  # fmt: skip
    bottom.set_xlim(-0.5, len(a) - 0.5)
    bottom.set_ylabel(f"drop in {score}\nwhen silenced", fontsize=9)
    bottom.grid(axis="y", alpha=0.3)
    _colour_legend(bottom, score)
    fig.tight_layout()
    return fig


def _text(x: np.ndarray, a: np.ndarray, score: str, names: Any, spec: InputSpec) -> Any:
    ids = [int(t) for t in x if int(t) != 0]
    words = [names[t] if 0 <= t < len(names) else "<unk>" for t in ids]
    return _words(words, a[: len(ids)], score, "token replaced by <unk>")


def _words(words: Sequence[str], values: np.ndarray, score: str, hidden: str) -> Any:
    """The words on coloured boxes, one value per word."""
    plt = _pyplot()
    from matplotlib.colors import Normalize

    a = np.asarray(values)
    cmap, norm = plt.get_cmap("RdBu_r"), Normalize(-_limit(a), _limit(a))
    per_line = 60
    lines, column, row = max(1, sum(len(w) + 1 for w in words) // per_line + 1), 0, 0
    fig, ax = plt.subplots(figsize=(8.5, 1.6 + 0.45 * lines))
    ax.set_xlim(0, per_line + 2)
    ax.set_ylim(-lines - 0.2, 0.8)
    ax.axis("off")
    for word, value in zip(words, values):
        if column + len(word) > per_line:
            column, row = 0, row + 1
        ax.text(column, -row, word, family="monospace", fontsize=11, va="center",
                bbox={"facecolor": cmap(norm(value)), "edgecolor": "none", "pad": 2})  # fmt: skip
        column += len(word) + 1
    if not words:
        ax.text(0, 0, "(no tokens)", fontsize=11)
    mappable = plt.cm.ScalarMappable(norm=norm, cmap=cmap)
    bar = fig.colorbar(mappable, ax=ax, orientation="horizontal", fraction=0.25, pad=0.05)
    bar.set_label(f"drop in {score} when hidden ({hidden}); red: raises {score}", fontsize=9)
    return fig


def _bars(x: np.ndarray, a: np.ndarray, score: str, names: Any, spec: InputSpec) -> Any:
    plt = _pyplot()
    label = f"drop in {score} when hidden"
    if names is None:  # embedding chunks
        parts = np.array_split(np.arange(x.shape[0]), len(a))
        names = [f"dims {p[0]}-{p[-1]}" for p in parts]
    fig, ax = plt.subplots(figsize=(7.0, 1.2 + 0.38 * len(a)))
    y = np.arange(len(a))[::-1]
    ax.barh(y, a, color=[POSITIVE if v >= 0 else NEGATIVE for v in a])
    ax.set_yticks(y, list(names), fontsize=9)
    ax.axvline(0.0, color="black", linewidth=0.8)
    hidden = "set to the training mean / <unknown>" if spec.kind == "tabular" else "zeroed"
    ax.set_xlabel(f"{label} ({hidden})", fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    _colour_legend(ax, score)
    return fig
