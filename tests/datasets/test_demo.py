"""Tests for the built-in demo dataset generator."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mmfuse.datasets import DEMO_MODALITY_COLUMNS, DEMO_TARGET, demo_votes, make_demo_dataset
from mmfuse.datasets.demo import CSV_COLUMNS, NEGATIVE_WORDS, POSITIVE_WORDS, VOTE_NAMES

N = 40
MEDIA = ["image", "review", "audio", "video"]


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    make_demo_dataset(out, n=N, seed=3, missing_rate=0.15)
    return out


@pytest.fixture(scope="module")
def table(demo_dir: Path) -> pd.DataFrame:
    return pd.read_csv(demo_dir / "data.csv", keep_default_na=False)


@pytest.fixture(scope="module")
def votes() -> dict[str, np.ndarray]:
    return demo_votes(N, seed=3)


def _present(table: pd.DataFrame, column: str) -> pd.DataFrame:
    return table[table[column] != ""]


def _tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_columns_constants_and_readme(demo_dir: Path, table: pd.DataFrame) -> None:
    assert list(table.columns) == list(CSV_COLUMNS)
    assert len(table) == N
    assert table["id"].tolist() == list(range(N))
    assert DEMO_TARGET == "label"
    assert set(DEMO_MODALITY_COLUMNS) == set(MEDIA)
    assert set(table["region"]) <= {"north", "south", "east", "west"}
    assert set(table["channel"]) <= {"web", "store", "phone"}
    assert table["age"].between(18, 90).all()
    assert "68.75%" in (demo_dir / "README.md").read_text()


def test_returns_csv_path(tmp_path: Path) -> None:
    assert make_demo_dataset(tmp_path / "new", n=3) == tmp_path / "new" / "data.csv"


def test_label_and_score_follow_votes(table: pd.DataFrame, votes: dict[str, np.ndarray]) -> None:
    assert list(votes) == list(VOTE_NAMES)
    total = sum(votes.values())
    assert set(np.unique(total)) <= {-5, -3, -1, 1, 3, 5}
    expected = np.where(total > 0, "positive", "negative")
    np.testing.assert_array_equal(table["label"].to_numpy(), expected)
    assert np.abs(table["score"].to_numpy() - total).max() < 1.5


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path, demo_dir: Path) -> None:
    make_demo_dataset(tmp_path / "again", n=N, seed=3, missing_rate=0.15)
    assert _tree_digest(tmp_path / "again") == _tree_digest(demo_dir)
    other = make_demo_dataset(tmp_path / "other", n=N, seed=4, missing_rate=0.15)
    assert other.read_bytes() != (demo_dir / "data.csv").read_bytes()


def test_missing_cells_exist_but_never_all_media(table: pd.DataFrame) -> None:
    empty = table[MEDIA] == ""
    assert empty.to_numpy().any()
    assert not empty.all(axis=1).any()
    assert (table["income"] == "").any()


def test_no_missing_when_rate_zero(tmp_path: Path) -> None:
    table = pd.read_csv(make_demo_dataset(tmp_path, n=10, missing_rate=0.0), keep_default_na=False)
    assert not (table[MEDIA + ["income"]] == "").to_numpy().any()


def test_media_files_match_cells(demo_dir: Path, table: pd.DataFrame) -> None:
    referenced = {p for c in ("image", "audio", "video") for p in table[c] if p}
    written = {str(p.relative_to(demo_dir)) for d in ("images", "audio", "video")
               for p in (demo_dir / d).iterdir()}  # fmt: skip
    assert referenced == written


def test_images_decode_and_stripe_orientation_is_recoverable(
    demo_dir: Path, table: pd.DataFrame, votes: dict[str, np.ndarray]
) -> None:
    from PIL import Image

    rows = _present(table, "image")
    correct = []
    for i, rel in zip(rows["id"], rows["image"]):
        with Image.open(demo_dir / rel) as im:
            assert im.size == (32, 32)
            pixels = np.asarray(im.convert("RGB"), dtype=np.float64)
        down = np.abs(np.diff(pixels, axis=0)).mean()  # change along rows: horizontal stripes
        across = np.abs(np.diff(pixels, axis=1)).mean()
        correct.append((1 if down > across else -1) == votes["image"][i])
    assert np.mean(correct) > 0.9


def test_image_formats_include_jpeg_and_grayscale(tmp_path: Path) -> None:
    from PIL import Image

    table = pd.read_csv(make_demo_dataset(tmp_path, n=120, missing_rate=0.0), keep_default_na=False)
    modes = [Image.open(tmp_path / p).mode for p in table["image"]]
    assert any(p.endswith(".jpg") for p in table["image"])
    assert "L" in modes and "RGB" in modes


def test_reviews_carry_sentiment(table: pd.DataFrame, votes: dict[str, np.ndarray]) -> None:
    rows = _present(table, "review")
    correct = []
    for i, review in zip(rows["id"], rows["review"]):
        words = {w.strip(",.!").lower() for w in review.split()}
        assert 8 <= len(review.split()) <= 16
        assert not (words & set(POSITIVE_WORDS) and words & set(NEGATIVE_WORDS))
        guess = 1 if words & set(POSITIVE_WORDS) else -1
        correct.append(guess == votes["text"][i])
    assert np.mean(correct) > 0.8


def test_audio_decodes_and_pitch_band_follows_vote(
    demo_dir: Path, table: pd.DataFrame, votes: dict[str, np.ndarray]
) -> None:
    import soundfile as sf

    rows = _present(table, "audio")
    for i, rel in zip(rows["id"], rows["audio"]):
        signal, rate = sf.read(demo_dir / rel)
        assert rate == 16_000 and signal.shape == (16_000,)
        assert sf.info(demo_dir / rel).subtype == "PCM_16"
        peak_hz = np.argmax(np.abs(np.fft.rfft(signal))) * rate / len(signal)
        low, high = (690, 1010) if votes["audio"][i] > 0 else (190, 360)
        assert low <= peak_hz <= high, (rel, peak_hz)


def test_audio_formats_include_flac(tmp_path: Path) -> None:
    table = pd.read_csv(make_demo_dataset(tmp_path, n=60, missing_rate=0.0), keep_default_na=False)
    suffixes = {Path(p).suffix for p in table["audio"]}
    assert suffixes == {".wav", ".flac"}


def test_videos_decode_to_8_frames_and_keep_colour(
    demo_dir: Path, table: pd.DataFrame, votes: dict[str, np.ndarray]
) -> None:
    import av

    rows = _present(table, "video")
    for i, rel in zip(rows["id"], rows["video"]):
        with av.open(str(demo_dir / rel)) as container:
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        clip = np.stack(frames).astype(np.float64)  # (8, 32, 32, 3)
        assert clip.shape == (8, 32, 32, 3)
        greenness = (clip[..., 1] - (clip[..., 0] + clip[..., 2]) / 2).mean()
        assert np.sign(greenness) == votes["video"][i], (rel, greenness)


def test_first_videos_have_an_aac_track(demo_dir: Path, table: pd.DataFrame) -> None:
    import av

    def audio_codecs(rel: str) -> list[str]:
        with av.open(str(demo_dir / rel)) as container:
            return [s.codec_context.name for s in container.streams.audio]

    videos = list(_present(table, "video")["video"])
    with_track = [rel for rel in videos if audio_codecs(rel)]
    assert with_track and all(audio_codecs(rel) == ["aac"] for rel in with_track)
    assert all(int(Path(rel).stem) < round(0.15 * N) for rel in with_track)
    with av.open(str(demo_dir / with_track[0])) as container:
        samples = sum(f.samples for f in container.decode(audio=0))
    assert samples >= 16_000


def test_income_carries_the_tabular_vote(tmp_path: Path) -> None:
    table = pd.read_csv(make_demo_dataset(tmp_path, n=200, missing_rate=0.0))
    vote = demo_votes(200, seed=0)["tabular"]
    assert table["income"][vote > 0].mean() - table["income"][vote < 0].mean() > 1.2


@pytest.mark.parametrize(
    "kwargs",
    [{"n": 0}, {"n": 2.0}, {"seed": -1}, {"missing_rate": 1.0}, {"missing_rate": -0.1}],
)
def test_invalid_arguments_raise(tmp_path: Path, kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        make_demo_dataset(tmp_path, **kwargs)  # type: ignore[arg-type]
