"""Training on the confirmed labels: `train()` makes a model version, `activate()` puts it to work.

    probe      a linear correction to the zero-shot head on cached features (seconds, CPU)
    finetune   the image tower too (a GPU is best), blended with zero-shot weights (WiSE-FT)
"""

from .config import Kind, TrainConfig
from .data import NotEnoughExamplesError
from .progress import LabelsChangedError, TrainingCancelled, TrainProgress
from .run import NothingToResumeError, TrainingBusyError, TrainReport, request_cancel, train
from .activation import Activation, activate
from .versions import VersionFeaturesError, VersionLabelsError, active_version, export_version, import_version

__all__ = [
    "Activation", "Kind", "LabelsChangedError", "NotEnoughExamplesError", "NothingToResumeError",
    "TrainConfig", "TrainProgress", "TrainReport", "TrainingBusyError", "TrainingCancelled",
    "VersionFeaturesError", "VersionLabelsError", "activate", "active_version", "export_version", "import_version",
    "request_cancel", "train",
]
