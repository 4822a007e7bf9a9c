"""``fieldtune suggest``: which unlabelled texts to label next (active learning)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from ..errors import UserError
from .common import DB_HELP, err, open_store, out, user_errors

# The command imports what it runs inside its body, on purpose: `fieldtune --help` and a quick
# command must not pay for importing torch, transformers and SQLAlchemy.


@user_errors
def suggest(
    model: Optional[str] = typer.Argument(None, help="run or model folder (default with --from-store: the champion)"),
    pool: Optional[Path] = typer.Option(None, "--pool", help="unlabelled texts: .txt (one a line), .csv/.tsv, .jsonl"),
    from_store: bool = typer.Option(False, "--from-store", help="choose among logged predictions not yet corrected"),
    db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
    n: int = typer.Option(200, "--n", help="how many texts to pick"),
    strategy: str = typer.Option("uncertainty", "--strategy", help="uncertainty | margin | entropy | diverse | random"),
    seed: int = typer.Option(0, "--seed", help="the same seed picks the same texts"),
    output: Path = typer.Option(..., "--output", help="to_label.csv / .jsonl (NER: .txt CoNLL or .jsonl)"),
    exclude: Optional[list[Path]] = typer.Option(None, "--exclude", help="labelled data whose texts never come back"),
    text_column: Optional[str] = typer.Option(None, "--text-column", help="pool .csv/.jsonl: the text column"),
    json_out: bool = typer.Option(False, "--json", help="print the summary as JSON"),
) -> None:
    """Pick the N texts the model is least sure about and write them, the model's guess pre-filled,
    in the task's training format: fix the guesses, then train on the file or `fieldtune feedback import` it.

    Texts already labelled (the model's own train/dev/test files, --exclude files, corrected
    predictions) and repeats are never suggested."""
    # imported here: see the note at the top
    from ..active.output import check_output
    from ..active.pool import labelled_keys, read_pool, store_candidates
    from ..active.suggest import suggest_to_file, summary
    from ..artifacts import find_model_dir, read_meta
    from ..predict import load_predictor

    if (pool is None) == (not from_store):
        raise UserError("give exactly one of --pool FILE and --from-store")
    store = open_store(db) if from_store else None
    model_dir = find_model_dir(_model_path(model, store))
    meta = read_meta(model_dir)
    check_output(output, meta["task"])  # a wrong suffix fails before anything is read or loaded
    if store is not None:
        candidates, hashed = store_candidates(store)
        if hashed:
            err.print(
                f"{hashed} logged predictions have only a hash of their text (FIELDTUNE_LOG_INPUTS=hash): skipped"
            )
        if not candidates:
            raise UserError("the store has no uncorrected predictions with text", hint="serve the model with a store")
    else:
        candidates = read_pool(pool, text_column)
    keys, read = labelled_keys(meta, model_dir, list(exclude or []))
    predictor = load_predictor(model_dir)
    result = suggest_to_file(predictor, candidates, output, n, strategy, seed, keys)
    info = {**summary(result), "strategy": strategy, "seed": seed, "excluded_files": read}
    for note in result.notes:
        err.print(note)
    if json_out:
        print(json.dumps(info))
        return
    out.print(
        f"wrote {info['chosen']} texts to label to {', '.join(info['files'])} ({strategy}, seed {seed}); "
        f"read {info['read']}, dropped {info['repeats']} repeats and {info['labelled']} already labelled"
    )


def _model_path(model: Optional[str], store) -> str:
    """MODEL, or the champion's folder when it is left out with --from-store."""
    if model is not None:
        return model
    champion = store.champion() if store is not None else None
    if champion is None:
        raise UserError("no MODEL given and the registry has no champion", hint="pass the run or model folder")
    return champion.path
