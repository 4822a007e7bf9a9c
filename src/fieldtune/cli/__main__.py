"""``python -m fieldtune.cli``: the same as the ``fieldtune`` command."""

from . import main

main()
