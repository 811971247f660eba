"""``mmfuse summarize`` end to end on generated videos with known important moments: shots at
the known cuts, the events kept and the silent decoys left out, picture and sound in the
summary, and clear messages for videos that are not what they claim."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mmfuse.cli.main import main
from mmfuse.datasets.summary_videos import make_summary_videos
from mmfuse.datasets.video_file import encode_mp4
from mmfuse.errors import MmfuseError
from mmfuse.summarize.shots import detect_shots, split_long
from mmfuse.summarize.video import SummaryOptions, shot_scores, summarize_video
from mmfuse.summarize.writer import _clock

pytest.importorskip("scenedetect")


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_summary_videos(tmp_path_factory.mktemp("videos"), videos=2, seed=3)


@pytest.fixture(scope="module")
def reference(videos: Path) -> pd.DataFrame:
    return pd.read_csv(videos / "shots.csv")


def _kinds(video: str, reference: pd.DataFrame) -> pd.DataFrame:
    return reference[reference["video"] == video]


def test_shots_start_at_the_known_cuts(videos: Path, reference: pd.DataFrame) -> None:
    ref = _kinds("videos/video_0.mp4", reference)
    shots = detect_shots(videos / "videos/video_0.mp4")
    cut_times = shots.bounds[shots.cuts, 0]
    moments = ref[ref["kind"] != "filler"]
    # every event and decoy begins and ends with a hard cut (filler-to-filler changes are soft)
    for t in np.concatenate([moments["start"], moments["end"]]):
        assert np.abs(cut_times - t).min() <= 1 / 8 + 1e-6
    assert shots.lengths.max() <= 5.0 + 1e-9
    assert shots.bounds[0, 0] == 0 and shots.bounds[-1, 1] == pytest.approx(ref["end"].max(), abs=0.2)


def test_split_long_makes_equal_parts() -> None:
    shots = split_long(np.array([[0.0, 12.0], [12.0, 14.0]]), 5.0, 14.0, 25.0)
    np.testing.assert_allclose(shots.bounds, [[0, 4], [4, 8], [8, 12], [12, 14]])
    assert shots.cuts.tolist() == [True, False, False, True]


@pytest.mark.parametrize("name", ["videos/video_0.mp4", "videos/video_1.mp4"])
def test_sound_tells_the_events_from_the_decoys(videos: Path, reference: pd.DataFrame, name: str) -> None:
    """Events and decoys are equally new to the eye; only events make a sound. Fused scoring
    ranks every event above every decoy and keeps the events; picture alone cannot."""
    ref = _kinds(name, reference)
    events = ref[ref["kind"] == "event"]
    ratio = ((events["end"] - events["start"]).sum() + 1.0) / ref["end"].max()  # room for the events

    def by_kind(scoring: str) -> tuple[dict[str, list[float]], dict[str, list[bool]]]:
        bounds, scores, selected, _ = shot_scores(videos / name, SummaryOptions(ratio=ratio, scoring=scoring))
        middle = bounds.mean(1)
        score, kept = {"event": [], "decoy": []}, {"event": [], "decoy": []}
        for _, row in ref[ref["kind"] != "filler"].iterrows():
            inside = (middle > row.start) & (middle < row.end)
            score[row.kind].append(float(scores[inside].max()))
            kept[row.kind].append(bool(selected[inside].any()))
        return score, kept

    fused, fused_kept = by_kind("fused")
    assert min(fused["event"]) > max(fused["decoy"])
    assert all(fused_kept["event"]) and not any(fused_kept["decoy"])
    picture, _ = by_kind("picture")
    assert min(picture["event"]) < max(picture["decoy"])  # the picture alone ranks a decoy above an event


def test_summary_files_with_picture_and_sound(videos: Path, tmp_path: Path) -> None:
    import av

    s = summarize_video(videos / "videos/video_0.mp4", tmp_path, SummaryOptions(ratio=0.15), verbose=False)
    assert s["summary_seconds"] <= s["budget_seconds"] + 1e-6 and s["sound"] is True
    shots = pd.read_csv(tmp_path / "shots.csv")
    assert list(shots.columns) == ["shot", "start", "end", "score", "selected"]
    assert shots["selected"].sum() == s["selected"] and shots["score"].between(0, 1).all()
    with av.open(str(tmp_path / "summary.mp4")) as clip:
        assert {st.type for st in clip.streams} == {"video", "audio"}
        frames = sum(1 for _ in clip.decode(video=0))
    assert frames / 8 == pytest.approx(s["summary_seconds"], abs=0.2)
    with av.open(str(tmp_path / "summary.mp4")) as clip:
        sound = np.concatenate([f.to_ndarray().ravel() for f in clip.decode(audio=0)])
    assert len(sound) / 16000 == pytest.approx(s["summary_seconds"], abs=0.2)
    assert np.sqrt(np.mean(sound**2)) > 0.1  # the events' sound, not the quiet filler's
    from PIL import Image

    assert Image.open(tmp_path / "keyframes.png").size[0] > 160


def test_a_video_without_sound_is_scored_on_the_picture(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(0)
    frames = np.concatenate([np.full((40, 64, 64, 3), c, np.uint8) for c in (40, 200, 40, 120)])
    frames = np.clip(frames + rng.normal(0, 2, frames.shape), 0, 255).astype(np.uint8)
    encode_mp4(tmp_path / "silent.mp4", frames, None, fps=8)
    s = summarize_video(tmp_path / "silent.mp4", tmp_path / "out", SummaryOptions(ratio=0.3))
    assert (s["sound"], s["scoring"]) == (False, "picture")
    assert "no audio track: scored on the picture only" in capsys.readouterr().err


def test_a_short_uncut_clip_keeps_the_start_of_its_best_segment(tmp_path: Path) -> None:
    frames = np.clip(np.random.default_rng(0).normal(120, 3, (24, 32, 32, 3)), 0, 255).astype(np.uint8)
    encode_mp4(tmp_path / "short.mp4", frames, np.zeros(3 * 1024, np.float32), fps=8)  # 3 s, no cut
    s = summarize_video(tmp_path / "short.mp4", tmp_path / "out", SummaryOptions(ratio=0.5), verbose=False)
    assert s["trimmed"] is True and s["selected"] == 1
    assert s["summary_seconds"] == pytest.approx(1.5, abs=1 / 8)  # half of 3 s, whole frames


def _variable_rate_video(path: Path) -> None:
    """64 px, 10 fps for 4 s then 2 fps for 6 s; grey, then red from 7 s on."""
    from fractions import Fraction

    import av

    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width = stream.height = 64
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        for t in [*np.arange(0, 4, 0.1), *np.arange(4, 10, 0.5)]:
            colour = (200, 30, 30) if t >= 7 else (120, 120, 120)
            frame = av.VideoFrame.from_ndarray(np.full((64, 64, 3), colour, np.uint8), format="rgb24")
            frame.pts, frame.time_base = int(round(t * 1000)), Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def test_a_variable_frame_rate_keeps_its_times(tmp_path: Path) -> None:
    import av

    from mmfuse.summarize.writer import write_clip

    _variable_rate_video(tmp_path / "vfr.mp4")
    shots = detect_shots(tmp_path / "vfr.mp4", min_seconds=0.1)
    assert shots.duration == pytest.approx(10.0, abs=0.5)
    assert np.abs(shots.bounds[shots.cuts, 0] - 7.0).min() < 0.1  # the cut, 7 s in (the 47th frame)
    seconds = write_clip(tmp_path / "vfr.mp4", np.array([[2.0, 5.0], [7.0, 9.6]]), tmp_path / "s.mp4")
    with av.open(str(tmp_path / "s.mp4")) as clip:
        times = [round(float(f.time), 3) for f in clip.decode(video=0)]
    assert seconds == pytest.approx(5.6)
    # 2.0-3.9 s at 10 fps, 4.0-4.5 at 2 fps, then the red stretch 7.0-9.5 from 3.0 s on
    assert times == [*np.round(np.arange(0, 2, 0.1), 3), 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 5.5]


@pytest.mark.parametrize(
    ("content", "match"),
    [(b"", "cannot open|frame"), (None, "at least two")],
)
def test_files_that_are_not_videos_are_named(tmp_path: Path, content: bytes | None, match: str) -> None:
    path = tmp_path / "clip.mp4"
    if content is None:  # a still image renamed .mp4
        from PIL import Image

        Image.new("RGB", (32, 32), "red").save(tmp_path / "still.png")
        (tmp_path / "still.png").rename(path)
    else:
        path.write_bytes(content)
    with pytest.raises(MmfuseError, match=match) as err:
        summarize_video(path, tmp_path / "out", SummaryOptions(), verbose=False)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("ratio", [0.0, 1.0, -0.2, 1.5])
def test_ratio_outside_zero_one_is_refused(ratio: float) -> None:
    with pytest.raises(MmfuseError, match="--ratio must be between 0 and 1"):
        SummaryOptions(ratio=ratio)


def test_cli_table_lists_each_video_and_rejects_missing_ones(videos: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    table = tmp_path / "videos.csv"
    pd.DataFrame({"clip": [str(videos / "videos/video_1.mp4"), str(tmp_path / "gone.mp4")],
                  "title": ["one", "two"]}).to_csv(table, index=False)
    assert main(["summarize", str(table), "--out", str(tmp_path / "out"), "--no-video", "--quiet",
                 "--column", "clip"]) == 0
    done = pd.read_csv(tmp_path / "out" / "summaries.csv")
    assert done["row"].tolist() == [0] and (tmp_path / "out" / "row0_video_1" / "shots.csv").exists()
    assert not (tmp_path / "out" / "row0_video_1" / "summary.mp4").exists()
    rejected = pd.read_csv(tmp_path / "out" / "rejected.csv")
    assert rejected["row"].tolist() == [1] and "gone.mp4" in rejected["reason"][0]
    assert "left out 1 row(s)" in capsys.readouterr().out


def test_cli_refuses_a_bad_ratio_without_a_traceback(videos: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["summarize", str(videos / "videos/video_0.mp4"), "--out", str(tmp_path), "--ratio", "2"]) == 2
    assert "--ratio must be between 0 and 1" in capsys.readouterr().err


def test_clock() -> None:
    assert [_clock(5.25), _clock(75.0), _clock(3725.5)] == ["0:05.2", "1:15.0", "1:02:05.5"]
