"""Tests for mmfuse.data.preprocess: shapes, masks, bad records, storage, restriction."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mmfuse.data.preprocess import PreprocessConfig, Preprocessor, Rejection
from mmfuse.data.readers import Table, read_table
from mmfuse.data.schema import infer_schema
from mmfuse.errors import MmfuseError

SMALL = PreprocessConfig(
    image_size=8, text_max_length=6, n_mels=8, audio_frames=10, video_frames=2, video_size=8
)
N = 20


def _table(frame: pd.DataFrame, folder: Path) -> Table:
    """Writes ``frame`` as folder/data.csv and reads it back (as a user's CSV would be)."""
    frame.to_csv(folder / "data.csv", index=False)
    return read_table(folder / "data.csv")


def _fit(table: Table, kinds: str | None = None, task: str = "classification") -> Preprocessor:
    schema = infer_schema(table.df, "label", kinds, base_dir=table.base_dir)
    return Preprocessor(schema, SMALL, task).fit(table)


@pytest.fixture
def all_kinds(media, tmp_path: Path) -> Table:
    """Six records with every kind (use kinds "note=text": six short notes look categorical);
    some cells are empty; videos 0 and 1 carry an audio track."""
    n = 6
    frame = pd.DataFrame(
        {
            "photo": [media.png(f"img/{i}.png", level=40 * i) for i in range(n)],
            "note": ["good thing", "bad thing", "", "good good", "very bad", "ok then"],
            "vec": ["[0.1, 0.2, 0.3]"] * n,
            "snd": [media.wav(f"snd/{i}.wav", freq=200 + 100 * i) for i in range(n)],
            "clip": [media.mp4(f"vid/{i}.mp4", with_audio=i < 4) for i in range(n)],
            "price": [1.0, 2.0, None, 4.0, 5.0, 6.0],
            "colour": ["red", "blue", "red", None, "blue", "red"],
            "label": ["yes", "no"] * 3,
        }
    )
    frame.loc[1, "photo"] = None
    frame.loc[4, "vec"] = None
    frame.loc[5, "snd"] = None
    return _table(frame, tmp_path)


def test_shapes_dtypes_and_masks_match_input_specs(all_kinds: Table) -> None:
    pre = _fit(all_kinds, "note=text")
    specs = pre.input_specs()
    assert pre.modalities == {
        "clip": "video", "clip_audio": "audio", "note": "text", "photo": "image",
        "snd": "audio", "tabular": "tabular", "vec": "embedding",
    }  # fmt: skip
    assert set(specs) == set(pre.modalities)
    assert {m: s.kind for m, s in specs.items()} == pre.modalities
    assert specs["photo"].shape == (3, 8, 8)
    assert specs["clip"].shape == (2, 3, 8, 8)
    assert specs["snd"].shape == specs["clip_audio"].shape == (8, 10)
    assert specs["note"].shape == (6,) and specs["note"].vocab_size == len(pre.vocabularies["note"])
    assert specs["vec"].shape == (3,)
    assert specs["tabular"].shape == (2,)
    assert specs["tabular"].num_numeric == 1
    assert specs["tabular"].cardinalities == (4,)  # red, blue + missing + unknown

    enc = pre.transform(all_kinds, verbose=False)
    assert len(enc) == 6 and enc.rejected == []
    np.testing.assert_array_equal(enc.rows, np.arange(6))
    np.testing.assert_array_equal(enc.targets, [1, 0, 1, 0, 1, 0])  # classes ["no", "yes"]
    for m, spec in specs.items():
        assert enc.inputs[m].shape == (6, *spec.shape), m
        assert enc.inputs[m].dtype == (np.int64 if spec.kind == "text" else np.float32), m
        assert enc.mask[m].dtype == bool and enc.mask[m].shape == (6,)
        assert np.isfinite(enc.inputs[m]).all(), m
    masks = {m: enc.mask[m].tolist() for m in specs}
    assert masks["photo"] == [True, False, True, True, True, True]
    assert masks["note"] == [True, True, False, True, True, True]
    assert masks["vec"] == [True, True, True, True, False, True]
    assert masks["snd"] == [True, True, True, True, True, False]
    assert masks["clip"] == [True] * 6
    assert masks["clip_audio"] == [True, True, True, True, False, False]  # only 0-3 have a track
    assert masks["tabular"] == [True] * 6  # missing numbers and categories are imputed / coded
    for m in ("photo", "note", "vec", "snd", "clip_audio"):
        assert not enc.inputs[m][~enc.mask[m]].any(), f"{m}: a missing cell must be all zeros"
    np.testing.assert_allclose(enc.inputs["vec"][0], [0.1, 0.2, 0.3])
    assert enc.inputs["tabular"][3, 1] == 0  # missing category -> code 0
    assert enc.inputs["tabular"][2, 0] == enc.inputs["tabular"][3, 0]  # median-imputed 4.0


def test_text_uses_the_fitted_vocabulary(all_kinds: Table) -> None:
    pre = _fit(all_kinds, "note=text")
    vocab = pre.vocabularies["note"]
    enc = pre.transform(all_kinds, verbose=False)
    assert enc.inputs["note"][3].tolist() == [vocab.encode("good good", 6)[i] for i in range(6)]
    assert enc.inputs["note"][3, 0] == enc.inputs["note"][3, 1] > 1  # known token, twice
    assert enc.inputs["note"][3, 2:].tolist() == [0, 0, 0, 0]  # padding


def test_storage_round_trip_gives_identical_output(all_kinds: Table) -> None:
    pre = _fit(all_kinds, "note=text")
    stored = json.dumps(pre.to_dict())  # JSON-serialisable, no numpy or custom objects
    again = Preprocessor.from_dict(json.loads(stored))
    assert again.modalities == pre.modalities
    assert again.input_specs() == pre.input_specs()
    first = pre.transform(all_kinds, verbose=False)
    second = again.transform(all_kinds, verbose=False)
    for m in first.inputs:
        np.testing.assert_array_equal(first.inputs[m], second.inputs[m])
        np.testing.assert_array_equal(first.mask[m], second.mask[m])
    np.testing.assert_array_equal(first.targets, second.targets)
    assert json.dumps(again.to_dict()) == stored


def test_restrict(all_kinds: Table) -> None:
    pre = _fit(all_kinds, "note=text")
    sub = pre.restrict(["note", "clip_audio"])
    assert sub.modalities == {"clip_audio": "audio", "note": "text"}
    assert sub.input_specs() == {m: pre.input_specs()[m] for m in ("clip_audio", "note")}
    assert sub.tabular is None and sub.embedding_dims == {}
    enc = sub.transform(all_kinds, verbose=False)
    full = pre.transform(all_kinds, verbose=False)
    assert set(enc.inputs) == {"clip_audio", "note"}
    for m in enc.inputs:
        np.testing.assert_array_equal(enc.inputs[m], full.inputs[m])
    tab = pre.restrict(["tabular"])
    assert tab.modalities == {"tabular": "tabular"}
    assert tab.schema.kinds == {"price": "numeric", "colour": "categorical"}
    assert pre.modalities["photo"] == "image"  # the original is unchanged
    with pytest.raises(MmfuseError, match=r"unknown modalities \['sound'\]; known: clip, "):
        pre.restrict(["sound"])


def test_select_keeps_rows_and_targets(all_kinds: Table) -> None:
    enc = _fit(all_kinds, "note=text").transform(all_kinds, verbose=False)
    sub = enc.select(["photo"])
    assert list(sub.inputs) == ["photo"] and list(sub.mask) == ["photo"]
    assert sub.rows is enc.rows and sub.targets is enc.targets


# ------------------------------------------------------------------ bad records
@pytest.fixture
def simple(media, tmp_path: Path) -> pd.DataFrame:
    """N records: an image, a text, a numeric and a categorical column, and a label."""
    return pd.DataFrame(
        {
            "photo": [media.png(f"img/{i}.png", level=10 * i) for i in range(N)],
            "note": [f"note number {i} is {'good' if i % 2 else 'bad'}" for i in range(N)],
            "price": [float(i) for i in range(N)],
            "colour": ["red", "green"] * (N // 2),
            "label": ["yes", "no"] * (N // 2),
        }
    )


def test_missing_file_names_file_row_and_column(simple: pd.DataFrame, tmp_path: Path) -> None:
    simple.loc[3, "photo"] = "img/gone.png"
    table = _table(simple, tmp_path)
    pre = _fit(table)
    with pytest.raises(MmfuseError) as info:
        pre.transform(table, verbose=False)
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'data.csv'}: 1 bad value(s) in 1 record(s)")
    assert f"row 3, column 'photo': file not found: {tmp_path / 'img' / 'gone.png'}" in message
    assert "on_bad_record='skip'" in message  # called from Python: the keyword, not the flag


def test_missing_file_can_count_as_a_missing_modality(simple: pd.DataFrame, tmp_path: Path) -> None:
    simple.loc[3, "photo"] = "img/gone.png"
    table = _table(simple, tmp_path)
    enc = _fit(table).transform(table, missing_files="missing", verbose=False)
    assert len(enc) == N and enc.rejected == []
    assert enc.mask["photo"].tolist() == [i != 3 for i in range(N)]
    assert not enc.inputs["photo"][3].any()


def test_skip_drops_exactly_the_bad_rows_and_lists_them(
    simple: pd.DataFrame, tmp_path: Path
) -> None:
    (tmp_path / "img" / "bad.png").write_bytes(b"not a png")
    simple["price"] = simple["price"].astype(object)
    simple.loc[2, "photo"] = "img/gone.png"
    simple.loc[5, "photo"] = "img/bad.png"
    simple.loc[7, "price"] = "inf"
    simple.loc[9, "price"] = "cheap"
    simple.loc[11, "price"] = "NaN"  # missing: imputed, not an error
    simple.loc[12, "price"] = None  # missing: imputed, not an error
    simple.loc[14, "photo"] = "img/gone.png"
    simple.loc[14, "price"] = "-inf"  # two bad values in one record
    table = _table(simple, tmp_path)
    pre = _fit(table, kinds="price=numeric")
    enc = pre.transform(table, on_bad_record="skip", verbose=False)
    bad = {2, 5, 7, 9, 14}
    np.testing.assert_array_equal(enc.rows, [i for i in range(N) if i not in bad])
    assert len(enc.targets) == len(enc.inputs["photo"]) == len(enc.mask["note"]) == N - len(bad)
    assert [(r.row, r.column) for r in enc.rejected] == [
        (2, "photo"), (5, "photo"), (7, "price"), (9, "price"), (14, "photo"), (14, "price"),
    ]  # fmt: skip
    reasons = [r.reason for r in enc.rejected]
    assert reasons[0] == (
        f"file not found: {tmp_path / 'img' / 'gone.png'}; fix the path (a relative path starts at "
        f"{tmp_path}: the data file's folder, or base_dir='FOLDER') or pass "
        "missing_files='missing' to treat it as a missing image"  # from Python: the keywords
    )
    assert reasons[1].startswith(f"cannot decode image {tmp_path / 'img' / 'bad.png'}")
    assert reasons[2] == "'inf' is not a finite number"
    assert reasons[3] == "'cheap' is not a number"
    assert reasons[5] == "'-inf' is not a finite number"
    # the kept records are the right ones: the label alternates yes/no with the row number
    np.testing.assert_array_equal(enc.targets, [1.0 if r % 2 == 0 else 0.0 for r in enc.rows])
    with pytest.raises(MmfuseError, match=r"6 bad value\(s\) in 5 record\(s\)"):
        pre.transform(table, verbose=False)


def test_unparsable_csv_line_is_rejected_with_its_row(simple: pd.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    simple.to_csv(path, index=False)
    lines = path.read_text().splitlines()
    lines[4] += ",surplus"  # data row 3
    path.write_text("\n".join(lines) + "\n")
    table = read_table(path)
    pre = _fit(table)
    enc = pre.transform(table, on_bad_record="skip", verbose=False)
    assert enc.rejected == [Rejection(3, "", "expected 5 fields, found 6 (line 5)", table.name)]
    assert 3 not in enc.rows.tolist() and len(enc) == N - 1
    with pytest.raises(MmfuseError, match=r"row 3: expected 5 fields, found 6 \(line 5\)"):
        pre.transform(table, verbose=False)


def test_non_utf8_text_cell_is_rejected(simple: pd.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    simple.to_csv(path, index=False)
    path.write_bytes(path.read_bytes().replace(b"note number 6 ", b"note \xff\xfe 6 "))
    table = read_table(path)
    pre = _fit(table)
    enc = pre.transform(table, on_bad_record="skip", verbose=False)
    reason = (
        "the text is not valid UTF-8 (byte(s) 0xff 0xfe at character 5); save the file as UTF-8 "
        "(it looks like Latin-1 or another legacy encoding)"
    )
    assert enc.rejected == [Rejection(6, "note", reason, table.name)]
    assert 6 not in enc.rows.tolist()


def test_embedding_of_the_wrong_size_is_rejected(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {"vec": ["[1, 2, 3]", "[4, 5]", "[7, 8, 9]", "[1, 1, 1]"], "label": [0, 1, 0, 1]}
    )
    table = _table(frame, tmp_path)
    enc = _fit(table).transform(table, on_bad_record="skip", verbose=False)
    assert enc.rejected == [Rejection(1, "vec", "embedding has 2 values; expected 3", table.name)]


def test_unknown_class_and_missing_target_in_new_data(simple: pd.DataFrame, tmp_path: Path) -> None:
    table = _table(simple, tmp_path)
    pre = _fit(table)
    new = simple.copy()
    new.loc[1, "label"] = "maybe"
    new.loc[4, "label"] = None
    new_table = read_table(new, base_dir=tmp_path)
    with pytest.raises(MmfuseError) as info:
        pre.transform(new_table, verbose=False)
    assert "row 1, column 'label': unknown class 'maybe'; the model knows: no, yes" in str(
        info.value
    )
    assert "row 4, column 'label': the target is missing" in str(info.value)
    enc = pre.transform(new_table, on_bad_record="skip", verbose=False)
    assert [(r.row, r.column) for r in enc.rejected] == [(1, "label"), (4, "label")]
    # Without the target (prediction) the same records are fine.
    unlabelled = read_table(new.drop(columns="label"), base_dir=tmp_path)
    enc = pre.transform(unlabelled, with_target=False, verbose=False)
    assert len(enc) == N and enc.targets is None


def test_target_column_required_when_encoding_targets(simple: pd.DataFrame, tmp_path: Path) -> None:
    table = _table(simple, tmp_path)
    pre = _fit(table)
    unlabelled = read_table(simple.drop(columns="label"), base_dir=tmp_path)
    with pytest.raises(MmfuseError, match="target column 'label' is missing"):
        pre.transform(unlabelled, verbose=False)


def test_absent_media_column_is_missing_for_every_record(
    simple: pd.DataFrame, tmp_path: Path
) -> None:
    pre = _fit(_table(simple, tmp_path))
    enc = pre.transform(read_table(simple.drop(columns="photo"), base_dir=tmp_path), verbose=False)
    assert not enc.mask["photo"].any() and enc.mask["note"].all()


def test_every_record_bad_is_an_error_even_when_skipping(
    simple: pd.DataFrame, tmp_path: Path
) -> None:
    pre = _fit(_table(simple, tmp_path))
    broken = simple.assign(photo="img/gone.png")
    with pytest.raises(MmfuseError, match="every record is bad"):
        pre.transform(read_table(broken, base_dir=tmp_path), on_bad_record="skip", verbose=False)


def test_regression_targets_are_standardised(simple: pd.DataFrame, tmp_path: Path) -> None:
    simple["label"] = np.linspace(0.5, 10.0, N)
    table = _table(simple, tmp_path)
    enc = _fit(table, task="regression").transform(table, verbose=False)
    assert enc.targets.mean() == pytest.approx(0.0, abs=1e-6)
    assert enc.targets.std() == pytest.approx(1.0, rel=1e-5)


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("on_bad_record", "ignore", "unknown on_bad_record 'ignore'; choose one of: raise, skip"),
        ("missing_files", "skip", "unknown missing_files 'skip'; choose one of: error, missing"),
    ],
)
def test_bad_policy_names(
    simple: pd.DataFrame, tmp_path: Path, option: str, value: str, message: str
) -> None:
    table = _table(simple, tmp_path)
    with pytest.raises(MmfuseError, match=message):
        _fit(table).transform(table, verbose=False, **{option: value})
