"""fieldtune: take pretrained language models from the lab into real use."""

from .config import RunConfig, load_config
from .errors import FieldtuneError, UserError
from .predict import Predictor, load
from .recipes import RunResult, train
from .version import __version__ as __version__  # public, not in __all__ (pinned)

__all__ = ["FieldtuneError", "Predictor", "RunConfig", "RunResult", "UserError", "load", "load_config", "train"]
