"""``fieldtune eval``: score a saved model on a labelled file read the way its training data was."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .artifacts import find_model_dir
from .config import DataConfig
from .data.readers import read_examples
from .data.splits import check_labels_seen
from .predict import load_predictor


def evaluate_file(
    model: str | Path, data: Path, output: Path | None = None, backend: str = "auto"
) -> tuple[dict[str, Any], Path]:
    """Metrics of the model at ``model`` on ``data``; written to ``output`` (default: beside it).

    ``backend`` (auto | torch | onnx) picks what runs the model; the metrics record which ran.
    """
    model_dir = find_model_dir(model)
    predictor = load_predictor(model_dir, backend=backend)
    settings = predictor.meta["config"]["data"] | {"train": str(data), "dev": None, "test": None, "limit": None}
    dataset = read_examples(data, predictor.meta["task"], DataConfig.model_validate(settings))
    check_labels_seen(predictor.task.gold_names(predictor.labels), dataset, "eval")
    metrics = {
        "data": str(data),
        "examples": len(dataset),
        "backend": predictor.backend,
        **predictor.evaluate(dataset.examples),
    }
    path = output or model_dir.parent / f"eval-{Path(data).stem}.json"
    path.write_text(json.dumps(metrics, indent=2), encoding="utf-8")
    return metrics, path
