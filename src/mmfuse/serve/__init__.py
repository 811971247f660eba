"""``mmfuse serve``: fitted models and vector indexes behind an HTTP API and a web page.

- ``catalogue``: the model and index directories, loaded once and named;
- ``requests``: a request's fields (multipart or JSON) as one record of table cells;
- ``batcher``: concurrent requests joined into batches;
- ``runner``: a batch of records through a model (predictions, contributions, searches);
- ``guards``: request size, API key and metrics middleware;
- ``media``: the indexed items a hit points at (thumbnails, audio);
- ``app``: the FastAPI application that wires them.

FastAPI and uvicorn are the optional extra ``mmfuse[serve]``. The HTTP API is described in
``docs/serving.md``.
"""
