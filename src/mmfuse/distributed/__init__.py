"""Optional engines that spread encoding and indexing over a Ray cluster (``--engine ray``).

Nothing here imports Ray at import time: ``session.require_ray`` does, when a command asks for
the Ray engine, and says what to install when it is missing (``pip install 'mmfuse[distributed]'``).
"""
