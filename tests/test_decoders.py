"""CTC decoders: the word n-gram model is a proper distribution that KenLM reads as we do;
beam search is never worse than greedy and finds what greedy misses; the language model
repairs one-letter errors in known words; the decoder is chosen by config in eval and refused
where there is no CTC output."""

from __future__ import annotations

import pytest
import torch
from torchmetrics.functional.text import char_error_rate

from speechexp.data.text import CharTokenizer
from speechexp.data.word_lm import EOS, UNK, ArpaModel, fit_arpa, unigram_arpa, write_arpa
from speechexp.errors import SpeechexpError
from speechexp.inference.decoders import BeamSearchDecoder, CTCDecoder, build_decoder

TOKENIZER = CharTokenizer()
TRAINING = ["the cat sat on the mat", "the dog sat on the log", "a cat and a dog ran",
            "the cat ran to the dog", "we saw the red mat"]


def emissions(text: str, swap: dict[int, str] | None = None, confidence: float = 8.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probs ``(T, 1, C)`` that spell ``text`` (one frame per character, a blank after each),
    with characters at the positions of ``swap`` replaced: a model's one-letter mistakes."""
    rows = []
    for position, char in enumerate(text):
        row = torch.full((TOKENIZER.vocab_size,), -confidence)
        row[TOKENIZER.encode((swap or {}).get(position, char) if char != " " else "a b")[1 if char == " " else 0]] = 0
        blank = torch.full((TOKENIZER.vocab_size,), -confidence)
        blank[0] = 0
        rows += [row, blank]
    log_probs = torch.stack(rows).log_softmax(-1)
    return log_probs[:, None, :], torch.tensor([log_probs.shape[0]])


@pytest.mark.parametrize("history", [(), ("<s>",), ("the",), ("<s>", "the"), ("the", "cat"), ("on", "the"),
                                     ("never", "seen")])
def test_the_word_model_is_a_distribution_over_the_vocabulary(history):
    model = ArpaModel(fit_arpa(TRAINING, order=3))
    total = sum(10 ** model.log10_prob(history, word) for word in model.vocabulary if word != "<s>")
    assert total == pytest.approx(1.0, abs=1e-5)


def test_the_word_model_prefers_training_like_sentences_and_gives_unknown_words_unk():
    model = ArpaModel(fit_arpa(TRAINING, order=3))
    assert model.sentence_log10_prob("the cat sat on the log".split()) > \
        model.sentence_log10_prob("log the on sat cat the".split()) + 3
    assert model.log10_prob(("the",), "zebra") == model.log10_prob(("the",), UNK) < model.log10_prob(("the",), "cat")


def test_kenlm_scores_our_arpa_file_as_we_do(tmp_path):
    kenlm = pytest.importorskip("flashlight.lib.text.decoder.kenlm")
    from flashlight.lib.text.dictionary import Dictionary

    path = write_arpa(TRAINING, tmp_path / "lm.arpa", order=3)
    model = ArpaModel(path.read_text())
    dictionary = Dictionary()
    for word in sorted(model.vocabulary):
        dictionary.add_entry(word)
    lm = kenlm.KenLM(str(path), dictionary)
    for sentence in ("the cat sat on the log", "log the on sat cat the", "the zebra ran"):
        state, total = lm.start(False), 0.0
        for word in sentence.split():
            state, score = lm.score(state, dictionary.get_index(word if word in model.vocabulary else UNK))
            total += score
        total += lm.finish(state)[1]
        assert total == pytest.approx(model.sentence_log10_prob(sentence.split()), abs=1e-4)


def test_the_unigram_model_is_one_distribution_after_every_history_and_kenlm_reads_it(tmp_path):
    frequencies = {"the": 50.0, "cat": 2.0, "zebu": 0.01}
    model = ArpaModel(unigram_arpa(frequencies, end_probability=0.1))
    for history in [(), ("<s>",), ("cat",), ("<s>", "the")]:
        probabilities = {w: 10 ** model.log10_prob(history, w) for w in [*frequencies, UNK, EOS]}
        assert sum(probabilities.values()) == pytest.approx(1, abs=1e-5)
        assert probabilities[EOS] == pytest.approx(0.1, abs=1e-6)
        assert probabilities["the"] / probabilities["cat"] == pytest.approx(25, rel=1e-4)
        assert probabilities[UNK] == pytest.approx(probabilities["zebu"], rel=1e-4)
    kenlm = pytest.importorskip("flashlight.lib.text.decoder.kenlm")
    from flashlight.lib.text.dictionary import Dictionary

    path = tmp_path / "unigram.arpa"
    path.write_text(unigram_arpa(frequencies))
    dictionary = Dictionary()
    for word in sorted(ArpaModel(path.read_text()).vocabulary):
        dictionary.add_entry(word)
    lm = kenlm.KenLM(str(path), dictionary)
    state, score = lm.score(lm.start(False), dictionary.get_index("cat"))
    assert score == pytest.approx(ArpaModel(path.read_text()).log10_prob(("<s>",), "cat"), abs=1e-5)
    with pytest.raises(ValueError):
        unigram_arpa({"the": 0.0})


def test_the_english_lexicon_spells_words_the_training_text_never_had(tmp_path):
    pytest.importorskip("flashlight.lib.text.decoder")
    pytest.importorskip("wordfreq")
    text, swap = "the house is green", {5: "a", 15: "a"}
    log_probs, lengths = emissions(text, swap=swap)
    probabilities = log_probs[:, 0].exp()
    for position in swap:  # the right letter is the runner-up, e^-2 as likely as the wrong one
        probabilities[2 * position, TOKENIZER.encode(text[position])[0]] = torch.tensor(-2.0).exp()
    log_probs = (probabilities / probabilities.sum(-1, keepdim=True)).log()[:, None]
    assert CTCDecoder().prepare(TOKENIZER)(log_probs, lengths) == ["the hause is graen"]
    training_only = build_decoder("beam_lm").prepare(TOKENIZER, TRAINING, tmp_path)
    assert "house" not in training_only(log_probs, lengths)[0]  # neither word is in its lexicon
    english = build_decoder("beam_english").prepare(TOKENIZER, TRAINING, tmp_path)
    assert english(log_probs, lengths) == ["the house is green"]
    assert english.describe().startswith("beam_english (beam 64, 100000 English words")
    assert len(list((tmp_path / "lm").glob("english-100000-*.arpa"))) == 1
    # without the training transcripts it still decodes (they only add words)
    assert build_decoder("beam_english").prepare(TOKENIZER, None, tmp_path)(log_probs, lengths) == [text]


def test_an_unknown_lexicon_is_refused_with_the_choices():
    with pytest.raises(SpeechexpError, match="training, english"):
        build_decoder({"_target_": "speechexp.inference.decoders.BeamSearchDecoder", "lm": True, "lexicon": "wsj"})


def test_beam_search_sums_alignments_that_greedy_misses():
    """Two frames of P(blank)=0.6, P(a)=0.4: the best path is blank-blank (0.36), but "a" has
    three alignments (0.16 + 0.24 + 0.24 = 0.64)."""
    pytest.importorskip("flashlight.lib.text.decoder")
    row = torch.full((TOKENIZER.vocab_size,), 1e-6)
    row[0], row[TOKENIZER.encode("a")[0]] = 0.6, 0.4
    log_probs, lengths = torch.stack([row, row]).log()[:, None, :], torch.tensor([2])
    assert CTCDecoder().prepare(TOKENIZER)(log_probs, lengths) == [""]
    assert build_decoder("beam").prepare(TOKENIZER)(log_probs, lengths) == ["a"]


def test_beam_search_is_never_worse_than_greedy_on_noisy_outputs():
    pytest.importorskip("flashlight.lib.text.decoder")
    generator = torch.Generator().manual_seed(0)
    beam = BeamSearchDecoder(beam_size=16).prepare(TOKENIZER)
    greedy = CTCDecoder().prepare(TOKENIZER)
    references, greedy_out, beam_out = [], [], []
    for text in TRAINING * 4:
        log_probs, lengths = emissions(text, confidence=2.0)
        log_probs = (log_probs + 2.5 * torch.randn(log_probs.shape, generator=generator)).log_softmax(-1)
        references.append(text)
        greedy_out += greedy(log_probs, lengths)
        beam_out += beam(log_probs, lengths)
    greedy_cer, beam_cer = float(char_error_rate(greedy_out, references)), float(char_error_rate(beam_out, references))
    assert 0.05 < greedy_cer and beam_cer <= greedy_cer, (greedy_cer, beam_cer)


def test_the_language_model_repairs_one_letter_errors_in_known_words(tmp_path):
    pytest.importorskip("flashlight.lib.text.decoder")
    log_probs, lengths = emissions("the cat sat on the mat", swap={4: "k", 19: "n"})
    assert CTCDecoder().prepare(TOKENIZER)(log_probs, lengths) == ["the kat sat on the nat"]
    decoder = build_decoder("beam_lm").prepare(TOKENIZER, TRAINING, tmp_path)
    assert decoder(log_probs, lengths) == ["the cat sat on the mat"]
    assert len(list((tmp_path / "lm").glob("words-3gram-*.arpa"))) == 1  # cached where it was asked to be


def test_beam_lm_without_transcripts_names_what_to_do():
    pytest.importorskip("flashlight.lib.text.decoder")
    with pytest.raises(SpeechexpError, match="training transcripts") as error:
        build_decoder("beam_lm").prepare(TOKENIZER, None, None)
    assert "\n" not in str(error.value) and "speechexp-eval" in str(error.value)


def test_an_unknown_decoder_is_named_with_the_choices():
    with pytest.raises(SpeechexpError, match="beam_lm") as error:
        build_decoder("beam_lmm")
    assert "greedy" in str(error.value)


def test_unknown_settings_are_refused():
    with pytest.raises(SpeechexpError):
        build_decoder({"_target_": "speechexp.inference.decoders.BeamSearchDecoder", "beam_width": 3})


def test_an_unwritable_dataset_folder_caches_the_model_in_the_temporary_folder(tmp_path):
    pytest.importorskip("flashlight.lib.text.decoder")
    blocked = tmp_path / "not_a_folder"
    blocked.write_text("")  # lm/ cannot be created under a file (root ignores permissions)
    log_probs, lengths = emissions("the cat sat on the mat", swap={4: "k"})
    decoder = build_decoder("beam_lm").prepare(TOKENIZER, TRAINING, blocked)
    assert decoder(log_probs, lengths) == ["the cat sat on the mat"]
