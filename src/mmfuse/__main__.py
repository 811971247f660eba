"""``python -m mmfuse ...``: the command line, as the ``mmfuse`` script runs it."""

from mmfuse.cli.main import entry_point

entry_point()
