"""emo_utils: audio classification for Kaggle-style competitions.

Stages, one module each:

========================  ==========================================================
``emo_utils.data.competition``  read and validate ``train.csv`` / ``test.csv``
``emo_utils.audio``        decode, resample, mix to mono, fit to a fixed duration
``emo_utils.features.spectrum``     one STFT -> log-mel, chroma and STFT-dB image channels
``emo_utils.features.store``        compute every clip's image once, store it on disk
``emo_utils.data.folds``        stratified (group) K-fold assignment, saved as a file
``emo_utils.train.cv``     timm + fastai training over the folds, OOF predictions
``emo_utils.infer.predict``   predict the test set with every fold of every model
``emo_utils.ensemble``     mode vote, probability averaging, stacking
``emo_utils.submission``   the competition CSV, validated against ``test.csv``
``emo_utils.reports.run``      CV reports and plots
``emo_utils.pipeline``     all stages in order (what ``python -m emo_utils run`` calls)
========================  ==========================================================
"""

from .config import Config
from .errors import EmoUtilsError

__version__ = "0.1.0"
__all__ = ["Config", "EmoUtilsError", "__version__"]
