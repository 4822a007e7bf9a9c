"""``fieldtune support``: build, ask, evaluate and serve a customer-service assistant."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from .common import err, out, user_errors

# Commands import what they run inside their bodies: `fieldtune --help` must not import torch.

support_app = typer.Typer(no_args_is_help=True, help="Customer-service assistant: answer with templates or hand off.")


@support_app.command("build")
@user_errors
def build(
    kb: Path = typer.Option(..., "--kb", help="answer templates: CSV/JSONL with id, intent, answer (title?)"),
    questions: Path = typer.Option(
        ..., "--questions", help="labelled questions: text,intent (intent oos = out of scope)"
    ),
    output: Path = typer.Option(..., "--output", help="the assistant folder to write"),
    dev: Path | None = typer.Option(None, "--dev", help="labelled dev questions (default: 10% split from --questions)"),
    docs: Path | None = typer.Option(None, "--docs", help="folder of .md/.txt documents to retrieve passages from"),
    intent_model: Path | None = typer.Option(None, "--intent-model", help="use this trained intent model"),
    method: str | None = typer.Option(None, "--method", help="how to train the intent model (full, lora, setfit ...)"),
    model: str | None = typer.Option(
        None, "--model", help="the intent model's base (default minilm; multilingual for Chinese)"
    ),
    fine_tune_retriever: bool = typer.Option(False, "--fine-tune-retriever", help="fine-tune the retrieval encoder"),
    db: str | None = typer.Option(None, "--db", help="database URL (default: SQLite in the folder)"),
    target_precision: float = typer.Option(0.97, "--target-precision", help="answered precision to keep on dev"),
    generate: bool = typer.Option(
        False, "--generate", help="also tune the reply writer (smollm2 + LoRA) for grounded, written answers"
    ),
    writer_model: str = typer.Option(
        "smollm2", "--writer-model", help="the decoder the reply writer tunes (gemma3 for Chinese, or a folder)"
    ),
) -> None:
    """Train (or take) the intent model, fit out-of-scope detection and the answer rule, index the knowledge base."""
    from ..apps.support.build import build_assistant

    extra = {k: v for k, v in (("method", method), ("model", model)) if v} or None
    build_assistant(
        kb, questions, output, dev, docs, intent_model, extra, fine_tune_retriever, db, target_precision,
        log=lambda line: err.print(line, highlight=False), generate=generate, writer_model=writer_model,
    )  # fmt: skip


@support_app.command("ask")
@user_errors
def ask(
    folder: Path = typer.Argument(..., help="assistant folder"),
    question: str = typer.Argument(..., help="the customer's message"),
    json_out: bool = typer.Option(False, "--json", help="print the whole reply as JSON"),
    generate: bool = typer.Option(
        False, "--generate", help="write the answer from the sources with the reply writer (built with --generate)"
    ),
) -> None:
    """Answer one question (or say why it is handed off)."""
    from ..apps.support.assistant import Assistant

    reply = Assistant(folder, generate=generate).ask(question)
    if json_out:
        out.print_json(json.dumps(reply))
    elif reply["handoff"]:
        out.print(
            f"handed off: {reply['reason']} (best guess {reply['intent']}, {reply['score']:.2f})", highlight=False
        )
    else:
        out.print(reply["answer"], highlight=False)
        ids = ", ".join(reply.get("used") or [reply["answer_id"]])
        written = "written from " if reply.get("generated") else ""
        err.print(f"[{written}{ids}; intent {reply['intent']}, {reply['score']:.2f}]", highlight=False)


@support_app.command("eval")
@user_errors
def evaluate(
    folder: Path = typer.Argument(..., help="assistant folder"),
    questions: Path = typer.Option(..., "--questions", help="labelled test questions: text,intent (oos allowed)"),
    output: Path | None = typer.Option(
        None, "--output", help="where metrics.json + report.md go (default FOLDER/eval)"
    ),
) -> None:
    """Intent accuracy, answered precision vs coverage, out-of-scope handoff, retrieval recall@1/5 and MRR."""
    from ..apps.support.assistant import Assistant
    from ..apps.support.evaluate import evaluate_assistant

    target = output or folder / "eval"
    metrics = evaluate_assistant(Assistant(folder), questions, target)
    out.print_json(json.dumps({k: v for k, v in metrics.items() if k != "curve"}))
    err.print(f"report: {target / 'report.md'}", highlight=False)


@support_app.command("serve")
@user_errors
def serve(
    folder: Path = typer.Argument(..., help="assistant folder"),
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8000, "--port"),
    token: str | None = typer.Option(
        None, "--token", envvar="FIELDTUNE_API_TOKEN", help="bearer token the API requires"
    ),
    generate: bool = typer.Option(
        False, "--generate", help="write the answer from the sources with the reply writer (built with --generate)"
    ),
) -> None:
    """The customer chat (/), the agent console (/agent) and the API (/v1/support/...)."""
    import uvicorn

    from ..apps.support.assistant import Assistant
    from ..apps.support.batching import BatchedAssistant
    from ..apps.support.web import create_app

    assistant = Assistant(folder, generate=generate)
    err.print(f"customer chat: http://{host}:{port}/   agent console: http://{host}:{port}/agent", highlight=False)
    app = create_app(BatchedAssistant(assistant), assistant.store, token)  # concurrent messages share a forward pass
    uvicorn.run(app, host=host, port=port, log_level="warning")


@support_app.command("demo")
@user_errors
def demo(
    output: Path = typer.Option(Path("runs/support-demo"), "--output", help="the assistant folder to write"),
    serve_after: bool = typer.Option(False, "--serve", help="start the pages when done"),
    port: int = typer.Option(8000, "--port"),
) -> None:
    """Build an assistant on the shipped banking sample, ask it a few questions, evaluate it."""
    from ..apps.support.demo import run_support_demo

    run_support_demo(output, err, out)
    if serve_after:
        serve(output, "127.0.0.1", port, None, False)
