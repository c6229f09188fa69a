"""Long recordings and live audio: a trained run as a window classifier.

* :mod:`.classifier` -- :class:`RunClassifier`: a run folder loaded once (its config, classes,
  every fold model of every architecture and the ensemble its submission uses), classifying
  waveform windows or a file with the features the run was trained on.
* :mod:`.buffer` -- streamed decoding of files of any length, and the window ring buffer.
* :mod:`.timelines` -- :func:`file_timeline`: class probabilities per window over a file,
  saved as a table and a plot.
* :mod:`.events` -- events from timelines (DCASE post-processing) and their evaluation.
* :mod:`.stream` -- :class:`StreamClassifier`: chunks of a live stream, window by window.
* :mod:`.detect` -- the ``detect`` command: timelines, events, detect-then-categorise.

Layer 10 (like ``reports``): it combines models with :mod:`emo_utils.ensemble` (layer 9), so
it cannot live in ``infer`` (layer 7).  Never imports fastai.
"""

from .classifier import RunClassifier
from .inputs import INPUT_KINDS, WindowInput
from .stream import StreamClassifier, WindowPrediction
from .timelines import Timeline, file_timeline

__all__ = [
    "INPUT_KINDS",
    "RunClassifier",
    "StreamClassifier",
    "Timeline",
    "WindowInput",
    "WindowPrediction",
    "file_timeline",
]
