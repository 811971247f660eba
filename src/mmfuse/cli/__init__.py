"""Command-line interface: ``mmfuse COMMAND ...`` (see ``mmfuse --help``)."""
