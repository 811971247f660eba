"""Choosing a model by validation: presets of candidates, successive halving within a time budget,
and greedy ensemble selection over the candidates' validation predictions."""
