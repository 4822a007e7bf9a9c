"""Loading a sentence embedder (sentence-transformers, on the CPU): the one way fieldtune loads
``minilm`` or any other sentence encoder, for SetFit / zero-shot bodies, in-context shot selection
and drift monitoring alike."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import UserError
from ..utils.hf import quiet_transformers
from ..zoo import resolve


def load_sentence_encoder(name_or_path: str | Path) -> Any:
    """A ``SentenceTransformer`` on the CPU from local files (a plain HF encoder gets mean pooling).

    Args:
        name_or_path: A zoo alias (``minilm``) or a local sentence-transformers / Hugging Face folder.

    Returns:
        The loaded ``SentenceTransformer``.

    Raises:
        UserError: The name doesn't resolve or the folder can't be loaded as a sentence encoder.
    """
    # imported here: sentence-transformers takes seconds to import and only embedding users need it
    from sentence_transformers import SentenceTransformer

    path = resolve(str(name_or_path))
    try:
        with quiet_transformers():
            return SentenceTransformer(path, device="cpu", local_files_only=True)
    except (OSError, ValueError) as err:
        raise UserError(
            f"could not load sentence encoder {path!r}: {str(err).splitlines()[0]}",
            hint="use model: minilm or a local sentence-transformers / Hugging Face encoder folder",
        ) from None
