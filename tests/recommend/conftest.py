"""Shared data and fitted recommenders of the recommendation tests.

Two datasets:

- ``generated``: ``make_recommendation_dataset(n_users=120, n_items=80)`` with every table
  (interactions, items with title / image / price / genre, users with an age group, friends),
  fitted once through ``mmfuse fit --task recommendation`` (``generated_model``);
- ``taste``: hand-made tables in which everything is decided by a topic (see
  ``recommend_data.write_taste_tables``), fitted once with and once without the social table
  (``taste_social``, ``taste_plain``).

Every fit is seeded twice: ``--seed`` and, before it, ``torch.manual_seed``. The second is a
workaround: ``MultimodalRecommender.fit`` builds its towers before it seeds torch, so their
initial weights depend on whatever used torch's random generator earlier in the process
(``test_recommender.py::test_fit_is_reproducible`` shows the bug). Seeding here keeps these
fits the same whichever tests run before them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from recommend_data import FIT_SEED, CliResult, fit_taste, run_cli, write_taste_tables


@pytest.fixture(scope="session")
def taste(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_taste_tables(tmp_path_factory.mktemp("taste"))


@pytest.fixture(scope="session")
def taste_social(taste: Path) -> Any:
    return fit_taste(taste, social=True)


@pytest.fixture(scope="session")
def taste_plain(taste: Path) -> Any:
    return fit_taste(taste, social=False)


@pytest.fixture(scope="session")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The generated dataset (120 users, 80 items); never modify it."""
    from mmfuse.datasets import make_recommendation_dataset

    folder = tmp_path_factory.mktemp("generated")
    return make_recommendation_dataset(folder, n_users=120, n_items=80, seed=0)


@pytest.fixture(scope="session")
def generated_fit(
    generated: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, CliResult]:
    """(model directory, what ``mmfuse fit`` printed) of a fit on every generated table."""
    out = tmp_path_factory.mktemp("generated-model") / "model"
    torch.manual_seed(FIT_SEED)  # see the module docstring
    result = run_cli([
        "fit", str(generated / "train.csv"), "--task", "recommendation",
        "--user", "user", "--item", "item", "--items", str(generated / "items.csv"),
        "--users", str(generated / "users.csv"), "--social", str(generated / "friends.csv"),
        "--out", str(out), "--epochs", "3", "--embed-dim", "32", "--dim", "32",
        "--threads", "1", "--seed", str(FIT_SEED),
    ])  # fmt: skip
    assert result.code == 0, result.err
    return out, result


@pytest.fixture(scope="session")
def generated_model(generated_fit: tuple[Path, CliResult]) -> Path:
    return generated_fit[0]
