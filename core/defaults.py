"""Defaults that several layers share, defined once: the broker URL, the shipped model path and
the reading check's threshold, how often a written rule template is rendered."""

from __future__ import annotations

from pathlib import Path

__all__ = ["DEFAULT_MODEL_PATH", "DEFAULT_MQTT_URL", "READING_THRESHOLD", "WRITTEN_RENDERINGS"]

DEFAULT_MQTT_URL = "mqtt://127.0.0.1:1883"
"""The broker the node, the recorder, replay and the demo use unless told otherwise."""

DEFAULT_MODEL_PATH = Path("models/ruledrive-default.onnx")
"""The shipped default model, relative to the repository root (``ruledrive train-default``)."""

READING_THRESHOLD = 0.85
"""The reading check's default threshold (perception.readcheck; node setting
``reading_check_threshold``): chosen with ``ruledrive bench reading-check`` on the shipped
model's validation drives (docs/benchmarks.md, "Reading check")."""

WRITTEN_RENDERINGS = 8
"""Renderings of each written wording template that has slots in a rule corpus
(``ruledrive rule-corpus --written``, ``train-default --written``; ruledrive.written_corpus)."""
