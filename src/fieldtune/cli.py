"""``fieldtune`` command line: thin typer commands over the plain functions of the package.

User errors print a message (file, line, fix) and exit with code 2 — never a traceback.
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .errors import UserError

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="Fine-tune, evaluate and use pretrained language models."
)
err = Console(stderr=True)
out = Console()
CONFIGS = Path(__file__).parent / "configs"


def _user_errors(fn):
    """Turn a UserError into a clean message and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        _quiet_libraries()
        try:
            return fn(*args, **kwargs)
        except UserError as e:
            # escape: data values such as a token "[/b]" must print as is, not as rich markup
            err.print(
                f"[bold red]error:[/] {escape(str(e))}", highlight=False, markup=True, emoji=False, soft_wrap=True
            )
            raise typer.Exit(2) from None

    return wrapper


def _quiet_libraries() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


@app.command()
@_user_errors
def train(
    config: Path = typer.Argument(None, help="run.yaml"),
    overrides: Optional[list[str]] = typer.Argument(None, help="key=value overrides, e.g. train.epochs=3"),
    resume: bool = typer.Option(False, "--resume", help="continue from the run's last checkpoint"),
    help_config: bool = typer.Option(False, "--help-config", help="list every config field with its default"),
) -> None:
    """Fine-tune a model as a run.yaml describes; writes OUTPUT/model, metrics.json, report.md, plots."""
    from .config import describe_fields
    from .run import train as run_train

    if help_config:
        for key, default, doc in describe_fields():
            out.print(f"[bold]{key}[/] = {default}\n    {doc}", highlight=False)
        return
    if config is None:
        raise UserError("missing run.yaml", hint="fieldtune train run.yaml [key=value ...]")
    result = run_train(config, overrides or [], resume=resume)
    _print_metrics(result.metrics)
    t = result.metrics["train"]
    out.print(
        f"trainable parameters: {t['trainable_params']:,} of {t['total_params']:,} "
        f"({100 * t['trainable_params'] / max(t['total_params'], 1):.2f}%)"
    )
    out.print(f"model: {result.model_dir}\nreport: {result.output_dir / 'report.md'}")


@app.command("eval")
@_user_errors
def eval_(
    model: Path = typer.Argument(..., help="run folder or its model/ folder"),
    data: Path = typer.Option(..., "--data", help="labelled file in the training format"),
    output: Optional[Path] = typer.Option(None, "--output", help="metrics JSON (default: next to the model)"),
    backend: str = typer.Option(
        "auto", help="auto (ONNX if exported) | torch | torch-bf16 | onnx | onnx-fp32 | onnx-int8"
    ),
) -> None:
    """Evaluate a saved model on a labelled file; prints and writes metrics JSON."""
    from .evaluate import evaluate_file

    metrics, path = evaluate_file(model, data, output, backend=backend)
    _print_metrics({"eval": metrics})
    out.print(f"metrics: {path}")


@app.command()
@_user_errors
def predict(
    model: Path = typer.Argument(..., help="run folder or its model/ folder"),
    texts: Optional[list[str]] = typer.Argument(None, help="texts to predict (or use --input)"),
    input: Optional[Path] = typer.Option(None, "--input", "-i", help="texts.txt (one per line) or texts.jsonl"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="write JSON lines here (default: stdout)"),
    top_k: Optional[int] = typer.Option(None, "--top-k", min=1, help="classification: the k best labels"),
    text_key: str = typer.Option("text", "--text-key", help="JSONL input: the field holding the text"),
    backend: str = typer.Option(
        "auto", help="auto (ONNX if exported) | torch | torch-bf16 | onnx | onnx-fp32 | onnx-int8"
    ),
) -> None:
    """Predict on raw text: one JSON line per input line."""
    from .batch import predict_file, predict_texts

    if input is not None:
        n = predict_file(model, input, output, top_k=top_k, text_key=text_key, backend=backend)
        if output is not None:
            err.print(f"wrote {n} predictions to {output}")
    elif texts:
        for line in predict_texts(model, texts, top_k=top_k, backend=backend):
            print(line)
    else:
        raise UserError("nothing to predict", hint="pass texts as arguments or --input FILE")


@app.command()
@_user_errors
def export(
    model: Path = typer.Argument(..., help="run folder or its model/ folder"),
    onnx: Optional[bool] = typer.Option(
        None, "--onnx/--no-onnx", help="export to ONNX (default: yes, unless --merge alone is asked for)"
    ),
    int8: bool = typer.Option(False, "--int8", help="dynamic int8 quantisation with ONNX Runtime"),
    merge: bool = typer.Option(
        False, "--merge", help="lora / ia3 runs: fold the adapter into the base weights, a standalone model"
    ),
    output: Optional[Path] = typer.Option(
        None, "--output", "-o", help="--merge: the merged model's folder (default: MODEL's model folder + '-merged')"
    ),
) -> None:
    """Export a model for fast CPU inference (ONNX) or merge an adapter into a standalone model;
    refuses to write anything that fails its parity check."""
    from .export import export_cli

    export_cli(model, onnx=onnx, int8=int8, merge=merge, output=output, console=out)


@app.command()
@_user_errors
def serve(
    model: Optional[Path] = typer.Argument(
        None, help="run folder or its model/ folder (default: the registry's champion)"
    ),
    host: str = typer.Option("127.0.0.1", help="bind address (loopback by default)"),
    port: int = typer.Option(8000, help="TCP port"),
    workers: int = typer.Option(1, min=1, help="server processes"),
    backend: str = typer.Option(
        "auto", help="auto (ONNX if exported) | torch | torch-bf16 | onnx | onnx-fp32 | onnx-int8"
    ),
    db: Optional[str] = typer.Option(None, "--db", help="store URL (default: FIELDTUNE_DB_URL or runs/fieldtune.db)"),
    store: bool = typer.Option(True, "--store/--no-store", help="log predictions and accept /v1/feedback"),
) -> None:
    """Serve a model over HTTP (FastAPI): /v1/predict, /v1/feedback, /health, /ready, /metadata, /metrics.

    Without MODEL it serves the registry's champion and hot-reloads it when another is promoted."""
    from .serving import serve_cli

    serve_cli(model, host=host, port=port, workers=workers, backend=backend, db=db, use_store=store)


@app.command()
@_user_errors
def models() -> None:
    """List bundled model aliases and where they resolve."""
    from .zoo import list_models

    table = Table("alias", "resolves to", "description")
    table.columns[1].overflow = "fold"
    for row in list_models():
        table.add_row(row["alias"], row["resolves_to"], row["description"])
    out.print(table)


@app.command()
@_user_errors
def compare(
    runs: list[Path] = typer.Argument(..., help="run folders (each with metrics.json)"),
    metric: str = typer.Option("accuracy", "--metric", help="the test metric to compare (dev if a run has no test)"),
    output: Optional[Path] = typer.Option(
        None, "--output", help="where compare.md / .json / .png go (default: compare/ beside the first run)"
    ),
) -> None:
    """Runs side by side: metric, training time, trainable parameters, size on disk, inference time."""
    from .compare import cells as row_cells
    from .compare import compare_runs, headers

    rows, where = compare_runs(runs, metric, output)
    table = Table(*headers(metric))
    for column in table.columns:  # a narrow terminal wraps values instead of cutting them short
        column.overflow = "fold"
    for row in rows:
        table.add_row(*[escape(c) for c in row_cells(row)])
    out.print(table)
    out.print(f"table: {where / 'compare.md'}\nplot: {where / 'compare.png'}")


@app.command()
@_user_errors
def demo(output: Path = typer.Option(Path("runs/demo"), help="where the demo runs go")) -> None:
    """Fine-tune the bundled model on the shipped samples (intents + NER) and show predictions."""
    from .demo import run_demo

    run_demo(output, out)


@app.command()
@_user_errors
def drift(
    version: Optional[str] = typer.Option(None, "--version", help="model version (default: the registry's champion)"),
    model: Optional[Path] = typer.Option(
        None, "--model", help="the version's artifact folder, for a model served without the registry"
    ),
    window: Optional[int] = typer.Option(
        None, "--window", min=1, help="the last N predictions (default 500; with --since/--until: the last N in range)"
    ),
    since: Optional[str] = typer.Option(None, "--since", help="predictions from this time: ISO 8601 or 24h, 7d"),
    until: Optional[str] = typer.Option(None, "--until", help="predictions before this time: ISO 8601 or 24h, 7d"),
    db: Optional[str] = typer.Option(None, "--db", help="store URL (default: FIELDTUNE_DB_URL or runs/fieldtune.db)"),
    output: Optional[Path] = typer.Option(None, "--output", help="report folder (default: runs/drift/<UTC time>)"),
    reference: Optional[Path] = typer.Option(
        None, "--reference", help="reference texts instead of the model's dev data: .txt (one per line) or labelled"
    ),
    refresh: bool = typer.Option(False, "--refresh-reference", help="recompute the cached training reference"),
    threshold: Optional[list[str]] = typer.Option(
        None, "--threshold", help="NAME=VALUE, e.g. psi=0.25 (psi, label_p, confidence_drop, mmd_p, oov_increase)"
    ),
    history: int = typer.Option(20, "--history", min=0, help="windows to plot, this one last (0: none)"),
    webhook: Optional[str] = typer.Option(None, "--webhook", help="POST the JSON report to this http(s) URL"),
    webhook_on: str = typer.Option("drift", "--webhook-on", help="drift (only when a threshold is crossed) | always"),
    json_out: bool = typer.Option(False, "--json", help="print the JSON report (what the webhook gets) on stdout"),
) -> None:
    """Compare recent predictions with the training reference: label shift, confidence, embeddings, vocabulary.

    Writes report.md, drift.png and drift.json. Exit code 1 when a threshold is crossed, 0 when not."""
    import json

    from .monitoring.drift import Thresholds, check_drift, check_webhook_url, parse_time, post_webhook, write_report
    from .store import Store

    if webhook_on not in ("drift", "always"):
        raise UserError(f"--webhook-on {webhook_on!r}", hint="use drift or always")
    if webhook:
        check_webhook_url(webhook)
    thresholds = Thresholds.parse(threshold)
    store = Store(db)
    try:
        report = check_drift(
            store,
            version,
            model=model,
            window=window,
            since=parse_time(since),
            until=parse_time(until),
            thresholds=thresholds,
            reference_file=reference,
            refresh_reference=refresh,
            history=history,
        )
    finally:
        store.close()
    folder = write_report(report, output)
    payload = report.as_json()
    if json_out:
        print(json.dumps(payload, indent=2, ensure_ascii=False))
    else:
        _print_drift(report)
        out.print(f"report: {folder / 'report.md'}")
    if webhook and (report.drifted or webhook_on == "always"):
        problem = post_webhook(webhook, payload)
        if problem:
            err.print(f"[yellow]warning:[/] webhook {escape(webhook)} failed: {escape(problem)}", highlight=False)
    if report.drifted:
        raise typer.Exit(1)


def _print_drift(report) -> None:
    w = report.window
    table = Table("check", "status", "value", "threshold", "rule / reason")
    table.columns[4].overflow = "fold"
    colour = {"ok": "green", "drift": "bold red", "unavailable": "yellow"}
    for name, c in report.checks.items():
        table.add_row(
            name,
            f"[{colour[c.status]}]{c.status}[/]",
            _fmt(c.value),
            _fmt(c.threshold),
            escape(c.reason or c.rule),
        )
    span = f"{w['predictions']} predictions ({w['selection']}) from {w['from']} to {w['to']}"
    out.print(f"model {report.model_version}: {span}", highlight=False)
    out.print(table)
    out.print("[bold red]drift detected[/]" if report.drifted else "[green]no drift[/]")


HEADLINE = (
    "f1",
    "precision",
    "recall",
    "accuracy",
    "macro_f1",
    "micro_f1",
    "subset_accuracy",
    "perplexity",
    "exact_match",
    "rouge_l",
    "examples",
)


def _print_metrics(metrics: dict) -> None:
    """Headline metrics per split (dev / test / baseline / eval) in one table."""
    splits = {k: v for k, v in metrics.items() if k != "train" and isinstance(v, dict)}
    keys = [k for k in HEADLINE if any(k in row for row in splits.values())]
    table = Table("split", *keys)
    for split, row in splits.items():
        name = f"baseline ({row['name']})" if "name" in row else split
        table.add_row(name, *[_fmt(row.get(k)) for k in keys])
    out.print(table)
    t = metrics.get("train") or {}
    if t.get("steps"):
        out.print(
            f"trained {t['steps']} steps in {t['train_s']:.0f} s ({t['tokens_per_s']:.0f} real tokens/s, "
            f"{t['precision']}); best at epoch {t['best_epoch']}"
        )
    elif t:
        out.print(f"no gradient steps (took {t.get('train_s', 0):.0f} s)")
    if t.get("ms_per_example") is not None:
        out.print(f"inference: {t['ms_per_example']:.1f} ms per example")


def _fmt(value) -> str:
    return f"{value:.4f}" if isinstance(value, float) else ("" if value is None else str(value))


registry_app = typer.Typer(no_args_is_help=True, help="The model registry: versions, stages, promotion, rollback.")
feedback_app = typer.Typer(no_args_is_help=True, help="Corrections of the model's predictions.")
app.add_typer(registry_app, name="registry")
app.add_typer(feedback_app, name="feedback")
DB_HELP = "store URL (default: FIELDTUNE_DB_URL or sqlite:///runs/fieldtune.db)"


def _store(db: Optional[str]):
    from .store import Store

    return Store(db)


def _version(store, version: str) -> str:
    """A full version from a unique prefix (as git takes short hashes)."""
    matches = [m.version for m in store.models() if m.version.startswith(version)]
    if len(matches) != 1:
        what = "no" if not matches else "several"
        raise UserError(f"{what} registered versions match {version!r}", hint="see `fieldtune registry list`")
    return matches[0]


@registry_app.command("list")
@_user_errors
def registry_list(db: Optional[str] = typer.Option(None, "--db", help=DB_HELP)) -> None:
    """All registered versions with stage, parent, headline metrics and path."""
    store = _store(db)
    table = Table("version", "stage", "task", "parent", "test", "created", "path")
    for column in table.columns[:6]:
        column.no_wrap = True
    table.columns[-1].overflow = "fold"
    for m in store.models():
        test = (m.metrics or {}).get("test") or (m.metrics or {}).get("dev") or {}
        headline = next((f"{k} {test[k]:.4f}" for k in ("f1", "accuracy", "micro_f1") if k in test), "")
        style = "bold green" if m.stage == "champion" else None
        table.add_row(
            m.version, m.stage, m.task, m.parent or "", headline, f"{m.created_at:%m-%d %H:%M}", m.path, style=style
        )
    out.print(table)


@registry_app.command("show")
@_user_errors
def registry_show(
    version: str = typer.Argument(..., help="version (or a unique prefix)"),
    db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
) -> None:
    """One version: its row and every decision that involved it, with the numbers."""
    import json

    store = _store(db)
    m = store.model(_version(store, version))
    row = {k: getattr(m, k) for k in ("version", "stage", "task", "parent", "path", "data_fingerprint", "checksum")}
    out.print_json(json.dumps({**row, "metrics": m.metrics}, default=str))
    for d in store.decisions(m.version):
        out.print(f"[bold]{d.created_at:%Y-%m-%d %H:%M:%S}[/] {d.action} {d.version or ''} (was {d.previous or '-'}): ")
        out.print(f"  {escape(d.reason)}", highlight=False)


@registry_app.command("add")
@_user_errors
def registry_add(
    model: Path = typer.Argument(..., help="run folder or its model/ folder"),
    promote_: bool = typer.Option(False, "--promote", help="make it the champion at once (after checks)"),
    db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
) -> None:
    """Register a trained model as a challenger (or, with --promote, the champion)."""
    from .store.registry import promote, register_model

    store = _store(db)
    row, created = register_model(store, model)
    out.print(f"{'registered' if created else 'already registered'}: {row.version} ({row.stage})")
    if promote_:
        previous = promote(store, row.version, "promoted at registration")
        out.print(f"champion: {row.version} (was {previous or 'none'})")


@registry_app.command("promote")
@_user_errors
def registry_promote(
    version: str = typer.Argument(..., help="version (or a unique prefix)"),
    reason: str = typer.Option("promoted by hand", help="why, for the decision log"),
    db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
) -> None:
    """Make VERSION the champion after checking its files (a running `fieldtune serve` hot-reloads it)."""
    from .store.registry import promote

    store = _store(db)
    version = _version(store, version)
    previous = promote(store, version, reason)
    out.print(f"champion: {version} (was {previous or 'none'})")


@registry_app.command("rollback")
@_user_errors
def registry_rollback(
    reason: str = typer.Option("rolled back by hand", help="why, for the decision log"),
    db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
) -> None:
    """Make the previous champion the champion again."""
    from .store.registry import rollback

    old, new = rollback(_store(db), reason)
    out.print(f"champion: {new} (was {old})")


@feedback_app.command("import")
@_user_errors
def feedback_import(
    file: Path = typer.Argument(..., help="corrections in the task's training format (CSV/JSONL/CoNLL)"),
    model: Optional[str] = typer.Option(None, help="model version they correct (default: the champion)"),
    source: str = typer.Option("import", help="recorded as the corrections' source"),
    allow_new_labels: bool = typer.Option(False, "--allow-new-labels", help="accept labels the model doesn't know"),
    text_column: Optional[str] = typer.Option(None, help="CSV/JSONL: the text column"),
    label_column: Optional[str] = typer.Option(None, help="CSV/JSONL: the label column"),
    db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
) -> None:
    """Bulk-import corrections: every row is checked, then all are stored in one transaction."""
    from .artifacts import read_meta
    from .config import DataConfig
    from .monitoring.feedback import import_feedback

    store = _store(db)
    row = store.model(_version(store, model)) if model else store.champion()
    if row is None:
        raise UserError("the registry has no champion to attach corrections to", hint="pass --model VERSION")
    data_cfg = DataConfig(train=file, text_column=text_column, label_column=label_column)
    n = import_feedback(
        store,
        file,
        read_meta(Path(row.path)),
        row.version,
        source=source,
        allow_new_labels=allow_new_labels,
        data_cfg=data_cfg,
    )
    out.print(f"stored {n} corrections for {row.version}")


@app.command()
@_user_errors
def retrain(
    margin: float = typer.Option(0.005, help="the challenger's mean holdout score must beat the champion's by this"),
    tolerance: float = typer.Option(0.05, help="no class may lose more F1 than this on the frozen holdout..."),
    significance: float = typer.Option(0.05, help="...where a paired exact test on its examples gives p below this"),
    rehearsal: float = typer.Option(1.0, min=0.0, max=1.0, help="share of the old training data replayed per class"),
    feedback_weight: int = typer.Option(2, min=1, help="times each training correction is seen per epoch"),
    holdout: float = typer.Option(0.2, min=0.0, max=0.9, help="share of corrections frozen as a holdout"),
    min_feedback: int = typer.Option(10, min=1, help="retrain only with at least this many new corrections"),
    output: Path = typer.Option(Path("runs/retrain"), help="where challengers are trained"),
    overrides: Optional[list[str]] = typer.Argument(None, help="challenger config overrides, e.g. train.epochs=2"),
    as_json: bool = typer.Option(False, "--json", help="print the decision as JSON"),
    db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
) -> None:
    """Train a challenger on the champion's data + feedback; promote it only if it wins (cron-friendly)."""
    import json

    from .monitoring.retrain import Policy
    from .monitoring.retrain import retrain as run_retrain

    policy = Policy(
        margin=margin,
        tolerance=tolerance,
        significance=significance,
        rehearsal=rehearsal,
        feedback_weight=feedback_weight,
        holdout=holdout,
        min_feedback=min_feedback,
    )
    outcome = run_retrain(_store(db), policy, root=output, overrides=overrides or [])
    if as_json:
        print(json.dumps(outcome.as_dict(), default=str))
        return
    out.print(f"[bold]{outcome.action}[/]: {escape(outcome.reason)}", highlight=False)
    if outcome.output:
        out.print(f"challenger run: {outcome.output}")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
