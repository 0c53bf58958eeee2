"""Input preprocessing shared by training and serving: frames (image.py) and rule text
(rule_encoder.py: the frozen multilingual encoder's token states)."""

from perception.image import decode_jpeg, prepare_frame, preprocess_jpeg
from perception.spec import MODEL_SPEC, ModelSpec

__all__ = [
    "MODEL_SPEC",
    "ModelSpec",
    "decode_jpeg",
    "prepare_frame",
    "preprocess_jpeg",
]
