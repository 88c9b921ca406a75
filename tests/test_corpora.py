"""Corpus indexers: file-name decoding, label maps, skipping, splits, configs."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from omegaconf import OmegaConf

from speechexp.data.corpora import (
    CremaDPreparer, EmoDBPreparer, RavdessPreparer, TessPreparer, parse_crema_d,
    parse_emodb, parse_ravdess, parse_tess,
)
from speechexp.errors import SpeechexpError
from speechexp.runs.build import build_preparer, prepare_dataset

CONF = Path(__file__).resolve().parents[1] / "conf" / "dataset"


def tone(path: Path, sample_rate: int = 16000, seconds: float = 0.25) -> Path:
    """A short sine WAV (a stand-in for a corpus recording)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(sample_rate * seconds)) / sample_rate
    sf.write(path, 0.3 * np.sin(2 * np.pi * 220 * t), sample_rate, subtype="PCM_16")
    return path


def read(folder: Path) -> pd.DataFrame:
    return pd.read_csv(folder / "metadata.csv", keep_default_na=False, dtype=str)


# ---------------------------------------------------------------- parsers
def test_parse_ravdess_fields():
    p = parse_ravdess("03-01-05-02-02-01-12")
    assert (p.speaker, p.corpus_emotion, p.text, p.intensity, p.gender) == (
        "ravdess_12", "angry", "Dogs are sitting by the door", "strong", "female")
    assert parse_ravdess("01-02-02-01-01-02-07").corpus_emotion == "calm"
    assert parse_ravdess("01-02-02-01-01-02-07").gender == "male"
    assert parse_ravdess("01-02-02-01-01-02-07").text_id == "song_01"
    for bad in ("03-01-09-01-01-01-01", "03-01-05-01-01-01-25", "03-01-05-01-01", "notes"):
        assert parse_ravdess(bad) is None


def test_parse_crema_d_fields():
    p = parse_crema_d("1076_ITH_FEA_HI")
    assert (p.speaker, p.corpus_emotion, p.text, p.intensity, p.text_id) == (
        "crema_d_1076", "fearful", "I think I have a doctor's appointment", "high", "ITH")
    assert parse_crema_d("1001_DFA_ANG_XX").text == "Don't forget a jacket"
    assert parse_crema_d("1001_DFA_ANG_XX").intensity == "unspecified"
    for bad in ("1001_XYZ_ANG_XX", "1001_DFA_BOR_XX", "0999_DFA_ANG_XX", "1001_DFA_ANG_QQ", "1001_DFA_ANG"):
        assert parse_crema_d(bad) is None


@pytest.mark.parametrize("stem,emotion", [
    ("OAF_back_angry", "angry"), ("OAF_bite_Fear", "fear"), ("YAF_dog_neutral", "neutral"),
    ("YAF_base_ps", "pleasant_surprise"), ("OAF_bath_pleasant_surprised", "pleasant_surprise"),
    ("YAF_chain_Pleasant_surprise", "pleasant_surprise"), ("yaf_jug_SAD", "sad"),
    ("OAF_kite_disgust", "disgust"), ("YAF_home_happy", "happy"),
])
def test_parse_tess_variants(stem, emotion):
    p = parse_tess(stem)
    assert p is not None and p.corpus_emotion == emotion
    word = stem.split("_")[1].lower()
    assert p.text == f"say the word {word}" and p.text_id == word
    assert p.speaker == "tess_" + stem[:3].upper()


def test_parse_tess_rejects_other_names():
    for bad in ("XAF_back_angry", "OAF_back", "OAF_back_bored", "YAF back"):
        assert parse_tess(bad) is None


def test_parse_emodb_fields():
    p = parse_emodb("03a01Fa")
    assert (p.speaker, p.corpus_emotion, p.text, p.gender) == (
        "emodb_03", "happiness", "Der Lappen liegt auf dem Eisschrank.", "male")
    q = parse_emodb("16b01Tb")
    assert (q.speaker, q.corpus_emotion, q.gender) == ("emodb_16", "sadness", "female")
    assert "Tüten" in q.text
    assert parse_emodb("11b03Wc").corpus_emotion == "anger"
    for bad in ("03a03Fa", "03a01Xa", "99a01Fa", "03a01F"):
        assert parse_emodb(bad) is None


# ---------------------------------------------------------------- indexing
@pytest.fixture()
def ravdess_root(tmp_path):
    root = tmp_path / "RAVDESS"
    for actor in range(1, 11):
        for emotion in ("01", "02", "03", "04", "05", "06", "07"):
            for statement in ("01", "02"):
                tone(root / f"Actor_{actor:02d}" / f"03-01-{emotion}-01-{statement}-01-{actor:02d}.wav", 48000)
    tone(root / "Actor_01" / "03-02-03-01-01-01-01.wav", 48000)  # song: excluded by default
    tone(root / "Actor_01" / "readme_take2.wav", 48000)  # does not parse
    (root / "Actor_01" / "notes.txt").write_text("not audio")
    return root


def test_ravdess_index_fields_labels_and_splits(ravdess_root, tmp_path, caplog):
    prep = RavdessPreparer(root=str(ravdess_root), label_map={
        "neutral": "neutral", "calm": "neutral", "happy": "happy", "sad": "sad",
        "angry": "angry", "fearful": "fearful", "disgust": None}, test_fraction=0.2, val_fraction=0.1)
    with caplog.at_level(logging.INFO):
        folder = prep.prepare(tmp_path / "data")
    meta = read(folder)
    assert folder.parent == tmp_path / "data"  # never written into the corpus
    assert len(meta) == 10 * 6 * 2  # disgust dropped, song excluded
    assert meta.emotion.value_counts()["neutral"] == 10 * 2 * 2  # calm merged into neutral
    assert set(meta.corpus_emotion) == {"neutral", "calm", "happy", "sad", "angry", "fearful"}
    row = meta[meta.path.str.endswith("03-01-05-01-02-01-04.wav")].iloc[0]
    assert (row.speaker, row.emotion, row.text, row.gender, row.sample_rate) == (
        "ravdess_04", "angry", "Dogs are sitting by the door", "female", "48000")
    assert abs(float(row.duration) - 0.25) < 1e-3
    assert all(Path(p).is_absolute() and Path(p).is_file() for p in meta.path)
    splits = meta.groupby("speaker").split.agg(set)
    assert all(len(s) == 1 for s in splits)
    assert sorted(meta.groupby("split").speaker.nunique().items()) == [("test", 2), ("train", 7), ("val", 1)]
    text = caplog.text
    assert "Skipped 1 file(s)" in text and "readme_take2.wav" in text
    assert "Dropped 20 file(s)" in text and "disgust=20" in text


def test_explicit_held_out_speakers(ravdess_root, tmp_path):
    prep = RavdessPreparer(root=str(ravdess_root), val_speakers=["02"], test_speakers=[9, "ravdess_10"])
    meta = read(prep.prepare(tmp_path))
    held = meta.groupby("split").speaker.agg(lambda s: sorted(set(s)))
    assert held["val"] == ["ravdess_02"] and held["test"] == ["ravdess_09", "ravdess_10"]
    assert set(meta.corpus_emotion) >= {"disgust", "calm"}  # no label_map: all kept
    with pytest.raises(SpeechexpError, match="test_speakers \\['77'\\]"):
        RavdessPreparer(root=str(ravdess_root), test_speakers=["77"]).prepare(tmp_path / "x")


def test_a_corpus_copy_that_cannot_give_a_dataset_is_refused_before_a_run_reads_any_audio(ravdess_root, tmp_path):
    """The pre-flight of train and eval reads names only: an unreadable file does not stop it,
    while a folder of no corpus files, a label_map that keeps none and unknown held-out
    speakers are refused there, with the sentences indexing gives, and nothing is prepared."""
    from speechexp.config.compatibility import check_dataset_requirements

    (ravdess_root / "Actor_03" / "03-01-01-01-01-01-03.wav").write_bytes(b"not audio")
    dataset = OmegaConf.create({"dataset": OmegaConf.load(CONF / "ravdess.yaml")}).dataset
    dataset.root = str(ravdess_root)
    check_dataset_requirements(dataset, str(tmp_path / "data"))  # names and labels are fine
    (tmp_path / "empty").mkdir()
    cases = [("root", str(tmp_path / "empty"), "Found no RAVDESS audio in"),
             ("preparer.test_speakers", ["77"], "test_speakers ['77'] are not speakers"),
             ("preparer.label_map", {"surprised": "happy"}, "No usable RAVDESS files remain")]
    for key, value, expected in cases:
        cfg = dataset.copy()
        OmegaConf.update(cfg, key, value, merge=False)
        with pytest.raises(SpeechexpError) as refused:
            check_dataset_requirements(cfg, str(tmp_path / "data"))
        assert expected in str(refused.value) and "\n" not in str(refused.value), str(refused.value)
    assert not (tmp_path / "data").exists()
    meta = read(RavdessPreparer(root=str(ravdess_root)).prepare(tmp_path / "data"))  # indexing skips it
    assert len(meta) == 10 * 7 * 2 - 1


def test_song_channel_can_be_included(ravdess_root, tmp_path):
    meta = read(RavdessPreparer(root=str(ravdess_root), vocal_channels=["speech", "song"]).prepare(tmp_path))
    assert len(meta) == 10 * 7 * 2 + 1


def test_crema_d_index(tmp_path):
    root = tmp_path / "AudioWAV"
    for actor in (1001, 1002, 1003, 1004, 1005):
        for sentence in ("IEO", "TSI"):
            for emotion, level in (("ANG", "HI"), ("SAD", "LO"), ("DIS", "XX"), ("NEU", "XX")):
                tone(root / f"{actor}_{sentence}_{emotion}_{level}.wav")
    prep = CremaDPreparer(root=str(root), label_map={"angry": "angry", "sad": "sad", "neutral": "neutral"})
    meta = read(prep.prepare(tmp_path / "data"))
    assert len(meta) == 5 * 2 * 3
    row = meta[meta.path.str.endswith("1003_TSI_SAD_LO.wav")].iloc[0]
    assert (row.speaker, row.emotion, row.text, row.intensity, row.corpus) == (
        "crema_d_1003", "sad", "The surface is slick", "low", "CREMA-D")
    assert meta.groupby("speaker").split.nunique().max() == 1
    assert set(meta.split) == {"train", "val", "test"}


def test_tess_index_casing_variants_duplicates_and_text_split(tmp_path):
    root = tmp_path / "TESS Toronto emotional speech set data"
    words = ["back", "bar", "base", "bath", "bean", "beg", "bite", "boat", "bone", "book"]
    for word in words:
        tone(root / "OAF_angry" / f"OAF_{word}_angry.wav", 24414)
        tone(root / "OAF_Fear" / f"OAF_{word}_Fear.wav", 24414)
        tone(root / "YAF_neutral" / f"YAF_{word}_neutral.wav", 24414)
        tone(root / "YAF_pleasant_surprised" / f"YAF_{word}_ps.wav", 24414)
    # a nested duplicate copy, as in some circulating archives
    tone(root / "tess copy" / "OAF_Fear" / "OAF_back_fear.wav", 24414)
    meta = read(TessPreparer(root=str(root), label_map={
        "angry": "angry", "fear": "fearful", "neutral": "neutral", "pleasant_surprise": None,
    }).prepare(tmp_path / "data"))
    assert len(meta) == 30  # ps dropped, duplicate skipped
    row = meta[meta.path.str.endswith("OAF_bite_Fear.wav")].iloc[0]
    assert (row.speaker, row.emotion, row.corpus_emotion, row.text, row.sample_rate) == (
        "tess_OAF", "fearful", "fear", "say the word bite", "24414")
    by_split = meta.groupby("split").text_id.agg(set)
    assert not (by_split["train"] & by_split["test"]) and not (by_split["train"] & by_split["val"])
    assert len(by_split["test"]) == 2 and len(by_split["val"]) == 1


def test_emodb_index(tmp_path):
    root = tmp_path / "emodb" / "wav"
    speakers = ["03", "08", "09", "10", "11", "12", "13", "14", "15", "16"]
    for s in speakers:
        for text_id, emotion in (("a01", "F"), ("b01", "T"), ("a02", "L"), ("b10", "W")):
            tone(root / f"{s}{text_id}{emotion}a.wav")
    meta = read(EmoDBPreparer(root=str(root), label_map={
        "happiness": "happy", "sadness": "sad", "anger": "angry", "boredom": None,
    }, test_speakers=["15", "16"], val_speakers=["03"]).prepare(tmp_path / "data"))
    assert len(meta) == 30
    row = meta[meta.path.str.endswith("16b01Ta.wav")].iloc[0]
    assert (row.speaker, row.emotion, row.split, row.gender) == ("emodb_16", "sad", "test", "female")
    assert row.text == "Was sind denn das für Tüten, die da unter dem Tisch stehen?"
    assert set(meta[meta.split == "val"].speaker) == {"emodb_03"}


def test_missing_root_and_empty_folder_errors(tmp_path):
    with pytest.raises(SpeechexpError, match="dataset.root=DIR"):
        EmoDBPreparer().prepare(tmp_path)
    with pytest.raises(SpeechexpError, match="does not exist"):
        EmoDBPreparer(root=str(tmp_path / "nope")).prepare(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SpeechexpError) as err:
        CremaDPreparer(root=str(empty)).prepare(tmp_path / "data")
    assert str(empty) in str(err.value) and "AAAA_SSS_EEE_LL.wav" in str(err.value)
    tone(empty / "song.wav")
    with pytest.raises(SpeechexpError, match="SSTTTEV.wav"):
        EmoDBPreparer(root=str(empty)).prepare(tmp_path / "data")
    assert not list((tmp_path / "data").glob("*"))  # nothing half-built left behind


def test_everything_dropped_by_label_map_is_an_error(tmp_path):
    root = tmp_path / "c"
    tone(root / "1001_IEO_DIS_XX.wav")
    with pytest.raises(SpeechexpError, match="label_map"):
        CremaDPreparer(root=str(root), label_map={"angry": "angry"}).prepare(tmp_path / "data")


@pytest.mark.parametrize("name,cls", [
    ("ravdess", RavdessPreparer), ("crema_d", CremaDPreparer), ("tess", TessPreparer), ("emodb", EmoDBPreparer),
])
def test_configs_instantiate_and_require_root(name, cls, tmp_path):
    from speechexp.config.compatibility import check_dataset_requirements

    cfg = OmegaConf.create({"dataset": OmegaConf.load(CONF / f"{name}.yaml")})
    with pytest.raises(SpeechexpError, match="dataset.root=DIR"):
        prepare_dataset(cfg.dataset, tmp_path)
    for root in (None, str(tmp_path / "nowhere")):  # refused before a run starts, as train and eval check
        cfg.dataset.root = root
        with pytest.raises(SpeechexpError, match="dataset.root=DIR"):
            check_dataset_requirements(cfg.dataset, tmp_path)
    cfg.dataset.root = str(tmp_path)
    prep = build_preparer(cfg.dataset)
    assert isinstance(prep, cls) and prep.root == str(tmp_path.resolve())
    labels = {v for v in prep.label_map.values() if v is not None}
    assert labels == {"neutral", "happy", "sad", "angry", "fearful"}
    assert list(cfg.dataset.datamodule.emotions) == ["neutral", "happy", "sad", "angry", "fearful"]
