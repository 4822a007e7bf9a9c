"""``fieldtune`` command line: thin typer commands over the plain functions of the package.

One module per command group: ``run`` (train, eval, demo), ``predict`` (predict, export, serve),
``compare`` (models, compare), ``explain``, ``drift``, ``registry``, ``feedback``, ``retrain``,
``suggest``, ``watch``, ``support``; ``common`` holds what they share. User errors print a message (file, line, fix) and
exit with code 2 — never a traceback.
"""

from __future__ import annotations

import sys

import typer

from . import compare, drift, explain, feedback, predict, registry, retrain, run, suggest
from .common import err
from .support import support_app
from .watch import watch_app

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="Fine-tune, evaluate and use pretrained language models."
)

# registered in this order: `fieldtune --help` lists the commands so
app.command()(run.train)
app.command("eval")(run.eval_)
app.command()(predict.predict)
app.command()(explain.explain)
app.command()(predict.export)
app.command()(predict.serve)
app.command()(compare.models)
app.command()(compare.compare)
app.command()(run.demo)
app.command()(drift.drift)

registry_app = typer.Typer(no_args_is_help=True, help="The model registry: versions, stages, promotion, rollback.")
feedback_app = typer.Typer(no_args_is_help=True, help="Corrections of the model's predictions.")
app.add_typer(registry_app, name="registry")
app.add_typer(feedback_app, name="feedback")
registry_app.command("list")(registry.registry_list)
registry_app.command("show")(registry.registry_show)
registry_app.command("add")(registry.registry_add)
registry_app.command("promote")(registry.registry_promote)
registry_app.command("rollback")(registry.registry_rollback)
feedback_app.command("import")(feedback.feedback_import)

app.command()(retrain.retrain)
app.command()(suggest.suggest)
app.add_typer(watch_app, name="watch")
app.add_typer(support_app, name="support")


def main() -> None:
    """The ``fieldtune`` entry point: the app, and exit code 130 on Ctrl-C."""
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
