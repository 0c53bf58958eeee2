"""Input preprocessing shared by training and serving: frames (image.py) and rule text (text.py)."""

from perception.image import decode_jpeg, prepare_frame, preprocess_jpeg
from perception.spec import MODEL_SPEC, ModelSpec
from perception.text import RuleTokenizer, tokenize

__all__ = [
    "MODEL_SPEC",
    "ModelSpec",
    "RuleTokenizer",
    "decode_jpeg",
    "prepare_frame",
    "preprocess_jpeg",
    "tokenize",
]
