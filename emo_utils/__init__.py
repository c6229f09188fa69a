"""emo_utils: audio machine learning for Kaggle-style competitions and the systems after them.

The stages, in the order data flows through them (``docs/design.md`` has the contracts):

=========================  ==============================================================
``emo_utils.audio``        decode any supported file, resample, mix to mono, crop
``emo_utils.features``     one STFT -> image channels (registry); the on-disk feature cache
``emo_utils.data``         the competition CSVs, near-duplicate groups, folds as data
``emo_utils.tasks``        task registry: targets, loss, metrics, folds, formats
``emo_utils.models``       model registry (timm by name), normalisation, fold loading
``emo_utils.infer``        one path from a model to probabilities (OOF and test)
``emo_utils.train``        fastai training over the folds, resumable, OOF predictions
``emo_utils.ensemble``     mode vote, probability averaging, stacking, chosen on OOF
``emo_utils.submission``   the competition CSV, validated against ``test.csv``
``emo_utils.reports``      run reports and EDA plots (read only)
``emo_utils.endgame``      vote over submission files, blend probability files, gather runs
``emo_utils.pipeline``     all stages in order (what ``python -m emo_utils run`` calls)
``emo_utils.runs``         ``RunDir``: every path and reader of a run folder
=========================  ==============================================================
"""

from .config import Config
from .errors import EmoUtilsError

__version__ = "0.1.0"
__all__ = ["Config", "EmoUtilsError", "__version__"]
