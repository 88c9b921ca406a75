"""Phoneme targets and the phoneme lexicon decoder: words are spelled by their sounds, every
espeak phoneme of frequent English has a class, the model's phoneme head trains beside the
characters, and ``decoder=beam_phonemes`` finds English words from phonemes alone."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from torchmetrics.functional.text import word_error_rate

from speechexp.data import espeak
from speechexp.data.emotion_datamodule import collate
from speechexp.data.phonemes import IGNORED, MERGED, PHONEMES, PhonemeTokenizer, word_phonemes
from speechexp.data.text import CharTokenizer
from speechexp.errors import SpeechexpError
from speechexp.inference.decoders import build_decoder
from speechexp.models.multitask import MultitaskSpeechModel
from speechexp.tasks.asr_emotion import AsrEmotionTask
from speechexp.train import train

PHONEMES_TOKENIZER = PhonemeTokenizer()
SMALL_CORPUS = ("dataset.preparer.num_speakers=30", "dataset.preparer.utterances_per_speaker=10",
                "dataset.preparer.num_sentences=120")


def test_words_are_spelled_by_their_sounds():
    assert word_phonemes("cow") == ("k", "aU")
    assert word_phonemes("knight") == word_phonemes("night")  # silent letters say nothing
    assert word_phonemes("phone")[0] == word_phonemes("fun")[0] == "f"
    assert word_phonemes("cat")[0] == word_phonemes("kite")[0] == "k"
    ids = PHONEMES_TOKENIZER.encode("the cow")
    assert PHONEMES_TOKENIZER.decode(ids) == "D @ | k aU"  # words joined by the boundary, no stress marks
    assert all(0 < i < PHONEMES_TOKENIZER.vocab_size for i in ids)
    assert PHONEMES_TOKENIZER.vocab_size == len(PHONEMES) + 2


def test_every_phoneme_of_frequent_english_words_has_a_class():
    """espeak's names for the 3000 most frequent words all map onto the inventory: none is dropped."""
    wordfreq = pytest.importorskip("wordfreq")
    words = [w for w in wordfreq.top_n_list("en", 3000) if w.isalpha()]
    names = {n.replace("'", "").replace(",", "") for w in words
             for n in espeak.phonemes(w, "en-us").replace(" ", "_").split("_")}
    unknown = {n for n in names - IGNORED if MERGED.get(n, n) not in PHONEMES}
    assert not unknown
    assert set(MERGED.values()) <= set(PHONEMES)


def test_batches_carry_padded_phoneme_targets():
    items = [{"features": torch.zeros(5, 4), "tokens": torch.tensor([1, 2]), "emotion": 0, "text": t, "path": t,
              "source": "", "phonemes": torch.tensor(PHONEMES_TOKENIZER.encode(t))} for t in ("cow", "front right")]
    batch = collate(items)
    assert batch["phoneme_lengths"].tolist() == [2, 9]  # f r V n t | r aI t
    assert batch["phonemes"].shape == (2, 9) and batch["phonemes"][0, 2:].eq(0).all()


def test_the_phoneme_head_shares_the_encoder_frames():
    model = MultitaskSpeechModel(n_mels=40, vocab_size=29, num_emotions=5, units=16, conv_channels=16,
                                 phoneme_classes=PHONEMES_TOKENIZER.vocab_size)
    lengths = torch.tensor([50, 31])
    log_probs, out_lengths, _, phonemes = model(torch.randn(2, 50, 40), lengths, with_phonemes=True)
    assert phonemes.shape == (log_probs.shape[0], 2, PHONEMES_TOKENIZER.vocab_size)
    assert torch.allclose(phonemes.exp().sum(-1), torch.ones(phonemes.shape[:2]), atol=1e-5)
    assert len(model(torch.randn(2, 50, 40), lengths)) == 3  # without asking: the three outputs as always
    with pytest.raises(ValueError, match="no phoneme head"):
        MultitaskSpeechModel(n_mels=40, vocab_size=29, num_emotions=5, units=16)(
            torch.randn(1, 9, 40), torch.tensor([9]), with_phonemes=True)


def test_a_phoneme_loss_or_decoder_without_a_phoneme_head_is_refused():
    model = MultitaskSpeechModel(n_mels=40, vocab_size=29, num_emotions=5, units=16)
    common = {"model": model, "loss": torch.nn.CTCLoss(), "optimizer": torch.optim.Adam,
              "tokenizer": CharTokenizer(), "emotion_names": ["angry", "sad"]}
    with pytest.raises(SpeechexpError, match="dataset.datamodule.phonemes=true"):
        AsrEmotionTask(**common, phoneme_weight=1.0)
    with pytest.raises(SpeechexpError, match="decoder=beam_phonemes reads a phoneme head"):
        AsrEmotionTask(**common, decoder="beam_phonemes")


@pytest.mark.parametrize("option,named", [("decoder=beam_phonemes", "decoder=beam_phonemes decodes a phoneme head"),
                                          ("task.module.phoneme_weight=1", "task.module.phoneme_weight needs")])
def test_a_run_without_phoneme_targets_refuses_phoneme_options_before_it_starts(compose_train, tmp_path, option, named):
    from speechexp.errors import IncompatibleOptions

    cfg = compose_train("experiment=asr_emotion", option)
    with pytest.raises(IncompatibleOptions, match=named) as refusal:
        train(cfg)
    assert "dataset.datamodule.phonemes=true" in str(refusal.value) and "\n" not in str(refusal.value)
    assert not (tmp_path / "run" / "results.json").exists()


def phoneme_emissions(text: str, confidence: float = 8.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probs ``(T, 1, phoneme classes)`` that say ``text``'s phonemes, a blank after each."""
    rows = []
    for token in PHONEMES_TOKENIZER.encode(text):
        for index in (token, 0):
            row = torch.full((PHONEMES_TOKENIZER.vocab_size,), -confidence)
            row[index] = 0
            rows.append(row)
    log_probs = torch.stack(rows).log_softmax(-1)
    return log_probs[:, None], torch.tensor([log_probs.shape[0]])


def test_greedy_phonemes_merge_repeats_and_drop_blanks_and_word_boundaries():
    """The phoneme error rate compares sound strings: no blanks, no word boundaries."""
    log_probs, lengths = phoneme_emissions("front right")
    doubled = log_probs.repeat_interleave(2, dim=0)  # every class held for two frames: repeats merge
    assert PHONEMES_TOKENIZER.greedy(doubled, lengths * 2) == ["f r V n t r aI t"]
    assert PHONEMES_TOKENIZER.sounds(PHONEMES_TOKENIZER.encode("front right")) == "f r V n t r aI t"
    assert PHONEMES_TOKENIZER.greedy(log_probs, torch.tensor([4])) == ["f r"]  # within the length only


def test_the_phoneme_lexicon_finds_english_words_by_their_sound(tmp_path):
    pytest.importorskip("flashlight.lib.text.decoder")
    pytest.importorskip("wordfreq")
    decoder = build_decoder({"_target_": "speechexp.inference.decoders.PhonemeLexiconDecoder",
                             "english_words": 20000}).prepare(CharTokenizer(), ["front left", "zorblax"], tmp_path)
    for text in ("giraffe", "front right", "the penguin eats a fish", "zorblax"):  # zorblax: a training word
        assert decoder(*phoneme_emissions(text)) == [text]
    # words that sound alike: the more frequent one
    assert decoder(*phoneme_emissions("knight")) == ["night"]
    assert decoder.describe().startswith("beam_phonemes (beam 64, 20000 English words by their phonemes")


@pytest.mark.slow
def test_a_model_trains_its_phoneme_head_and_decodes_english_words_with_it(compose_train, tmp_path):
    """The phoneme CTC loss falls in training; the test stage and the API decode with the phoneme lexicon."""
    pytest.importorskip("flashlight.lib.text.decoder")
    pytest.importorskip("wordfreq")
    from speechexp import load_model
    from speechexp.data.general_text import word_list

    cfg = compose_train("experiment=asr_emotion", *SMALL_CORPUS, "dataset.datamodule.phonemes=true",
                        "task.module.phoneme_weight=1.0", "decoder=beam_phonemes", "decoder.english_words=2000",
                        "decoder.word_score=3",  # a tiny model: words, not silence
                        "trainer.max_epochs=4", "logger=csv", "trainer.enable_progress_bar=false")
    train(cfg)
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["decoder"].startswith("beam_phonemes (beam 64, 2000 English words")
    assert isinstance(results["test/phoneme_ctc"], float) and isinstance(results["test/cer"], float)
    history = list(csv.DictReader(open(tmp_path / "run" / "csv" / "metrics.csv", newline="")))
    losses = [float(r["train/phoneme_ctc"]) for r in history if r.get("train/phoneme_ctc")]
    assert len(losses) == 4 and losses[-1] < 0.7 * losses[0], losses
    error_rates = [float(r["val/per"]) for r in history if r.get("val/per")]
    assert len(error_rates) == 4 and all(0 <= rate <= 1.5 for rate in error_rates), error_rates  # every epoch
    rows = list(csv.DictReader(open(tmp_path / "run" / "test_predictions.csv", newline="")))
    assert all(row["phoneme_text"] == PHONEMES_TOKENIZER.sounds(PHONEMES_TOKENIZER.encode(row["text"])) for row in rows)
    per = word_error_rate([row["phoneme_hypothesis"] for row in rows], [row["phoneme_text"] for row in rows])
    assert results["test/per"] == pytest.approx(float(per), abs=1e-4)
    train_words = {w for r in csv.DictReader(open(results["dataset_dir"] + "/metadata.csv", newline=""))
                   if r["split"] == "train" for w in CharTokenizer().normalize(r["text"]).split()}
    spelled = {w for row in rows for w in row["hypothesis"].split()}
    assert spelled and spelled <= train_words | set(word_list(2000)[0])

    model = load_model(results["best_checkpoint"], decoder="beam_phonemes")
    import soundfile as sf

    audio, rate = sf.read(rows[0]["path"], dtype="float32")
    assert set(model.transcribe(audio, rate).text.split()) <= train_words | set(word_list(100000)[0])
