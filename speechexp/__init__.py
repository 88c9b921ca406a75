"""speechexp: configuration-driven speech experiments (separation, CTC ASR, emotion)."""

from importlib.metadata import PackageNotFoundError, version

try:  # one source for the version: pyproject.toml, read from the installed metadata
    __version__ = version("speechexp")
except PackageNotFoundError:  # a source tree on sys.path without an install
    __version__ = "0+unknown"


def __getattr__(name: str):
    """``speechexp.load_model`` imports the inference API (and torch) only when first used."""
    if name == "load_model":
        from speechexp.inference.model import load_model  # noqa: PLC0415

        return load_model
    raise AttributeError(f"module 'speechexp' has no attribute {name!r}")
