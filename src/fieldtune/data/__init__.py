"""Reading user data: text tables, JSONL and CoNLL columns, label maps, splits, fingerprints."""

from .examples import Dataset, TaggedSentence, TextExample
from .readers import read_examples
from .splits import check_labels_seen, fingerprint, stratified_split
from .tags import normalize_tags

__all__ = [
    "Dataset",
    "TaggedSentence",
    "TextExample",
    "check_labels_seen",
    "fingerprint",
    "normalize_tags",
    "read_examples",
    "stratified_split",
]
