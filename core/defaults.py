"""Defaults that several layers share, defined once: the broker URL and the shipped model path."""

from __future__ import annotations

from pathlib import Path

__all__ = ["DEFAULT_MODEL_PATH", "DEFAULT_MQTT_URL"]

DEFAULT_MQTT_URL = "mqtt://127.0.0.1:1883"
"""The broker the node, the recorder, replay and the demo use unless told otherwise."""

DEFAULT_MODEL_PATH = Path("models/ruledrive-default.onnx")
"""The shipped default model, relative to the repository root (``ruledrive train-default``)."""
