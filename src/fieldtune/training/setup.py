"""What every training run sets up first: threads, seed, precision, attention kernel, accelerator.

One place for these, so the recipes (encoder fine-tuning, LLM classification, instruction tuning, ...)
train under the same settings and report them the same way.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState, GradientState
from accelerate.utils import set_seed

from ..config import RunConfig


def prepare(cfg: RunConfig) -> Accelerator:
    """Threads and seed for this process, and a fresh :class:`Accelerator` for the run."""
    set_threads(cfg)
    set_seed(cfg.train.seed)
    return accelerator(cfg)


def accelerator(cfg: RunConfig) -> Accelerator:
    """A fresh Accelerator per run. accelerate keeps precision and accumulation in a process-wide
    singleton; resetting it (but not the process group) lets one process run several trainings
    with different settings, e.g. a notebook or the test suite."""
    AcceleratorState._reset_state(reset_partial_state=False)
    GradientState._reset_state()
    return Accelerator(
        mixed_precision="bf16" if use_bf16(cfg) else "no",
        cpu=not has_device(),
        gradient_accumulation_steps=cfg.train.grad_accum,
    )


def has_device() -> bool:
    """Any accelerator? Without one, accelerate must be told cpu=True, or a multi-process launch
    (torchrun / `accelerate launch --multi_gpu`) silently trains N unsynchronised copies."""
    xpu = getattr(torch, "xpu", None)
    return torch.cuda.is_available() or torch.backends.mps.is_available() or bool(xpu and xpu.is_available())


def use_bf16(cfg: RunConfig) -> bool:
    """bf16 autocast when asked, or on 'auto' where the hardware has native bf16 matmul."""
    if cfg.train.precision != "auto":
        return cfg.train.precision == "bf16"
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags


def precision(cfg: RunConfig) -> str:
    """What metrics.json reports: ``bf16`` or ``fp32``."""
    return "bf16" if use_bf16(cfg) else "fp32"


def attention(cfg: RunConfig) -> str:
    """The attention kernel: 'auto' is eager on CPU, sdpa on GPU.

    Encoders: with bf16 autocast eager is ~1.7x faster than sdpa on short sentences. Decoders: a LoRA
    step of smollm2 (batch 8 x 128, 2 cores with AMX) takes 2.9 s eager vs 3.1 s sdpa under bf16
    autocast, 4.6 vs 4.4 s in fp32 (bench/lora_step.py). The LLM label scorer's custom attention mask
    works with both.
    """
    if cfg.train.attention != "auto":
        return cfg.train.attention
    return "sdpa" if torch.cuda.is_available() else "eager"


def set_threads(cfg: RunConfig) -> None:
    """``train.threads``, else all cores of this process's share (unless OMP_NUM_THREADS says)."""
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    elif "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(os.environ.get("WORLD_SIZE", "1"))))
