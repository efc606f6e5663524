"""``python -m pipeline.cli``: the same as the ``ctdna`` console script."""

from pipeline.cli.main import app

app()
