"""What a recommendation model's items look like: their fields and media files, read once from
the item table the model was fitted with (its path is recorded in the model's config.json)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mmfuse.serve.catalogue import MEDIA_KINDS
from mmfuse.serve.errors import RequestError


class ItemTable:
    """The item table of a recommender, by item id (empty when the file is gone)."""

    def __init__(self, est: Any, model_name: str) -> None:
        from mmfuse.data.readers import read_table
        from mmfuse.recommend.tables import id_text

        self.model_name = model_name
        self.rows: dict[str, dict[str, Any]] = {}
        self.kinds: dict[str, str] = {}
        self.base_dir = Path(".")
        path = getattr(est, "item_table_path_", None)
        if not path or not Path(path).is_file():
            return
        table = read_table(path)
        self.base_dir = table.base_dir
        pipeline = est.content_pipeline_
        self.kinds = dict(pipeline.schema.kinds) if pipeline is not None else {}
        for record in table.df.to_dict("records"):
            key = id_text(record.get(est.item))
            if key is not None:
                self.rows[key] = record

    def describe(self, item: str) -> dict[str, Any]:
        """The item's text, number and category fields, and a URL per media file."""
        record = self.rows.get(item)
        if record is None:
            return {"fields": {}, "media": {}}
        fields, media = {}, {}
        for column, kind in self.kinds.items():
            value = record.get(column)
            if value is None or (isinstance(value, float) and value != value):
                continue
            if kind in MEDIA_KINDS:
                media[column] = {"kind": kind, "url": f"/v1/items/{self.model_name}/{item}/{column}"}
            else:
                fields[column] = value if isinstance(value, (int, float)) else str(value)
        return {"fields": fields, "media": media}

    def file(self, item: str, column: str) -> tuple[Path, str]:
        """(the media file of ``item`` in ``column``, its kind); 404 when there is none."""
        record = self.rows.get(item)
        kind = self.kinds.get(column)
        if record is None or kind not in MEDIA_KINDS or not isinstance(record.get(column), str):
            raise RequestError(404, f"model {self.model_name!r} has no {column!r} file for item {item!r}")
        value = Path(record[column])
        path = value if value.is_absolute() else self.base_dir / value
        if not path.is_file():
            raise RequestError(404, f"the {column!r} file of item {item!r} is no longer there ({value})")
        return path, kind
