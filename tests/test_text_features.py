"""Character tokenizer, log-mel features (both backends) and the feature cache."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import librosa

from speechexp.data.features import FeatureCache, LogMel, load_audio
from speechexp.data.text import CharTokenizer
from speechexp.errors import SpeechexpError


def test_normalisation():
    tok = CharTokenizer()
    assert tok.normalize("It's eleven o'clock!") == "it's eleven o'clock"
    assert tok.normalize("  Don\u2019t   forget,\ta JACKET. ") == "don't forget a jacket"
    assert tok.normalize("Was sind denn das für Tüten? Stück, Straße.") == "was sind denn das fuer tueten stueck strasse"
    assert tok.normalize("room 101") == "room"


def test_umlauts_can_be_kept():
    tok = CharTokenizer(umlauts="keep")
    assert tok.normalize("Für Tüten, Straße") == "für tüten straße"
    assert tok.vocab_size == CharTokenizer().vocab_size + 4
    with pytest.raises(ValueError):
        CharTokenizer(umlauts="drop")


def test_encode_decode_and_blank():
    tok = CharTokenizer()
    assert tok.vocab_size == 29 and tok.blank_id == 0
    ids = tok.encode("Hi, there's")
    assert len(ids) == len("hi there's") and min(ids) >= 1 and max(ids) < tok.vocab_size
    assert tok.decode(ids) == "hi there's"
    h, i = tok.encode("h")[0], tok.encode("i")[0]
    assert tok.ctc_decode([0, h, h, 0, 0, i, i, 0, i]) == "hii"


def test_custom_vocabulary():
    tok = CharTokenizer(vocabulary="abc")
    assert tok.chars == [" ", "a", "b", "c"] and tok.vocab_size == 5
    assert tok.normalize("A cab, dad!") == "a cab a"
    with pytest.raises(ValueError):
        CharTokenizer(vocabulary="aab")


@pytest.mark.parametrize("backend", ["librosa", "torch"])
def test_logmel_shape_and_peak(backend):
    sr = 16000
    t = np.arange(sr) / sr
    audio = (0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    feats = LogMel(n_mels=40, backend=backend)(audio)
    assert feats.shape == (1 + sr // 160, 40) and feats.dtype == np.float32
    centres = librosa.mel_frequencies(n_mels=42, fmax=sr / 2)[1:-1]
    peak = int(np.argmax(feats[50]))
    assert abs(centres[peak] - 1000) < 150
    assert feats[50, peak] > feats[50, 35] + 5


def test_backends_agree():
    audio = np.random.default_rng(0).standard_normal(12345).astype(np.float32) * 0.1
    a = LogMel(backend="librosa")(audio)
    b = LogMel(backend="torch")(audio)
    assert a.shape == b.shape == (LogMel().num_frames(12345), 80)
    assert np.abs(a - b).max() < 1e-3
    with pytest.raises(ValueError):
        LogMel(backend="tensorflow")


def test_load_audio_resamples_and_names_bad_files(tmp_path):
    path = tmp_path / "a.wav"
    sf.write(path, np.zeros(48000), 48000)
    assert load_audio(path, 48000, 16000).shape == (16000,)
    with pytest.raises(SpeechexpError, match="a.wav"):
        load_audio(path, 16000, 16000)  # metadata says 16 kHz, file is 48 kHz
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF0000WAVEjunk")
    with pytest.raises(SpeechexpError, match="bad.wav"):
        load_audio(bad, 16000, 16000)


def test_memory_cache_computes_once(tmp_path):
    path = tmp_path / "x.wav"
    path.write_bytes(b"x")
    calls = []
    cache = FeatureCache("memory")
    for _ in range(3):
        out = cache.get(path, lambda: calls.append(1) or np.ones((2, 3), np.float32))
    assert len(calls) == 1 and out.shape == (2, 3)
    none = FeatureCache("none")
    none.get(path, lambda: calls.append(1) or np.ones(1))
    none.get(path, lambda: calls.append(1) or np.ones(1))
    assert len(calls) == 3


def test_disk_cache_persists_and_tracks_changes(tmp_path):
    path = tmp_path / "x.wav"
    path.write_bytes(b"x")
    params = {"n_mels": 80}
    calls = []

    def compute():
        calls.append(1)
        return np.full((4, 2), len(calls), np.float32)

    first = FeatureCache("disk", tmp_path / "cache", params).get(path, compute)
    again = FeatureCache("disk", tmp_path / "cache", params).get(path, compute)
    assert len(calls) == 1 and np.array_equal(first, again)
    assert len(list((tmp_path / "cache").rglob("*.npy"))) == 1
    FeatureCache("disk", tmp_path / "cache", {"n_mels": 40}).get(path, compute)
    assert len(calls) == 2  # other parameters, other entry
    path.write_bytes(b"changed content")
    assert FeatureCache("disk", tmp_path / "cache", params).get(path, compute)[0, 0] == 3
