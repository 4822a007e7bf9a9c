#!/usr/bin/env python
"""Grounded generation of `fieldtune support --generate` (issue 15): refusals and speed.

    OMP_NUM_THREADS=2 .venv/bin/python bench/support_generate.py --data ../shared/data

1. Build an assistant with the reply writer (`build_assistant(..., generate=True)`): the 77 BANKING77
   answer templates we wrote (`src/fieldtune/samples/support/templates.csv`), the first
   `--per-intent` (40) BANKING77 train questions of every intent plus CLINC150's `oos_train.csv`
   (out-of-scope questions, intent `oos`) as labelled questions; dev split off by the build.
2. Ask `--n` (100) BANKING77 test questions (in scope) and `--n` CLINC150 `oos_test.csv` questions
   (out of scope), seeded samples, through `Assistant(..., generate=True).ask`. Counted: written
   answers, handoffs and why (rule / writer refused / unsupported), answers whose template is the gold
   intent's; on out-of-scope questions every answer that is not a handoff is an invented answer
   (target 0). Every shown sentence is checked against the sources by construction; the bench also
   re-checks the final answers (share of content words found in the sources).
3. Speed, same prompts (the writer's prompts of the in-scope questions it answered), same model
   weights, same number of new tokens, one thread setting: plain `model.generate` (greedy, the writer's
   LoRA adapter unmerged, as a peft model generates by default) vs the writer (adapter merged into the
   weights, prompt lookup decoding). Tokens/s = new tokens / wall time, and the ratio; the two must
   produce the same tokens (greedy either way).

Results: bench/results/support/generate.json + .md.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import time
from pathlib import Path

import torch

from fieldtune.apps.support.assistant import Assistant
from fieldtune.apps.support.build import build_assistant
from fieldtune.apps.support.retrieval import tokenize
from fieldtune.apps.support.writer import Source, messages, supported_share
from fieldtune.data.chat import prompt_ids
from fieldtune.llm.generation import generate
from fieldtune.predict import load

SAMPLES = Path(__file__).resolve().parents[1] / "src" / "fieldtune" / "samples" / "support"


def read(path: Path, label: str = "intent") -> list[tuple[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return [(r["text"], r.get(label) or r.get("intent") or r.get("category")) for r in csv.DictReader(f)]


def write_rows(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows([("text", "intent"), *rows])
    return path


def build(args: argparse.Namespace, work: Path) -> Path:
    target = work / "assistant"
    if target.is_dir() and not args.rebuild:
        return target
    per: dict[str, int] = {}
    train = []
    for text, intent in read(args.data / "banking77" / "train.csv", "category"):
        if per.get(intent, 0) < args.per_intent:
            per[intent] = per.get(intent, 0) + 1
            train.append((text, intent))
    train += read(args.data / "clinc150" / "oos_train.csv")
    questions = write_rows(work / "questions.csv", train)
    start = time.perf_counter()
    build_assistant(SAMPLES / "templates.csv", questions, target, generate=True)
    (work / "build_s.txt").write_text(f"{time.perf_counter() - start:.1f}")
    return target


def ask_all(assistant: Assistant, asked: list[tuple[str, str]]) -> tuple[dict, list[dict]]:
    counts = {"asked": len(asked), "written": 0, "gold_template": 0, "handoff": {}, "min_support": 1.0}
    replies = []
    texts = {t.id: t.answer for t in assistant.templates()} | assistant._passages  # what `used` ids name
    start = time.perf_counter()
    for text, gold in asked:
        reply = assistant.ask(text)
        replies.append({"text": text, "gold": gold, **reply})
        if reply["handoff"]:
            counts["handoff"][reply["reason"]] = counts["handoff"].get(reply["reason"], 0) + 1
            continue
        counts["written"] += bool(reply.get("generated"))
        counts["gold_template"] += assistant.template_intent(reply["answer_id"]) == gold
        sources = [texts[i] for i in reply.get("used", []) if i in texts]
        vocabulary = {w for s in sources for w in tokenize(s)}
        for sentence in reply["answer"].split(". "):
            counts["min_support"] = min(counts["min_support"], round(supported_share(sentence, vocabulary), 3))
    counts["answered"] = counts["asked"] - sum(counts["handoff"].values())
    counts["s_per_question"] = round((time.perf_counter() - start) / len(asked), 3)
    return counts, replies


def speed(assistant: Assistant, replies: list[dict], writer_dir: Path, max_new: int) -> dict:
    """Plain generate (peft model, adapter unmerged) vs the writer's generation, same prompts."""
    writer = assistant.writer.predictor
    by_id = {t.id: t for t in assistant.templates()}
    prompts = []
    for r in replies:
        if not r["handoff"] and r["answer_id"] in by_id:
            sources = [Source(r["answer_id"], by_id[r["answer_id"]].answer)]
            prompts.append(prompt_ids(writer.tokenizer, messages(r["text"], sources)))
    prompts = prompts[:30]
    plain = load(writer_dir)  # a fresh predictor: the peft model as it loads
    out = {"prompts": len(prompts), "max_new_tokens": max_new}
    runs = {
        "plain generate (peft, unmerged)": (plain.model, 0),
        "plain generate (merged)": (writer.model, 0),
        "writer (merged + prompt lookup)": (writer.model, writer.prompt_lookup),
    }
    tokens = {}
    for name, (model, lookup) in runs.items():
        generate(model, writer.tokenizer, prompts[:1], 8, 1, prompt_lookup=lookup)  # warm-up
        start = time.perf_counter()
        done = [generate(model, writer.tokenizer, [p], max_new, 1, prompt_lookup=lookup)[0][0] for p in prompts]
        seconds = time.perf_counter() - start
        tokens[name] = done
        n = sum(len(d) for d in done)
        out[name] = {"new_tokens": n, "seconds": round(seconds, 2), "tokens_per_s": round(n / seconds, 1)}
    base = out["plain generate (peft, unmerged)"]["tokens_per_s"]
    for name in runs:
        out[name]["ratio"] = round(out[name]["tokens_per_s"] / base, 2)
    names = list(runs)
    out["same_tokens"] = all(tokens[names[0]][i] == tokens[n][i] for n in names for i in range(len(prompts)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--out", type=Path, default=Path("bench/results/support"))
    ap.add_argument("--per-intent", type=int, default=40)
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--rebuild", action="store_true")
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    work = args.out / "generate"
    folder = build(args, work)
    rng = random.Random(args.seed)
    in_scope = rng.sample(read(args.data / "banking77" / "test.csv", "category"), args.n)
    oos = rng.sample(read(args.data / "clinc150" / "oos_test.csv"), args.n)
    assistant = Assistant(folder, generate=True)
    result = {"build_s": float((work / "build_s.txt").read_text()) if (work / "build_s.txt").exists() else None}
    result["in_scope"], replies = ask_all(assistant, in_scope)
    result["out_of_scope"], oos_replies = ask_all(assistant, oos)
    result["invented_answers_on_oos"] = result["out_of_scope"]["answered"]
    spec = assistant.meta["writer"]
    result["speed"] = speed(assistant, replies, folder / spec["model"], spec["max_new_tokens"])
    result["examples"] = [
        {k: r[k] for k in ("text", "gold", "handoff", "reason", "answer")} for r in (replies[:6] + oos_replies[:4])
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "generate.json").write_text(json.dumps(result, indent=2, ensure_ascii=False))
    print(json.dumps(result, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
