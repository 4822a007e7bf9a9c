"""A run's shared parts: its typed record, the final evaluation, the run folder and report.md."""

from .advice import advise
from .evaluate import evaluate_splits
from .folder import RunResult, eval_logger, start_output, write_run
from .meta import artifact_meta
from .record import Evaluation, RunRecord, TrainStats

__all__ = [
    "Evaluation",
    "RunRecord",
    "RunResult",
    "TrainStats",
    "advise",
    "artifact_meta",
    "eval_logger",
    "evaluate_splits",
    "start_output",
    "write_run",
]
