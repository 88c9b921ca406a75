"""Synthetic emotional speech corpus: espeak binding, sentence bank, splits, prosody."""

from __future__ import annotations

from pathlib import Path

import librosa
import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from omegaconf import OmegaConf

from speechexp.data import espeak
from speechexp.data.emotion_splits import split_groups
from speechexp.data.emotional_speech import METADATA_COLUMNS, EmotionalSpeechPreparer
from speechexp.data.sentences import sentence_bank, vocabulary_of
from speechexp.errors import SpeechexpError
from speechexp.runs.build import build_preparer

CONF = Path(__file__).resolve().parents[1] / "conf" / "dataset"
SMALL = dict(num_speakers=10, utterances_per_speaker=10, num_sentences=40, val_fraction=0.2,
             test_fraction=0.2, seed=3)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("data")
    folder = EmotionalSpeechPreparer(**SMALL, num_workers=1).prepare(data_dir)  # the serial build
    return folder, pd.read_csv(folder / "metadata.csv", keep_default_na=False)


def test_espeak_synthesises_distinct_voices_in_memory():
    a = espeak.synthesize("Hello there, how are you?", "en-us+m3")
    b = espeak.synthesize("Hello there, how are you?", "en-gb-x-rp+f2")
    assert espeak.sample_rate() == 22050
    assert a.dtype == np.float32 and 0.5 < a.size / 22050 < 4
    assert np.abs(a).max() > 0.05
    f0_a = np.median(librosa.yin(a, fmin=60, fmax=500, sr=22050))
    f0_b = np.median(librosa.yin(b, fmin=60, fmax=500, sr=22050))
    assert f0_b > f0_a * 1.3  # female variant clearly higher than male3
    assert np.array_equal(a, espeak.synthesize("Hello there, how are you?", "en-us+m3"))


def test_espeak_corpus_voices_do_not_depend_on_what_was_synthesised_before():
    """The corpus' workers synthesise in any order: every human variant, with and without
    prosody and a seed, says the same samples again after all the others in shuffled order."""
    calls = [(text, f"en-us+{variant}", espeak.Prosody(rate=rate, pitch=pitch), seed)
             for number, variant in enumerate(espeak.HUMAN_VARIANTS)
             for text, rate, pitch, seed in (("front right", 175, 50, 0), ("Where is the bag?", 140, 70, number))]
    first = [espeak.synthesize(*call) for call in calls]
    order = np.random.default_rng(0).permutation(len(calls))
    again = {int(i): espeak.synthesize(*calls[i]) for i in order}
    assert all(np.array_equal(first[i], again[i]) for i in range(len(calls)))


def test_espeak_unknown_voice_is_a_user_error():
    with pytest.raises(SpeechexpError, match="no voice named 'xx-nope"):
        espeak.synthesize("hi", "xx-nope+zz")


def test_sentence_bank_is_seeded_and_diverse():
    bank = sentence_bank(400, seed=0)
    assert len(bank) == len(set(bank)) == 400
    assert bank == sentence_bank(400, seed=0)
    assert bank != sentence_bank(400, seed=1)
    assert 250 <= len(vocabulary_of(bank)) <= 600
    lengths = [len(s.split()) for s in bank]
    assert min(lengths) >= 3 and max(lengths) <= 12
    assert all(s[0].isupper() and s[-1] in ".?" for s in bank)


def test_split_groups_is_disjoint_seeded_and_sized():
    groups = [f"g{i}" for i in range(20)]
    a = split_groups(groups, 0.1, 0.2, seed=5)
    assert a == split_groups(list(reversed(groups)), 0.1, 0.2, seed=5)
    assert sorted(a.values()).count("test") == 4 and sorted(a.values()).count("val") == 2
    tiny = split_groups(["a", "b", "c"], 0.1, 0.1, seed=0)
    assert sorted(tiny.values()) == ["test", "train", "val"]
    with pytest.raises(SpeechexpError, match=r"val_fraction=0.5 and test_fraction=0.6 leave no training data"):
        split_groups(groups, 0.5, 0.6)


def test_default_config_has_many_voices():
    prep = EmotionalSpeechPreparer()
    pool = len(espeak.ENGLISH_BASE_VOICES) * len(espeak.HUMAN_VARIANTS)
    assert pool >= 60 and set(espeak.HUMAN_VARIANTS) <= set(espeak.available_variants())
    voices = prep.espeak_voices()
    assert len(set(voices)) == prep.num_speakers >= 60
    assert len({b for b, _ in voices}) == len(espeak.ENGLISH_BASE_VOICES)
    assert 3000 <= prep.num_speakers * prep.utterances_per_speaker <= 4000


def test_metadata_and_audio_are_consistent(corpus):
    folder, meta = corpus
    assert list(meta.columns) == METADATA_COLUMNS
    assert len(meta) == 100
    for row in meta.itertuples():
        path = folder / row.path
        info = sf.info(str(path))
        assert info.samplerate == 16000 and info.channels == 1
        assert abs(info.frames / 16000 - row.duration) < 1e-3
    audio, _ = sf.read(str(folder / meta.path[0]))
    assert np.sqrt(np.mean(audio**2)) > 0.01  # not silent
    # longer sentences take longer once the speaking rate is factored out
    assert np.corrcoef(meta.duration * meta.rate, meta.text.str.len())[0, 1] > 0.7
    assert (folder / "sentences.csv").is_file() and (folder / "summary.json").is_file()
    assert set(meta.gender) <= {"male", "female", ""} and "male" in set(meta.gender)


def test_splits_are_speaker_and_sentence_disjoint(corpus):
    _, meta = corpus
    parts = {s: meta[meta.split == s] for s in ("train", "val", "test")}
    assert all(len(p) for p in parts.values())
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        assert not set(parts[a].speaker) & set(parts[b].speaker)
        assert not set(parts[a].sentence_id) & set(parts[b].sentence_id)
        assert not set(parts[a].text) & set(parts[b].text)
    assert meta.groupby("speaker").split.nunique().max() == 1


def test_emotions_are_balanced(corpus):
    _, meta = corpus
    counts = meta.emotion.value_counts()
    assert sorted(counts.index) == ["angry", "fearful", "happy", "neutral", "sad"]
    assert counts.min() == counts.max() == 20
    per_speaker = meta.groupby(["speaker", "emotion"]).size()
    assert per_speaker.min() == per_speaker.max() == 2


def test_emotions_differ_in_prosody_relative_to_voice(corpus):
    _, meta = corpus
    means = meta.groupby("emotion")[["rate", "pitch", "pitch_range", "volume"]].mean()
    assert means.rate["sad"] < means.rate["neutral"] < means.rate["fearful"]
    assert means.pitch["sad"] < means.pitch["neutral"] < means.pitch["happy"]
    assert means.volume["sad"] < means.volume["neutral"] < means.volume["angry"]
    assert means.pitch_range["fearful"] < means.pitch_range["neutral"] < means.pitch_range["happy"]
    # jitter makes the classes overlap: some sad utterance is faster than some neutral one
    assert meta[meta.emotion == "sad"].rate.max() > meta[meta.emotion == "neutral"].rate.min() - 40


def test_rendered_audio_carries_the_emotion():
    prep = EmotionalSpeechPreparer(jitter=0, speaker_spread=0, snr_db=None)
    targets = prep.emotion_targets()
    text = "The old man carried a heavy basket to the market."
    measured = {}
    for emotion, t in targets.items():
        utt = {"speaker": "en-us+m3", "text": text, "rate": round(175 * t["rate"]),
               "pitch": 50 + t["pitch"], "pitch_range": 50 + t["pitch_range"],
               "volume": round(100 * t["volume"]), "word_gap": t["word_gap"], "tilt": t["tilt"]}
        audio = prep.render(utt, 0)
        rms = librosa.feature.rms(y=audio, frame_length=2048, hop_length=512)[0]
        f0 = librosa.yin(audio, fmin=60, fmax=400, sr=16000, frame_length=2048, hop_length=512)
        n = min(len(rms), len(f0))
        voiced = rms[:n] > 0.3 * rms.max()
        measured[emotion] = (audio.size / 16000, float(np.median(f0[:n][voiced])), float(np.sqrt(np.mean(audio**2))))
    dur = {e: m[0] for e, m in measured.items()}
    f0 = {e: m[1] for e, m in measured.items()}
    loud = {e: m[2] for e, m in measured.items()}
    assert dur["sad"] > 1.2 * dur["neutral"] > 1.2 * dur["fearful"]
    assert f0["sad"] < f0["neutral"] < f0["happy"] and f0["neutral"] < f0["fearful"]
    assert loud["sad"] < loud["neutral"] < loud["angry"]


def test_prepare_is_seeded_and_reused(tmp_path, corpus):
    folder, meta = corpus
    again = EmotionalSpeechPreparer(**SMALL).prepare(tmp_path)
    assert again.name == folder.name  # same config, same fingerprint
    assert pd.read_csv(again / "metadata.csv", keep_default_na=False).equals(meta)
    for rel in meta.path[:5]:
        assert (again / rel).read_bytes() == (folder / rel).read_bytes()
    stamp = (again / "metadata.csv").stat().st_mtime_ns
    assert EmotionalSpeechPreparer(**SMALL).prepare(tmp_path) == again
    assert (again / "metadata.csv").stat().st_mtime_ns == stamp
    other = EmotionalSpeechPreparer(**{**SMALL, "seed": 4})
    assert other.folder(tmp_path) != again


def test_parallel_synthesis_writes_the_same_folder_byte_for_byte(tmp_path, corpus, caplog):
    serial, _ = corpus
    caplog.set_level("INFO")
    parallel = EmotionalSpeechPreparer(**SMALL, num_workers=2).prepare(tmp_path)
    assert "in 2 process(es)" in caplog.text
    assert parallel.name == serial.name  # the worker count is not part of the dataset's identity
    assert "Synthesis: 100%" in caplog.text and "100/100" in caplog.text  # the progress line (not a tty)

    def files(root):
        return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())

    assert files(parallel) == files(serial) and len(files(serial)) == 100 + 4
    for rel in files(serial):
        assert (parallel / rel).read_bytes() == (serial / rel).read_bytes(), rel


def test_configured_emotions_and_errors():
    prep = EmotionalSpeechPreparer(emotions=["neutral", "surprised", "calm"], num_speakers=6,
                                   utterances_per_speaker=3, num_sentences=12)
    utts, _ = prep.plan()
    assert sorted({u["emotion"] for u in utts}) == ["calm", "neutral", "surprised"]
    with pytest.raises(SpeechexpError, match="no prosody preset"):
        EmotionalSpeechPreparer(emotions=["bored"]).plan()
    custom = EmotionalSpeechPreparer(emotions=["bored"], prosody={"bored": {"rate": 0.6}})
    assert custom.emotion_targets()["bored"]["rate"] == 0.6
    with pytest.raises(SpeechexpError, match="num_speakers"):
        EmotionalSpeechPreparer(num_speakers=10_000).plan()
    for too_few in ({"num_speakers": 2}, {"num_sentences": 0}, {"utterances_per_speaker": 0}):  # refused when built,
        with pytest.raises(SpeechexpError, match=r"needs num_speakers >= 3, num_sentences >= 3 and "  # as pre-flights do
                                                 r"utterances_per_speaker >= 1; raise them\.$"):
            EmotionalSpeechPreparer(**too_few)
    with pytest.raises(SpeechexpError, match=r"general_sentences=1.5 is not a share"):
        EmotionalSpeechPreparer(general_sentences=1.5)


def test_silence_surrounds_each_utterance_at_the_noise_floor_and_names_a_new_corpus():
    utt = {"speaker": "en-us+m3", "text": "The old man carried a heavy basket.", "rate": 175, "pitch": 50,
           "pitch_range": 50, "volume": 100, "word_gap": 0, "tilt": 0.0}
    tight, padded = EmotionalSpeechPreparer(snr_db=None), EmotionalSpeechPreparer(snr_db=None, silence_s=0.5)
    leads = []
    for index in range(6):
        speech, audio = tight.render(utt, index), padded.render(utt, index)
        added = audio.size - speech.size
        assert 0 < added <= 16000  # two silences of 0 to 0.5 s each
        lead = int(np.flatnonzero(audio)[0] - np.flatnonzero(speech)[0])
        np.testing.assert_array_equal(audio[lead:lead + speech.size], speech)  # the same speech, moved
        assert not audio[:lead].any() and not audio[lead + speech.size:].any()
        leads.append(lead)
    assert len(set(leads)) == 6  # each utterance draws its own silences
    index = int(np.argmax(leads))  # with noise, the silence carries the speech's noise floor
    noisy = EmotionalSpeechPreparer(snr_db=30.0, silence_s=0.5).render(utt, index)
    rms = float(np.sqrt(np.mean(tight.render(utt, index) ** 2)))
    floor = float(np.sqrt(np.mean(noisy[: leads[index]] ** 2)))
    assert 20 * np.log10(rms / floor) == pytest.approx(30.0, abs=1.0)
    assert EmotionalSpeechPreparer(silence_s=0.0).fingerprint() == EmotionalSpeechPreparer().fingerprint()
    assert EmotionalSpeechPreparer(silence_s=0.5).fingerprint() != EmotionalSpeechPreparer().fingerprint()
    with pytest.raises(SpeechexpError, match="silence_s=-1"):
        EmotionalSpeechPreparer(silence_s=-1)


def test_speaker_rates_spread_each_speakers_speaking_rate_and_change_nothing_else():
    sizes = dict(num_speakers=40, utterances_per_speaker=5, num_sentences=40)
    usual, _ = EmotionalSpeechPreparer(**sizes).plan()
    spread_prep = EmotionalSpeechPreparer(**sizes, speaker_rates=[0.5, 1.0])
    spread, _ = spread_prep.plan()
    assert [{k: v for k, v in u.items() if k != "rate"} for u in usual] == \
        [{k: v for k, v in u.items() if k != "rate"} for u in spread]
    targets = spread_prep.emotion_targets()

    def baselines(utterances: list[dict]) -> np.ndarray:
        """Each speaker's median rate relative to espeak's 175 wpm and its emotion's factor."""
        by_speaker: dict[str, list[float]] = {}
        for u in utterances:
            by_speaker.setdefault(u["speaker"], []).append(u["rate"] / (175 * targets[u["emotion"]]["rate"]))
        return np.array([np.median(v) for v in by_speaker.values()])

    assert np.all((baselines(usual) > 0.75) & (baselines(usual) < 1.25))
    spread_baselines = baselines(spread)
    assert np.all((spread_baselines > 0.45) & (spread_baselines < 1.08))
    assert spread_baselines.min() < 0.6 and spread_baselines.max() > 0.9
    assert EmotionalSpeechPreparer(speaker_rates=None).fingerprint() == EmotionalSpeechPreparer().fingerprint()
    assert spread_prep.fingerprint() != EmotionalSpeechPreparer().fingerprint()
    for wrong in ([1.1, 0.5], [0.1, 1.0], [0.5]):
        with pytest.raises(SpeechexpError, match=r"speaker_rates=.* is not a range of speaking rates"):
            EmotionalSpeechPreparer(speaker_rates=wrong)


def test_yaml_config_instantiates_with_same_fingerprint_as_defaults():
    cfg = OmegaConf.create({"dataset": OmegaConf.load(CONF / "emotional_speech.yaml")})
    prep = build_preparer(cfg.dataset)
    assert isinstance(prep, EmotionalSpeechPreparer) and type(prep.emotions) is list  # plain data, not a ListConfig
    assert prep.fingerprint() == EmotionalSpeechPreparer().fingerprint()
    assert cfg.dataset.datamodule.emotions == prep.emotions
