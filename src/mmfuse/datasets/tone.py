"""Spoken sentences whose label depends on the words **and** on how they are said, spoken by
espeak-ng voices, with the test speakers never heard in training (``make_tone_dataset``).

Each clip says one sentence that praises or criticises something ("The garden was wonderful.")
in one of two tones:

* **lively**: wide pitch range, raised pitch, fast and loud;
* **flat**: narrow pitch range (near monotone), slightly lowered pitch, slow and soft.

Within each tone the range, pitch, rate and volume are drawn at random, and the two tones
overlap a little. The label crosses words and tone (an XOR: neither alone tells it):

======================  =================  ===============================
words                   lively             flat
======================  =================  ===============================
praise                  ``happy`` (+)      ``sarcastic`` (-)
criticism               ``angry`` (-)      ``sad`` (-)
======================  =================  ===============================

``sentiment`` is a score in [-3, 3] (the CMU-MOSI convention): happy ``+1.5 s``, sarcastic
``-1 s``, angry ``-1.5 s``, sad ``-0.5 s``, where ``s`` is 1 for a mild word ("good", "bad") and 2
for a strong one ("wonderful", "terrible"). The transcript carries the words and their
strength; only the voice carries the tone.

Speakers are espeak-ng accents x voice variants, each with its own base pitch; the test
speakers' accent-variant pairs never occur in train.csv. Written files: ``train.csv`` and
``test.csv`` (``transcript``, ``audio``, ``speaker_id``, ``emotion``, ``sentiment``), ``audio/*.wav``
and ``README.md``. Fit on ``--features transcript,audio`` (``sentiment`` is the other target).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd

from mmfuse.errors import MmfuseError

ACCENTS = ("en-us", "en", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-gb-x-gbclan", "en-gb-x-gbcwmd")
# "en" is espeak-ng's British English; "en-gb" would ignore the variant (every "en-gb+..." the same voice)
VARIANTS = ("m1", "m2", "m3", "m4", "m7", "f1", "f2", "f3", "f4", "f5", "croak", "klatt")
PRAISE = {"good": 1, "nice": 1, "fine": 1, "pleasant": 1,
          "wonderful": 2, "amazing": 2, "fantastic": 2, "brilliant": 2, "superb": 2}
CRITICISM = {"bad": 1, "poor": 1, "dull": 1, "weak": 1,
             "awful": 2, "terrible": 2, "horrible": 2, "dreadful": 2, "appalling": 2}
NOUNS = ("garden", "concert", "meal", "film", "hotel", "lecture", "match", "trip", "party", "book",
         "weather", "service", "show", "game", "interview", "holiday")
TEMPLATES = ("The {noun} was {adj}.", "Well, the {noun} was really {adj}.", "I thought the {noun} was {adj}.",
             "Honestly, that {noun} was {adj}.", "What a {adj} {noun} that was.", "Oh, the {noun}? It was {adj}.")
EMOTIONS = {("praise", "lively"): ("happy", 1.5), ("praise", "flat"): ("sarcastic", -1.0),
            ("criticism", "lively"): ("angry", -1.5), ("criticism", "flat"): ("sad", -0.5)}


def make_tone_dataset(out_dir: str | Path, speakers: int = 24, test_speakers: int = 8,
                      clips_per_speaker: int = 24, seed: int = 0) -> Path:
    """Writes the dataset described in the module docstring under ``out_dir``.

    Raises:
        MmfuseError: espeak-ng is not installed, or the sizes are impossible.
    """
    if shutil.which("espeak-ng") is None:
        raise MmfuseError("the tone dataset is spoken by espeak-ng: install it (Debian: apt-get install espeak-ng)")
    pairs = [(a, v) for v in VARIANTS for a in ACCENTS]
    if not 1 <= test_speakers < speakers <= len(pairs) or clips_per_speaker < 4:
        raise MmfuseError(f"need 1 <= test_speakers < speakers <= {len(pairs)} and at least 4 clips per speaker")
    rng = np.random.default_rng(seed)
    chosen = [pairs[i] for i in rng.choice(len(pairs), speakers, replace=False)]
    out = Path(out_dir)
    (out / "audio").mkdir(parents=True, exist_ok=True)
    rows = []
    for s, (accent, variant) in enumerate(chosen):
        base_pitch = int(rng.integers(40, 71))  # lower, espeak-ng's voices creak (pitch trackers err)
        cells = [(w, t) for w in ("praise", "criticism") for t in ("lively", "flat")]
        for c in range(clips_per_speaker):
            words, tone = cells[c % 4]  # every speaker says every kind equally often
            rows.append(_clip(out, len(rows), s, accent, variant, base_pitch, words, tone, rng))
    table = pd.DataFrame(rows)
    test = table["speaker"] >= speakers - test_speakers
    columns = ["transcript", "audio", "speaker_id", "emotion", "sentiment"]
    table.loc[~test, columns].sample(frac=1.0, random_state=seed).to_csv(out / "train.csv", index=False)
    table.loc[test, columns].to_csv(out / "test.csv", index=False)
    (out / "README.md").write_text(_readme(speakers, test_speakers, clips_per_speaker, seed), encoding="utf-8")
    return out


def _clip(out: Path, i: int, speaker: int, accent: str, variant: str, base_pitch: int, words: str,
          tone: str, rng: np.random.Generator) -> dict[str, object]:
    lexicon = PRAISE if words == "praise" else CRITICISM
    adj = str(rng.choice(sorted(lexicon)))
    sentence = str(rng.choice(TEMPLATES)).format(noun=rng.choice(NOUNS), adj=adj)
    sentence = sentence[0].upper() + sentence[1:]
    if tone == "lively":
        prosody = dict(range=rng.choice(["medium", "high", "x-high"], p=[0.15, 0.45, 0.4]),
                       pitch=f"+{int(rng.integers(5, 26))}%", rate=f"{int(rng.integers(105, 146))}%",
                       volume=rng.choice(["medium", "loud", "x-loud"], p=[0.2, 0.5, 0.3]))
    else:
        prosody = dict(range=rng.choice(["x-low", "low", "medium"], p=[0.4, 0.45, 0.15]),
                       pitch=f"-{int(rng.integers(0, 11))}%", rate=f"{int(rng.integers(65, 101))}%",
                       volume=rng.choice(["soft", "medium"], p=[0.6, 0.4]))
    attributes = " ".join(f'{k}="{v}"' for k, v in prosody.items())
    ssml = f"<speak><prosody {attributes}>{sentence}</prosody></speak>"
    name = f"audio/clip_{i:05d}.wav"
    subprocess.run(["espeak-ng", "-m", "-v", f"{accent}+{variant}", "-p", str(base_pitch), "-w", str(out / name), ssml],
                   check=True, capture_output=True)
    emotion, sign = EMOTIONS[(words, tone)]
    return {"transcript": sentence, "audio": name, "speaker_id": f"{accent}+{variant}", "speaker": speaker,
            "emotion": emotion, "sentiment": sign * lexicon[adj]}


def _readme(speakers: int, test_speakers: int, clips: int, seed: int) -> str:
    doc = (__doc__ or "").strip()
    return (f"# Tone dataset (mmfuse.datasets.tone.make_tone_dataset)\n\n"
            f"make_tone_dataset(speakers={speakers}, test_speakers={test_speakers}, clips_per_speaker={clips}, "
            f"seed={seed}): {(speakers - test_speakers) * clips} training clips, {test_speakers * clips} test "
            f"clips by speakers never heard in training.\n\n{doc}\n\n"
            "    mmfuse fit train.csv --target emotion --features transcript,audio --out model\n"
            "    mmfuse evaluate model test.csv\n")
