"""The demo's tone row: an emotion that depends on the words **and** on how they are said, on
speakers never heard in training (``mmfuse.datasets.tone``), by the transcript alone, the audio
alone and both fused; and the [-3, 3] sentiment score of the same clips with MMSA's metrics.
Skipped, saying why, without espeak-ng or the pretrained text and audio encoders."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from mmfuse._progress import log
from mmfuse.pretrained import BACKBONES, PREDICTION_PRETRAINED

MODELS = (("transcript only", ["transcript"]), ("audio only", ["audio"]), ("transcript + audio", ["transcript", "audio"]))
SENTIMENT_KEPT = ("acc2", "acc7", "f1", "mae", "corr")


def tone_run(out: Path, seed: int, threads: int, epochs: int = 40) -> dict[str, Any]:
    """Fits the three emotion classifiers and the fused sentiment regressor; their test scores."""
    from mmfuse.datasets.tone import make_tone_dataset
    from mmfuse.estimators.classifier import MultimodalClassifier
    from mmfuse.estimators.regressor import MultimodalRegressor

    audio = PREDICTION_PRETRAINED["audio"]  # what the classifiers below use by default
    missing = [p for name in ("minilm", audio) for p in BACKBONES[name].missing()]
    if shutil.which("espeak-ng") is None or missing:
        why = "espeak-ng is not installed" if shutil.which("espeak-ng") is None else f"missing {', '.join(missing)}"
        log(f"tone row skipped: {why}")
        return {"skipped": why}
    data = out / "tone"
    if not (data / "train.csv").exists():
        log(f"speaking the tone dataset into {data} (espeak-ng)")
        make_tone_dataset(data, speakers=16, test_speakers=4, clips_per_speaker=24, seed=seed)
    result: dict[str, Any] = {"dataset": str(data), "audio_encoder": audio, "emotion": {}}
    for name, columns in MODELS:
        clf = MultimodalClassifier(features=columns, epochs=epochs, seed=seed, num_threads=threads, verbose=False,
                                   preset="none")
        clf.fit(data / "train.csv", target="emotion")
        metrics = clf.evaluate(data / "test.csv")
        result["emotion"][name] = {"accuracy": round(metrics["accuracy"], 4), "f1_macro": round(metrics["f1_macro"], 4)}
        log(f"tone, {name:<20} emotion accuracy {metrics['accuracy']:.3f} (speakers never heard)")
    reg = MultimodalRegressor(features=MODELS[-1][1], epochs=epochs, seed=seed, num_threads=threads, verbose=False,
                              preset="none")
    reg.fit(data / "train.csv", target="sentiment")
    metrics = reg.evaluate(data / "test.csv")
    result["sentiment"] = {k: round(metrics[k], 4) for k in SENTIMENT_KEPT}
    log(f"tone, sentiment score (transcript + audio): acc2 {metrics['acc2']:.3f}, acc7 {metrics['acc7']:.3f}, "
        f"mae {metrics['mae']:.3f}, corr {metrics['corr']:.3f}")
    return result
