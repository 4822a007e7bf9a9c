"""NER / token tagging: a label per word, predicted on the word's first sub-word.

Sentences longer than the model's limit are cut into windows of whole words (never truncated);
each word is predicted by the window that holds it. Raw text is split into words with character
offsets so entities map back to spans of the input.

Chinese, Japanese and Korean are written without spaces and tagged per character (CoNLL files with
one character per line), so every CJK character is a word of its own, in raw text as in training
data. Sentencepiece (metaspace) tokenizers prefix every pre-split word with ``▁``; a CJK character
is encoded instead as the piece it is inside running text (``三``, not ``▁三`` or ``▁`` + ``三``),
which keeps one piece per character and puts its label on a piece holding the character.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.special import log_softmax
from seqeval.metrics.sequence_labeling import get_entities

from ..data.examples import TaggedSentence
from ..errors import UserError
from ..evaluation import metrics as M
from ..evaluation.calibration import fit_group_temperature
from .base import Task
from .losses import token_loss
from .registry import register

# characters written without spaces between words: Han, kana, Hangul, bopomofo, CJK and full-width
# punctuation and forms (U+3000, the ideographic space, is whitespace and left out)
CJK = (
    "\u1100-\u11ff\u3001-\u303f\u3040-\u30ff\u3100-\u312f\u3130-\u318f\u31a0-\u31ff\u3400-\u4dbf"
    "\u4e00-\u9fff\ua960-\ua97f\uac00-\ud7af\ud7b0-\ud7ff\uf900-\ufaff\ufe30-\ufe6f\uff01-\uffef"
    "\U00020000-\U0003134f"
)
# a CJK character; a run of other word characters (joined by -'’.); any other non-space character
WORD = re.compile(rf"[{CJK}]|[^\W{CJK}]+(?:[-'’.][^\W{CJK}]+)*|[^\w\s]", re.UNICODE)
_CJK_CHAR = re.compile(rf"[{CJK}]")
# whitespace-separated chunks, with each CJK character cut out as a word of its own
_SPACED_WORD = re.compile(rf"[{CJK}]|[^\s{CJK}]+")
METASPACE = "▁"  # sentencepiece's word-start mark
IGNORE = -100
CrfScores = tuple[np.ndarray, np.ndarray, np.ndarray]  # a CRF's start, transition (from, to) and end scores


@register
class TokenClassification(Task):
    name = "ner"
    auto_model = "AutoModelForTokenClassification"
    default_metric = "f1"
    conll_txt = True
    # a linear probe's rate for the fresh tag classifier: at the body's 1e-4 it learned Weibo NER's rare tags
    # late (test F1 0.446 -> 0.518), Resume 0.927 -> 0.935, CoNLL-2003 400 sentences 76.4. Not for
    # classification: Financial PhraseBank with 25 per label fell 86.5 -> 72.2 (bench/RESULTS.md)
    new_head_lr = 1e-3
    no_label_distribution = "NER predictions have no single label to count"

    def label_list(self, train: list[TaggedSentence]) -> list[str]:
        types = sorted({t[2:] for ex in train for t in ex.tags if t != "O"})
        return ["O"] + [f"{p}-{t}" for t in types for p in ("B", "I")]

    def gold_names(self, labels):
        return {label[2:] for label in labels if label != "O"}

    def encode(self, examples, tokenizer, label2id, max_length):
        enc = tokenizer([list(ex.tokens) for ex in examples], is_split_into_words=True, truncation=False)
        bare = bare_metaspace_id(tokenizer)
        features = []
        for i, ex in enumerate(examples):
            ids, word_ids = enc["input_ids"][i], enc.word_ids(i)
            if bare is not None:
                ids, word_ids = unspace_cjk(ids, word_ids, ex.tokens, tokenizer, bare)
            for window in _windows(ids, word_ids, max_length, bare):
                features.append(_feature(i, ex, window, label2id))
        return features

    def decode(self, examples, features, logits, id2label, state):
        """Per example: (tags, per-word confidence). The tags are the most probable valid IOB2 sequence
        (:func:`best_tags`); the dev-fitted temperature (see :meth:`tune`) rescales the confidences, never
        the tags."""
        temperature = state.get("temperature_scaling", 1.0)
        labels = [id2label[i] for i in range(len(id2label))]
        crf, out = crf_arrays(state), []
        for rows in word_logits(examples, features, logits, labels):
            ids = best_tags(rows, labels, crf)
            probs = _softmax(rows / temperature)
            out.append(([labels[i] for i in ids], [float(probs[w, i]) for w, i in enumerate(ids)]))
        return out

    def loss(self, logits, labels, targets_per_batch=None):
        return token_loss(logits, labels, targets_per_batch)

    def tune(self, examples, features, logits, labels, state=None):
        """Temperature scaling of entity scores: an entity's score is the mean confidence of its words'
        tags (what ``predict`` returns); the one temperature on the tag logits whose scores best predict,
        on dev, whether each predicted entity is exactly right (type and span; minimum log loss). The
        tags are decoded as ``decode`` does with ``state`` (a CRF's scores)."""
        picked, chosen, groups, correct = [], [], [], []
        crf = crf_arrays(state or {})
        for ex, rows in zip(examples, word_logits(examples, features, logits, labels)):
            ids = best_tags(rows, labels, crf)
            gold = set(M.spans(list(ex.tags)))
            for span in M.spans([labels[i] for i in ids]):
                words = range(span[1], span[2] + 1)
                picked += [rows[w] for w in words]
                chosen += [ids[w] for w in words]
                groups += [len(correct)] * len(words)
                correct.append(span in gold)
        if len(correct) < 2:
            return {"temperature_scaling": 1.0}
        return {
            "temperature_scaling": fit_group_temperature(
                np.stack(picked), np.array(chosen), np.array(groups), np.array(correct)
            )
        }

    def confidences(self, examples, predictions):
        """Each predicted entity's score (as ``predict`` returns it) and whether it is exactly a gold entity."""
        conf, correct = [], []
        for ex, (tags, word_conf) in zip(examples, predictions):
            gold = set(M.spans(list(ex.tags)))
            for span in M.spans(tags):
                conf.append(float(np.mean(word_conf[span[1] : span[2] + 1])))
                correct.append(span in gold)
        return np.array(conf, dtype=np.float64), np.array(correct, dtype=bool)

    def metrics(self, examples, predictions, labels):
        return M.ner_metrics([list(ex.tags) for ex in examples], [tags for tags, _ in predictions])

    def baseline(self, train, examples, labels):
        out = M.ner_metrics([list(ex.tags) for ex in examples], [["O"] * len(ex.tags) for ex in examples])
        return {"name": "no entities", **{k: v for k, v in out.items() if k != "per_type"}}

    def from_text(self, text: str) -> TaggedSentence:
        words = [m.group() for m in WORD.finditer(text)]
        return TaggedSentence(tuple(words), ("O",) * len(words))

    def to_output(self, text, example, prediction, top_k):
        spans = [(m.start(), m.end()) for m in WORD.finditer(text)]
        tags, conf = prediction
        entities = []
        for etype, first, last in M.spans(tags):
            start, end = spans[first][0], spans[last][1]
            entities.append(
                {
                    "entity_group": etype,
                    "word": text[start:end],
                    "start": start,
                    "end": end,
                    "score": round(float(np.mean(conf[first : last + 1])), 6),
                }
            )
        return entities

    def summarize(self, output):
        """No label; the least confident entity's score (None without entities)."""
        if isinstance(output, list):
            scores = [e["score"] for e in output if "score" in e]
            return None, (min(scores) if scores else None)
        return None, None

    def drift_labels(self, label):
        return None

    def reference_labels(self, labels):
        return []

    def check_correction(self, labels, text, label, *, allow_new_labels=False):
        """Entities ``[{"start", "end", "label"}]``: character offsets into ``text`` (end exclusive),
        not overlapping, of the model's entity types; returned sorted by start."""
        return _check_entities(text, label, entity_types(labels), allow_new_labels)

    def correction_example(self, text, label):
        """Whitespace words of ``text``, each tagged with the entity it overlaps (IOB2)."""
        words = words_with_offsets(text)
        tags = ["O"] * len(words)
        for ent in label:
            inside = [i for i, (_, s, e) in enumerate(words) if s < ent["end"] and e > ent["start"]]
            for j, i in enumerate(inside):
                tags[i] = ("B-" if j == 0 else "I-") + ent["label"]
        return TaggedSentence(tuple(w for w, _, _ in words), tuple(tags))

    def correction_from_example(self, example):
        """The words joined by single spaces (none between two CJK characters), and their entities'
        character spans in that text."""
        text, starts = join_words(example.tokens)
        ends = [s + len(t) for s, t in zip(starts, example.tokens)]
        entities = [{"start": starts[s], "end": ends[e], "label": t} for t, s, e in get_entities(list(example.tags))]
        return text, entities

    def training_row(self, example):
        return {"tokens": list(example.tokens), "tags": list(example.tags)}


def entity_types(labels: list[str]) -> list[str]:
    """NER models' labels are IOB2 tags; corrections name the entity types."""
    return sorted({tag[2:] for tag in labels if tag[:2] in ("B-", "I-")})


def words_with_offsets(text: str) -> list[tuple[str, int, int]]:
    """Whitespace words with their character spans (how NER corrections become tagged sentences);
    every CJK character is a word of its own, so unspaced Chinese splits into characters."""
    return [(m.group(), m.start(), m.end()) for m in _SPACED_WORD.finditer(text)]


def is_cjk(word: str) -> bool:
    """Does ``word`` start with a CJK character (a word written without spaces around it)?"""
    return bool(_CJK_CHAR.match(word))


def join_words(tokens: Sequence[str]) -> tuple[str, list[int]]:
    """Words as one text: single spaces between them, none between two CJK words; and their starts."""
    text, starts = "", []
    for i, token in enumerate(tokens):
        if i and not (is_cjk(token) and is_cjk(tokens[i - 1][-1:])):
            text += " "
        starts.append(len(text))
        text += token
    return text, starts


def bare_metaspace_id(tokenizer) -> int | None:
    """The id of a lone ``▁`` piece in a sentencepiece (metaspace) vocabulary; None for others
    (WordPiece, byte-level BPE), whose encoding is left exactly as the tokenizer makes it."""
    piece = tokenizer.convert_tokens_to_ids(METASPACE)
    return None if piece is None or piece == tokenizer.unk_token_id else piece


def unspace_cjk(
    ids: list[int], word_ids: list[int | None], words: Sequence[str], tokenizer: Any, bare: int
) -> tuple[list[int], list[int | None]]:
    """Encode each CJK word as it appears inside running text: a metaspace tokenizer starts every
    pre-split word with ``▁``, which Chinese text never has between characters. A lone ``▁`` piece
    is dropped, and ``▁三`` becomes ``三`` where the vocabulary has it (else it stays).

    Returns:
        ``(ids, word_ids)`` without those pieces.
    """
    out_ids, out_words = [], []
    for p, (piece, word) in enumerate(zip(ids, word_ids)):
        starts_word = word is not None and (p == 0 or word_ids[p - 1] != word)
        if starts_word and is_cjk(words[word]):
            if piece == bare and p + 1 < len(ids) and word_ids[p + 1] == word:
                continue  # the character follows in its own piece
            text = tokenizer.convert_ids_to_tokens(piece)
            if text.startswith(METASPACE) and len(text) > 1:
                inner = tokenizer.convert_tokens_to_ids(text[len(METASPACE) :])
                piece = piece if inner is None or inner == tokenizer.unk_token_id else inner
        out_ids.append(piece)
        out_words.append(word)
    return out_ids, out_words


def _check_entities(text: str | None, entities: Any, types: list[str], allow_new: bool) -> list[dict[str, Any]]:
    if text is None:
        raise UserError(
            "an NER correction needs the text its offsets point into",
            hint="send the text with the entities",
        )
    if not isinstance(entities, list):
        raise UserError("an NER correction is a list of entities", hint='send "entities": [{"start", "end", "label"}]')
    out, last_end = [], 0
    for i, ent in enumerate(sorted(entities, key=lambda e: e.get("start", 0) if isinstance(e, dict) else 0)):
        _check_entity(i, ent, text, last_end, types, allow_new)
        out.append({"start": ent["start"], "end": ent["end"], "label": ent["label"]})
        last_end = ent["end"]
    return out


def _check_entity(i: int, ent: Any, text: str, last_end: int, types: list[str], allow_new: bool) -> None:
    """One entity of a correction (``i``: its place, from 0), or a UserError saying what is wrong."""
    if not isinstance(ent, dict) or not {"start", "end", "label"} <= set(ent):
        raise UserError(f"entity {i + 1} needs start, end and label", hint='{"start": 0, "end": 5, "label": "PER"}')
    start, end, label = ent["start"], ent["end"], ent["label"]
    if not (isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= len(text)):
        raise UserError(
            f"entity {i + 1}: offsets {start}..{end} are not inside the text (length {len(text)})",
            hint="start and end are character offsets, end exclusive",
        )
    if start < last_end:
        raise UserError(f"entity {i + 1} overlaps the previous one", hint="entities must not overlap")
    if not text[start:end].strip():
        raise UserError(f"entity {i + 1} covers only whitespace", hint="check the offsets")
    if label not in types and not allow_new:
        raise UserError(f"entity {i + 1}: unknown type {label!r}; the model knows {types}")


def word_logits(
    examples: Sequence[TaggedSentence], features: list[dict[str, Any]], logits: list[np.ndarray], labels: list[str]
) -> list[np.ndarray]:
    """Per example, its words' logits ``(words, labels)``, each read at the word's first piece (a word
    in two windows: the later one's). A word with no piece (nothing the tokenizer keeps) is certainly
    ``O``."""
    certain_o = np.where(np.array(labels) == "O", 0.0, -1e4).astype(np.float32)
    out = [np.tile(certain_o, (len(ex.tokens), 1)) for ex in examples]
    for feat, row in zip(features, logits):
        for pos, word in feat["first"]:
            out[feat["example"]][word] = row[pos]
    return out


def best_tags(rows: np.ndarray, labels: list[str], crf: CrfScores | None = None) -> list[int]:
    """The most probable tag sequence (Viterbi) in which every ``I-X`` follows ``B-X`` or ``I-X``: a
    softmax tagger picks each word's tag alone and can write ``B-PER I-LOC`` or ``O I-ORG``, which the
    metrics then read as broken or guessed entities.

    Without ``crf`` the words' log-softmax scores are summed; where each word's own best tag already makes a
    valid sequence (most sentences), that is the answer. With a CRF's learned scores (:func:`crf_arrays`)
    the sum is the CRF's: the logits plus the start, transition and end scores."""
    transition, inside = _transitions(tuple(labels))
    if crf is None:
        greedy = [int(i) for i in rows.argmax(-1)]
        if not greedy or (not inside[greedy[0]] and all(transition[a, b] == 0 for a, b in zip(greedy, greedy[1:]))):
            return greedy
        scores, start, end = log_softmax(rows, axis=-1), np.zeros(len(labels)), np.zeros(len(labels))
    else:
        if not len(rows):
            return []
        scores, (start, learned, end) = rows, crf
        transition = transition + learned
    score = np.where(inside, -np.inf, start + scores[0])
    back = np.zeros(scores.shape, dtype=np.int64)
    for w in range(1, len(scores)):
        candidates = score[:, None] + transition
        back[w] = candidates.argmax(0)
        score = candidates.max(0) + scores[w]
    path = [int((score + end).argmax())]
    for w in range(len(scores) - 1, 0, -1):
        path.append(int(back[w, path[-1]]))
    return path[::-1]


def crf_arrays(state: dict[str, Any]) -> CrfScores | None:
    """A run's CRF scores (``state["crf"]``, see ``tasks.crf``) as arrays; None for a softmax tagger."""
    crf = state.get("crf")
    if not crf:
        return None
    return np.asarray(crf["start"]), np.asarray(crf["transitions"]), np.asarray(crf["end"])


@functools.lru_cache(maxsize=16)
def _transitions(labels: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """IOB2's transition scores ``(from, to)``: 0 where allowed, -inf for ``I-X`` after anything but
    ``B-X`` / ``I-X``; and which labels are ``I-`` (no sentence starts with one)."""
    inside = np.array([t.startswith("I-") for t in labels])
    continues = np.array([[a[:2] in ("B-", "I-") and a[2:] == b[2:] for b in labels] for a in labels])
    return np.where(~inside[None, :] | continues, 0.0, -np.inf), inside


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _windows(ids: list[int], word_ids: list[int | None], max_length: int, bare: int | None = None):
    """Yield (input_ids, [(position, word)]) windows of whole words within ``max_length``; a word's
    position is its first piece, or its first piece after a lone metaspace ``bare`` (no characters)."""
    positions = [p for p, w in enumerate(word_ids) if w is not None]
    if not positions:
        yield ids, []
        return
    prefix, suffix = ids[: positions[0]], ids[positions[-1] + 1 :]
    pieces: dict[int, list[int]] = {}
    for p in positions:
        pieces.setdefault(word_ids[p], []).append(ids[p])
    budget = max(max_length - len(prefix) - len(suffix), 1)
    window: list[int] = []
    first: list[tuple[int, int]] = []
    for word, word_pieces in pieces.items():
        word_pieces = word_pieces[:budget]  # one absurdly long word keeps its first pieces
        if window and len(window) + len(word_pieces) > budget:
            yield prefix + window + suffix, first
            window, first = [], []
        lead = 1 if len(word_pieces) > 1 and word_pieces[0] == bare else 0
        first.append((len(prefix) + len(window) + lead, word))
        window += word_pieces
    yield prefix + window + suffix, first


def _feature(index: int, ex: TaggedSentence, window, label2id: dict[str, int]) -> dict[str, Any]:
    ids, first = window
    labels = [IGNORE] * len(ids)
    for pos, word in first:
        labels[pos] = label2id.get(ex.tags[word], IGNORE)
    return {"input_ids": ids, "labels": labels, "example": index, "first": first}
