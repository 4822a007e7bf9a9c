#!/usr/bin/env python
"""NER decoding: each word's own best tag (greedy) vs the most probable valid IOB2 sequence (fieldtune's
``best_tags``), from the same logits of the same trained model, on each run's dev and test sets.

A softmax tagger can write ``B-PER I-LOC`` or ``O I-ORG``; the metrics then read a broken or a guessed
entity. Give it the run folders of finished NER runs (``fieldtune train``, ``bench/chinese.py``,
``bench/defaults.py``); it reads each run's own data settings from its run.yaml.

    python bench/ner_decoding.py bench/results/chinese/weibo_ner/full bench/results/chinese/resume_ner/full
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml
from tables import markdown, show  # bench/tables.py (the script's folder is on sys.path)

from fieldtune.config import load_config
from fieldtune.evaluation import metrics as M
from fieldtune.predict import load_predictor
from fieldtune.recipes.common import read_data
from fieldtune.tasks.token_classification import best_tags, word_logits


def compare(run: Path) -> list[dict[str, Any]]:
    """Entity P/R/F1 of greedy and constrained tags on the run's dev and test sets, and how many
    sentences the two decodings tag differently."""
    cfg = load_config(yaml.safe_load((run / "run.yaml").read_text()))
    _, splits, _ = read_data(cfg)
    predictor = load_predictor(run / "model", backend="torch")
    task, tok, labels = predictor.task, predictor.artifact.tokenizer, predictor.labels
    rows = []
    for split, examples in (("dev", splits.dev), ("test", splits.test)):
        features = task.encode(examples, tok, predictor.label2id, predictor.max_length)
        logits = predictor._forward(features, predictor.batch_size, tok.pad_token_id)
        words = word_logits(examples, features, logits, labels)
        greedy = [[labels[i] for i in r.argmax(-1)] for r in words]
        valid = [[labels[i] for i in best_tags(r, labels)] for r in words]
        gold = [list(ex.tags) for ex in examples]
        row: dict[str, Any] = {"run": str(run), "split": split, "sentences": len(examples)}
        for name, tags in (("greedy", greedy), ("valid IOB2", valid)):
            m = M.ner_metrics(gold, tags)
            row[f"{name} P/R/F1"] = f"{m['precision']:.4f} / {m['recall']:.4f} / {m['f1']:.4f}"
            row[f"{name} F1"] = m["f1"]
        row["sentences changed"] = sum(a != b for a, b in zip(greedy, valid))
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", type=Path, nargs="+", help="finished NER run folders (with run.yaml and model/)")
    p.add_argument("--out", type=Path, default=None, help="also write the rows as JSON here")
    args = p.parse_args(argv)
    rows = [row for run in args.runs for row in compare(run)]
    for row in rows:
        row["gain"] = round(row["valid IOB2 F1"] - row["greedy F1"], 4)
    cols = ["run", "split", "sentences", "greedy P/R/F1", "valid IOB2 P/R/F1", "gain", "sentences changed"]
    body = [[str(row[c]) for c in cols] for row in rows]
    show(cols, body, "NER decoding: greedy vs valid IOB2, same logits")
    if args.out:
        args.out.with_suffix(".md").write_text(markdown(cols, body) + "\n")
        args.out.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
