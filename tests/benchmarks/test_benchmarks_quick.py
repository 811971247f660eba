"""Every script in ``benchmarks/`` runs in its ``--quick`` mode and prints its JSON keys.

Each script runs as a subprocess (``python benchmarks/x.py --quick --threads 1``) with the
feature cache and temporary files in the test's folder, so a change that breaks a benchmark
fails the tests instead of surfacing months later. A script that needs a pretrained network
or FAISS is skipped when its packages are missing; ``gpu_pretrained.py`` takes its CPU path
when there is no GPU. The subprocesses inherit the suite's ``MMFUSE_PRETRAINED=0``: scripts
about pretrained encoders turn them on themselves, the others train from scratch. The quick
numbers mean nothing and are not checked; what is checked holds at any size (the quick sizes
were used, the benchmark did the work it reports). Together about 70-90 s on 2 cores.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
TIMEOUT_S = 300


@dataclass(frozen=True)
class Case:
    """How one benchmark's quick run is started and what its output must hold.

    Attributes:
        keys: Top-level keys of the printed JSON object.
        check: Further assertions on the parsed output (the quick sizes were used, the work
            reported was done).
        backbones: Pretrained networks it needs (skipped when their packages are missing).
        modules: Other optional modules it needs (skipped when missing).
        args: Extra arguments after ``--quick --threads 1`` (``{tmp}``: the test's folder).
        programs: Programs it runs (skipped when one is not on PATH).
    """

    keys: frozenset[str]
    check: Callable[[dict[str, Any]], None]
    backbones: tuple[str, ...] = ()
    modules: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    programs: tuple[str, ...] = ()


def _check_fusion_complexity(out: dict[str, Any]) -> None:
    from mmfuse.fusion import list_fusions

    assert [r for r in out["results"] if "error" in r] == []
    assert sorted(out["table"]) == sorted(list_fusions())
    assert out["setup"]["M"] == [2, 3]


def _check_index_scale(out: dict[str, Any]) -> None:
    (size,) = out["results"]
    assert size["size"] == 2000
    methods = size["methods"]
    assert set(methods) == {"faiss_exact", "faiss_exact_blas", "brute_force_torch", "ivf", "hnsw",
                            "ivfpq", "exact_memmap"}  # fmt: skip
    assert [m for m in methods.values() if "skipped" in m] == []  # 2000 x 64 fits anywhere
    assert methods["brute_force_torch"]["recall_at_10"] == 1.0
    assert methods["exact_memmap"]["recall_at_10"] == 1.0  # the chunked scan is exact too
    ivfpq = methods["ivfpq"]
    assert ivfpq["disk_bytes"] == 2000 * 64 * 4  # the vectors stay in the file
    assert ivfpq["parameters"]["pq_m"] == 8 and ivfpq["parameters"]["rerank_factor"] == 8
    assert ivfpq["ann_bytes"] == ivfpq["index_bytes"] < ivfpq["disk_bytes"]


def _check_feature_cache(out: dict[str, Any]) -> None:
    from mmfuse.pretrained import BACKBONES

    assert out["feature_dim"] == BACKBONES["efficientnet-lite0"].dim
    assert out["rows"] == 16
    assert len(out["without_cache"]["epoch_seconds"]) == 1
    assert len(out["with_cache"]["epoch_seconds"]) == 1


def _check_pretrained_vs_scratch(out: dict[str, Any]) -> None:
    runs = [(r["setting"].split()[0], r["encoders"]) for r in out["results"]]
    sides = ("from scratch", "pretrained")
    assert runs == [(s, e) for s in ("image", "text", "audio", "fused") for e in sides]
    assert out["n_train"] + out["n_valid"] + out["n_test"] == out["rows"] == 24


def _check_recommendation(out: dict[str, Any]) -> None:
    names = ["random", "most_popular", "itemknn", "als", "bpr", "mmfuse", "oracle"]
    protocols = ["all_items", "warm_items", "cold_items", "cold_among_all"]
    assert list(out["datasets"]) == ["generated_seed0", "realistic_seed0"]  # both generators
    for data in out["datasets"].values():
        assert (data["sizes"]["users"], data["sizes"]["items"]) == (60, 40)
        methods = data["methods"]
        assert list(methods) == names
        ran = [n for n in names if "skipped" not in methods[n]]
        skipped = [methods[n]["skipped"] for n in names if n not in ran]
        assert skipped in ([], ["skipped: implicit not installed (pip install implicit)"] * 2)
        for name in ran:
            metrics = methods[name]["metrics"]
            assert list(metrics) == protocols
            groups = [list(p) for p in metrics.values()]
            assert groups == [["all_users", "warm_users", "cold_users"]] * 4
            assert metrics["all_items"]["all_users"]["users"] == data["sizes"]["test_users"]
        timed = [methods[n]["recommend_ms"]["users"] for n in ran if n != "oracle"]
        assert timed == [5] * len(timed)  # --quick's latency users, for every method
        assert methods["mmfuse"]["epochs_run"] == 3
    realistic = out["datasets"]["realistic_seed0"]["methods"]["mmfuse"]
    assert (len(realistic["probe"]["epoch_seconds"]), realistic["capped"]) == (1, False)
    # the benchmark ranks as MultimodalRecommender.evaluate does (near ties aside)
    assert out["datasets"]["generated_seed0"]["evaluate_check"]["max_abs_diff"] <= 0.01
    goals = out["goals"]
    assert set(goals) == {"cold_items_wide_margin", "warm_items_level", "train_15_min_2_cores"}
    assert goals["train_15_min_2_cores"]["met"] is None  # --threads 1 is not the goal's setting


def _check_retrieval_baseline(out: dict[str, Any]) -> None:
    assert set(out["results"]) == {"image", "audio", "sentences"}
    image = out["results"]["image"]
    assert set(image["comparison"]) == {"standard_features", "same_features"}
    assert (image["sizes"]["train_items"], image["sizes"]["test_items"]) == (12, 8)
    speech = [out["results"][name] for name in ("audio", "sentences")]
    if shutil.which("espeak-ng") is None:
        assert [r["skipped"] for r in speech] == ["espeak-ng is not on PATH"] * 2
    else:
        assert [set(r) for r in speech] == [set(image)] * 2


def _check_summarize(out: dict[str, Any]) -> None:
    assert out["videos"] == 1 and set(out["scoring"]) == {"picture", "sound", "fused", "supervised"}
    for scores in out["scoring"].values():
        assert set(scores) == {"fscore", "kendall_tau", "spearman_rho", "events_kept", "decoys_kept"}
        assert 0 <= scores["fscore"] <= 1
    assert out["seconds_per_minute"] > 0
    assert set(out["memory_by_length"]) == {"0.5_min", "1_min"}
    assert all(m["peak_rss_mib"] > 0 for m in out["memory_by_length"].values())


def _check_voice_tone(out: dict[str, Any]) -> None:
    assert list(out["emotion"]) == ["text", "text+voice+prosody"]
    for model in out["emotion"].values():
        assert len(model["per_seed"]) == 1 and 0 <= model["mean"]["accuracy"] <= 1
    (sentiment,) = out["sentiment"].values()
    assert set(sentiment["mean"]) == {"acc2", "acc2_non0", "f1", "acc5", "acc7", "mae", "corr"}


def _check_gpu_pretrained(out: dict[str, Any]) -> None:
    import torch

    assert out["device"] == ("cuda" if torch.cuda.is_available() else "cpu")
    assert out["items"] == 8
    assert list(out["frozen_extraction"]) == ["cold cache", "warm cache"]
    assert len(out["finetune"]["epoch_seconds"]) == 1


def _check_robustness_dropout(out: dict[str, Any]) -> None:
    assert list(out["models"]) == ["modality_dropout=0.0", "modality_dropout=0.3"]
    for model in out["models"].values():
        assert list(model["mean_accuracy_by_severity"]) == ["0.0", "0.5", "1.0"]
        assert Path(model["plot"]).is_file()


def _check_encode_engines(out: dict[str, Any]) -> None:
    assert (out["config"]["texts"], out["config"]["images"], out["config"]["repeats"]) == (12, 4, 1)
    for engine in ("local", "ray"):
        assert out["best"][engine]["written"] == 16 and out["best"][engine]["bad"] == 0  # every cell encoded
    assert out["ray_same_bytes_as_local_1_thread"] is True and out["cache_files"] >= 16


def _check_scale_memory(out: dict[str, Any]) -> None:
    assert out["setup"]["sizes"] == [300, 600]
    for kind in ("embedding", "image"):
        runs = out["results"][kind]["runs"]
        assert sorted(runs) == ["memory/300", "memory/600", "stream/300", "stream/600"]
        assert [r["n_train"] for r in runs.values()] == [240, 480, 240, 480]  # the 80 % trained on
        assert runs["stream/600"]["valid_accuracy"] == runs["memory/600"]["valid_accuracy"]  # the same fit
        assert set(out["results"][kind]["summary"]["epoch_seconds_per_1k_train_records"]) == {"300", "600"}


def _check_late_combiners(out: dict[str, Any]) -> None:
    config, models = out["config"], out["per_seed"]["0"]
    assert (config["seeds"], config["n"], config["features"]) == (["0"], 60, ["review", "income", "age"])
    assert list(models) == [*config["combiners"], "oracle"] == ["mean", "confidence", "weighted", "stacking",
                                                                "product", "oracle"]
    assert all(0 <= m[k] <= 1 for m in models.values() for k in ("clean", "missing30"))
    assert out["mean"] == models  # one seed: its own numbers
    for column, name in out["best"].items():
        assert models[name][column] == max(models[m][column] for m in config["combiners"])


def _check_preset_choice(out: dict[str, Any]) -> None:
    assert (out["config"]["seeds"], out["config"]["n"], out["config"]["presets"]) == (["0"], 60, ["fast"])
    models = out["per_seed"]["0"]
    assert list(models) == ["oracle", "default", "fast_mixed", "fast_top_bag"]
    assert all(0 <= m[k] <= 1 for m in models.values() for k in ("clean", "missing30"))
    assert len(models["fast_top_bag"]["kept"]) == 1  # the top finalist's bag alone
    assert out["mean"]["fast_mixed"]["clean"] == models["fast_mixed"]["clean"]  # one seed: its own numbers
    diff = models["fast_mixed"]["clean"] - models["fast_top_bag"]["clean"]
    assert out["paired"]["fast"]["clean"] == {"mean": pytest.approx(diff, abs=1e-4), "standard_error": None}


def _check_presets(out: dict[str, Any]) -> None:
    config, sizes, goals = out["config"], out["sizes"], out["goals"]
    assert (config["n"], config["epochs"], config["folds"]) == (60, 2, 2)
    assert (config["presets"], config["fusions"]) == (["fast"], "concat,mean")
    assert (config["features"], config["noised"]) == (["review", "income", "age"], "tabular")
    assert (sizes["train"], sizes["test"]) == (48, 12)  # the 80/20 split of 60 records
    assert list(sizes["modalities"]) == ["review", "tabular"]
    assert list(out["models"]) == ["default", "fast", "compare_best"]
    assert [row["model"] for row in out["table"]] == list(out["models"])
    for row in out["table"]:
        accuracies = [row[k] for k in ("clean", "missing30", "tabular_noise", "shuffled_min")]
        assert all(0 <= a <= 1 for a in accuracies) and row["fit_seconds"] >= 0, row
    for model in out["models"].values():
        assert list(model["accuracy"]["shuffled"]) == ["review", "tabular"]
    assert out["models"]["fast"]["search"]["trials"] >= 1
    board = out["compare"]["leaderboard"]  # best first; the best fused row is compare's choice
    assert set(board) == {"review only", "tabular only", "concat", "mean"}
    assert list(board.values()) == sorted(board.values(), reverse=True)
    assert out["compare"]["cv_accuracy"] == board[out["compare"]["best"]] == max(
        board["concat"], board["mean"])
    alone = {m: a["clean"] for m, a in out["alone"].items()}
    assert out["best_intact_alone"] == {"review": alone["tabular"], "tabular": alone["review"]}
    # the goals follow from the numbers; those about medium and best are open without them
    fast = out["models"]["fast"]["accuracy"]
    drop = round(fast["clean"] - fast["missing30"], 4)
    ceiling = out["oracle"]  # Bayes-optimal on the same records; multiples of 1/24 (ties count half)
    assert all(0 <= ceiling[k] <= 1 and round(ceiling[k] * 24, 2) % 1 == 0 for k in ("clean", "missing30"))
    assert ceiling["drop"] == round(ceiling["clean"] - ceiling["missing30"], 4)
    expected = {"met": drop <= 0.05 + 1e-9, "drop": {"fast": drop}, "oracle_drop": ceiling["drop"],
                "beyond_oracle": {"fast": round(drop - ceiling["drop"], 4)}}
    assert goals["missing30_within_5_points"] == expected
    noised = goals["noised_not_below_best_intact_alone"]
    assert noised["met"] == (fast["tabular_noise"] >= alone["review"] - 1e-9)
    assert goals["medium_near_compare_in_a_third_of_its_time"]["met"] is None
    assert goals["best_above_compare"]["met"] is None


def _check_serve_load(out: dict[str, Any]) -> None:
    predict, search, memory = out["predict"], out["search"], out["memory"]
    assert (out["config"]["requests"], out["config"]["memory_requests"]) == (40, 200)
    levels = [list(predict["batched"]), list(predict["unbatched"]), list(search)]
    assert levels == [["1", "8", "32"]] * 3
    runs = [*predict["batched"].values(), *predict["unbatched"].values(), *search.values()]
    assert [(r["requests"], r["errors"]) for r in runs] == [(40, 0)] * 9
    assert [r["mean_batch_size"] for r in predict["unbatched"].values()] == [1.0] * 3  # no batches
    assert (memory["requests"], memory["errors"], len(memory["samples_mib"])) == (200, 0, 20)
    onnx = out["onnx_vs_eager"]
    assert (onnx["records"], onnx["export_parity"]["passed"]) == (32, True)
    assert onnx["max_abs_diff"] <= 1e-4  # the same probabilities on both sides
    assert set(out["goals"]) == {"batching_3x", "search_p95_under_50ms", "memory_flat"}


def _check_trainer_overhead(out: dict[str, Any]) -> None:
    assert out["same_losses"] is True  # both loops did the same work, batch for batch
    assert (out["setup"]["n_train"], out["setup"]["n_valid"]) == (128, 64)


def _check_robust_defaults(out: dict[str, Any]) -> None:
    assert out["config"]["quick"] is True and out["config"]["seeds"] == [0]
    assert out["config"]["pictures"] == "handwritten" and out["config"]["snr"] == [0.0, 6.0]
    fused = {"clean", "missing30", "image_noise", "audio_noise", "fit_seconds"}
    assert set(out["per_seed"]["0"]) == {"image_alone", "audio_alone", "default", "no_guard", "no_dropout", "late",
                                         "late_product", "fast", "medium"}
    assert set(out["mean"]["default"]) == fused and set(out["mean"]["image_alone"]) == {"clean", "fit_seconds"}
    assert out["mean"]["default"]["clean"] == out["per_seed"]["0"]["default"]["clean"]  # one seed: its own mean
    assert set(out["goals"]) == {"default", "fast", "medium"}
    assert set(out["goals"]["fast"]) == {"missing30_within_5_points", "image_noise_not_below_audio_alone",
                                         "audio_noise_not_below_image_alone"}


CASES = {
    "encode_engines.py": Case(
        frozenset({"benchmark", "config", "runs", "best", "ray_over_local_seconds", "local_1_thread",
                   "cache_files", "ray_same_bytes_as_local_1_thread", "local_1_threads_vs_ray"}),
        _check_encode_engines, backbones=("efficientnet-lite0", "minilm"), modules=("ray",),
    ),
    "feature_cache.py": Case(
        frozenset({"benchmark", "plain_encoding_loop_seconds", "without_cache", "with_cache",
                   "later_epoch_speedup", "caching_pass_over_plain_loop", "goals", "machine"}),
        _check_feature_cache, backbones=("efficientnet-lite0",),
    ),
    "fusion_complexity.py": Case(
        frozenset({"benchmark", "setup", "noisy_cases", "results", "table", "table_fwd_ms",
                   "table_parameters"}),
        _check_fusion_complexity,
    ),
    "gpu_pretrained.py": Case(
        frozenset({"device", "gpu", "torch", "items", "frozen_extraction", "finetune",
                   "retrieval"}),
        _check_gpu_pretrained, backbones=("efficientnet-lite0",),
    ),
    "index_scale.py": Case(
        frozenset({"benchmark", "machine", "config", "results", "total_s", "peak_rss_bytes"}),
        _check_index_scale, modules=("faiss",),
    ),
    "late_combiners.py": Case(
        frozenset({"benchmark", "config", "per_seed", "mean", "best", "total_seconds"}),
        _check_late_combiners, args=("--out", "{tmp}/late"),
    ),
    "preset_choice.py": Case(
        frozenset({"benchmark", "config", "per_seed", "mean", "paired", "total_seconds"}),
        _check_preset_choice, args=("--out", "{tmp}/choice"),
    ),
    "presets.py": Case(
        frozenset({"benchmark", "config", "sizes", "compare", "models", "alone",
                   "best_intact_alone", "oracle", "table", "goals", "total_seconds"}),
        _check_presets, args=("--out", "{tmp}/presets"),
    ),
    "pretrained_vs_scratch.py": Case(
        frozenset({"benchmark", "rows", "n_train", "n_valid", "n_test", "threads", "results"}),
        _check_pretrained_vs_scratch, backbones=("efficientnet-lite0", "minilm", "voice"),
    ),
    "recommendation.py": Case(
        frozenset({"benchmark", "machine", "config", "datasets", "summary", "goals", "total_s"}),
        _check_recommendation,
    ),
    "retrieval_baseline.py": Case(
        frozenset({"setup", "results", "total_seconds"}),
        _check_retrieval_baseline, backbones=("efficientnet-lite0", "minilm", "voice"),
    ),
    "robust_defaults.py": Case(
        frozenset({"benchmark", "config", "per_seed", "mean", "goals", "total_seconds"}),
        _check_robust_defaults, backbones=("efficientnet-lite0", "voice"), programs=("espeak-ng",),
        args=("--out", "{tmp}/digits"),
    ),
    "robustness_dropout.py": Case(
        frozenset({"n_train", "n_test", "models", "total_seconds"}),
        _check_robustness_dropout, args=("--out", "{tmp}/robust"),
    ),
    "scale_memory.py": Case(
        frozenset({"setup", "results"}),
        _check_scale_memory, args=("--workdir", "{tmp}/scale"),
    ),
    "serve_load.py": Case(
        frozenset({"benchmark", "machine", "config", "predict", "speedup_at_32", "search", "memory",
                   "onnx_vs_eager", "goals", "total_s"}),
        _check_serve_load,
        modules=("fastapi", "uvicorn", "multipart", "httpx", "onnx", "onnxruntime", "onnxscript"),
    ),
    "summarize.py": Case(
        frozenset({"benchmark", "config", "videos", "scoring", "seconds_per_minute", "memory_by_length"}),
        _check_summarize, modules=("scenedetect",),
    ),
    "trainer_overhead.py": Case(
        frozenset({"benchmark", "ratio_mmfuse_over_hand", "same_losses", "mmfuse", "hand",
                   "mmfuse_light", "setup", "environment"}),
        _check_trainer_overhead,
    ),
    "voice_tone.py": Case(
        frozenset({"benchmark", "config", "emotion", "sentiment"}),
        _check_voice_tone, backbones=("minilm", "voice+prosody"), programs=("espeak-ng",),
    ),
}  # fmt: skip


def last_json(stdout: str) -> dict[str, Any]:
    """The last JSON object in ``stdout`` that starts a line and runs to its end."""
    decoder = json.JSONDecoder()
    start = len(stdout)
    while (start := stdout.rfind("{", 0, start)) >= 0:
        if start == 0 or stdout[start - 1] == "\n":
            try:
                value, end = decoder.raw_decode(stdout, start)
            except json.JSONDecodeError:
                continue
            if not stdout[end:].strip():
                return value
    raise AssertionError(f"no JSON object ends stdout; its tail:\n{stdout[-2000:]}")


def run_quick(script: str, tmp: Path, args: tuple[str, ...]) -> dict[str, Any]:
    """Runs ``benchmarks/<script> --quick --threads 1`` with its caches and temp files in
    ``tmp``; the printed JSON object."""
    (tmp / "tmp").mkdir()
    env = {**os.environ, "MMFUSE_CACHE_DIR": str(tmp / "cache"), "TMPDIR": str(tmp / "tmp")}
    command = [sys.executable, str(BENCHMARKS / script), "--quick", "--threads", "1"]
    command += [a.format(tmp=tmp) for a in args]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    failure = f"{' '.join(command)} exited {done.returncode}:\n{done.stderr[-3000:]}"
    assert done.returncode == 0, failure
    return last_json(done.stdout)


def test_every_benchmark_has_a_case() -> None:
    scripts = sorted(p.name for p in BENCHMARKS.glob("*.py") if not p.name.startswith("_"))
    assert scripts == sorted(CASES), "add a Case (and a --quick mode) for every benchmark script"


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(CASES))
def test_quick_mode_runs(script: str, tmp_path: Path) -> None:
    case = CASES[script]
    for module in case.modules:
        pytest.importorskip(module)
    from mmfuse.pretrained import BACKBONES

    missing = [p for name in case.backbones for p in BACKBONES[name].missing()]
    missing += [p for p in case.programs if shutil.which(p) is None]
    if missing:
        pytest.skip(f"{script} needs {', '.join(missing)}")
    out = run_quick(script, tmp_path, case.args)
    assert case.keys <= set(out), f"missing keys: {sorted(case.keys - set(out))}"
    case.check(out)


@pytest.mark.parametrize(
    ("stdout", "expected"),
    [
        ('progress\n{"a": 1}\n', {"a": 1}),
        ('{"a": 1}\nlog line\n{\n  "b": {"c": [1, 2]}\n}\n', {"b": {"c": [1, 2]}}),
    ],
)
def test_last_json(stdout: str, expected: dict[str, Any]) -> None:
    assert last_json(stdout) == expected


def test_last_json_without_an_object_fails() -> None:
    with pytest.raises(AssertionError, match="no JSON object ends stdout"):
        last_json('{"a": 1}\nTraceback: boom\n')


def _quick_module() -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location("_quick", BENCHMARKS / "_quick.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _parser() -> Any:
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=3)
    return parser


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], {"rows": 256, "epochs": 3, "quick": False}),
        (["--quick"], {"rows": 16, "epochs": 1, "quick": True}),
        (["--quick", "--rows", "40"], {"rows": 40, "epochs": 1, "quick": True}),
        (["--epochs", "2", "--quick"], {"rows": 16, "epochs": 2, "quick": True}),
    ],
)
def test_quick_sets_defaults_and_explicit_flags_win(
    argv: list[str], expected: dict[str, Any]
) -> None:
    args = _quick_module().parse_with_quick(_parser(), {"rows": 16, "epochs": 1}, argv)
    assert vars(args) == expected


def test_quick_default_for_an_unknown_option_is_refused() -> None:
    refused = r"unknown options \['row'\]; options: \['epochs', 'rows'\]"
    with pytest.raises(ValueError, match=refused):
        _quick_module().parse_with_quick(_parser(), {"row": 16}, [])
