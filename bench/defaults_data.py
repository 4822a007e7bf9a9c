"""Data for bench/defaults.py: the learning-curve points (train / dev / test files) of each dataset.

Every point is built from a seeded subsample, so rerunning (or ``--resume``) rebuilds the same files.

- **Train**: ``n`` sentences (CoNLL-2003) or ``k`` examples per label (classification, multi-label),
  drawn with the seed; ``all`` is the whole training pool.
- **Dev**: what a user with that much labelled data would hold out: 20% of the train size
  (``DEV_FRACTION``), drawn from the dataset's dev pool, at least 1 per label for classification
  (``round(0.2 k)`` per label, min 1) and at least ``NER_DEV_MIN`` sentences for NER, never more than
  the pool has (CoNLL ``all``: 2,808 of the 3,250 dev sentences).
- **Test**: the full test split (``--test-limit N``: a seeded, stratified N of it, for quick runs).

Pools: CoNLL-2003 train / valid / test as shipped (IOB1 -> IOB2). BANKING77 has no dev split: a seeded,
stratified 10% of train is the dev pool (as in bench/adaptation.py). Financial PhraseBank AllAgree: the
seeded stratified 70/10/20 split of bench/adaptation.py.

**Multi-label (``multilabel``)**, built from CLINC150's ``banking`` and ``credit_cards`` domains (30
intents, 100 / 20 / 30 utterances per intent in train / dev / test). In each split, separately: take
the utterances (``k`` per intent for train), shuffle them with the seed, keep the first half as
single-intent texts, and join the second half two by two into ``"<a> and <b>"`` with both intents as
labels (a pair of the same intent is re-paired with the next utterance of another intent). So every
text has one or two labels, about a third of the texts have two, and each intent keeps ~``k`` mentions.
"""

from __future__ import annotations

import csv
import json
import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from adaptation import read_csv, read_phrasebank, split_70_10_20, stratified_take, write_csv
from conll2003 import read_conll

Row = tuple[str, str]  # (text, label)
MultiRow = tuple[str, list[str]]  # (text, labels)
Sentence = tuple[list[str], list[str]]  # (words, IOB2 tags)
DEV_FRACTION = 0.2
NER_DEV_MIN = 10
MULTILABEL_DOMAINS = ("banking", "credit_cards")


@dataclass(frozen=True)
class Spec:
    """One dataset of the benchmark."""

    task: str  # fieldtune task
    metric: str  # test metric (fieldtune's metrics.json key)
    folder: str  # under --data
    sizes: tuple[str, ...]  # learning-curve points, in the unit below
    unit: str
    quick: str  # the --quick size


DATASETS = {
    "conll2003": Spec("ner", "f1", "conll2003", ("100", "400", "1600", "all"), "sentences", "50"),
    "banking77": Spec("classification", "accuracy", "banking77", ("5", "10", "20", "all"), "per intent", "2"),
    "phrasebank": Spec("classification", "accuracy", "financial_phrasebank", ("25", "100", "all"), "per label", "10"),
    "multilabel": Spec("multilabel", "micro_f1", "clinc150", ("10", "all"), "per intent", "3"),
}


# --------------------------------------------------------------------------- pools


def pools(name: str, root: Path, seed: int) -> tuple[list, list, list]:
    """The dataset's (train, dev, test) pools, before any subsampling."""
    folder = root / DATASETS[name].folder
    if name == "conll2003":
        return tuple(read_conll(folder / f"{s}.txt") for s in ("train", "valid", "test"))
    if name == "banking77":
        train = read_csv(folder / "train.csv")
        dev = stratified_take(train, round(0.1 * len(train)), seed)
        return _without(train, dev), dev, read_csv(folder / "test.csv")
    if name == "phrasebank":
        return split_70_10_20(read_phrasebank(folder / "Sentences_AllAgree.txt"), seed)
    return tuple(_clinc(folder, split) for split in ("train", "dev", "test"))


def _clinc(folder: Path, split: str) -> list[Row]:
    """CLINC150 utterances of the multi-label domains' intents."""
    domains = json.loads((folder / "domains.json").read_text(encoding="utf-8"))
    keep = {i for d in MULTILABEL_DOMAINS for i in domains[d]}
    with (folder / f"{split}.csv").open(encoding="utf-8", newline="") as f:
        return [(r["text"], r["intent"]) for r in csv.DictReader(f) if r["intent"] in keep]


def _without(rows: list, taken: list) -> list:
    """``rows`` minus one occurrence of each row of ``taken``."""
    counts: dict = defaultdict(int)
    for r in taken:
        counts[r] += 1
    out = []
    for r in rows:
        if counts[r]:
            counts[r] -= 1
        else:
            out.append(r)
    return out


# --------------------------------------------------------------------------- sampling


def per_label(rows: list[Row], k: int, seed: int) -> list[Row]:
    """Up to ``k`` seeded rows of every label (all of a label's rows when it has fewer)."""
    groups: dict[str, list[Row]] = defaultdict(list)
    for r in rows:
        groups[r[1]].append(r)
    out: list[Row] = []
    for label in sorted(groups):
        group = groups[label][:]
        random.Random(f"{seed}-{label}").shuffle(group)  # a per-label stream: k=5 is a prefix of k=10
        out += group[:k]
    return out


def sentences(rows: list[Sentence], n: int, seed: int) -> list[Sentence]:
    """``n`` seeded sentences (random, not the first ``n``: CoNLL documents are topical)."""
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    return [rows[i] for i in sorted(order[:n])]


def subsample(name: str, size: str, train: list, dev: list, seed: int) -> tuple[list, list]:
    """One point's (train, dev) from the pools: see the module docstring for the rule."""
    if name == "conll2003":
        if size == "all":
            return train, sentences(dev, min(len(dev), round(DEV_FRACTION * len(train))), seed)
        n = int(size)
        return sentences(train, n, seed), sentences(dev, min(len(dev), max(NER_DEV_MIN, round(DEV_FRACTION * n))), seed)
    if size == "all":
        return train, stratified_take(dev, min(len(dev), round(DEV_FRACTION * len(train))), seed)
    k = int(size)
    return per_label(train, k, seed), per_label(dev, max(1, round(DEV_FRACTION * k)), seed)


def limit_test(name: str, test: list, limit: int | None, seed: int) -> list:
    """The test split, or a seeded (stratified for classification) ``limit`` of it."""
    if not limit or limit >= len(test):
        return test
    if name == "conll2003":
        return sentences(test, limit, seed)
    return stratified_take(test, limit, seed)


def combine(rows: list[Row], seed: int) -> list[MultiRow]:
    """Single-intent texts from the first half of the shuffled rows, two-intent pairs from the second."""
    rows = rows[:]
    random.Random(seed).shuffle(rows)
    half = len(rows) // 2
    out: list[MultiRow] = [(text, [label]) for text, label in rows[:half]]
    rest = rows[half:]
    while len(rest) >= 2:
        a = rest.pop(0)
        j = next((i for i, b in enumerate(rest) if b[1] != a[1]), None)
        if j is None:  # only one intent left: keep it single
            out.append((a[0], [a[1]]))
            continue
        b = rest.pop(j)
        out.append((f"{a[0]} and {b[0]}", sorted({a[1], b[1]})))
    out += [(text, [label]) for text, label in rest]
    return out


# --------------------------------------------------------------------------- files


def write_conll(path: Path, rows: list[Sentence]) -> Path:
    """Two-column CoNLL (word, IOB2 tag), a blank line after each sentence."""
    path.parent.mkdir(parents=True, exist_ok=True)
    blocks = ["\n".join(f"{w} {t}" for w, t in zip(words, tags, strict=True)) for words, tags in rows]
    path.write_text("\n\n".join(blocks) + "\n\n", encoding="utf-8")
    return path


def write_multilabel(path: Path, rows: list[MultiRow]) -> Path:
    """CSV ``text,labels`` with the labels joined by ``|`` (fieldtune's default separator)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "labels"])
        writer.writerows((text, "|".join(labels)) for text, labels in rows)
    return path


def write_split(name: str, path: Path, rows: list) -> Path:
    """Write one split in the dataset's format (``path`` without suffix)."""
    if name == "conll2003":
        return write_conll(path.with_suffix(".txt"), rows)
    if name == "multilabel":
        return write_multilabel(path.with_suffix(".csv"), rows)
    return write_csv(path.with_suffix(".csv"), rows)


def build_points(
    name: str, root: Path, sizes: list[str], work: Path, seed: int, test_limit: int | None
) -> dict[str, dict]:
    """Write each size's train / dev files and the shared test file; return per size its files and counts."""
    train_pool, dev_pool, test_pool = pools(name, root, seed)
    test = limit_test(name, test_pool, test_limit, seed)
    multi = name == "multilabel"
    test_file = write_split(name, work / name / "test", combine(test, seed) if multi else test)
    points = {}
    for size in sizes:
        train, dev = subsample(name, size, train_pool, dev_pool, seed)
        if multi:
            train, dev = combine(train, seed), combine(dev, seed)
        folder = work / name / f"size-{size}"
        points[size] = {
            "files": {
                "train": str(write_split(name, folder / "train", train)),
                "dev": str(write_split(name, folder / "dev", dev)),
                "test": str(test_file),
            },
            "n_train": len(train),
            "n_dev": len(dev),
            "n_test": len(combine(test, seed)) if multi else len(test),
        }
    return points


def dev_rule() -> str:
    """One line for the report: how dev is sized."""
    return (
        f"dev = {DEV_FRACTION:.0%} of the train size from the dataset's dev pool (classification: "
        f"max(1, round({DEV_FRACTION} k)) per label; NER: at least {NER_DEV_MIN} sentences), capped at the pool; "
        f"test = the full test split unless --test-limit"
    )
