"""``fieldtune watch``: ingest news, score it, follow sentiment per topic and company, alert on surges."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.markup import escape

from .common import err, out, user_errors

# Commands import what they run inside their bodies: `fieldtune --help` must not import torch.

watch_app = typer.Typer(no_args_is_help=True, help="Financial news monitoring: sentiment, topics, entities, alerts.")


def _open(config: Path):
    from ..apps.watch.config import load_watch_config
    from ..store.watch_store import WatchStore

    cfg = load_watch_config(config)
    return cfg, WatchStore(cfg.db)


def _scorer(cfg):
    from ..apps.watch.scoring import Scorer

    err.print(f"loading models (sentiment: {cfg.sentiment})")
    return Scorer.from_config(cfg)


def _print_report(report, where: str) -> None:
    err.print(
        f"{where}: stored {report.stored}, already seen {report.already_seen}, rejected {len(report.rejected)}, "
        f"scored {report.scored} ({report.duplicates} near-duplicate copies), new alerts {len(report.alerts)}",
        highlight=False,
    )
    for r in report.rejected[:20]:
        err.print(f"  rejected {escape(r.where)}: {escape(r.reason)}", highlight=False)
    if len(report.rejected) > 20:
        err.print(f"  ... and {len(report.rejected) - 20} more rejections (--json lists them all)")


@watch_app.command("ingest")
@user_errors
def ingest(
    config: Path = typer.Argument(..., help="watch config YAML"),
    source: str = typer.Argument(..., help="items: a .jsonl/.csv file, a folder of them, or - for stdin (JSONL)"),
    follow: bool = typer.Option(False, "--follow", help="keep watching the folder for new or grown files"),
    detect: bool = typer.Option(True, "--detect/--no-detect", help="run the alert rules after scoring"),
    json_out: bool = typer.Option(False, "--json", help="print the ingest report as JSON on stdout"),
) -> None:
    """Validate, store (idempotent on id), score and check alerts. Prints stored / duplicates / rejected."""
    from ..apps.watch.items import read_items
    from ..apps.watch.pipeline import follow_folder, ingest

    cfg, store = _open(config)
    scorer = _scorer(cfg)
    if follow:
        folder = Path(source)
        if not folder.is_dir():
            raise typer.BadParameter(f"--follow needs a folder, got {source}")
        err.print(f"following {folder} (Ctrl-C to stop)")
        follow_folder(cfg, store, scorer, folder, read_items, lambda p, r: _print_report(r, str(p)))
        return
    report = ingest(cfg, store, scorer, read_items(source), detect=detect)
    _print_report(report, source)
    if json_out:
        out.print_json(json.dumps(report.as_dict(), default=str))


@watch_app.command("replay")
@user_errors
def replay(
    config: Path = typer.Argument(..., help="watch config YAML"),
    source: str = typer.Argument(..., help="items file (.jsonl/.csv) to replay in time order"),
    speed: str = typer.Option("60x", "--speed", help="60x = sixty times real time; max = no waiting"),
) -> None:
    """Replay a file as live traffic, bucket by bucket; alerts are printed as they fire."""
    from ..apps.watch.items import read_items
    from ..apps.watch.replay import parse_speed, replay

    try:
        factor = parse_speed(speed)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None
    cfg, store = _open(config)
    report = replay(cfg, store, _scorer(cfg), read_items(source), factor, on_alert=_print_alert)
    _print_report(report, source)


def _print_alert(alert: dict) -> None:
    err.print(
        f"[bold red]ALERT[/] {alert['kind']} {escape(alert['key'])} at {alert['bucket_start']}: {alert['rule']} "
        f"{alert['value']:.3g} > {alert['threshold']:.3g} ({len(alert['items'])} items)",
        highlight=False,
    )


@watch_app.command("alerts")
@user_errors
def alerts(
    config: Path = typer.Argument(..., help="watch config YAML"),
    json_out: bool = typer.Option(False, "--json", help="JSON list on stdout"),
) -> None:
    """Alerts so far, oldest first."""
    from ..apps.watch.demo import alerts_table

    _, store = _open(config)
    rows = store.alerts()
    if json_out:
        out.print_json(json.dumps(rows, default=str))
        return
    out.print(alerts_table(rows))
    if not rows:
        err.print("no alerts yet")


@watch_app.command("serve")
@user_errors
def serve(
    config: Path = typer.Argument(..., help="watch config YAML"),
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8000, "--port"),
) -> None:
    """The dashboard (/) and the API: POST /v1/watch/items, GET /v1/watch/series, GET /v1/watch/alerts."""
    import uvicorn

    from ..apps.watch.web import create_watch_app

    cfg, store = _open(config)
    err.print(f"dashboard: http://{host}:{port}/")
    uvicorn.run(create_watch_app(cfg, store), host=host, port=port, log_level="warning")


@watch_app.command("demo")
@user_errors
def demo(
    output: Path = typer.Option(Path("runs/watch-demo"), "--output", help="folder for the model, config and database"),
    serve_after: bool = typer.Option(False, "--serve", help="start the dashboard when done"),
    port: int = typer.Option(8000, "--port"),
) -> None:
    """Train a sentiment model on the shipped synthetic headlines, replay a week of news with a surge, show alerts."""
    from ..apps.watch.demo import run_watch_demo

    config = run_watch_demo(output, err)
    if serve_after:
        serve(config, "127.0.0.1", port)
    else:
        err.print(f"dashboard: fieldtune watch serve {config}", highlight=False)
    sys.stdout.flush()
