"""Tests for mmfuse.data.schema: kind inference, overrides, errors, modalities."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mmfuse.data.schema import Schema, infer_schema, parse_kinds
from mmfuse.errors import MmfuseError

N = 30


@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "id": range(N),
            "user_id": [f"u{i}" for i in range(N)],
            "photo": [f"img/{i}.{'PNG' if i % 2 else 'jpeg'}" for i in range(N)],
            "voice": [f"snd/{i}.{'flac' if i % 2 else 'wav'}" for i in range(N)],
            "clip": [f"vid/{i}.mp4" for i in range(N)],
            "vec": [f"[{i}.0, 1.5, -2]" for i in range(N)],
            "vec_file": [f"emb/{i}.npy" for i in range(N)],
            "price": rng.normal(size=N),
            "price_text": [f"{1.5 * i}" for i in range(N)],
            "colour": rng.choice(["red", "green", "dark blue"], N),
            "review": [f"this product number {i} was really quite good" for i in range(N)],
            "token": [f"tok{i}" for i in range(N)],
            "blank": [None] * N,
            "flag": [True, False] * (N // 2),
            "label": ["a", "b", "c"] * (N // 3),
        }
    )


def test_infers_every_kind(frame: pd.DataFrame) -> None:
    schema = infer_schema(frame, target="label")
    assert schema.kinds == {
        "photo": "image",
        "voice": "audio",
        "clip": "video",
        "vec": "embedding",
        "vec_file": "embedding",
        "price": "numeric",
        "price_text": "numeric",
        "colour": "categorical",
        "review": "text",
        "flag": "categorical",
    }
    assert list(schema.kinds) == [c for c in frame.columns if c in schema.kinds]  # table order
    assert schema.target == "label"
    assert set(schema.ignored) == {"id", "user_id", "token", "blank"}
    assert "identifier-like" in schema.ignored["id"]
    assert "identifier-like" in schema.ignored["user_id"]
    assert schema.ignored["blank"] == "the column is empty"
    assert schema.audio_tracks == ()  # no base_dir: videos are not opened


def test_python_lists_are_embeddings() -> None:
    df = pd.DataFrame({"v": [[1.0, 2.0], [3.0, 4.0], np.array([5.0, 6.0])], "y": [0, 1, 0]})
    assert infer_schema(df, "y").kinds == {"v": "embedding"}


def test_suffix_needs_most_values() -> None:
    # 70 % image paths (< 80 %) is not an image column.
    paths = [f"{i}.png" for i in range(7)] + ["a b", "c d", "e f"]
    schema = infer_schema(pd.DataFrame({"p": paths * 3}), kinds=None)
    assert schema.kinds["p"] != "image"


def test_the_share_rules_read_an_even_sample_and_the_distinct_counts_every_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mmfuse.data import schema

    monkeypatch.setattr(schema, "KIND_SAMPLE", 3)  # cells 0, 2 and 4 are sampled
    paths = pd.DataFrame({"p": ["a.png", "b.txt", "c.png", "d.txt", "e.png"], "y": [0, 1] * 2 + [0]})
    assert infer_schema(paths, "y").kinds == {"p": "image"}  # 3 of 5 overall, under 80 %
    words = pd.DataFrame({"w": [f"word{i}" for i in range(24)] + ["word0"] * 6, "y": 15 * [0, 1]})
    assert infer_schema(words, "y").kinds == {"w": "text"}  # 24 distinct of 30, counted in full


def test_numeric_with_a_few_bad_values_is_still_numeric() -> None:
    values = [str(i) for i in range(19)] + ["oops"]
    assert infer_schema(pd.DataFrame({"x": values})).kinds == {"x": "numeric"}


def test_numeric_id_column_is_ignored_but_repeated_ids_are_not() -> None:
    df = pd.DataFrame({"order_id": range(10), "shop_id": [1, 2] * 5, "y": [0, 1] * 5})
    schema = infer_schema(df, "y")
    assert "order_id" in schema.ignored
    assert schema.kinds == {"shop_id": "numeric"}


def test_blank_strings_count_as_empty() -> None:
    df = pd.DataFrame({"a": ["", "  ", None], "b": [1, 2, 3]})
    schema = infer_schema(df)
    assert schema.ignored == {"a": "the column is empty"}


def test_overrides_including_ignore(frame: pd.DataFrame) -> None:
    schema = infer_schema(frame, "label", kinds="price=ignore, colour=text,id=categorical")
    assert "price" not in schema.kinds
    assert schema.ignored["price"] == "overridden with --kinds"
    assert schema.kinds["colour"] == "text"
    assert schema.kinds["id"] == "categorical"
    mapping = infer_schema(frame, "label", kinds={"review": "categorical"})
    assert mapping.kinds["review"] == "categorical"


def test_bad_overrides() -> None:
    with pytest.raises(
        MmfuseError, match=r"unknown kind 'picture' for column 'a'; choose one of: image, .*ignore"
    ):
        parse_kinds("a=picture")
    with pytest.raises(MmfuseError, match=r"--kinds: expected COLUMN=VALUE, got 'a'"):
        parse_kinds("a")
    assert parse_kinds("a=image, b = text,") == {"a": "image", "b": "text"}
    assert parse_kinds(None) == {} and parse_kinds("") == {}


def test_unknown_columns_list_the_columns(frame: pd.DataFrame) -> None:
    columns = ", ".join(frame.columns)
    with pytest.raises(
        MmfuseError, match=f"unknown target column 'lable'; the columns are: {columns}"
    ):
        infer_schema(frame, "lable")
    with pytest.raises(MmfuseError, match=f"unknown column 'colour2'; the columns are: {columns}"):
        infer_schema(frame, "label", kinds="colour2=text")
    with pytest.raises(MmfuseError, match=f"unknown column 'nope'; the columns are: {columns}"):
        infer_schema(frame, "label", features=["price", "nope"])


def test_features_subset(frame: pd.DataFrame) -> None:
    schema = infer_schema(frame, "label", features=["review", "price", "label"])
    assert schema.kinds == {"review": "text", "price": "numeric"}  # the target is never a feature
    assert schema.ignored == {}


def test_no_usable_feature_explains_why(frame: pd.DataFrame) -> None:
    with pytest.raises(MmfuseError, match="no usable feature columns: id: identifier-like"):
        infer_schema(frame, "label", features=["id"])
    with pytest.raises(MmfuseError, match="blank: the column is empty"):
        infer_schema(frame, "label", features=["blank"])


def test_tabular_name_is_reserved() -> None:
    df = pd.DataFrame({"tabular": [f"a{i}.png" for i in range(5)]})
    with pytest.raises(MmfuseError, match="reserved"):
        infer_schema(df)


def test_modalities_group_numeric_and_categorical(frame: pd.DataFrame) -> None:
    schema = infer_schema(frame, "label")
    assert schema.modalities() == {
        "clip": "video",
        "photo": "image",
        "review": "text",
        "tabular": "tabular",
        "vec": "embedding",
        "vec_file": "embedding",
        "voice": "audio",
    }
    assert list(schema.modalities()) == sorted(schema.modalities())
    assert schema.columns_of("numeric") == ["price", "price_text"]
    assert schema.columns_of("categorical") == ["colour", "flag"]
    only_text = infer_schema(frame, "label", features=["review"])
    assert only_text.modalities() == {"review": "text"}


def test_round_trip() -> None:
    schema = Schema({"a": "image", "b": "numeric"}, "y", {"c": "why"}, ("a",))
    assert Schema.from_dict(schema.to_dict()) == schema


def test_video_with_audio_track_adds_an_audio_modality(media, tmp_path: Path) -> None:
    df = pd.DataFrame(
        {
            "loud": [media.mp4("a.mp4", with_audio=True), media.mp4("b.mp4")],
            "silent": [media.mp4("c.mp4"), media.mp4("d.mp4")],
            "y": [0, 1],
        }
    )
    schema = infer_schema(df, "y", base_dir=tmp_path)
    assert schema.kinds == {"loud": "video", "silent": "video"}
    assert schema.audio_tracks == ("loud",)
    assert schema.modalities() == {"loud": "video", "loud_audio": "audio", "silent": "video"}
    off = infer_schema(df, "y", base_dir=tmp_path, use_audio_tracks=False)
    assert off.audio_tracks == () and "loud_audio" not in off.modalities()


def test_non_utf8_text_does_not_break_inference() -> None:
    texts = [f"caf\udce9 number {i} was nice" for i in range(25)]
    df = pd.DataFrame({"t": pd.Series(texts, dtype=object), "y": [0, 1] * 12 + [0]})
    schema = infer_schema(df, "y")
    assert schema.kinds == {"t": "text"}
