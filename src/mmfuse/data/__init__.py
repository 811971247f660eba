"""Data layer: schema inference, table readers, per-kind decoding and transforms."""
