"""The main job end to end: `mmfuse demo` on 500 records with at most 12 epochs a model (about
2 minutes on 2 cores; `make demo` runs it on 1,000 records and 25 epochs, over 4 minutes), every
part of it: the table of models, the best saved, retrieval, recommendation, tone, video summary."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmfuse.cli.main import main


@pytest.mark.slow
def test_demo_fused_beats_every_single_modality(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--out", str(tmp_path), "--rows", "500", "--epochs", "12"]) == 0
    printed = capsys.readouterr().out
    assert "best fused" in printed
    summary = json.loads((tmp_path / "summary.json").read_text())
    results = summary["results"]
    for r in results:
        assert set(r) >= {"name", "level", "modalities", "accuracy"}
    single = [r for r in results if len(r["modalities"]) == 1]
    fused = [r for r in results if len(r["modalities"]) > 1]
    assert {r["modalities"][0] for r in single} == {"image", "review", "audio", "video", "tabular"}
    assert {r["level"] for r in fused} == {"early", "feature", "late"}
    best_single = max(r["accuracy"] for r in single)
    best_fused = max(r["accuracy"] for r in fused)
    assert best_fused >= best_single + 0.05
    # the generative story caps any single modality at 11/16 = 68.75 % (plus sampling noise)
    assert best_single < 0.78
    tone = summary["tone"]
    if "skipped" in tone:  # no espeak-ng or pretrained encoders: said, not hidden
        assert "tone row skipped" in printed
    else:
        emotion = {name: m["accuracy"] for name, m in tone["emotion"].items()}
        assert emotion["transcript + audio"] >= max(emotion["transcript only"], emotion["audio only"]) + 0.15
        assert set(tone["sentiment"]) == {"acc2", "acc7", "f1", "mae", "corr"}
        assert "tone (emotion from the words" in printed
    video = summary["video_summary"]
    if "skipped" in video:
        assert "video summary row skipped" in printed
    else:
        assert video["events_kept"] >= 2 and video["decoys_kept"] == 0
        assert (tmp_path / "summary" / "summary.mp4").exists() and "video summary (" in printed
