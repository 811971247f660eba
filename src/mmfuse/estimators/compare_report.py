"""Files written by ``mmfuse compare``: leaderboard.csv, folds.csv, leaderboard.png, report.html."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

import pandas as pd

from mmfuse._io import atomic_open, atomic_path
from mmfuse.evaluation.metrics import HIGHER_IS_BETTER, PRIMARY_METRIC

LEVEL_COLOURS = {"early": "#4C72B0", "feature": "#55A868", "late": "#C44E52", "unimodal": "#9A9A9A"}


def recommend(board: pd.DataFrame, task: str) -> dict[str, Any]:
    """The best candidate, the simplest fused one within one std of it, and the fusion gain.

    "Simplest" = fewest trainable parameters, then least training time.
    """
    metric = PRIMARY_METRIC[task]
    sign = 1.0 if HIGHER_IS_BETTER[metric] else -1.0
    mean, std = f"{metric}_mean", f"{metric}_std"
    fused = board[board["group"] == "fused"]
    single = board[board["group"] == "unimodal"]
    out: dict[str, Any] = {"metric": metric}
    if not fused.empty:
        best = fused.loc[(sign * fused[mean]).idxmax()]
        close = fused[sign * fused[mean] >= sign * best[mean] - best[std]]
        simplest = close.sort_values(["parameters", "train_seconds"]).iloc[0]
        out.update(best=best.to_dict(), simplest=simplest.to_dict())
    if not single.empty:
        out["best_unimodal"] = single.loc[(sign * single[mean]).idxmax()].to_dict()
    if "best" in out and "best_unimodal" in out:
        out["gain"] = sign * (out["best"][mean] - out["best_unimodal"][mean])
    return out


LEVEL_WORDS = {"early": "an early-fusion (data-level)", "feature": "a feature-level",
               "late": "a late-fusion (decision-level)"}


def recommendation_lines(rec: dict[str, Any]) -> list[str]:
    """The recommendation in plain words, one sentence per item."""
    metric = rec["metric"]
    fmt = lambda r: f"{r['name']} ({r[f'{metric}_mean']:.3f} ± {r[f'{metric}_std']:.3f})"  # noqa: E731
    if "best" not in rec:
        return ["No fusion operator was compared."]
    best = rec["best"]
    lines = [f"Best: {fmt(best)}, {LEVEL_WORDS.get(best['level'], best['level'])} operator."]
    if rec["simplest"]["name"] != best["name"]:
        s = rec["simplest"]
        size = f"{int(s['parameters']):,} parameters against {int(best['parameters']):,}"
        if s["parameters"] <= 0.9 * best["parameters"]:
            advice = "prefer it unless the difference matters."
        else:
            advice = "about the same size, so either will do."
        lines.append(f"Simplest within one standard deviation of it: {fmt(s)}, with {size}; {advice}")
    else:
        lines.append("No simpler operator comes within one standard deviation of it.")
    if "best_unimodal" in rec:
        gain = rec["gain"]
        delta = best[f"{metric}_mean"] - rec["best_unimodal"][f"{metric}_mean"]
        text = f"Best single modality: {fmt(rec['best_unimodal'])}; fusion " + (
            f"improves on it ({metric} {delta:+.3f})" if gain > 0 else f"does not help here ({metric} {delta:+.3f})"
        )
        spread = max(best[f"{metric}_std"], rec["best_unimodal"][f"{metric}_std"])
        if gain > 0 and gain < spread:
            text += f", less than the fold-to-fold spread (± {spread:.3f}), so the gain is uncertain"
        lines.append(text + ".")
    return lines


def recommendation_text(rec: dict[str, Any]) -> str:
    """The recommendation in plain words."""
    return " ".join(recommendation_lines(rec))


def bar_chart(board: pd.DataFrame, task: str) -> bytes:
    """PNG: the primary metric per candidate with ±1 std error bars, coloured by level."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    metric = PRIMARY_METRIC[task]
    mean, std = f"{metric}_mean", f"{metric}_std"
    ordered = board.iloc[::-1]
    colours = [LEVEL_COLOURS["unimodal" if g == "unimodal" else lv] for g, lv in zip(ordered["group"], ordered["level"])]
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(board) + 1.6), dpi=110)
    ax.barh(ordered["name"], ordered[mean], xerr=ordered[std], color=colours,
            capsize=3, error_kw={"elinewidth": 1})
    right = float((ordered[mean] + ordered[std]).max())
    left = float((ordered[mean] - ordered[std]).min())
    pad = 0.15 * (right - left) if right > left else 0.05 * max(abs(right), 1.0)
    low = max(0.0, left - pad)  # both primary metrics (accuracy, rmse) are >= 0
    span = max(right - low, 1e-9)
    for y, (m, sd) in enumerate(zip(ordered[mean], ordered[std])):
        ax.text(m + sd + 0.01 * span, y, f"{m:.3f}", va="center", fontsize=8)
    ax.set_xlim(low, right + 0.12 * span)
    folds = int(board["folds"].max()) if "folds" in board else 0
    better = "higher" if HIGHER_IS_BETTER[metric] else "lower"
    ax.set_xlabel(f"{metric}: mean ± std over {folds} folds ({better} is better)")
    ax.grid(axis="x", alpha=0.3)
    ax.set_axisbelow(True)
    shown = {lv for g, lv in zip(ordered["group"], ordered["level"]) if g == "fused"}
    shown |= {"unimodal"} if (ordered["group"] == "unimodal").any() else set()
    handles: list[Any] = [Patch(color=c, label=k) for k, c in LEVEL_COLOURS.items() if k in shown]
    single = board[board["group"] == "unimodal"]
    if not single.empty and (board["group"] == "fused").any():
        sign = 1.0 if HIGHER_IS_BETTER[metric] else -1.0
        reference = float(single.loc[(sign * single[mean]).idxmax(), mean])
        ax.axvline(reference, color="#555555", linestyle="--", linewidth=1)
        handles.append(Line2D([], [], color="#555555", linestyle="--", label="best single modality"))
    ax.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=len(handles), fontsize=8,
              frameon=False)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def write_outputs(
    out: Path,
    board: pd.DataFrame,
    per_fold: pd.DataFrame,
    task: str,
    source: str,
    target: str,
    folds: int,
    extra_html: str = "",
) -> None:
    """Writes leaderboard.csv, folds.csv, leaderboard.png and a self-contained report.html.

    ``extra_html`` (e.g. the ``--explain`` sections) is inserted before the footnote.
    """
    out.mkdir(parents=True, exist_ok=True)
    with atomic_open(out / "leaderboard.csv") as handle:
        board.to_csv(handle, index=False)
    with atomic_open(out / "folds.csv") as handle:
        per_fold.to_csv(handle, index=False)
    png = bar_chart(board, task)
    with atomic_path(out / "leaderboard.png") as tmp:
        tmp.write_bytes(png)
    page = report_html(board, per_fold, task, source, target, folds, png, extra_html)
    with atomic_open(out / "report.html") as handle:
        handle.write(page)


def _pm(mean: float, std: float) -> str:
    return f"{mean:.3f} ± {std:.3f}"


def _level(row: Any) -> str:
    return "unimodal" if row["group"] == "unimodal" else str(row["level"])


def _table(frame: pd.DataFrame, numeric: tuple[str, ...] = ()) -> str:
    """A plain HTML table; columns in ``numeric`` are right-aligned."""
    head = "".join(f'<th class="{"num" if c in numeric else ""}">{html.escape(str(c))}</th>' for c in frame.columns)
    body = "".join(
        "<tr>" + "".join(
            f'<td class="{"num" if c in numeric else ""}">{html.escape(str(v))}</td>' for c, v in zip(frame.columns, row)
        ) + "</tr>"
        for row in frame.itertuples(index=False)
    )
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def report_html(
    board: pd.DataFrame,
    per_fold: pd.DataFrame,
    task: str,
    source: str,
    target: str,
    folds: int,
    png: bytes,
    extra_html: str = "",
) -> str:
    metric = PRIMARY_METRIC[task]
    secondary = next((c[: -len("_mean")] for c in board.columns if c.endswith("_mean") and not c.startswith(metric)), None)
    rec = recommend(board, task)
    image = base64.b64encode(png).decode("ascii")
    better = "higher" if HIGHER_IS_BETTER[metric] else "lower"

    main_cols = ("#", metric, *((secondary,) if secondary else ()), "train seconds", "parameters", "peak memory (MiB)")
    leader = pd.DataFrame({
        "#": range(1, len(board) + 1),
        "model": board["name"],
        "level": [_level(r) for _, r in board.iterrows()],
        metric: [_pm(m, s) for m, s in zip(board[f"{metric}_mean"], board[f"{metric}_std"])],
        **({secondary: [_pm(m, s) for m, s in zip(board[f"{secondary}_mean"], board[f"{secondary}_std"])]}
           if secondary else {}),
        "train seconds": [f"{v:.1f}" for v in board["train_seconds"]],
        "parameters": [f"{int(v):,}" for v in board["parameters"]],
        "peak memory (MiB)": [f"{v:.1f}" for v in board["peak_memory_mb"]],
    })

    single = board[board["group"] == "unimodal"]
    fused = board[board["group"] == "fused"]
    unimodal_html = _table(pd.DataFrame({
        "modality": single["modalities"], metric: [_pm(m, s) for m, s in zip(single[f"{metric}_mean"], single[f"{metric}_std"])],
    }), (metric,)) if not single.empty else "<p>Not run (--no-unimodal).</p>"
    fused_cols: dict[str, Any] = {
        "operator": fused["name"], "level": fused["level"],
        metric: [_pm(m, s) for m, s in zip(fused[f"{metric}_mean"], fused[f"{metric}_std"])],
    }
    if "best_unimodal" in rec:
        reference = rec["best_unimodal"][f"{metric}_mean"]
        fused_cols[f"Δ {metric} vs {rec['best_unimodal']['name']}"] = [f"{m - reference:+.3f}" for m in fused[f"{metric}_mean"]]
    fused_html = _table(pd.DataFrame(fused_cols), tuple(list(fused_cols)[2:])) if not fused.empty else "<p>None.</p>"

    pivot = per_fold.pivot_table(index="name", columns="fold", values=metric, sort=False).reindex(board["name"])
    pivot.columns = [f"fold {int(c) + 1}" for c in pivot.columns]
    fold_cols = tuple(pivot.columns)
    pivot = pivot.map(lambda v: f"{v:.3f}") if hasattr(pivot, "map") else pivot.applymap(lambda v: f"{v:.3f}")
    pivot = pivot.reset_index().rename(columns={"name": "model"})

    modalities = [m for m in dict.fromkeys("+".join(board["modalities"]).split("+")) if m]
    items = "".join(f"<li>{html.escape(line)}</li>" for line in recommendation_lines(rec))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>mmfuse compare: {html.escape(target)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1000px; padding: 0 1em; color: #222; line-height: 1.45; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.9em; }}
th, td {{ border: 1px solid #ccc; padding: 4px 10px; text-align: left; white-space: nowrap; }}
th {{ background: #f2f2f2; }} .num {{ text-align: right; font-variant-numeric: tabular-nums; }}
tbody tr:nth-child(even) {{ background: #fafafa; }}
.scroll {{ overflow-x: auto; }}
.rec {{ background: #eef6ee; border-left: 4px solid #55A868; padding: 0.6em 1em 0.6em 2em; }}
.rec li {{ margin: 0.2em 0; }}
.cols {{ display: flex; flex-wrap: wrap; gap: 2em; }}
img {{ max-width: 100%; height: auto; }}
small {{ color: #555; }}
</style></head><body>
<h1>Which fusion fits this data?</h1>
<p>Data: <code>{html.escape(source)}</code>, target <code>{html.escape(target)}</code> ({task});
modalities: {html.escape(", ".join(modalities))}.<br>
{folds} folds; the same splits, seed, epoch budget and early stopping for every model.
Metric: <b>{metric}</b> on each fold's held-out records ({better} is better), mean ± standard deviation over folds.</p>
<h2>Recommendation</h2>
<ul class="rec">{items}</ul>
<h2>Leaderboard</h2>
<img alt="{metric} per model with error bars" src="data:image/png;base64,{image}">
{_table(leader, main_cols)}
<h2>Unimodal vs fused</h2>
<div class="cols"><div><h3>Each modality alone</h3>{unimodal_html}</div>
<div><h3>Fused (all modalities)</h3>{fused_html}</div></div>
<h2>Per fold ({metric})</h2>
{_table(pivot, fold_cols)}
{extra_html}
<p><small>Train seconds: mean training time per fold, encoding of the records excluded. Peak memory:
extra resident memory during training. Decision-level operators share one set of per-modality
models per fold, so they report the same parameters, memory and (nearly) the same time.</small></p>
</body></html>
"""
