"""Measuring a trained model: metrics (and later robustness, explanation, correlation)."""
