"""The two-sinusoid dataset: contents, reuse, fingerprints, atomicity."""

import csv

import numpy as np
import pytest

from speechexp.data import sinusoids
from speechexp.data.sinusoids import SinusoidPreparer, sinusoid, split_counts
from speechexp.errors import SpeechexpError
from speechexp.io import read_wav


def rows_of(folder):
    with open(folder / "metadata.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_default_dataset_matches_the_spec(tmp_path):
    folder = SinusoidPreparer().prepare(tmp_path)
    rows = rows_of(folder)
    assert len(rows) == 100
    assert {"source1", "source2", "mixture", "fs", "f1", "f2", "a1", "a2", "phase1", "phase2", "split"} <= set(rows[0])
    assert [sum(r["split"] == s for r in rows) for s in ("train", "val", "test")] == [80, 10, 10]
    assert all(100 <= float(r["f1"]) <= 900 and 1100 <= float(r["f2"]) <= 3500 for r in rows)
    assert len({r["f1"] for r in rows}) == 100  # random, not constant
    for sub in ("source1", "source2", "mixture"):
        assert len(list((folder / sub).glob("*.wav"))) == 100


def test_wavs_hold_the_sinusoids_in_metadata(tmp_path):
    folder = SinusoidPreparer(n_examples=5).prepare(tmp_path)
    row = rows_of(folder)[3]
    fs = int(row["fs"])
    s1 = read_wav(folder / row["source1"], fs)
    s2 = read_wav(folder / row["source2"], fs)
    mixture = read_wav(folder / row["mixture"], fs)
    assert s1.shape == (8000,)
    expected1 = sinusoid(float(row["f1"]), float(row["a1"]), float(row["phase1"]), fs, 8000)
    expected2 = sinusoid(float(row["f2"]), float(row["a2"]), float(row["phase2"]), fs, 8000)
    np.testing.assert_allclose(s1, expected1, atol=2e-4)
    np.testing.assert_allclose(s2, expected2, atol=2e-4)
    np.testing.assert_allclose(mixture, expected1 + expected2, atol=3e-4)


def test_same_config_reuses_and_other_config_gets_own_folder(tmp_path):
    first = SinusoidPreparer(n_examples=6).prepare(tmp_path)
    stamp = (first / "metadata.csv").stat().st_mtime_ns
    again = SinusoidPreparer(n_examples=6).prepare(tmp_path)
    assert again == first and (first / "metadata.csv").stat().st_mtime_ns == stamp
    other = SinusoidPreparer(n_examples=6, seed=1).prepare(tmp_path)
    assert other != first
    assert len(rows_of(first)) == 6 and len(rows_of(other)) == 6
    assert rows_of(first)[0]["f1"] != rows_of(other)[0]["f1"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([first.name, other.name])


def test_interrupted_prepare_leaves_nothing_and_next_run_completes(tmp_path, monkeypatch):
    real_write, calls = sinusoids.write_wav_atomic, []

    def failing_write(*args, **kwargs):
        calls.append(1)
        if len(calls) == 7:
            raise KeyboardInterrupt
        return real_write(*args, **kwargs)

    monkeypatch.setattr(sinusoids, "write_wav_atomic", failing_write)
    preparer = SinusoidPreparer(n_examples=5)
    (tmp_path / "mine").mkdir()
    with pytest.raises(KeyboardInterrupt):
        preparer.prepare(tmp_path / "mine")
    assert list((tmp_path / "mine").iterdir()) == []  # no target folder, no staging folder; the user's folder stays
    calls.clear()
    with pytest.raises(KeyboardInterrupt):  # data folders the failed first build made are removed too
        preparer.prepare(tmp_path / "new" / "data")
    assert [p.name for p in tmp_path.iterdir()] == ["mine"]
    monkeypatch.setattr(sinusoids, "write_wav_atomic", real_write)
    folder = preparer.prepare(tmp_path)
    assert len(rows_of(folder)) == 5
    assert len(list((folder / "mixture").glob("*.wav"))) == 5


def test_split_counts_and_bad_parameters():
    assert split_counts(100, {"train": 0.8, "val": 0.1, "test": 0.1}) == {"val": 10, "test": 10, "train": 80}
    assert split_counts(5, {"train": 0.9, "val": 0.05, "test": 0.05}) == {"val": 1, "test": 1, "train": 3}
    with pytest.raises(SpeechexpError, match="f2_range"):
        SinusoidPreparer(f2_range=(1100, 5000))
    with pytest.raises(SpeechexpError, match="no training data"):
        split_counts(2, {"train": 0.0, "val": 0.5, "test": 0.5})
    with pytest.raises(SpeechexpError, match="n_examples=2 leaves the val split empty; pass dataset.preparer.n_examples=3"):
        split_counts(2, {"train": 0.8, "val": 0.1, "test": 0.1})
