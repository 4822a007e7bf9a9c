"""``fieldtune demo`` / ``make demo``: the whole path on the bundled model and shipped samples."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from .predict import load
from .recipes import train

CONFIGS = Path(__file__).parent / "configs"
EXAMPLES = {
    "banking77": [
        "My card still hasn't arrived after two weeks.",
        "What's the fee for taking cash out at an ATM?",
        "I typed my PIN wrong too many times and now it's blocked.",
    ],
    "wnut17": ["Just watched Stranger Things with Sarah in London !", "Anyone tried the new iPhone from Apple yet ?"],
    "zh_ner": ["李明下周要去南京的中国银行开会。", "我在成都用MacBook写代码😀，很开心！"],
    "zh_sentiment": ["房间干净，服务也很热情，下次还来。", "空调一直坏着，前台也不管，太失望了。"],
}
RUNS = ("banking77", "wnut17", "zh_ner", "zh_sentiment")  # the last two: Chinese on the multilingual encoder


def run_demo(output: Path, console: Console) -> None:
    """Train each sample task (English intents and NER on minilm, Chinese NER and sentiment on the
    multilingual encoder), print a metrics table and a few predictions."""
    table = Table("run", "task", "dev", "test", "baseline (test)", "train s", "tokens/s")
    for name in RUNS:
        console.rule(f"[bold]{name}")
        result = train(CONFIGS / f"{name}.yaml", [f"output={output / name}"])
        m, key = result.metrics, "accuracy" if "accuracy" in result.metrics["dev"] else "f1"
        table.add_row(
            name,
            f"{key}",
            f"{m['dev'][key]:.3f}",
            f"{m['test'][key]:.3f}",
            f"{m['baseline'][key]:.3f}",
            f"{m['train']['wall_s']:.0f}",
            f"{m['train']['tokens_per_s']:.0f}",
        )
        predictor = load(result.model_dir)
        for text in EXAMPLES[name]:
            console.print(f"  {text!r}\n    -> {predictor.predict(text)}", highlight=False)
        for advice in result.advice:
            console.print(f"  advice: {advice}", highlight=False, markup=False)
        console.print(f"  report: {result.output_dir / 'report.md'}")
    console.print(table)
