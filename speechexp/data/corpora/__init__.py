"""The standard emotional speech corpora, indexed from the user's own copies (one module each).

The four preparers are re-exported so that configs saved before the package split
(``_target_: speechexp.data.corpora.TessPreparer``) still load.
"""

from speechexp.data.corpora.base import METADATA_COLUMNS, CorpusPreparer, Parsed, find_audio
from speechexp.data.corpora.crema_d import CremaDPreparer, parse_crema_d
from speechexp.data.corpora.emodb import EmoDBPreparer, parse_emodb
from speechexp.data.corpora.ravdess import RavdessPreparer, parse_ravdess
from speechexp.data.corpora.tess import TessPreparer, parse_tess

__all__ = [
    "METADATA_COLUMNS", "CorpusPreparer", "Parsed", "find_audio",
    "CremaDPreparer", "EmoDBPreparer", "RavdessPreparer", "TessPreparer",
    "parse_crema_d", "parse_emodb", "parse_ravdess", "parse_tess",
]
