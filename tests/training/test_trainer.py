"""Tests for mmfuse.training.trainer on a tiny synthetic problem (see conftest.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mmfuse.data.tensors import TensorData
from mmfuse.errors import MmfuseError
from mmfuse.models.retrieval import RetrievalConfig, build_retrieval_model
from mmfuse.tasks import RetrievalTask
from mmfuse.training import TrainConfig, Trainer


def _history(trainer_history: list[dict[str, float]]) -> list[dict[str, float]]:
    """The history without wall-clock seconds (which never repeat)."""
    return [{k: v for k, v in r.items() if k != "seconds"} for r in trainer_history]


def _same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _valid_loss(trainer, data) -> float:
    return float(F.cross_entropy(trainer.predict(data).logits, data.targets.long()))


def test_learns_a_separable_problem(problem, make_trainer) -> None:
    trainer = make_trainer(epochs=12, patience=0)
    untrained = _valid_loss(trainer, problem.valid)
    history = trainer.fit(problem.train, problem.valid)
    assert [r["epoch"] for r in history] == list(range(1, 13))
    assert set(history[0]) == {"epoch", "train_loss", "valid_loss", "seconds"}
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert _valid_loss(trainer, problem.valid) < 0.5 * untrained
    logits = trainer.predict(problem.valid).logits
    assert logits.shape == (len(problem.valid), 2)
    accuracy = (logits.argmax(1) == problem.valid.targets.long()).float().mean()
    assert accuracy >= 0.9


def test_metric_is_recorded(problem, make_trainer) -> None:
    trainer = make_trainer(epochs=2)
    trainer.metric = ("accuracy", lambda y, p: float(((p.argmax(1)) == y).mean()))
    history = trainer.fit(problem.train, problem.valid)
    assert all(0.0 <= r["valid_accuracy"] <= 1.0 for r in history)


def test_early_stopping_when_validation_loss_stalls(problem, make_trainer) -> None:
    # lr 0: the validation loss never improves after the first epoch.
    trainer = make_trainer(epochs=20, patience=2, lr=0.0)
    history = trainer.fit(problem.train, problem.valid)
    assert [r["epoch"] for r in history] == [1, 2, 3]
    assert len({r["valid_loss"] for r in history}) == 1


def test_best_weights_are_restored(problem, make_trainer) -> None:
    # Scripted validation losses: epoch 2 is the best, later epochs are worse.
    def scripted(trainer, losses):
        queue = list(losses)
        trainer._validate = lambda data: (queue.pop(0), float("nan"))
        return trainer

    four = scripted(make_trainer(epochs=4, patience=0), [0.5, 0.3, 0.4, 0.6])
    history = four.fit(problem.train, problem.valid)
    assert [r["valid_loss"] for r in history] == [0.5, 0.3, 0.4, 0.6]
    two = scripted(make_trainer(epochs=2, patience=0), [0.5, 0.3])  # stops at the best epoch
    two.fit(problem.train, problem.valid)
    assert _same_weights(four.model.state_dict(), two.model.state_dict())
    last = scripted(make_trainer(epochs=4, patience=0), [0.6, 0.5, 0.4, 0.3])  # the last is best
    last.fit(problem.train, problem.valid)
    assert not _same_weights(four.model.state_dict(), last.model.state_dict())


def test_restored_weights_give_the_best_validation_loss(problem, make_trainer) -> None:
    trainer = make_trainer(epochs=6, patience=0, lr=0.1)
    history = trainer.fit(problem.train, problem.valid)
    best = min(r["valid_loss"] for r in history)
    assert _valid_loss(trainer, problem.valid) == pytest.approx(best, rel=1e-5)


def test_same_seed_same_history_and_weights(problem, make_trainer) -> None:
    runs = []
    for seed in (0, 0, 1):
        trainer = make_trainer(epochs=3, seed=seed, augment="light", modality_dropout=0.3)
        runs.append(
            (_history(trainer.fit(problem.train, problem.valid)), trainer.model.state_dict())
        )
    assert runs[0][0] == runs[1][0]
    assert _same_weights(runs[0][1], runs[1][1])
    assert runs[0][0] != runs[2][0]  # another seed shuffles, augments and drops differently


def test_resume_gives_the_same_result_as_an_uninterrupted_run(
    problem, make_trainer, tmp_path: Path
) -> None:
    settings = {"epochs": 4, "patience": 0, "augment": "light", "modality_dropout": 0.2}
    full = make_trainer(**settings)
    full_history = _history(full.fit(problem.train, problem.valid))

    first = make_trainer(checkpoint_dir=tmp_path, **{**settings, "epochs": 2})
    assert len(first.fit(problem.train, problem.valid)) == 2
    resumed = make_trainer(
        checkpoint_dir=tmp_path, model_seed=99, **settings
    )  # other init: replaced
    history = _history(resumed.fit(problem.train, problem.valid, resume=True))
    assert [r["epoch"] for r in history] == [1, 2, 3, 4]
    assert history == full_history
    assert _same_weights(resumed.model.state_dict(), full.model.state_dict())


def test_resume_of_a_finished_run_trains_no_more(problem, make_trainer, tmp_path: Path) -> None:
    done = make_trainer(checkpoint_dir=tmp_path, epochs=2)
    expected = _history(done.fit(problem.train, problem.valid))
    again = make_trainer(checkpoint_dir=tmp_path, epochs=2, model_seed=5)
    assert _history(again.fit(problem.train, problem.valid, resume=True)) == expected
    assert _same_weights(again.model.state_dict(), done.model.state_dict())


def test_resume_without_a_checkpoint_starts_from_scratch(
    problem, make_trainer, tmp_path: Path
) -> None:
    plain = _history(make_trainer(epochs=2).fit(problem.train, problem.valid))
    resumed = make_trainer(checkpoint_dir=tmp_path / "absent", epochs=2)
    assert _history(resumed.fit(problem.train, problem.valid, resume=True)) == plain
    assert (tmp_path / "absent" / "state.json").exists()


def test_modality_dropout_never_hides_every_present_modality(problem, make_trainer) -> None:
    trainer = make_trainer(epochs=2, modality_dropout=0.7)
    seen: list[tuple[bool, dict[str, torch.Tensor], dict[str, torch.Tensor]]] = []
    trainer.model.register_forward_pre_hook(
        lambda module, args: seen.append((module.training, args[0], dict(args[1])))
    )
    trainer.fit(problem.train, problem.valid)
    train_masks = [(x, m) for training, x, m in seen if training]
    assert train_masks
    hidden = 0
    for x, mask in train_masks:
        present = torch.stack([mask["tabular"], mask["vec"]], 1)
        assert present.any(1).all(), "a training sample lost every modality"
        vec_absent = ~x["vec"].any(1)  # missing embeddings are all-zero rows
        assert not (mask["vec"] & vec_absent).any(), "dropout revealed a missing modality"
        hidden += int((~mask["tabular"]).sum())
    assert hidden > 0, "modality dropout hid nothing"
    for training, _, mask in seen:
        if not training:  # validation sees the true masks
            assert mask["tabular"].all()


def test_predict_keeps_record_order(problem, make_trainer) -> None:
    trainer = make_trainer(epochs=1)
    trainer.fit(problem.train, problem.valid)
    whole = trainer.predict(problem.valid, batch_size=7)
    part = trainer.predict(problem.valid.subset(torch.arange(10, 20)))
    torch.testing.assert_close(whole.logits[10:20], part.logits)
    assert whole.logits.shape == (len(problem.valid), 2) and whole.logits.dtype == torch.float32
    assert torch.equal(whole.mask["vec"], problem.valid.mask["vec"])


def _recording(seen: list[np.ndarray]):
    """A validation metric (always 0.5) that keeps the predictions it was given."""

    def metric(targets: np.ndarray, predictions: np.ndarray) -> float:
        seen.append(predictions)
        return 0.5

    return metric


def test_validation_loss_and_metric_come_from_the_task(problem, make_trainer) -> None:
    trainer = make_trainer(epochs=1)
    seen: list[np.ndarray] = []
    trainer.metric = ("accuracy", _recording(seen))
    history = trainer.fit(problem.train, problem.valid)
    output = trainer.predict(problem.valid)  # the kept weights are epoch 1's
    expected = trainer.task.eval_loss(output, problem.valid.targets)
    assert history[0]["valid_loss"] == float(expected)
    np.testing.assert_array_equal(seen[0], output.logits.softmax(-1).numpy())


def test_validates_a_retrieval_model_from_its_embeddings(problem, make_trainer) -> None:
    specs = make_trainer().specs  # tabular and vec
    torch.manual_seed(0)
    encoders = {"tabular": "mlp", "vec": "mlp"}
    config = RetrievalConfig(("tabular", "vec"), encoders, dim=8, embed_dim=4)
    task = RetrievalTask(config.pair)
    items = torch.arange(len(problem.train)).repeat(2, 1).T.contiguous()
    pairs = [TensorData(d.inputs, d.mask, items[: len(d)]) for d in (problem.train, problem.valid)]
    seen: list[np.ndarray] = []
    settings = TrainConfig(epochs=1, batch_size=32, device="cpu", augment="none")
    model = build_retrieval_model(config, specs)
    trainer = Trainer(model, task, specs, settings, ("seen", _recording(seen)), verbose=False)
    history = trainer.fit(pairs[0], pairs[1])
    output = trainer.predict(pairs[1])
    assert output.logits is None and set(output.embeddings) == {"tabular", "vec"}
    assert history[0]["valid_loss"] == float(task.eval_loss(output, pairs[1].targets))
    assert seen[0].shape == (len(problem.valid), 2, 4)
    np.testing.assert_array_equal(seen[0][:, 1], output.embeddings["vec"].numpy())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"epochs": 0}, "epochs and batch size must be at least 1"),
        ({"batch_size": 0}, "epochs and batch size must be at least 1"),
        ({"augment": "heavy"}, "unknown augment 'heavy'; choose one of: none, light, strong"),
        ({"modality_dropout": 1.0}, r"modality dropout must be in \[0, 1\), got 1.0"),
    ],
)
def test_train_config_validation(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(MmfuseError, match=message):
        TrainConfig(**kwargs)  # type: ignore[arg-type]


def test_unknown_device(make_trainer) -> None:
    with pytest.raises(MmfuseError, match="unknown device 'tpu'"):
        make_trainer(device="tpu")


def test_with_a_metric_the_best_metric_epoch_wins_and_loss_breaks_ties(problem, make_trainer) -> None:
    def scripted(trainer, pairs, higher=True):
        queue = list(pairs)
        trainer._validate = lambda data: queue.pop(0)
        trainer.metric = ("accuracy", lambda y, p: 0.0)
        trainer.sign = 1.0 if higher else -1.0
        return trainer

    # epoch 1 has the lowest loss but chance accuracy; epoch 3 has the best accuracy
    three = scripted(make_trainer(epochs=4, patience=0), [(0.5, 0.5), (0.6, 0.7), (0.7, 0.8), (0.9, 0.8)])
    three.fit(problem.train, problem.valid)
    upto3 = scripted(make_trainer(epochs=3, patience=0), [(0.5, 0.5), (0.6, 0.7), (0.7, 0.8)])
    upto3.fit(problem.train, problem.valid)
    assert _same_weights(three.model.state_dict(), upto3.model.state_dict())
    # an error metric (lower is better): epoch 2 has the lowest rmse
    rmse = scripted(make_trainer(epochs=3, patience=0), [(0.5, 2.0), (0.6, 1.0), (0.4, 1.5)], False)
    rmse.fit(problem.train, problem.valid)
    upto2 = scripted(make_trainer(epochs=2, patience=0), [(0.5, 2.0), (0.6, 1.0)], False)
    upto2.fit(problem.train, problem.valid)
    assert _same_weights(rmse.model.state_dict(), upto2.model.state_dict())


def _scripted(trainer, losses):
    """The trainer with these validation losses, one per epoch (no metric)."""
    queue = list(losses)
    trainer._validate = lambda data: (queue.pop(0), float("nan"))
    return trainer


def test_kept_epoch_names_the_best_validation_epoch(problem, make_trainer, capsys) -> None:
    trainer = _scripted(make_trainer(epochs=4, patience=0), [0.5, 0.3, 0.4, 0.6])
    assert trainer.kept_epoch is None
    trainer.verbose = True
    trainer.fit(problem.train, problem.valid)
    assert trainer.kept_epoch == 2
    assert capsys.readouterr().err.splitlines()[-1] == "kept epoch 2 of 4: best valid_loss=0.3000"


def test_kept_epoch_with_a_metric_and_with_keep_last(problem, make_trainer, capsys) -> None:
    best = make_trainer(epochs=3, patience=0)
    queue = [(0.5, 0.6), (0.4, 0.9), (0.3, 0.7)]
    best._validate = lambda data: queue.pop(0)
    best.metric, best.verbose = ("accuracy", lambda y, p: 0.0), True
    best.fit(problem.train, problem.valid)
    assert best.kept_epoch == 2
    assert capsys.readouterr().err.splitlines()[-1] == "kept epoch 2 of 3: best valid_accuracy=0.9000"
    last = _scripted(make_trainer(epochs=3, patience=0, keep_last=True), [0.3, 0.4, 0.5])
    last.verbose = True
    last.fit(problem.train, problem.valid)
    assert last.kept_epoch == 3
    assert capsys.readouterr().err.splitlines()[-1] == "kept epoch 3, the last"


def test_kept_epoch_survives_a_resume(problem, make_trainer, tmp_path: Path) -> None:
    first = _scripted(make_trainer(checkpoint_dir=tmp_path, epochs=2, patience=0), [0.5, 0.3])
    first.fit(problem.train, problem.valid)
    resumed = _scripted(make_trainer(checkpoint_dir=tmp_path, epochs=4, patience=0), [0.4, 0.6])
    resumed.fit(problem.train, problem.valid, resume=True)  # epochs 3 and 4 are worse than 2
    assert resumed.kept_epoch == 2


def test_valid_label_names_what_the_validation_data_is(problem, make_trainer, capsys) -> None:
    """A refit validates on records it trains on: its lines must not call them held out."""
    trainer = _scripted(make_trainer(epochs=2, patience=0, keep_last=True), [0.5, 0.4])
    trainer.valid_label, trainer.verbose = "seen", True
    history = trainer.fit(problem.train, problem.valid)
    assert set(history[0]) == {"epoch", "train_loss", "seen_loss", "seconds"}
    err = capsys.readouterr().err
    assert "seen_loss=0.5000" in err and "valid_" not in err


def test_with_modality_dropout_the_epoch_is_chosen_on_clean_and_hidden_together(problem, make_trainer, capsys) -> None:
    trainer = make_trainer(epochs=3, patience=0, modality_dropout=0.3)
    clean, hidden = [(0.5, 0.9), (0.4, 0.8), (0.45, 0.85)], [0.5, 0.8, 0.6]
    trainer._validate = lambda data: clean.pop(0)
    trainer._hidden_metric = lambda data: hidden.pop(0)
    trainer.metric, trainer.verbose = ("accuracy", lambda y, p: 0.0), True
    history = trainer.fit(problem.train, problem.valid)
    assert trainer.kept_epoch == 2  # means 0.70, 0.80, 0.725: not epoch 1, the best clean
    assert [h["valid_accuracy_hidden"] for h in history] == [0.5, 0.8, 0.6]
    assert capsys.readouterr().err.splitlines()[-1] == (
        "kept epoch 2 of 3: best mean of valid_accuracy=0.8000 and valid_accuracy_hidden=0.8000 "
        "(each modality hidden in turn)")


def test_the_hidden_metric_hides_each_modality_where_another_is_present(problem, make_trainer) -> None:
    trainer = make_trainer(epochs=1, modality_dropout=0.3)
    seen = []
    trainer.metric = ("accuracy", lambda y, p: 0.0)
    trainer.predict = lambda data: seen.append({m: v.clone() for m, v in data.mask.items()}) or None
    trainer.task = type("T", (), {"predict": staticmethod(lambda out: torch.zeros(len(problem.valid)))})()
    trainer._hidden_metric(problem.valid)
    vec = problem.valid.mask["vec"]
    assert len(seen) == 2
    # tabular (always present) hidden where vec is there; vec hidden everywhere, tabular being there
    assert torch.equal(seen[0]["tabular"], ~vec) and torch.equal(seen[0]["vec"], vec)
    assert torch.equal(seen[1]["vec"], torch.zeros_like(vec)) and seen[1]["tabular"].all()


def test_a_deadline_that_passes_during_an_epoch_stops_it_after_the_current_batch(
    problem, make_trainer, tmp_path: Path
) -> None:
    import time

    trainer = make_trainer(epochs=5, batch_size=32, checkpoint_dir=tmp_path)
    trainer.deadline = time.perf_counter()  # passed already: only the first batch runs
    history = trainer.fit(problem.train, problem.valid)
    assert len(history) == 1
    assert history[0]["epoch_fraction"] == pytest.approx(1 / 8)  # 256 records, 8 batches
    assert trainer.kept_epoch == 1
    assert not list(tmp_path.iterdir())  # a part of an epoch is not checkpointed: resume redoes it
