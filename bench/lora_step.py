#!/usr/bin/env python
"""Seconds per LoRA optimizer step of smollm2 on this CPU, for the settings that decide its speed.

One step = forward + causal-LM loss + backward + AdamW, batch 8 x 128 real tokens (BANKING77 queries
as chat-formatted classification features, repeated to length), LoRA r=8 on peft's default Llama
targets (q_proj, v_proj), no gradient checkpointing. The settings take their steps in turn (2 warm-up,
then ``--steps`` timed); reported: median and best step, ratios of best steps to fp32 eager's (on a machine
shared with other jobs the median swings with their load; the best step is what a setting costs when it
has the cores). Writes bench/results/lora_step.json.

    python bench/lora_step.py               # ~2-3 min on 2 cores
    python bench/lora_step.py --steps 3 --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

from fieldtune.config import PeftConfig  # noqa: E402
from fieldtune.methods import apply_method  # noqa: E402
from fieldtune.models.causal_lm import load_causal_lm  # noqa: E402

OUT = Path(__file__).parent / "results" / "lora_step.json"
SAMPLE = Path(__file__).parents[1] / "src" / "fieldtune" / "samples" / "banking77" / "train.csv"

# name: (attention kernel, bf16 autocast, frozen base weights stored in bf16)
SETTINGS = {
    "fp32 eager": ("eager", False, False),
    "fp32 sdpa": ("sdpa", False, False),
    "bf16 autocast eager": ("eager", True, False),
    "bf16 autocast sdpa": ("sdpa", True, False),
    "bf16 autocast sdpa, bf16 base weights": ("sdpa", True, True),
}


def batch(tokenizer, size: int, length: int) -> dict[str, torch.Tensor]:
    """Real tokens: sample queries in the chat template, concatenated and cut to ``length``; the loss on
    the last 4 positions of each row (about a label's answer)."""
    import csv

    with SAMPLE.open(newline="", encoding="utf-8") as f:
        texts = [r["text"] for r in csv.DictReader(f)]
    ids = tokenizer(" ".join(texts))["input_ids"]
    rows = torch.tensor([ids[i * length : (i + 1) * length] for i in range(size)])
    labels = torch.full_like(rows, -100)
    labels[:, -5:-1] = rows[:, -4:]
    return {"input_ids": rows, "attention_mask": torch.ones_like(rows), "labels": labels}


class Setting:
    """One setting's model, optimizer and data, ready to take steps."""

    def __init__(self, attention: str, bf16: bool, bf16_base: bool, data: dict) -> None:
        torch.manual_seed(0)
        lm = load_causal_lm("smollm2", attention=attention)
        lm.model.config.use_cache = False
        if bf16_base:
            lm.model.to(torch.bfloat16)  # frozen weights in bf16: autocast no longer casts them every step
        self.model, self.params = apply_method(lm.model, "lora", peft=PeftConfig(r=8, alpha=16, dropout=0.1))
        for p in self.model.parameters():
            if p.requires_grad:
                p.data = p.data.float()  # the adapter trains in fp32 either way
        self.model.train()
        self.trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(self.trainable, lr=1e-4)
        self.bf16, self.data, self.times, self.loss = bf16, data, [], None

    def step(self, timed: bool) -> None:
        data, tick = self.data, time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            logits = self.model(input_ids=data["input_ids"], attention_mask=data["attention_mask"]).logits
        loss = torch.nn.functional.cross_entropy(
            logits.float().reshape(-1, logits.shape[-1]), data["labels"].reshape(-1), ignore_index=-100
        )
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.trainable, 1.0)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.loss = float(loss.detach())
        if timed:
            self.times.append(time.perf_counter() - tick)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--only", nargs="*", default=None, help="names of settings to run (default: all)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = batch(load_causal_lm("smollm2").tokenizer, args.batch, args.length)
    settings = {n: s for n, s in SETTINGS.items() if not args.only or n in args.only}
    runs = {name: Setting(*setting, data) for name, setting in settings.items()}
    # round-robin: step i of every setting, then step i + 1, so load from other processes on a shared
    # machine falls on all settings alike instead of on whichever ran while it peaked
    for i in range(args.warmup + args.steps):
        for name, run in runs.items():
            run.step(timed=i >= args.warmup)
            print(f"  step {i + 1} {name}: {run.times[-1] if run.times else float('nan'):.2f} s", flush=True)
    results = {}
    for name, run in runs.items():
        results[name] = {
            "median_s": round(statistics.median(run.times), 3),
            "min_s": round(min(run.times), 3),
            "steps_s": [round(t, 3) for t in run.times],
            "loss": round(run.loss, 4),
            "trainable_params": run.params["trainable"],
        }
    base = results.get("fp32 eager", {}).get("min_s")
    print(f"\n{'setting':42} {'median s':>9} {'best s':>7} {'best vs fp32 eager':>19}")
    for name, r in results.items():
        r["ratio"] = round(r["min_s"] / base, 3) if base else None  # the best step: robust to a busy machine
        print(f"{name:42} {r['median_s']:9.2f} {r['min_s']:7.2f} {r['ratio'] or float('nan'):19.2f}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "what": "one LoRA (r=8, q_proj+v_proj) AdamW step of smollm2, median after warm-up",
        "batch": args.batch,
        "length": args.length,
        "threads": args.threads,
        "cpu": platform.processor() or platform.machine(),
        "amx_bf16": "amx_bf16" in Path("/proc/cpuinfo").read_text(),
        "load_average_after": os.getloadavg(),
        "torch": torch.__version__,
        "results": results,
    }
    OUT.write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(f"\nwrote {OUT}")


if __name__ == "__main__":
    main()
