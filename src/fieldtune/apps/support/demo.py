"""``fieldtune support demo``: an assistant on the shipped banking sample, asked a few questions, evaluated.

Questions: the shipped BANKING77 sample (12 intents, 40 training questions each; CC BY 4.0) plus 100
CLINC150 out-of-scope queries (CC BY 3.0) for choosing the answer rule; templates: our own answer per
BANKING77 intent (``samples/support/templates.csv``). Test: the sample's 144 test questions and 60 other
out-of-scope queries.
"""

from __future__ import annotations

import csv
from pathlib import Path

from rich.console import Console

from .assistant import Assistant
from .build import build_assistant
from .evaluate import evaluate_assistant

PACKAGE = Path(__file__).resolve().parents[2]
SAMPLES = PACKAGE / "samples"
TEMPLATES = SAMPLES / "support" / "templates.csv"
ASKED = (
    "my card still hasn't arrived, it's been two weeks",
    "what exchange rate do you use for dollars?",
    "how tall is the eiffel tower",
    "I want to talk to a human",
)


def demo_questions(folder: Path) -> tuple[Path, Path]:
    """``(questions.csv, test.csv)`` in ``folder``: banking sample + out-of-scope queries, ``text,intent``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, banking, oos in (("questions", "train", "oos_train"), ("test", "test", "oos_test")):
        rows = []
        with (SAMPLES / "banking77" / f"{banking}.csv").open(encoding="utf-8", newline="") as f:
            rows += [(r["text"], r["category"]) for r in csv.DictReader(f)]
        with (SAMPLES / "support" / f"{oos}.csv").open(encoding="utf-8", newline="") as f:
            rows += [(r["text"], r["intent"]) for r in csv.DictReader(f)]
        path = folder / f"{name}.csv"
        with path.open("w", encoding="utf-8", newline="") as f:
            csv.writer(f).writerows([("text", "intent"), *rows])
        paths.append(path)
    return paths[0], paths[1]


def run_support_demo(output: Path, console: Console, out: Console) -> Assistant:
    """Build, ask, evaluate (see the module docstring); the loaded assistant."""
    questions, test = demo_questions(output.parent / f"{output.name}-data")
    build_assistant(TEMPLATES, questions, output, log=lambda line: console.print(line, highlight=False))
    assistant = Assistant(output)
    for question in ASKED:
        reply = assistant.ask(question)
        said = f"handed off ({reply['reason']})" if reply["handoff"] else f"{reply['answer_id']}: {reply['answer']}"
        out.print(f"Q: {question}\nA: {said}\n", highlight=False)
    m = evaluate_assistant(assistant, test, output / "eval")
    console.print(
        f"test ({m['in_scope']} in scope, {m['out_of_scope']} out of scope): answered precision "
        f"{m['answered_precision']}, in-scope answered {m['in_scope_answered']}, out-of-scope handed off "
        f"{m['oos_handoff']}; retrieval recall@5 (hybrid) {m['retrieval']['hybrid']['recall@5']}; "
        f"report {output / 'eval' / 'report.md'}",
        highlight=False,
    )
    console.print(f"pages: fieldtune support serve {output}", highlight=False)
    return assistant
