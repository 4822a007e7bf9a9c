#!/usr/bin/env python
"""Learning curves of fieldtune's defaults (issue 12): defaults vs a dev-selected grid vs the HF Trainer.

Each point is one dataset at one training size (see bench/defaults_data.py for how train / dev / test
are drawn and how the multi-label set is built). Contenders, each run in its own subprocess (this
script calls itself), same seed, same files, model ``minilm`` (all-MiniLM-L6-v2):

    defaults    fieldtune.train with only task, model, data and output: NO train settings, so it
                measures whatever fieldtune's defaults are (with --seed other than 42, train.seed only)
    grid        fieldtune.train with explicit train.lr / train.epochs / train.batch_size, every other
                setting default; the run with the best DEV metric is the grid's point (its test reported)
    hf_trainer  transformers.Trainer with its own defaults, the final model (bench/defaults_hf.py)

The small grid is lr {3e-5, 1e-4, 3e-4} x epochs {3, 10, 30} x batch {8, 32}, pruned by size: an
(epochs, batch) pair is kept while epochs x train examples <= 40,000 (the 3-epoch row is always kept)
and batch 8 only up to 2,000 training examples. So 18 runs at <= 1,333 examples, fewer above, 3 at
CoNLL/BANKING77 ``all``. ``--grid full`` is 5 lr x 5 epochs x 3 batch sizes with a 150,000 cap.
``--grid lean`` (for a ~1-2 hour run on 2 cores) keeps the 3 learning rates and 3 epoch counts at batch
16 only, with a 20,000 cap: at most 9 runs a point; ``--grid lean2`` drops lr 3e-5 from it (6 runs).
``--grid fast`` is lean2's one row lr 3e-4, 3 epochs (the grid's dev-best where the defaults' wall time
missed), to time the defaults against it side by side. ``--grid ten`` is lean2's 3 and 10 epochs with a 30,000 cap
(10 epochs at multi-label all too). ``--grid-max-train N`` skips the grid above N
training examples (to afford a run).

Per point: test and dev metric, wall time (fieldtune: metrics.json train.wall_s, reading the data to
the adapted model; Trainer: the same span), optimizer steps, epochs run. Results go to
``bench/results/defaults/<dataset>.json`` after every run (``--resume`` skips what is there), the
table to ``bench/results/defaults/table.md``, the plot to ``bench/figures/defaults.png``; the checks
against the issue's targets are printed last.

    OMP_NUM_THREADS=1 .venv/bin/python bench/defaults.py --quick --threads 1       # smoke: ~2-3 min per dataset
    .venv/bin/python bench/defaults.py --datasets phrasebank,multilabel --resume  # two datasets, restartable
    .venv/bin/python bench/defaults.py --datasets conll2003 --sizes 100,400 --contenders defaults,hf_trainer
    .venv/bin/python bench/defaults.py --grid-max-train 3000 --resume             # no grid at the `all` sizes
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from itertools import product
from pathlib import Path
from typing import Any

from defaults_data import DATASETS, build_points, dev_rule
from defaults_report import CONTENDERS, report

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

HERE = Path(__file__).resolve().parent
FIELDTUNE_SEED = 42  # fieldtune's default train.seed: the defaults contender passes no seed when --seed is this
GRIDS = {
    "small": {"lr": (3e-5, 1e-4, 3e-4), "epochs": (3, 10, 30), "batch_size": (8, 32), "max_examples": 40_000},
    "full": {
        "lr": (2e-5, 5e-5, 1e-4, 2e-4, 5e-4),
        "epochs": (3, 5, 10, 20, 40),
        "batch_size": (8, 16, 32),
        "max_examples": 150_000,
    },
    "lean": {"lr": (3e-5, 1e-4, 3e-4), "epochs": (3, 10, 30), "batch_size": (16,), "max_examples": 20_000},
    # lean without 3e-5, the rate that lost at every point measured first (CoNLL 100, PhraseBank 25 per label)
    "lean2": {"lr": (1e-4, 3e-4), "epochs": (3, 10, 30), "batch_size": (16,), "max_examples": 20_000},
    "quick": {"lr": (1e-4,), "epochs": (3,), "batch_size": (16,), "max_examples": 0},
    # lean2's cheapest row, the grid's dev-best at the points where the defaults' wall time missed
    # (PhraseBank 100 / all, multi-label all): times the defaults against it in one run, without the grid
    "fast": {"lr": (3e-4,), "epochs": (3,), "batch_size": (16,), "max_examples": 0},
    # lean2 with its 10-epoch runs at the `all` sizes too (lean2's cap left multi-label all, 2,250 texts, 3
    # epochs only): is the grid's dev-best still its cheapest run when it may train as long as the defaults?
    "ten": {"lr": (1e-4, 3e-4), "epochs": (3, 10), "batch_size": (16,), "max_examples": 30_000},
}
SMALL_BATCH_MAX_TRAIN = 2_000  # batch 8 above this is many slow steps for no measured gain on a CPU
QUICK_TEST_LIMIT = 200


# --------------------------------------------------------------------------- grid


def grid_configs(grid: str, n_train: int) -> list[dict[str, Any]]:
    """The grid's (lr, epochs, batch_size) settings for a training set of ``n_train`` examples."""
    g = GRIDS[grid]
    keep = []
    for lr, epochs, batch in product(g["lr"], g["epochs"], g["batch_size"]):
        if epochs != min(g["epochs"]) and epochs * n_train > g["max_examples"]:
            continue  # more passes than the budget allows at this size; the shortest row always stays
        if batch < 16 and n_train > SMALL_BATCH_MAX_TRAIN and len(g["batch_size"]) > 1:
            continue
        keep.append({"lr": lr, "epochs": epochs, "batch_size": batch})
    return keep


def grid_key(settings: dict[str, Any]) -> str:
    """A stable name of one grid configuration."""
    return f"lr={settings['lr']:g},epochs={settings['epochs']},batch={settings['batch_size']}"


# --------------------------------------------------------------------------- child processes


def fieldtune_config(dataset: str, files: dict[str, str], output: Path, train: dict[str, Any]) -> dict[str, Any]:
    """A run config: task, model, data, output, plus ``train`` only when it is not empty."""
    cfg: dict[str, Any] = {
        "task": DATASETS[dataset].task,
        "model": "minilm",
        "data": dict(files),
        "output": str(output),
    }
    if train:
        cfg["train"] = train
    return cfg


def child_fieldtune(cfg: dict[str, Any], metric: str) -> dict[str, Any]:
    """Child: one fieldtune.train run; the benchmark's record of it."""
    import yaml

    import fieldtune  # in the child only: the parent never loads torch

    result = fieldtune.train(cfg)
    m = result.metrics
    out_dir = Path(cfg["output"])
    evals = [json.loads(line) for line in (out_dir / "log.jsonl").read_text().splitlines() if line.strip()]
    resolved = yaml.safe_load((out_dir / "run.yaml").read_text()).get("train", {})
    tr = m["train"]
    return {
        "test_metric": m["test"][metric],
        "dev_metric": m["dev"][metric],
        "wall_s": tr["wall_s"],
        "steps": tr["steps"],
        "epochs_run": evals[-1]["epoch"] if evals else None,
        "best_epoch": tr.get("best_epoch"),
        "stopped_early": tr.get("stopped_early"),
        "evaluations": len(evals),
        "settings": {k: _resolved(k, resolved, tr) for k in ("lr", "epochs", "batch_size", "patience", "eval_every")},
        "train_stats": {k: v for k, v in tr.items() if not isinstance(v, (dict, list))},
        "advice": result.advice,
        "budget": tr.get("budget"),
        # (step, epoch, dev metric) at each evaluation: what a stopping rule would have seen
        "dev_curve": [[e["step"], e["epoch"], e["dev"].get(metric)] for e in evals],
    }


def _resolved(key: str, config: dict[str, Any], stats: dict[str, Any]) -> Any:
    """A train setting as run: the config's value, else what the run reports (automatic settings), else "auto"."""
    if config.get(key) is not None:
        return config[key]
    return "auto" if key == "epochs" else stats.get(key, "auto")  # stats' "epochs" is epochs run, not the cap


def child_main(spec_path: Path) -> int:
    """Child entry point: run the spec's contender, write its record (or its error) beside the spec."""
    spec = json.loads(spec_path.read_text())
    result_path = spec_path.with_suffix(".result.json")
    try:
        if spec["kind"] == "hf_trainer":
            import defaults_hf
            from transformers.utils import logging

            logging.set_verbosity_error()  # the expected "newly initialised head" report
            out = defaults_hf.run(spec["task"], spec["files"], spec["seed"], Path(spec["workdir"]))
        else:
            out = child_fieldtune(spec["config"], spec["metric"])
    except Exception as e:  # noqa: BLE001 - a failed run is a result, the parent records it and goes on
        result_path.write_text(json.dumps({"error": f"{type(e).__name__}: {str(e)[:300]}"}))
        raise
    result_path.write_text(json.dumps(out))
    return 0


def spawn(spec: dict[str, Any], work: Path, threads: int | None) -> dict[str, Any]:
    """Run one contender in a subprocess; its record with the process's own time, or an error record."""
    work.mkdir(parents=True, exist_ok=True)
    spec_path = work / "spec.json"
    spec_path.write_text(json.dumps(spec))
    env = dict(os.environ)
    if threads:
        env |= {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, "--child", str(spec_path)], env=env, check=False)
    result_path = spec_path.with_suffix(".result.json")
    if result_path.is_file():
        out = json.loads(result_path.read_text())
    else:
        out = {"error": f"exit code {proc.returncode}"}
    out["process_s"] = round(time.perf_counter() - t0, 1)
    shutil.rmtree(work, ignore_errors=True)  # run folders hold checkpoints: hundreds of MB each
    return out


def fieldtune_spec(dataset: str, point: dict, train: dict[str, Any], work: Path) -> dict[str, Any]:
    """The child spec of a fieldtune run."""
    cfg = fieldtune_config(dataset, point["files"], work / "run", train)
    return {"kind": "fieldtune", "config": cfg, "metric": DATASETS[dataset].metric}


# --------------------------------------------------------------------------- orchestration


def save(path: Path, results: dict[str, Any]) -> None:
    """Write the results file atomically (a killed run never leaves it half written)."""
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=2))
    tmp.replace(path)


def run_one(label: str, spec: dict[str, Any], work: Path, args: argparse.Namespace) -> dict[str, Any]:
    """One contender run (its files in ``work``, removed after) with a progress line before and after."""
    print(f"\n=== {label}", flush=True)
    out = spawn(spec, work, args.threads)
    shown = out.get("error") or f"test {out['test_metric']:.4f} dev {out['dev_metric']:.4f} wall {out['wall_s']:.1f}s"
    print(f"=== {label}: {shown} (process {out['process_s']} s)", flush=True)
    return out


def run_point(dataset: str, size: str, point: dict, results: dict, path: Path, tmp: Path, args) -> None:
    """Every requested contender at one point; the results file is rewritten after each run."""
    stored = results["points"].setdefault(size, {})
    stored.update({k: point[k] for k in ("n_train", "n_dev", "n_test")})
    for name in args.contenders:
        label = f"{dataset} {size} {name}"
        if name == "grid":
            run_grid(dataset, size, point, stored, path, results, tmp, args)
            continue
        if args.resume and name in stored and "error" not in stored[name]:
            continue
        work = tmp / f"{size}-{name}"
        if name == "defaults":
            train = {} if args.seed == FIELDTUNE_SEED else {"seed": args.seed}
            spec = fieldtune_spec(dataset, point, train, work)
        else:
            spec = {"kind": "hf_trainer", "task": DATASETS[dataset].task, "files": point["files"], "seed": args.seed}
            spec["workdir"] = str(work)
        stored[name] = run_one(label, spec, work, args)
        save(path, results)


def run_grid(dataset: str, size: str, point: dict, stored: dict, path: Path, results: dict, tmp: Path, args) -> None:
    """The grid at one point, one subprocess per configuration, saved after each."""
    if args.grid_max_train and point["n_train"] > args.grid_max_train:
        print(f"\n=== {dataset} {size} grid: skipped ({point['n_train']} > --grid-max-train {args.grid_max_train})")
        return
    runs = stored.setdefault("grid", {"runs": {}})["runs"]
    configs = grid_configs(args.grid, point["n_train"])
    for i, settings in enumerate(configs, 1):
        key = grid_key(settings)
        if args.resume and key in runs and "error" not in runs[key]:
            continue
        train = {**settings, "seed": args.seed}
        work = tmp / f"{size}-grid-{i}"
        spec = fieldtune_spec(dataset, point, train, work)
        runs[key] = run_one(f"{dataset} {size} grid {i}/{len(configs)} {key}", spec, work, args)
        save(path, results)


def run_dataset(dataset: str, args: argparse.Namespace) -> None:
    """Build the dataset's points, run them, keep the results file current."""
    spec = DATASETS[dataset]
    sizes = args.sizes or ([spec.quick] if args.quick else list(spec.sizes))
    path = args.out / f"{dataset}.json"
    results: dict[str, Any] = json.loads(path.read_text()) if args.resume and path.is_file() else {}
    results = {"points": {}, **results}
    results.update(
        dataset=dataset, task=spec.task, metric=spec.metric, unit=spec.unit, config=_jsonable(vars(args)), env=_env()
    )
    with tempfile.TemporaryDirectory(prefix=f"bench-defaults-{dataset}-") as tmp:
        points = build_points(dataset, args.data, sizes, args.out / "data", args.seed, args.test_limit)
        if args.plan:
            print_plan(dataset, points, args)
            return
        for size, point in points.items():
            run_point(dataset, size, point, results, path, Path(tmp), args)
    save(path, results)


def print_plan(dataset: str, points: dict[str, dict], args: argparse.Namespace) -> None:
    """--plan: the runs of each point and the training examples the grid would process (no early stop)."""
    for size, p in points.items():
        grid = "grid" in args.contenders and not (args.grid_max_train and p["n_train"] > args.grid_max_train)
        configs = grid_configs(args.grid, p["n_train"]) if grid else []
        passes = sum(c["epochs"] for c in configs) * p["n_train"]
        others = len([c for c in args.contenders if c != "grid"])
        print(
            f"{dataset:<11} {size:>5}: train {p['n_train']:>6} dev {p['n_dev']:>5} test {p['n_test']:>5}  "
            f"runs {len(configs) + others:>3} (grid {len(configs)}), grid example-passes <= {passes:,}"
        )


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    return {k: str(v) if isinstance(v, Path) else v for k, v in d.items()}


def _env() -> dict[str, Any]:
    """Where the numbers came from."""
    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "omp_threads": os.environ.get("OMP_NUM_THREADS"),
        "machine": platform.platform(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (``--child`` is the per-run subprocess)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=HERE.parent.parent / "shared" / "data", help="datasets root")
    p.add_argument("--datasets", default=",".join(DATASETS), help=f"comma-separated subset of {', '.join(DATASETS)}")
    p.add_argument("--sizes", help="comma-separated sizes (e.g. 100,all), for every selected dataset")
    p.add_argument("--contenders", default=",".join(CONTENDERS), help=f"subset of {', '.join(CONTENDERS)}")
    p.add_argument("--grid", choices=[g for g in GRIDS if g != "quick"], default="small")  # quick: --quick
    p.add_argument("--grid-max-train", type=int, help="no grid above this many training examples")
    p.add_argument("--test-limit", type=int, help="a seeded, stratified N of test (quick runs)")
    p.add_argument("--threads", type=int, help="torch threads per run (OMP_NUM_THREADS of the children)")
    p.add_argument("--seed", type=int, default=FIELDTUNE_SEED)
    p.add_argument("--quick", action="store_true", help="smoke run: one tiny size, 1-config grid, 200 test examples")
    p.add_argument("--resume", action="store_true", help="keep the runs already in the results files")
    p.add_argument("--out", type=Path, help="results folder (default bench/results/defaults[-quick])")
    p.add_argument("--figure", type=Path, help="plot path (default bench/figures/defaults.png; quick: in --out)")
    p.add_argument("--plan", action="store_true", help="print each point's runs and sizes, run nothing")
    p.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return args
    args.datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    args.contenders = [c.strip() for c in args.contenders.split(",") if c.strip()]
    args.sizes = [s.strip() for s in args.sizes.split(",")] if args.sizes else None
    if bad := [d for d in args.datasets if d not in DATASETS] + [c for c in args.contenders if c not in CONTENDERS]:
        p.error(f"unknown datasets/contenders: {bad}")
    if args.quick:
        args.grid, args.test_limit = "quick", args.test_limit or QUICK_TEST_LIMIT
    args.out = (args.out or HERE / "results" / ("defaults-quick" if args.quick else "defaults")).resolve()
    args.figure = args.figure or (args.out / "defaults.png" if args.quick else HERE / "figures" / "defaults.png")
    args.data = args.data.resolve()
    return args


def main() -> None:
    """Run the requested datasets (or one child run), then the report and the checks."""
    args = parse_args()
    if args.child:
        sys.exit(child_main(args.child))
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    for dataset in args.datasets:
        run_dataset(dataset, args)
    if args.plan:
        return
    notes = [
        dev_rule(),
        f"grid: {args.grid} ({GRIDS[args.grid]}), best on dev; wall time: data reading to the trained model",
        f"this invocation: {time.perf_counter() - started:.0f} s",
    ]
    report(args.out, args.figure, notes)


if __name__ == "__main__":
    main()
