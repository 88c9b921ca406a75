"""Spectrogram + mel-spectrogram PNGs for WAV files: ``speechexp-plot PATH... [--out DIR]``.

Each PATH is a WAV file or a folder (searched recursively for ``*.wav``). Each figure is
written as ``OUT/<folder>_<stem>.png``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from speechexp.errors import SpeechexpError
from speechexp.io import read_wav
from speechexp.runs.entry import entry_point, positive


def find_wavs(paths: list[str], limit: int | None) -> list[Path]:
    """WAV files named directly or found under folders (sorted, at most ``limit`` per folder)."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_file():
            found.append(path)
        elif path.is_dir():
            wavs = sorted(p for p in path.rglob("*") if p.suffix.lower() == ".wav")
            if not wavs:
                raise SpeechexpError(f"Folder {path} holds no .wav files; pass a WAV file or a folder of them.")
            found.extend(wavs[:limit] if limit is not None else wavs)
        else:
            raise SpeechexpError(f"{path} does not exist; pass a WAV file or a folder of WAV files.")
    return found


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="speechexp-plot", description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", help="WAV files or folders")
    parser.add_argument("--out", default="outputs/spectrograms", help="output folder (default: %(default)s)")
    parser.add_argument("--limit", type=positive, default=None, help="at most this many files per folder")
    parser.add_argument("--n-fft", type=positive, default=256)
    parser.add_argument("--hop-length", type=positive, default=64)
    parser.add_argument("--n-mels", type=positive, default=64)
    return parser.parse_args(argv)


@entry_point
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import soundfile as sf  # noqa: PLC0415

    from speechexp.viz.spectrogram import plot_spectrogram_and_mel  # noqa: PLC0415  (slow import)

    for wav in find_wavs(args.paths, args.limit):
        audio = read_wav(wav)
        sample_rate = sf.info(wav).samplerate
        out = Path(args.out) / f"{wav.parent.name}_{wav.stem}.png"
        plot_spectrogram_and_mel(audio, sample_rate, out, title=f"{wav.parent.name}/{wav.name}",
                                 n_fft=args.n_fft, hop_length=args.hop_length, n_mels=args.n_mels)
        print(out, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
