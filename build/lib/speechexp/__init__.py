"""speechexp: configuration-driven speech experiments (separation, CTC ASR, emotion)."""

__version__ = "0.1.0"
