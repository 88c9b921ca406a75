"""speechexp: configuration-driven speech experiments (separation, CTC ASR, emotion)."""

from importlib.metadata import PackageNotFoundError, version

try:  # one source for the version: pyproject.toml, read from the installed metadata
    __version__ = version("speechexp")
except PackageNotFoundError:  # a source tree on sys.path without an install
    __version__ = "0+unknown"
