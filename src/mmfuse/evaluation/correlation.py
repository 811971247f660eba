"""Inter-modal correlation: linear CKA and CCA between modality embeddings.

How much do two modalities' embeddings say the same thing? Two complementary measures:

- linear CKA (Kornblith et al., 2019, "Similarity of Neural Network Representations
  Revisited"): one number in [0, 1], invariant to rotations and isotropic scaling of either
  representation, but not to arbitrary invertible linear maps.
- CCA (Hotelling, 1936, "Relations Between Two Sets of Variates"): the correlations of the
  best-aligned linear projections; invariant to any invertible linear map, so it needs a
  dimension reduction to stay meaningful when the dimension approaches the sample count.

Both are computed only on the samples where both modalities are present.
"""

from __future__ import annotations

import textwrap
from itertools import combinations
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from mmfuse.data.preprocess import Encoded
    from mmfuse.models.ensemble import EnsembleModel
    from mmfuse.models.multimodal import MultimodalModel

MIN_SHARED = 10  # fewer shared samples than this: no estimate
MAX_CCA_COMPONENTS = 64
SAMPLES_PER_COMPONENT = 10  # CCA keeps at most N // 10 principal components per side


def _check_pair(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both as float64 (N, D) arrays, centred per column."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2:
        raise ValueError(f"expected two 2-D arrays (N, D); got shapes {x.shape} and {y.shape}")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y need the same number of rows; got {x.shape[0]} and {y.shape[0]}")
    if x.shape[0] < 2:
        raise ValueError(f"need at least 2 samples; got {x.shape[0]}")
    return x - x.mean(0), y - y.mean(0)


def _is_constant(x: np.ndarray) -> bool:
    """True when every column of ``x`` holds a single value (or there are no columns)."""
    return x.shape[1] == 0 or not np.ptp(x, axis=0).any()


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear centred kernel alignment between two representations of the same samples.

    ``||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F)`` on column-centred data, in float64. Uses
    the feature-space form (D x D products) when N >= D, the equivalent sample-space form
    (N x N Gram matrices) otherwise, so the cost stays small either way.

    Args:
        x: (N, D1) first representation.
        y: (N, D2) second representation.

    Returns:
        CKA in [0, 1]; nan when either representation is constant over the samples.
    """
    xc, yc = _check_pair(x, y)
    if _is_constant(xc) or _is_constant(yc):
        return float("nan")
    if xc.shape[0] >= max(xc.shape[1], yc.shape[1]):
        cross = np.sum((yc.T @ xc) ** 2)
        norm_x = np.linalg.norm(xc.T @ xc)
        norm_y = np.linalg.norm(yc.T @ yc)
    else:
        kx, ky = xc @ xc.T, yc @ yc.T  # (N, N), already centred
        cross = np.sum(kx * ky)
        norm_x, norm_y = np.linalg.norm(kx), np.linalg.norm(ky)
    if norm_x == 0.0 or norm_y == 0.0:
        return float("nan")
    return float(np.clip(cross / (norm_x * norm_y), 0.0, 1.0))


def _pca(xc: np.ndarray, max_components: int) -> np.ndarray:
    """Scores (N, k) on the top ``k <= max_components`` principal components of centred data.

    Eigen-decomposes the smaller of the (D, D) scatter and the (N, N) Gram matrix, asking only
    for the top components; components with variance under 1e-10 of the largest are dropped.
    """
    from scipy import linalg

    n, d = xc.shape
    use_gram = d > n
    c = xc @ xc.T if use_gram else xc.T @ xc  # (N, N) or (D, D)
    k = min(max_components, c.shape[0])
    w, v = linalg.eigh(c, subset_by_index=[c.shape[0] - k, c.shape[0] - 1])
    w, v = w[::-1], v[:, ::-1]  # descending
    keep = w > max(float(w[0]), 0.0) * 1e-10 if w.size and w[0] > 0 else np.zeros(0, bool)
    w, v = w[: int(keep.sum())], v[:, : int(keep.sum())]
    return v * np.sqrt(w) if use_gram else xc @ v


def _inv_sqrt(c: np.ndarray, reg: float) -> np.ndarray:
    """(C + reg * mean variance * I)^(-1/2) for a symmetric covariance ``c``."""
    from scipy import linalg

    ridge = reg * max(float(np.trace(c)) / c.shape[0], np.finfo(np.float64).tiny)
    w, v = linalg.eigh(c + ridge * np.eye(c.shape[0]))
    return (v / np.sqrt(w)) @ v.T


def cca(
    x: np.ndarray,
    y: np.ndarray,
    k: int = 5,
    reg: float = 1e-4,
    max_components: int | None = None,
) -> np.ndarray:
    """Top-``k`` canonical correlations between two representations of the same samples.

    Each side is first reduced by PCA to at most ``min(N // 10, 64)`` components (at least
    1; ``max_components`` overrides the cap). Sample canonical correlations are biased
    upwards by the dimensions: with D1 + D2 >= N they are exactly 1 for any data, and for
    independent Gaussian data the top squared one is about
    ``(sqrt(a (1 - b)) + sqrt(b (1 - a)))^2`` with ``a = D1 / N``, ``b = D2 / N`` (Wachter's
    limit): about 0.35 at 64 + 64 dimensions and N = 2000, about 0.6 at ten samples per
    dimension. Without the reduction the numbers would measure the dimensions, not the
    relation; with it they still need a chance-level reference at small N
    (``pairwise_correlation`` reports one as ``cca_null``).

    The correlations are the singular values of ``Cxx^(-1/2) Cxy Cyy^(-1/2)`` on the reduced
    data, with a ridge of ``reg`` times the mean variance added to ``Cxx`` and ``Cyy``
    (scale-free), computed in float64.

    Args:
        x: (N, D1) first representation.
        y: (N, D2) second representation.
        k: Number of correlations to return.
        reg: Relative ridge on the within-set covariances.
        max_components: PCA cap per side; None: ``max(1, min(N // 10, 64))``.

    Returns:
        (min(k, D1, D2),) correlations in [0, 1], descending; nan where undefined (a constant
        representation, or fewer components survive the reduction than asked for).
    """
    if k < 1:
        raise ValueError(f"k must be at least 1; got {k}")
    if max_components is not None and max_components < 1:
        raise ValueError(f"max_components must be at least 1 or None; got {max_components}")
    xc, yc = _check_pair(x, y)
    size = min(k, xc.shape[1], yc.shape[1])
    out = np.full(size, np.nan)
    cap = max_components or min(xc.shape[0] // SAMPLES_PER_COMPONENT, MAX_CCA_COMPONENTS)
    cap = max(1, cap)
    xr, yr = _pca(xc, cap), _pca(yc, cap)
    if xr.shape[1] == 0 or yr.shape[1] == 0:
        return out
    n = xc.shape[0] - 1
    wx = _inv_sqrt(xr.T @ xr / n, reg)
    wy = _inv_sqrt(yr.T @ yr / n, reg)
    rho = np.linalg.svd(wx @ (xr.T @ yr / n) @ wy, compute_uv=False)
    found = min(size, rho.size)
    out[:found] = np.clip(rho[:found], 0.0, 1.0)
    return out


def modality_embeddings(
    model: MultimodalModel | EnsembleModel, enc: Encoded, batch_size: int = 256
) -> dict[str, np.ndarray]:
    """Modality -> (N, D_m) embeddings from ``model.encode`` (eval mode, no gradients); for an
    ensemble, each modality's embeddings of every member side by side (what the ensemble knows
    of that modality).

    Rows where a modality is missing are zero; use ``enc.mask`` to leave them out.
    """
    from mmfuse.evaluation._forward import embeddings_of
    from mmfuse.models.multimodal import MultimodalModel

    if not isinstance(model, MultimodalModel):
        members = [modality_embeddings(member, enc, batch_size) for member in model.members]
        return {m: np.concatenate([e[m] for e in members if m in e], axis=1) for m in model.modalities}
    return {m: z.numpy() for m, z in embeddings_of(model, enc, batch_size, guarded=False).inputs.items()}


def pairwise_correlation(
    embeddings: dict[str, np.ndarray], mask: dict[str, np.ndarray], k: int = 5, seed: int = 0
) -> pd.DataFrame:
    """Linear CKA and CCA for every unordered pair of modalities, on shared samples only.

    Args:
        embeddings: Modality -> (N, D_m) embeddings (e.g. from ``modality_embeddings``).
        mask: Modality -> (N,) bool, True where the modality is present.
        k: Number of canonical correlations per pair.
        seed: Seed of the shuffle behind ``cca_null``.

    Returns:
        One row per pair: modality_a, modality_b, n (samples with both present), cka,
        cca_1 ... cca_K (K = min(k, largest min(D_a, D_b)); nan beyond a pair's own
        dimensions), cca_mean, cca_null (chance level: cca_1 after shuffling which sample
        of b goes with which sample of a), note (why a value is nan; empty otherwise).
    """
    missing = sorted(set(embeddings) ^ set(mask))
    if missing:
        raise ValueError(f"embeddings and mask must name the same modalities; differ in {missing}")
    names = sorted(embeddings)
    for m in names:
        if len(mask[m]) != len(embeddings[m]):
            raise ValueError(
                f"{m!r}: mask has {len(mask[m])} rows but embeddings have {len(embeddings[m])}"
            )
    pairs = list(combinations(names, 2))
    dims = {m: embeddings[m].shape[1] for m in names}
    width = max((min(k, dims[a], dims[b]) for a, b in pairs), default=0)
    rng = np.random.default_rng(seed)
    rows = [_pair_row(a, b, embeddings, mask, k, width, rng) for a, b in pairs]
    columns = ["modality_a", "modality_b", "n", "cka"]
    columns += [f"cca_{i + 1}" for i in range(width)] + ["cca_mean", "cca_null", "note"]
    return pd.DataFrame(rows, columns=columns)


def _pair_row(
    a: str,
    b: str,
    embeddings: dict[str, np.ndarray],
    mask: dict[str, np.ndarray],
    k: int,
    width: int,
    rng: np.random.Generator,
) -> dict[str, object]:
    both = np.asarray(mask[a], dtype=bool) & np.asarray(mask[b], dtype=bool)
    n = int(both.sum())
    row: dict[str, object] = {"modality_a": a, "modality_b": b, "n": n, "cka": np.nan}
    row.update(cca_null=np.nan, note="")
    rho = np.full(width, np.nan)
    if n < MIN_SHARED:
        row["note"] = f"only {n} samples with both modalities (need {MIN_SHARED})"
    else:
        x, y = embeddings[a][both], embeddings[b][both]
        constant = [m for m, z in ((a, x), (b, y)) if _is_constant(z)]
        if constant:
            row["note"] = f"constant embedding: {', '.join(constant)}"
        row["cka"] = linear_cka(x, y)
        found = cca(x, y, k=k)
        rho[: found.size] = found
        null = cca(x, y[rng.permutation(n)], k=1)
        row["cca_null"] = float(null[0]) if null.size else np.nan
    row.update({f"cca_{i + 1}": rho[i] for i in range(width)})
    row["cca_mean"] = float(np.nanmean(rho)) if np.isfinite(rho).any() else np.nan
    return row


def correlation_matrix(table: pd.DataFrame, value: str = "cka") -> pd.DataFrame:
    """Symmetric M x M matrix of one column of ``pairwise_correlation`` (diagonal 1)."""
    valid = [c for c in table.columns if c not in ("modality_a", "modality_b", "n", "note")]
    if value not in valid:
        raise ValueError(f"unknown value {value!r}; choose one of: {', '.join(valid)}")
    names = sorted(set(table["modality_a"]) | set(table["modality_b"]))
    matrix = pd.DataFrame(np.eye(len(names)), index=names, columns=names)
    for a, b, v in zip(table["modality_a"], table["modality_b"], table[value]):
        matrix.loc[a, b] = matrix.loc[b, a] = float(v)
    return matrix


def plot_correlation_heatmap(
    matrix: pd.DataFrame,
    path: str | Path,
    title: str = "Inter-modal correlation",
    label: str = "linear CKA",
) -> Path:
    """Writes an annotated heat-map of ``matrix`` (values in [0, 1]) as a PNG; returns its path.

    Args:
        matrix: Square matrix from ``correlation_matrix``.
        path: Output PNG file.
        title: Figure title.
        label: Colour-bar label (the measure shown).
    """
    from matplotlib.figure import Figure  # no pyplot: no global backend or figure state

    values = matrix.to_numpy(dtype=np.float64)
    names = [str(c) for c in matrix.columns]
    side = 2.2 + 0.75 * len(names)
    fig = Figure(figsize=(side + 1.2, side))
    ax = fig.add_subplot()
    image = ax.imshow(np.ma.masked_invalid(values), vmin=0.0, vmax=1.0, cmap="viridis")
    ax.set_facecolor("0.85")  # nan cells
    ax.set_xticks(range(len(names)), names, rotation=40, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(len(names)), names)
    ax.tick_params(length=0)
    for i in range(len(names)):
        for j in range(len(names)):
            v = values[i, j]
            if np.isnan(v):
                ax.text(j, i, "n/a", ha="center", va="center", color="0.3", fontsize=10)
            else:  # dark text on the light (high) end of viridis, light text elsewhere
                colour = "black" if v > 0.6 else "white"
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", color=colour, fontsize=10)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04).set_label(label)
    ax.set_title(textwrap.fill(title, width=max(40, int(8 * side))))
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110, bbox_inches="tight")  # long labels and titles stay in frame
    return out
