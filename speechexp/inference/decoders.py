"""CTC decoders: greedy (best path), beam search, and beam search with a word language model.

- ``greedy``: the most likely class per frame, repeats merged, blanks dropped. No extra.
- ``beam``: CTC prefix beam search over characters (flashlight-text's lexicon-free
  decoder, the ``lm`` extra), ``beam_size`` prefixes kept per frame.
- ``beam_lm``: the beam spells only words of a lexicon (the training transcripts' words)
  and scores word sequences with a word n-gram model fitted on the training transcripts
  (:mod:`speechexp.data.word_lm`), weighted by ``lm_weight``, plus ``word_score`` per word.
  The ARPA file is built the first time and cached (in the dataset folder when there is one).
- ``beam_english``: the same beam search over general English instead (``lexicon='english'``):
  the ``english_words`` most frequent words of ``wordfreq`` plus the training words, scored
  by their frequencies alone (a unigram model, :func:`speechexp.data.word_lm.unigram_arpa`),
  for speech whose words the training sentences do not predict (people's own recordings).
- ``beam_phonemes``: the same English lexicon and unigram model, searched over a model's
  *phoneme* head (:mod:`speechexp.data.phonemes`): each word is spelled by its espeak
  phonemes, so a word is found by how it sounds, not by how it is written.

A decoder is built from a config node (``conf/decoder/*.yaml``; ``None`` means greedy) by
:func:`build_decoder`, prepared (:meth:`CTCDecoder.prepare`) with the tokenizer and the training
transcripts, and called on ``log_probs (T, N, C)`` and ``lengths [N]``.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch

from speechexp.data.text import CharTokenizer
from speechexp.data.word_lm import BOS, EOS, UNK, unigram_arpa, write_arpa, write_text_atomic
from speechexp.errors import SpeechexpError

log = logging.getLogger("speechexp.decoders")
LEXICONS = ("training", "english")


class CTCDecoder:
    """Greedy decoding; the base of the beam decoders."""

    kind = "greedy"
    needs_transcripts = False

    def __init__(self) -> None:
        self.tokenizer: CharTokenizer | None = None

    def prepare(self, tokenizer: CharTokenizer, transcripts: Sequence[str] | None = None,
                cache_dir: Path | None = None) -> "CTCDecoder":
        """Bind the tokenizer (and, for ``beam_lm``, fit or load the language model of the
        training ``transcripts``)."""
        self.tokenizer = tokenizer
        return self

    def __call__(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> list[str]:
        """Transcripts of ``log_probs (T, N, C)`` within each of ``lengths [N]``."""
        best = log_probs.argmax(-1).T.cpu()  # (N, T)
        return [self.tokenizer.ctc_decode(best[i, : int(n)]) for i, n in enumerate(lengths.cpu())]

    def describe(self) -> str:
        return self.kind


class BeamSearchDecoder(CTCDecoder):
    """CTC beam search (flashlight-text), with a lexicon and word n-gram model when ``lm``.

    Args:
        beam_size: prefixes kept per frame.
        beam_size_token: classes tried per frame (``None``: all).
        beam_threshold: prefixes scoring this much below the best are dropped.
        lm: spell only the lexicon's words and score them with its word model.
        lexicon: ``training`` (the training transcripts' words, their n-gram model) or
            ``english`` (``english_words`` frequent English words and the training words,
            their unigram frequencies; needs the ``wordfreq`` package of the voices extra).
        english_words: how many of the most frequent English words the ``english`` lexicon holds.
        lm_order: the n-gram order (``training`` lexicon).
        lm_weight: weight of the model's log10 probability against the acoustic log-probs.
        word_score: added per word (positive: longer transcripts).
        sil_score: added per word boundary (the space character).
    """

    def __init__(self, beam_size: int = 32, beam_size_token: int | None = None, beam_threshold: float = 25.0,
                 lm: bool = False, lexicon: str = "training", english_words: int = 100000, lm_order: int = 3,
                 lm_weight: float = 1.0, word_score: float = 0.0, sil_score: float = 0.0) -> None:
        super().__init__()
        if int(beam_size) < 1 or int(lm_order) < 1 or int(english_words) < 1:
            raise SpeechexpError("decoder.beam_size, decoder.lm_order and decoder.english_words must be at least 1.")
        if lexicon not in LEXICONS:
            raise SpeechexpError(f"decoder.lexicon must be one of {', '.join(LEXICONS)}, not {lexicon!r}.")
        self.beam_size, self.beam_size_token = int(beam_size), beam_size_token
        self.beam_threshold, self.lm, self.lm_order = float(beam_threshold), bool(lm), int(lm_order)
        self.lexicon, self.english_words = lexicon, int(english_words)
        self.lm_weight, self.word_score, self.sil_score = float(lm_weight), float(word_score), float(sil_score)
        self.kind = ("beam_english" if lexicon == "english" else "beam_lm") if self.lm else "beam"
        self.needs_transcripts = self.lm  # the english lexicon adds the training words when they are known
        self._decoder = None
        self.words: list[str] = []

    def describe(self) -> str:
        text = f"{self.kind} (beam {self.beam_size}"
        if self.lm and self.lexicon == "english":
            text += f", {self.english_words} English words, unigram, lm_weight {self.lm_weight}, word_score {self.word_score}"
        elif self.lm:
            text += f", {self.lm_order}-gram, lm_weight {self.lm_weight}, word_score {self.word_score}"
        return text + ")"

    def prepare(self, tokenizer: CharTokenizer, transcripts: Sequence[str] | None = None,
                cache_dir: Path | None = None) -> "BeamSearchDecoder":
        fl, KenLM, Dictionary = _flashlight(self.kind)
        self.tokenizer = tokenizer
        n_classes, space = tokenizer.vocab_size, tokenizer.encode("a b")[1]
        token_size = n_classes if self.beam_size_token is None else int(self.beam_size_token)
        # log_add=True: a prefix scores the sum over its alignments (prefix beam search), not the best one
        if not self.lm:
            options = fl.LexiconFreeDecoderOptions(self.beam_size, token_size, self.beam_threshold, 0.0,
                                                   self.sil_score, True, fl.CriterionType.CTC)
            self._decoder = fl.LexiconFreeDecoder(options, fl.ZeroLM(), space, tokenizer.blank_id, [])
            return self
        if self.lexicon == "english":
            arpa, words = self._english_model(tokenizer, transcripts, cache_dir)
        else:
            arpa, sentences = self._language_model(tokenizer, transcripts, cache_dir)
            words = {w for sentence in sentences for w in sentence.split()}
        self._lexicon_decoder((fl, KenLM, Dictionary), arpa, words, tokenizer.encode, n_classes, space,
                              tokenizer.blank_id)
        return self

    def _lexicon_decoder(self, flashlight: tuple[Any, Any, Any], arpa: Path, words: Sequence[str],
                         spell: Callable[[str], list[int]], n_classes: int, separator: int, blank: int) -> int:
        """Set up flashlight's lexicon decoder: the language model ``arpa`` over ``words``, each
        word spelled by ``spell`` into output classes (``n_classes``, words between ``separator``
        classes). Of words spelled alike only the most probable alone is kept (letters never spell
        two words alike; phonemes do, for homophones). Returns how many spellings there are."""
        fl, KenLM, Dictionary = flashlight
        self.words = sorted(set(words) | {BOS, EOS, UNK})  # the model's unigrams
        dictionary = Dictionary()
        for word in self.words:
            dictionary.add_entry(word)
        with quiet_stderr():  # KenLM prints its loading progress bar on the C stderr
            lm = KenLM(str(arpa), dictionary)
        start = lm.start(False)
        best: dict[tuple[int, ...], tuple[float, int]] = {}  # spelling -> (score, word index)
        for index, word in enumerate(self.words):
            spelled = () if word.startswith("<") else tuple(spell(word))  # <s>, </s>, <unk>: never spelled
            if spelled:
                score = lm.score(start, index)[1]
                if spelled not in best or score > best[spelled][0]:
                    best[spelled] = (score, index)
        trie = fl.Trie(n_classes, separator)
        for spelled, (score, index) in best.items():
            trie.insert(list(spelled), index, score)
        trie.smear(fl.SmearingMode.MAX)
        token_size = n_classes if self.beam_size_token is None else int(self.beam_size_token)
        # log_add=True: a prefix scores the sum over its alignments (prefix beam search), not the best one
        options = fl.LexiconDecoderOptions(self.beam_size, token_size, self.beam_threshold, self.lm_weight,
                                           self.word_score, float("-inf"), self.sil_score, True,
                                           fl.CriterionType.CTC)
        self._decoder = fl.LexiconDecoder(options, trie, lm, separator, blank, self.words.index(UNK), [], False)
        self._lm = lm  # the decoder holds a reference the binding does not keep alive
        return len(best)

    def _language_model(self, tokenizer: CharTokenizer, transcripts: Sequence[str] | None,
                        cache_dir: Path | None) -> tuple[Path, list[str]]:
        """The ARPA file of the training transcripts (cached by their content's hash) and the
        distinct normalised sentences it was fitted on."""

        if transcripts is None:
            raise SpeechexpError("decoder=beam_lm needs the training transcripts to fit its language model, and "
                                 "this checkpoint does not hold them (trained before they were saved); evaluate it "
                                 "with speechexp-eval ckpt_path=... decoder=beam_lm, which reads its dataset, or "
                                 "use decoder=beam.")
        sentences = sorted({tokenizer.normalize(t) for t in transcripts} - {""})
        if not sentences:
            raise SpeechexpError("decoder=beam_lm found no training transcripts to fit its language model on.")
        digest = hashlib.sha1("\n".join(sentences).encode()).hexdigest()[:10]
        path = self._cached(f"words-{self.lm_order}gram-{digest}.arpa", cache_dir,
                            lambda target: write_arpa(sentences, target, self.lm_order))
        log.info("Language model: %d-gram over %d training sentences -> %s", self.lm_order, len(sentences), path)
        return path, sentences

    def _english_model(self, tokenizer: CharTokenizer, transcripts: Sequence[str] | None,
                       cache_dir: Path | None) -> tuple[Path, list[str]]:
        """The unigram ARPA file of the ``english_words`` most frequent English words and the
        training words (those not among them as frequent as the rarest), cached by content,
        and its words."""
        from speechexp.data.general_text import word_list  # noqa: PLC0415 - needs wordfreq

        english, frequencies = word_list(self.english_words)
        table = {w: float(f) for w, f in zip(english, frequencies) if tokenizer.normalize(w) == w}
        rarest = min(table.values())
        for word in sorted({w for t in transcripts or [] for w in tokenizer.normalize(t).split()} - set(table)):
            table[word] = rarest
        digest = hashlib.sha1("\n".join(f"{w} {f:.6g}" for w, f in table.items()).encode()).hexdigest()[:10]
        path = self._cached(f"english-{self.english_words}-{digest}.arpa", cache_dir,
                            lambda target: write_text_atomic(unigram_arpa(table), target))
        log.info("Language model: unigram over %d English and training words -> %s", len(table), path)
        return path, list(table)

    @staticmethod
    def _cached(name: str, cache_dir: Path | None, write: Callable[[Path], Path]) -> Path:
        """``name`` in the cache folder (``lm/`` of the dataset folder, else the temporary one
        when that is read-only), written by ``write(path)`` the first time."""
        folders = ([Path(cache_dir) / "lm"] if cache_dir else []) + [Path(tempfile.gettempdir()) / "speechexp-lm"]
        for folder in folders:
            if (folder / name).is_file():
                return folder / name
            try:
                return write(folder / name)
            except OSError:
                continue
        raise SpeechexpError(f"Could not write the language model into {folders[0]}; make that folder writable.")

    def __call__(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> list[str]:
        if self._decoder is None:
            raise SpeechexpError(f"decoder={self.kind} was used before prepare().")
        emissions = log_probs.detach().float().cpu().transpose(0, 1).contiguous()  # (N, T, C)
        n_classes = emissions.shape[2]
        texts = []
        for n, length in enumerate(lengths.cpu().tolist()):
            frames = emissions[n, : int(length)].contiguous()
            if frames.shape[0] == 0:
                texts.append("")
                continue
            best = self._decoder.decode(frames.data_ptr(), frames.shape[0], n_classes)[0]
            if self.lm:
                texts.append(" ".join(self.words[w] for w in best.words if w >= 0))
            else:
                texts.append(self.tokenizer.ctc_decode(best.tokens))
        return texts


class PhonemeLexiconDecoder(BeamSearchDecoder):
    """Beam search over a phoneme head's log-probs ``(T, N, phoneme classes)`` that spells
    English words by their phonemes: the ``english_words`` most frequent words of ``wordfreq``
    and the training words, scored by their unigram frequencies. Of words that sound alike
    (one phoneme spelling) only the most frequent is kept: a unigram model could never
    choose another. Settings as :class:`BeamSearchDecoder`'s."""

    reads_phonemes = True

    def __init__(self, beam_size: int = 64, beam_size_token: int | None = None, beam_threshold: float = 25.0,
                 english_words: int = 100000, lm_weight: float = 1.0, word_score: float = 0.0,
                 sil_score: float = 0.0) -> None:
        super().__init__(beam_size, beam_size_token, beam_threshold, lm=True, lexicon="english",
                         english_words=english_words, lm_weight=lm_weight, word_score=word_score,
                         sil_score=sil_score)
        self.kind = "beam_phonemes"

    def describe(self) -> str:
        return (f"{self.kind} (beam {self.beam_size}, {self.english_words} English words by their phonemes, unigram, "
                f"lm_weight {self.lm_weight}, word_score {self.word_score})")

    def prepare(self, tokenizer: CharTokenizer, transcripts: Sequence[str] | None = None,
                cache_dir: Path | None = None) -> "PhonemeLexiconDecoder":
        fl, KenLM, Dictionary = _flashlight(self.kind)
        from speechexp.data.phonemes import PhonemeTokenizer  # noqa: PLC0415

        self.tokenizer = tokenizer
        phonemes = PhonemeTokenizer()
        arpa, words = self._english_model(tokenizer, transcripts, cache_dir)
        spellings = self._lexicon_decoder((fl, KenLM, Dictionary), arpa, words, phonemes.spell,
                                          phonemes.vocab_size, phonemes.boundary_id, phonemes.blank_id)
        log.info("Phoneme lexicon: %d English and training words, %d distinct phoneme spellings",
                 len(self.words) - 3, spellings)
        return self


def _flashlight(kind: str) -> tuple[Any, Any, Any]:
    """flashlight-text's decoder module, KenLM and Dictionary, or a sentence naming the extra."""
    try:
        from flashlight.lib.text import decoder as fl  # noqa: PLC0415
        from flashlight.lib.text.decoder.kenlm import KenLM  # noqa: PLC0415
        from flashlight.lib.text.dictionary import Dictionary  # noqa: PLC0415
    except ImportError:
        raise SpeechexpError(f"decoder={kind} needs the optional 'lm' dependencies (flashlight-text); "
                             "run pip install 'speechexp[lm]', or use decoder=greedy.") from None
    return fl, KenLM, Dictionary


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """Silence file descriptor 2 (output of C++ code, which Python's redirection misses)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def decoder_folder() -> Path:
    """``conf/decoder``: one YAML per decoder option."""
    from speechexp.config import CONF_DIR  # noqa: PLC0415

    return Path(CONF_DIR) / "decoder"


def decoder_options() -> str:
    """``"beam, beam_english, ..."``: the decoders' names, for errors."""
    return ", ".join(sorted(p.stem for p in decoder_folder().glob("*.yaml")))


def decoder_settings(name: str) -> dict:
    """The settings of ``conf/decoder/<name>.yaml`` (as the command line's ``decoder=<name>``)."""
    from speechexp.config.registry import read_yaml  # noqa: PLC0415

    path = decoder_folder() / f"{name}.yaml"
    if not path.is_file():
        raise SpeechexpError(f"decoder {name!r} is unknown; use one of {decoder_options()}.")
    return read_yaml(path)


def build_decoder(settings: Any) -> CTCDecoder:
    """A decoder from its config node (``_target_`` and settings, as in ``conf/decoder``), or
    an option's name (``"beam_lm"``); ``None`` → greedy."""
    if settings is None:
        return CTCDecoder()
    if isinstance(settings, CTCDecoder):
        return settings
    if isinstance(settings, str):
        settings = decoder_settings(settings)
    if not isinstance(settings, Mapping) or "_target_" not in settings:
        raise SpeechexpError(f"decoder={settings!r} is neither a decoder's name nor its settings with a _target_ "
                             f"(as in conf/decoder/NAME.yaml); pass a name ({decoder_options()}) or such settings.")
    from speechexp.runs.build import instantiate_checked  # noqa: PLC0415

    decoder = instantiate_checked(dict(settings))
    if not isinstance(decoder, CTCDecoder):
        raise SpeechexpError(f"decoder {settings.get('_target_')} is not a CTC decoder "
                             "(speechexp.inference.decoders.CTCDecoder).")
    return decoder
