"""Atomic writes and checked WAV reading."""

import numpy as np
import pytest
import soundfile as sf

from speechexp.errors import SpeechexpError
from speechexp.io import atomic_path, read_wav, write_csv_atomic, write_json_atomic, write_wav_atomic


def test_atomic_path_leaves_nothing_when_interrupted(tmp_path):
    target = tmp_path / "out.json"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_keeps_old_content_when_interrupted(tmp_path):
    target = write_json_atomic(tmp_path / "r.json", {"a": 1})
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target) as tmp:
            tmp.write_text("{")
            raise KeyboardInterrupt
    assert target.read_text().strip().startswith("{\n  \"a\": 1")


def test_csv_and_wav_round_trip(tmp_path):
    path = write_csv_atomic(tmp_path / "m.csv", [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}], ["a", "b"])
    assert path.read_text() == "a,b\n1,x\n2,y\n"
    audio = np.linspace(-0.5, 0.5, 800, dtype=np.float32)
    wav = write_wav_atomic(tmp_path / "x.wav", audio, 8000)
    back = read_wav(wav, expected_sample_rate=8000)
    assert back.shape == (800,)
    np.testing.assert_allclose(back, audio, atol=1 / 32767 + 1e-6)


def test_read_wav_errors_name_the_file(tmp_path):
    with pytest.raises(SpeechexpError, match="missing.wav does not exist"):
        read_wav(tmp_path / "missing.wav")
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00not really a wav")
    with pytest.raises(SpeechexpError, match="corrupt.wav is corrupt or unreadable"):
        read_wav(corrupt)
    sf.write(tmp_path / "rate.wav", np.zeros(160, dtype=np.float32), 16000)
    with pytest.raises(SpeechexpError, match=r"rate.wav has sample rate 16000 Hz but 8000 Hz"):
        read_wav(tmp_path / "rate.wav", expected_sample_rate=8000)
