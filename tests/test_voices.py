"""Voices beyond espeak: engines, pseudo-speakers, leave-one-voice-out splits, general text,
recording channels (issue 22). Engine tests run where `make voices` installed the engine."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest

from speechexp.data import channel, tts
from speechexp.data.emotional_speech import NATURAL_LEVEL_DBFS, EmotionalSpeechPreparer, parse_channel
from speechexp.errors import SpeechexpError
from speechexp.io import write_csv_atomic
from speechexp.runs.build import build_preparer
from tests.conftest import REPO, cli_env, compose_config, run_cli, run_script

NATURAL = ["flite:kal16", "flite:awb", "flite:rms", "piper:joe", "festival:ked"]


def dominant_hz(audio: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(audio.size)))
    return float(np.fft.rfftfreq(audio.size, 1 / rate)[spectrum.argmax()])


def test_warp_moves_every_frequency_and_the_duration_by_its_factor():
    rate = 16000
    tone = np.sin(2 * np.pi * 200 * np.arange(rate) / rate).astype(np.float32)
    warped = channel.warp(tone, rate, 1.2, rate)
    assert abs(warped.size - rate / 1.2) <= 2
    assert dominant_hz(warped, rate) == pytest.approx(240, abs=2)
    assert channel.warp(tone, 22050, 1.0, rate).size == pytest.approx(rate * rate / 22050, abs=2)


@pytest.mark.parametrize("kind", channel.KINDS)
def test_degrade_keeps_length_and_level_and_adds_what_it_says(kind):
    rng = np.random.default_rng(0)
    rate = 16000
    clean = (0.3 * np.sin(2 * np.pi * 440 * np.arange(2 * rate) / rate)).astype(np.float32)
    condition = channel.Degradation(kind, 10.0 if "noise" in kind else None, 0.4 if "reverb" in kind else None)
    out = channel.degrade(clean, rate, condition, rng)
    assert out.shape == clean.shape and out.dtype == np.float32
    assert np.sqrt(np.mean(out**2)) == pytest.approx(np.sqrt(np.mean(clean**2)), rel=0.02)
    if kind == "noise":  # signal-to-noise ratio as drawn: the residual after the tone
        scale = np.dot(out, clean) / np.dot(clean, clean)
        snr = 10 * np.log10(np.sum((scale * clean) ** 2) / np.sum((out - scale * clean) ** 2))
        assert snr == pytest.approx(10.0, abs=0.5)
    if kind == "phone":  # the telephone band: nothing left at 6 kHz
        tone6k = (0.3 * np.sin(2 * np.pi * 6000 * np.arange(rate) / rate)).astype(np.float32)
        mixed = channel.degrade(clean[:rate] + tone6k, rate, condition, rng)
        spectrum = np.abs(np.fft.rfft(mixed))
        assert spectrum[6000] < spectrum[440] / 100
    if kind == "reverb":  # energy smeared past the end of a burst
        burst = np.zeros(rate, np.float32)
        burst[:800] = rng.standard_normal(800)
        tail = channel.degrade(burst, rate, condition, rng)[2000:6000]
        assert np.sqrt(np.mean(tail**2)) > 1e-3
    assert parse_channel(condition.describe()) == condition


def plan(**overrides):
    fields = dict(num_speakers=10, utterances_per_speaker=5, num_sentences=60, voices=NATURAL,
                  speakers_per_voice=4, val_voices=["flite:rms"], test_voices=["festival:ked"], seed=3)
    fields.update(overrides)
    return EmotionalSpeechPreparer(**fields).plan()[0]


def test_the_default_espeak_corpus_keeps_its_folder_and_plan():
    default = EmotionalSpeechPreparer()
    assert default.fingerprint() == "bd4a7932e4"  # the folder every existing run and checkpoint names
    assert EmotionalSpeechPreparer(voices=NATURAL, speakers_per_voice=0).fingerprint() == default.fingerprint()
    rows = EmotionalSpeechPreparer(num_speakers=10, utterances_per_speaker=5, num_sentences=60).plan()[0]
    assert {r["source"] for r in rows} == {"espeak"} and {r["channel"] for r in rows} == {"clean"}
    assert EmotionalSpeechPreparer(voices=NATURAL, speakers_per_voice=2).fingerprint() != default.fingerprint()


def test_voices_all_joins_its_extra_voices_to_natural_and_keeps_the_whole_lists_folder():
    def preparer(*overrides):
        return build_preparer(compose_config("train", ["experiment=asr_emotion_voices", *overrides]).dataset)

    natural, everything = preparer(), preparer("dataset/voices=all")
    extra = ["festival:rab", "festival:en1", "festival:us1", "festival:us2", "festival:us3", "pico:us", "pico:gb"]
    assert everything.voices == natural.voices + extra and everything.extra_voices is None
    assert natural.fingerprint() == "7ee6277c87"  # the experiment's corpus folder
    spelled_out = preparer(f"dataset.preparer.voices=[{','.join(natural.voices + extra)}]")
    assert everything.fingerprint() == spelled_out.fingerprint()
    assert everything.fingerprint() != natural.fingerprint()
    repeated = EmotionalSpeechPreparer(voices=NATURAL, extra_voices=["flite:awb", "festival:us1"], speakers_per_voice=1)
    assert repeated.voices == NATURAL + ["festival:us1"]  # a voice named twice is one voice


def test_held_out_voices_are_whole_and_never_in_training():
    rows = plan()
    by_source = {}
    for r in rows:
        by_source.setdefault(r["source"], set()).add(r["split"])
    assert by_source["festival:ked"] == {"test"} and by_source["flite:rms"] == {"val"}
    assert by_source["flite:kal16"] == by_source["piper:joe"] == {"train"}
    assert by_source["espeak"] == {"train", "val", "test"}
    natural = [r for r in rows if r["source"] != "espeak"]
    speakers = {r["speaker"] for r in natural}
    assert len(speakers) == 4 * len(NATURAL)  # pseudo-speakers, each with its own warp
    warps = {r["speaker"]: r["warp"] for r in natural}
    assert len(set(warps.values())) == len(speakers) and all(0.8 <= w <= 1.25 for w in warps.values())
    counts = Counter(r["emotion"] for r in natural)
    assert max(counts.values()) - min(counts.values()) <= len(speakers)
    # emotions move the natural voices like espeak's: sad slower and lower than happy
    mean = lambda e, k: np.mean([r[k] for r in natural if r["emotion"] == e])  # noqa: E731
    assert mean("sad", "rate") < mean("neutral", "rate") < mean("fearful", "rate")
    assert mean("sad", "pitch") < mean("neutral", "pitch") < mean("happy", "pitch")
    assert mean("sad", "pitch_range") < 1 < mean("happy", "pitch_range")


def test_general_text_and_channels_take_their_shares():
    pytest.importorskip("wordfreq")
    rows = plan(general_text=0.5, degrade=0.4)
    general = [r for r in rows if r["text"][0].islower()]  # grammar sentences start with a capital
    assert 0.4 < len(general) / len(rows) < 0.6
    train = [r for r in rows if r["split"] == "train"]
    degraded = [r for r in train if r["channel"] != "clean"]
    assert 0.3 < len(degraded) / len(train) < 0.5
    assert {parse_channel(r["channel"]).kind for r in degraded} == set(channel.KINDS)
    assert all(r["channel"] == "clean" for r in rows if r["split"] != "train")
    again = plan(general_text=0.5, degrade=0.4)
    assert [(r["text"], r["channel"]) for r in again] == [(r["text"], r["channel"]) for r in rows]
    # general_sequences sets how many distinct sequences there are (default: num_sentences), in the fingerprint
    many = plan(general_text=0.5, general_sequences=400)
    assert len({r["text"] for r in many if r["text"][0].islower()}) > len({r["text"] for r in general})
    sequences = lambda **f: len(EmotionalSpeechPreparer(num_sentences=60, general_text=0.5, **f).texts()[1])  # noqa: E731
    assert sequences() == 60 and sequences(general_sequences=400) == 400
    assert (EmotionalSpeechPreparer(general_text=0.5, general_sequences=400).fingerprint()
            != EmotionalSpeechPreparer(general_text=0.5).fingerprint()
            == EmotionalSpeechPreparer(general_text=0.5, general_sequences=0).fingerprint())
    # general_max_words bounds each sequence's length (default 6), in the fingerprint; too few words is refused
    def lengths(**fields) -> list[int]:
        general = EmotionalSpeechPreparer(num_sentences=300, general_text=0.5, **fields).texts()[1]
        return [len(text.split()) for text in general]

    assert max(lengths()) == 6 and set(lengths(general_max_words=2)) == {1, 2}
    assert (EmotionalSpeechPreparer(general_text=0.5, general_max_words=2).fingerprint()
            != EmotionalSpeechPreparer(general_text=0.5).fingerprint()
            == EmotionalSpeechPreparer(general_text=0.5, general_max_words=6).fingerprint())
    for bad in (0, 1):
        with pytest.raises(SpeechexpError, match="general_max_words"):
            EmotionalSpeechPreparer(general_text=0.5, general_vocabulary=100, general_sequences=200,
                                    general_max_words=bad).texts()


def fake_wordnet(folder, examples: list[str]):
    """A WordNet database folder whose noun file glosses one synset per example (the others empty)."""
    folder.mkdir()
    lines = ["  1 This software and database is being provided... (the licence header)"]
    lines += [f"{i:08d} 03 n 01 thing 0 000 | a gloss; \"{example}\"" for i, example in enumerate(examples)]
    (folder / "data.noun").write_text("\n".join(lines) + "\n", encoding="latin-1")
    for pos in ("verb", "adj", "adv"):
        (folder / f"data.{pos}").write_text("", encoding="latin-1")
    return folder


def test_natural_sentences_take_their_share_of_the_general_text(tmp_path, monkeypatch):
    pytest.importorskip("wordfreq")
    from speechexp.data import general_text  # noqa: PLC0415

    written = [f"The {a} {n} crossed the river" for a in ("old", "small", "red", "quiet", "brave", "tired")
               for n in ("dog", "horse", "farmer", "child", "boat", "train", "owl")]  # 42 sentences
    written += ["He paid 20 dollars", "Ouch", "a cat (of sorts) sat", "So it goes!"]
    monkeypatch.setenv("WNSEARCHDIR", str(fake_wordnet(tmp_path / "dict", written)))
    # parsed as a transcript spells them: lowercase, no punctuation; no digits or symbols, 3-12 words
    examples = general_text.usage_examples()
    assert len(examples) == 43 and examples[0] == "the old dog crossed the river" and examples[-1] == "so it goes"
    words = EmotionalSpeechPreparer(num_sentences=60, general_text=0.5).texts()[1]
    grammar, general = EmotionalSpeechPreparer(num_sentences=60, general_text=0.5, general_sentences=0.5).texts()
    assert len(general) == 60 and general[:30] == words[:30]  # the word sequences keep their order
    assert set(general[30:]) <= set(examples) and len(set(general[30:])) == 30
    assert general == EmotionalSpeechPreparer(num_sentences=60, general_text=0.5, general_sentences=0.5).texts()[1]
    assert (EmotionalSpeechPreparer(general_text=0.5, general_sentences=0.5).fingerprint()
            != EmotionalSpeechPreparer(general_text=0.5).fingerprint()
            == EmotionalSpeechPreparer(general_text=0.5, general_sentences=0.0).fingerprint())
    with pytest.raises(SpeechexpError, match="43"):  # more than WordNet holds
        EmotionalSpeechPreparer(num_sentences=60, general_text=0.5, general_sentences=1.0).texts()
    with pytest.raises(SpeechexpError, match="general_sentences=1.5"):
        EmotionalSpeechPreparer(num_sentences=60, general_text=0.5, general_sentences=1.5).texts()
    monkeypatch.setenv("WNSEARCHDIR", str(tmp_path / "nowhere"))
    with pytest.raises(SpeechexpError, match="make voices"):
        EmotionalSpeechPreparer(general_text=0.5, general_sentences=0.5).check_requirements()
    # word sequences alone never need WordNet
    assert EmotionalSpeechPreparer(num_sentences=60, general_text=0.5).texts()[1] == words
    EmotionalSpeechPreparer(general_text=0.5).check_requirements()


def test_voice_folder_keeps_one_kind_of_text(tmp_path, monkeypatch):
    """``scripts/voice_folder.py --text`` tells grammar, word sequences and natural sentences
    apart as the corpus' preparer made them (its fields in ``preparer.json``)."""
    pytest.importorskip("wordfreq")
    written = [f"The {a} {n} crossed the river" for a in ("old", "small", "red", "quiet", "brave")
               for n in ("dog", "horse", "farmer", "child")]
    monkeypatch.setenv("WNSEARCHDIR", str(fake_wordnet(tmp_path / "dict", written)))
    preparer = EmotionalSpeechPreparer(num_sentences=30, general_text=0.5, general_sentences=0.5)
    grammar, general = preparer.texts()
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "preparer.json").write_text(json.dumps({"fields": preparer.fingerprint_fields()}, default=str))
    texts = grammar + general
    rows = [{"path": f"w/{i}.wav", "text": t, "emotion": "sad", "speaker": "s", "split": "test",
             "source": "flite:awb"} for i, t in enumerate(texts)]
    write_csv_atomic(corpus / "metadata.csv", rows, list(rows[0]))
    said = {}
    for kind in ("grammar", "words", "sentences"):
        done = run_script("scripts/voice_folder.py", str(corpus), str(tmp_path / kind), "--text", kind)
        assert done.returncode == 0, done.stderr
        with (tmp_path / kind / "transcripts.csv").open(newline="") as handle:
            said[kind] = [r["text"] for r in csv.DictReader(handle)]
    assert said == {"grammar": grammar, "words": general[:15], "sentences": general[15:]}
    assert set(said["sentences"]) <= {t.lower() for t in written}


def test_domain_phrases_are_said_by_every_training_voice_and_never_held_out(tmp_path):
    base = plan()
    held_out = next(r["text"] for r in base if r["split"] == "test")  # a test sentence, about to become training text
    phrases = ["front left", "rear right", held_out.lower().strip(".?!")]  # matched as the tokenizer spells them
    rows = plan(domain_text=phrases, domain_share=0.3)
    train = [r for r in rows if r["split"] == "train"]
    said = [r for r in rows if r["text"] in phrases]
    assert {r["split"] for r in said} == {"train"} and 0.2 < len(said) / len(train) < 0.4
    assert {r["source"] for r in said} == {r["source"] for r in train}  # espeak and every natural training voice
    assert {r["text"] for r in said} == set(phrases)
    assert held_out in {r["text"] for r in base if r["split"] == "test"}
    assert held_out not in {r["text"] for r in rows if r["split"] != "train"}
    # without phrases the share changes nothing: the same plan and folder
    assert plan(domain_share=0.5) == base
    assert EmotionalSpeechPreparer(domain_share=0.5).fingerprint() == EmotionalSpeechPreparer().fingerprint()
    assert EmotionalSpeechPreparer(domain_text=["front left"]).fingerprint() != EmotionalSpeechPreparer().fingerprint()
    # a file of phrases (one per line, or a CSV's text column) is the list it holds, in the fingerprint as such
    (tmp_path / "phrases.txt").write_text("front left\n\n  rear   right \nfront left\n")
    (tmp_path / "transcripts.csv").write_text("path,text\na.wav,front left\nb.wav,rear right\n")
    listed = EmotionalSpeechPreparer(domain_text=["front left", "rear right"])
    for name in ("phrases.txt", "transcripts.csv"):
        from_file = EmotionalSpeechPreparer(domain_file=str(tmp_path / name))
        assert from_file.domain_text == ["front left", "rear right"] and from_file.domain_file is None
        assert from_file.fingerprint() == listed.fingerprint()
    (tmp_path / "bad.csv").write_text("path,words\na.wav,front left\n")
    for fields, message in ((dict(domain_file=str(tmp_path / "missing.txt")), "is missing or not UTF-8 text"),
                            (dict(domain_file=str(tmp_path / "bad.csv")), "has no text column"),
                            (dict(domain_text=["  "]), "needs at least one phrase"),
                            (dict(domain_text=["a"], domain_share=1.5), "domain_share in \\(0, 1\\]")):
        with pytest.raises(SpeechexpError, match=message):
            EmotionalSpeechPreparer(**fields)


def test_general_word_sequences_are_seeded_distinct_and_sized():
    pytest.importorskip("wordfreq")
    from speechexp.data.general_text import word_list, word_sequences

    words, _ = word_list(5000)
    texts = word_sequences(300, vocabulary=5000, min_words=1, max_words=4, seed=1)
    assert texts == word_sequences(300, vocabulary=5000, min_words=1, max_words=4, seed=1)
    assert len(set(texts)) == 300 and texts != word_sequences(300, vocabulary=5000, seed=2)
    lengths = Counter(len(t.split()) for t in texts)
    assert set(lengths) == {1, 2, 3, 4}
    assert {w for t in texts for w in t.split()} <= set(words)


def test_a_missing_engine_or_voice_is_named_in_one_sentence(monkeypatch):
    from speechexp.data.tts import flite

    monkeypatch.setattr(flite, "available", lambda voice="": False)
    preparer = EmotionalSpeechPreparer(voices=["flite:awb"], speakers_per_voice=1)
    with pytest.raises(SpeechexpError) as refused:
        preparer.check_requirements()
    message = str(refused.value)
    assert "\n" not in message and "make voices" in message and "apt-get install flite" in message
    from speechexp.data.tts import festival

    monkeypatch.setattr(festival, "available", lambda voice="": False)
    with pytest.raises(SpeechexpError) as refused:  # a contrib / non-free voice names its own route
        EmotionalSpeechPreparer(voices=["festival:us1"], speakers_per_voice=1).check_requirements()
    message = str(refused.value)
    assert "\n" not in message and "make voices NONFREE=1" in message and "apt-get install festival festvox-us1" in message
    from speechexp.data.tts import pico

    monkeypatch.setattr(pico.shutil, "which", lambda program: None)  # no pico2wave on the path
    with pytest.raises(SpeechexpError) as refused:
        EmotionalSpeechPreparer(voices=["pico:gb"], speakers_per_voice=1).check_requirements()
    assert str(refused.value) == ("Voice pico:gb needs the pico engine, which is not installed here; "
                                  "run `make voices NONFREE=1` (or `apt-get install libttspico-utils`).")
    with pytest.raises(SpeechexpError, match="not one of flite's voices"):
        EmotionalSpeechPreparer(voices=["flite:nobody"], speakers_per_voice=1).check_requirements()
    with pytest.raises(SpeechexpError, match="not in dataset.preparer.voices"):
        EmotionalSpeechPreparer(voices=["flite:awb"], speakers_per_voice=1, test_voices=["piper:joe"]).plan()


def test_a_prepared_corpus_runs_without_the_engines_that_spoke_it(tmp_path, monkeypatch):
    """The engines are checked before a run only when the corpus must still be built: a corpus
    copied to another machine (a cluster without festival) trains as it is."""
    from speechexp.config.compatibility import check_composed
    from speechexp.data.tts import festival, flite

    monkeypatch.setattr(flite, "available", lambda voice="": False)
    monkeypatch.setattr(festival, "available", lambda voice="": False)
    monkeypatch.setenv("WNSEARCHDIR", str(tmp_path / "nowhere"))
    cfg = compose_config("train", ["experiment=asr_emotion_voices", f"paths.data_dir={tmp_path / 'data'}",
                                   "dataset.preparer.general_sentences=0.5"], tmp_path / "run")
    with pytest.raises(SpeechexpError, match="make voices"):
        check_composed(cfg)
    folder = build_preparer(cfg.dataset).folder(cfg.paths.data_dir)
    folder.mkdir(parents=True)
    (folder / "metadata.csv").write_text("path,text,split\n")
    check_composed(cfg)  # prepared: nothing to synthesise, nothing to refuse


def test_make_voices_installs_the_packages_the_voices_name():
    """The Debian packages come from the voices' tables: main archive and contrib/non-free apart,
    and ``make voices NONFREE=1`` passes each list to its installer."""
    free, nonfree = tts.apt_packages(), tts.apt_packages(nonfree=True)
    assert free == ["flite", "festival", "festvox-kallpc16k", "festvox-kdlpc16k", "festvox-us-slt-hts"]
    assert nonfree == ["festvox-rablpc16k", "festvox-en1", "festvox-us1", "festvox-us2", "festvox-us3",
                       "libttspico-utils"]
    for name in tts.ALL_VOICES:  # every Debian voice's refusal names packages make voices installs
        engine, voice = tts.split_voice(name)
        needed = tts.engine_module(engine).apt_packages(voice)
        assert set(needed) <= set(free + nonfree), name
        assert (engine == "piper") == (not needed)
    printed = subprocess.run([sys.executable, "-m", "speechexp.data.tts", "--apt-packages", "--nonfree"],
                             capture_output=True, text=True, check=True).stdout
    assert printed.split() == nonfree
    plan = subprocess.run(["make", "-n", "voices", "NONFREE=1", f"VENV={sys.prefix}"], cwd=REPO, capture_output=True,
                          text=True, check=True).stdout
    assert f"apt-get install -y -qq {' '.join(free)} " in plan
    assert f"bash scripts/apt_nonfree.sh {' '.join(nonfree)};" in plan


def test_nonfree_voice_install_refuses_a_system_that_is_not_debian(tmp_path):
    release = tmp_path / "os-release"
    release.write_text('ID=ubuntu\nVERSION_CODENAME=noble\nPRETTY_NAME="Ubuntu 24.04"\n')
    done = subprocess.run(["bash", str(REPO / "scripts" / "apt_nonfree.sh"), "festvox-us1"], capture_output=True,
                          text=True, env={**cli_env(), "OS_RELEASE": str(release)})
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.strip() == ("NONFREE=1 installs from Debian's contrib and non-free components, and this system "
                                   "is Ubuntu 24.04; install festvox-us1 from its own archive.")


@pytest.mark.parametrize("name", tts.ALL_VOICES)
def test_each_installed_voice_speaks_at_the_rate_it_is_asked(name):
    engine, voice = tts.split_voice(name)
    if not tts.engine_module(engine).available(voice):
        pytest.skip(f"{name} is not installed (make voices)")
    normal = tts.synthesize(name, "the yellow kettle is on the table", tts.Style())
    fast = tts.synthesize(name, "the yellow kettle is on the table", tts.Style(rate=1.5))
    assert normal.audio.dtype == np.float32 and normal.audio.size > normal.sample_rate * 0.8
    assert fast.audio.size < 0.85 * normal.audio.size
    assert 0.01 < float(np.sqrt(np.mean(normal.audio**2))) < 1.0


@pytest.mark.parametrize("name", ["piper:joe", "festival:ked", "flite:kal16"])
def test_an_utterance_is_as_loud_as_its_volume_asks_whatever_the_engine(name):
    """Engines come at one level before volume: angry (volume ~1.4) is louder than neutral and
    sad by what the plan says, on loud engines (Piper, festival ked: near full scale on their
    own) and quiet ones (flite kal16) alike; nothing is scaled back at full scale."""
    engine, voice = tts.split_voice(name)
    if not tts.engine_module(engine).available(voice):
        pytest.skip(f"{name} is not installed (make voices)")
    preparer = EmotionalSpeechPreparer(num_speakers=3, utterances_per_speaker=5, num_sentences=40, voices=[name],
                                       speakers_per_voice=2, snr_db=None, seed=1)
    rows = [(i, r) for i, r in enumerate(preparer.plan()[0]) if r["source"] == name]
    by_emotion = {}
    for index, row in rows:
        audio = preparer.render(row, index)
        level = 20 * np.log10(np.sqrt(np.mean(audio**2)))
        assert np.abs(audio).max() < 0.99
        assert level == pytest.approx(NATURAL_LEVEL_DBFS + 20 * np.log10(row["volume"] / 100), abs=0.2)
        by_emotion.setdefault(row["emotion"], []).append(level)
    mean = {e: np.mean(v) for e, v in by_emotion.items()}
    assert mean["angry"] > mean["neutral"] + 1.5 > mean["sad"] + 3


@pytest.mark.parametrize("name", ["flite:awb", "flite:slt", "festival:ked", "festival:rab", "festival:us1", "pico:gb"])
def test_native_pitch_control_moves_f0(name):
    engine, voice = tts.split_voice(name)
    if not tts.engine_module(engine).available(voice):
        pytest.skip(f"{name} is not installed (make voices)")
    import librosa

    def median_f0(pitch: float) -> float:
        out = tts.synthesize(name, "the yellow kettle is on the table", tts.Style(pitch=pitch))
        assert out.native_pitch
        f0, _, _ = librosa.pyin(out.audio, fmin=60, fmax=500, sr=out.sample_rate)
        return float(np.nanmedian(f0))

    assert median_f0(1.5) / median_f0(1.0) == pytest.approx(1.5, rel=0.1)


def test_voices_group_on_a_dataset_without_it_is_refused_in_one_sentence(tmp_path):
    done = run_cli("train", "experiment=separation", "dataset/voices=natural", f"hydra.run.dir={tmp_path / 'run'}")
    assert done.returncode == 2, done.stderr
    message = done.stderr.strip().splitlines()[-1]
    assert "dataset/voices=natural" in message and "dataset=emotional_speech" in message
    assert not (tmp_path / "run").exists()
