"""fieldtune: take pretrained language models from the lab into real use."""

__version__ = "0.1.0"

from .config import RunConfig, load_config  # noqa: E402
from .errors import FieldtuneError, UserError  # noqa: E402
from .predict import Predictor, load  # noqa: E402
from .run import RunResult, train  # noqa: E402

__all__ = ["FieldtuneError", "Predictor", "RunConfig", "RunResult", "UserError", "load", "load_config", "train"]
