"""``fieldtune export --merge``: fold a LoRA / IA3 adapter into the base weights, behind a parity check.

The merged artifact is a standalone model folder (full weights, no base model needed) that
``fieldtune predict``, ``serve``, ``eval`` and ``export --onnx`` take like any other. Before anything
is written the adapter model and the merged model both predict the parity sample texts; the merged
one must agree on the labels and stay within the fp32 logit bound, or nothing is written.
"""

from __future__ import annotations

import copy
import functools
import time
from pathlib import Path
from typing import Any

import torch
from rich.table import Table

from ..artifacts import find_model_dir, is_adapter_dir, read_meta, save_artifact
from ..data.chat import prompt_ids
from ..errors import UserError
from ..inference import forward_logits
from ..methods import get_method
from ..predict.loaders import load_artifact, load_llm_artifact
from ..tasks import get_task
from . import parity


def default_merged_dir(model_dir: Path) -> Path:
    """``runs/x/model`` -> ``runs/x/model-merged``: beside the adapter, inside the run folder."""
    return model_dir.with_name(f"{model_dir.name}-merged")


def merge_adapter(model: str | Path, output: str | Path | None = None, console: Any = None) -> Path:
    """Write the merged model of the adapter artifact ``model`` to ``output``.

    Args:
        model: A run folder or its ``model/`` folder, trained with method lora or ia3.
        output: The merged artifact's folder (default: :func:`default_merged_dir`). An existing
            fieldtune artifact there is replaced atomically; any other existing folder is refused.
        console: A rich Console for the parity table, or None.

    Returns:
        The merged artifact folder.

    Raises:
        UserError: Not an adapter artifact, a method that can't merge, a bad output folder, or a
            merged model that fails the parity check (nothing is written then).
    """
    model_dir = find_model_dir(model)
    meta = read_meta(model_dir)
    method = meta.get("method")
    if not is_adapter_dir(model_dir):
        raise UserError(
            "nothing to merge: this artifact holds full weights, not an adapter",
            path=model_dir,
            hint="--merge is for runs trained with method lora or ia3",
        )
    if not get_method(method).mergeable:  # prompt_tuning / prefix add inputs: there is nothing to fold in
        raise UserError(
            f"method {method} can't be merged into the weights: its virtual tokens are extra inputs, not weight "
            "updates",
            path=model_dir,
            hint="serve the adapter artifact as it is (fieldtune predict/serve load it with its base model)",
        )
    target = Path(output) if output is not None else default_merged_dir(model_dir)
    _check_target(target, model_dir)

    merged, tokenizer, result = (_merge_llm if meta.get("kind") == "llm" else _merge_encoder)(model_dir, meta)
    if console is not None:
        _print_parity(console, result)
    problems = parity.parity_failures(result, int8=False)
    if problems:
        raise UserError(
            f"the merged model fails the parity check against the adapter: {'; '.join(problems)}; nothing was written",
            path=model_dir,
            hint="keep using the adapter artifact",
        )
    merged_meta = {
        **meta,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),  # a new artifact: a new model_version
        "merged": {
            "from": str(model_dir.resolve()),
            "method": method,
            "from_created": meta.get("created"),
            "parity": result,
        },
    }
    return save_artifact(merged, tokenizer, merged_meta, target, licences_from=model_dir)  # the adapter's copies


def _merge_encoder(model_dir: Path, meta: dict[str, Any]) -> tuple[Any, Any, dict[str, Any]]:
    """Merged model, tokenizer and parity (the task's logits on the sample texts) of an encoder adapter."""
    artifact = load_artifact(model_dir)
    adapter = artifact.model
    merged = copy.deepcopy(adapter).merge_and_unload()  # the adapter stays as the reference
    merged.eval()
    task = get_task(meta["task"])
    features = parity.sample_features(task, artifact.tokenizer, meta["labels"], meta["max_length"])
    pad_id = artifact.tokenizer.pad_token_id
    result = parity.measure_parity(
        functools.partial(forward_logits, adapter), functools.partial(forward_logits, merged), features, pad_id
    )
    return merged, artifact.tokenizer, result


def _merge_llm(model_dir: Path, meta: dict[str, Any]) -> tuple[Any, Any, dict[str, Any]]:
    """The same for a causal-LM adapter (any task): parity on the next-token logits after each sample text
    as a chat prompt, which every LLM task's predictions derive from."""
    adapter, tokenizer = load_llm_artifact(model_dir, meta)
    merged = copy.deepcopy(adapter).merge_and_unload().eval()
    features = [{"input_ids": prompt_ids(tokenizer, [{"role": "user", "content": t}])} for t in parity.SAMPLE_TEXTS]
    result = parity.measure_parity(
        functools.partial(_next_token_logits, adapter),
        functools.partial(_next_token_logits, merged),
        features,
        tokenizer.pad_token_id,
    )
    return merged, tokenizer, result


def _next_token_logits(model: Any, features: list[dict[str, Any]], batch_size: int, pad_id: int) -> list[Any]:
    with torch.no_grad():
        return [model(input_ids=torch.tensor([f["input_ids"]])).logits[0, -1].float().numpy() for f in features]


def _check_target(target: Path, model_dir: Path) -> None:
    if target.resolve() == model_dir.resolve():
        raise UserError("the merged model can't replace its adapter", path=target, hint="pass another --output")
    if target.exists() and not (target / "fieldtune.json").is_file():
        raise UserError(
            "output folder exists and is not a fieldtune model; refusing to replace it",
            path=target,
            hint="pass a new folder with --output, or remove this one",
        )


def _print_parity(console: Any, r: dict[str, Any]) -> None:
    table = Table(
        "model",
        "agreement",
        "all",
        "ties",
        "max |Δlogit|",
        "required",
        title=f"merged vs adapter on {len(parity.SAMPLE_TEXTS)} sample texts",
    )
    table.add_row(
        "merged",
        f"{r['agreement']:.4f}",
        f"{r['raw_agreement']:.4f}",
        f"{r['ties']}/{r['predictions']}",
        f"{r['max_abs_diff']:.1e}",
        f"≥{parity.FP32_MIN_AGREEMENT} Δ≤{parity.FP32_MAX_DIFF:g}",
    )
    console.print(table)
