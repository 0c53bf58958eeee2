"""``ruledrive neighbours``: give an exported model the neighbour index of its training rules.

``ruledrive train`` attaches the index at export (training.train, training.export); this
command does it for a model exported without one, from the recordings it was trained on:

    ruledrive neighbours models/ruledrive-default.onnx --data runs/v2/data/train \\
        runs/v2/data/train-counterfactual --out models/ruledrive-default.onnx

Every distinct rule text of the recordings with a known class goes into the index
(perception.neighbours). The result is checked before it is written: onnxruntime loads it,
and its ``rule_support`` equals the same vote computed with numpy on the first rule sets.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from core.errors import ConfigError, ModelError
from core.paths import check_not_an_input, check_output_file
from ruledrive.argtypes import positive_int

__all__ = ["attach_index", "register"]

log = logging.getLogger(__name__)

MAX_K = 100  # neighbours per rule: the graph holds [rules, k] distances per rule set
MAX_DIM = 384  # the encoder's width: PCA cannot give more


def attach_index(
    model_path: Path,
    data: list[Path],
    out: Path,
    k: int,
    min_votes: int,
    dim: int,
    cache: Path | None = None,
) -> dict[str, int]:
    """Build the index from ``data``, attach it to ``model_path``'s graph, check, write ``out``."""
    import onnx
    import onnxruntime as ort

    from perception.modelmeta import parse_metadata
    from perception.neighbours import NEIGHBOUR_OUTPUT, attach, sentence_vectors, support_numpy
    from perception.rule_encoder import RuleEncoder, encoder_layer
    from perception.spec import MODEL_SPEC
    from training.data import RuleTable, encode_samples, load_samples, neighbour_index
    from training.export import write_model

    try:
        model = onnx.load(str(model_path))
    except Exception as exc:  # onnx raises DecodeError, OSError, ...
        raise ModelError(f"{model_path}: not an ONNX model ({exc})") from exc
    meta = parse_metadata({p.key: p.value for p in model.metadata_props}, source=str(model_path))
    outputs = {o.name for o in model.graph.output}
    if MODEL_SPEC.rule_output not in outputs:
        raise ModelError(f"{model_path}: reads no rule text, so no neighbour index for it")
    if NEIGHBOUR_OUTPUT in outputs:
        raise ModelError(f"{model_path}: has a neighbour index already")
    samples = load_samples(data)
    if not samples:
        raise ConfigError(f"no labelled frames in {', '.join(map(str, data))}")
    encoder = RuleEncoder.load(
        Path("models/text-encoder"),
        "cpu",
        cache_size=0,
        layer=encoder_layer(meta.encoder, str(model_path)),
    )
    if encoder.identity() != meta.encoder:
        raise ModelError(
            f"{model_path} was trained on another text encoder than models/text-encoder"
        )
    table = RuleTable.build((t for s in samples for t in s.rules), encoder, cache)
    if MODEL_SPEC.rule_sentence_input in {i.name for i in model.graph.input}:
        table.add_sentences()  # onnxruntime wants every input, even one the index does not read
    ds = encode_samples(samples, table, meta.rule_classes, decode=meta.decode)
    index = neighbour_index(ds, dim=dim, k=k, min_votes=min_votes)
    attach(model, index, len(meta.rule_classes))
    data_bytes = model.SerializeToString()
    session = ort.InferenceSession(data_bytes, providers=["CPUExecutionProvider"])
    probe = ds.inputs(np.arange(min(len(ds), 64)))
    (got,) = session.run([NEIGHBOUR_OUTPUT], probe)
    want = support_numpy(
        index,
        sentence_vectors(probe[MODEL_SPEC.rules_input], probe[MODEL_SPEC.rule_mask_input]).reshape(
            -1, encoder.width
        ),
        len(meta.rule_classes),
    ).reshape(got.shape)
    rules = probe[MODEL_SPEC.rule_mask_input].max(axis=2) > 0
    # Ties between equally near rules may fall either way: compare the votes, not exactly.
    if np.abs(got - want)[rules].sum(axis=-1).max(initial=0) > 2:
        raise ModelError("the attached rule_support does not match the numpy vote")
    write_model(out, data_bytes)
    return {"rules": len(index.labels), "bytes": len(data_bytes)}


def _run(args: argparse.Namespace) -> int:
    if not args.model.is_file():
        raise ConfigError(f"{args.model}: no such model")
    if not 1 <= args.min_votes <= args.k:
        raise ConfigError(f"--min-votes must be within 1..--k ({args.k}), not {args.min_votes}")
    if args.k > MAX_K or args.dim > MAX_DIM:
        raise ConfigError(f"--k must be at most {MAX_K} and --dim at most {MAX_DIM}")
    check_output_file(args.out, "--out", create_parents=False)
    from ruledrive.training_cli import named_recordings

    cache = [args.rule_cache] if args.rule_cache is not None else []
    check_not_an_input(args.out, "--out", [*named_recordings(args.data), *cache])
    if args.rule_cache is not None and args.rule_cache.exists():
        check_output_file(args.rule_cache, "--rule-cache")  # read, and written back
    got = attach_index(
        args.model, args.data, args.out, args.k, args.min_votes, args.dim, args.rule_cache
    )
    print(f"{args.out}: {got['rules']} training rules indexed, {got['bytes'] / 1e6:.2f} MB")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "neighbours", help="give an exported model the neighbour index of its training rules"
    )
    p.add_argument("model", type=Path, help="an exported .onnx model without an index")
    p.add_argument("--data", type=Path, nargs="+", required=True, help="its training recordings")
    p.add_argument("--out", type=Path, required=True, help="where to write the model")
    p.add_argument("--k", type=positive_int, default=10, help="neighbours per rule (default 10)")
    p.add_argument(
        "--min-votes", type=positive_int, default=6, help="agreeing neighbours to overrule (6)"
    )
    p.add_argument("--dim", type=positive_int, default=128, help="projected dimensions (128)")
    p.add_argument("--rule-cache", type=Path, help="a rule table .npz to reuse")
    p.set_defaults(func=_run)
