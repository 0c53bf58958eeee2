"""The neighbour reading: each rule also read by the training rules nearest to it.

The decision model reads each rule with a trained reader (training.model). On wording it never
saw, that reader can be sure and wrong, most dangerously by reading a real rule as one that does
not bind the car (``not_binding``), which acts as if the rule were not there. The frozen
multilingual encoder's sentence vectors (the masked mean of a rule's token states) place a
rule near the training rules that mean the same, whatever their words; a nearest-neighbour
vote over the training rules is a second reader that fails differently.

The exported model carries an index of the training rules: their sentence vectors, centred and
projected to ``dim`` dimensions (PCA of the training vectors; measured as good as the full 384
with 128), L2-normalised, stored as float16, with each rule's class. :func:`attach` adds to the
ONNX graph the output ``rule_support`` float32 [N, R, C]: for each rule, how many of its ``k``
nearest training rules (cosine) have each class. The node computes it once per rule set, with
the rule graph (perception.splitgraph).

:func:`overrides` says which readings the neighbours overrule: a rule whose read *kind* (the
class before ``:``; permitted and prohibited are one kind) none of its ``k`` neighbours has,
while at least ``min_votes`` of them agree on one class, is read as that class. Only the kind:
sentence vectors barely separate "prohibited" from "permitted", and the trained reader reads
polarity far better. A rule the reader read as ``not_understood`` is overruled only when every
one of its ``k`` neighbours has one class that is not ``not_understood``: the index holds the
training rules nobody can read, so another language or gibberish keeps some of them near.
Measured on the shipped model and the held-out wording split (docs/training.md, "The neighbour
reading"): it changes no reading of training wording, and on held-out wording it rights more
frames than it breaks, not all.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import NPZ_ERRORS, ConfigError
from core.paths import open_npz
from perception.spec import MODEL_SPEC

__all__ = [
    "META_KEY",
    "NEIGHBOUR_OUTPUT",
    "NOT_UNDERSTOOD",
    "NeighbourIndex",
    "attach",
    "build_index",
    "detach",
    "index_of",
    "overrides",
    "sentence_vectors",
    "support_numpy",
]

_S = MODEL_SPEC
NEIGHBOUR_OUTPUT = "rule_support"  # float32 [N, R, C]: neighbours of each class per rule
META_KEY = "ruledrive.neighbours"  # json: k, min_votes, dim, rules in the index
NOT_UNDERSTOOD = "not_understood"
DIM, K, MIN_VOTES = 128, 10, 6
_PREFIX = "neighbours/"


def sentence_vectors(states: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """float32 [..., D]: the masked mean of token states [..., T, D] over mask [..., T],
    L2-normalised (zero for an empty slot). The same arithmetic as :func:`attach`'s graph."""
    m = np.asarray(masks, np.float32)[..., None]
    v = (np.asarray(states, np.float32) * m).sum(-2) / np.maximum(m.sum(-2), 1.0)
    return v / (np.linalg.norm(v, axis=-1, keepdims=True) + 1e-9)


@dataclass(frozen=True)
class NeighbourIndex:
    """Training rules as the graph stores them: ``mean`` [D], ``projection`` [D, dim],
    ``vectors`` float16 [n, dim] (projected, normalised), ``labels`` int64 [n] into the model's
    rule classes."""

    mean: np.ndarray
    projection: np.ndarray
    vectors: np.ndarray
    labels: np.ndarray
    k: int = K
    min_votes: int = MIN_VOTES

    def project(self, vectors: np.ndarray) -> np.ndarray:
        y = (np.asarray(vectors, np.float32) - self.mean) @ self.projection
        return y / (np.linalg.norm(y, axis=-1, keepdims=True) + 1e-9)

    def save(self, path: Path) -> None:
        np.savez(
            path,
            mean=self.mean,
            projection=self.projection,
            vectors=self.vectors,
            labels=self.labels,
            k=self.k,
            min_votes=self.min_votes,
        )

    @classmethod
    def load(cls, path: Path) -> NeighbourIndex:
        try:
            with open_npz(path) as z:
                return cls(
                    z["mean"], z["projection"], z["vectors"], z["labels"],
                    int(z["k"]), int(z["min_votes"]),
                )  # fmt: skip
        except NPZ_ERRORS as exc:
            raise ConfigError(f"{path}: not a neighbour index ({exc})") from exc


def build_index(
    vectors: np.ndarray,
    labels: np.ndarray,
    dim: int = DIM,
    k: int = K,
    min_votes: int = MIN_VOTES,
) -> NeighbourIndex:
    """An index of training rules from their sentence vectors [n, D] (:func:`sentence_vectors`)
    and class indices [n] (rules of unknown class, -1, are left out)."""
    keep = np.asarray(labels) >= 0
    x = np.asarray(vectors, np.float32)[keep]
    if len(x) < k:
        raise ConfigError(f"a neighbour index needs at least {k} labelled rules, got {len(x)}")
    if not 1 <= min_votes <= k:
        raise ConfigError(f"min_votes must be within 1..{k}, not {min_votes}")
    mean = x.mean(0)
    _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
    proj = np.ascontiguousarray(vt[: min(dim, vt.shape[0])].T, np.float32)
    index = NeighbourIndex(mean.astype(np.float32), proj, np.empty(0), np.empty(0), k, min_votes)
    stored = index.project(x).astype(np.float16)
    return NeighbourIndex(
        index.mean, proj, stored, np.asarray(labels)[keep].astype(np.int64), k, min_votes
    )


def support_numpy(index: NeighbourIndex, vectors: np.ndarray, n_classes: int) -> np.ndarray:
    """float32 [n, C]: what ``rule_support`` holds for sentence vectors [n, D] (tests, tools)."""
    sims = index.project(vectors) @ index.vectors.astype(np.float32).T
    nn = np.argsort(-sims, axis=1, kind="stable")[:, : index.k]
    out = np.zeros((len(sims), n_classes), np.float32)
    np.add.at(out, (np.repeat(np.arange(len(sims)), index.k), index.labels[nn].reshape(-1)), 1)
    return out


def attach(model: Any, index: NeighbourIndex, n_classes: int) -> Any:
    """Add the index and ``rule_support`` to an onnx.ModelProto (in place; returned). The
    output reads only ``rule_states`` and ``rule_mask``, so the rule graph holds it."""
    from onnx import TensorProto, helper, numpy_helper

    g = model.graph
    if NEIGHBOUR_OUTPUT in {o.name for o in g.output}:
        raise ConfigError(f"the model already has {NEIGHBOUR_OUTPUT}")
    p = _PREFIX

    def const(name: str, value: np.ndarray) -> str:
        g.initializer.append(numpy_helper.from_array(value, p + name))
        return p + name

    axes_t, axes_last = (
        const("axes_t", np.array([2], np.int64)),
        const("axes_d", np.array([-1], np.int64)),
    )
    one, eps = const("one", np.array(1.0, np.float32)), const("eps", np.array(1e-9, np.float32))
    mean, proj = const("mean", index.mean), const("projection", index.projection)
    vecs = const("vectors_t", np.ascontiguousarray(index.vectors.T))  # float16 [dim, n]
    labels, k = const("labels", index.labels), const("k", np.array([index.k], np.int64))
    onehot = const("onehot_values", np.array([0.0, 1.0], np.float32))
    depth = const("depth", np.array(n_classes, np.int64))

    def node(op: str, inputs: list[str], out: str, **attrs: Any) -> str:
        g.node.append(helper.make_node(op, inputs, [p + out], name=p + out, **attrs))
        return p + out

    m = node("Unsqueeze", [_S.rule_mask_input, axes_last], "mask")  # [N,R,T,1]
    total = node(
        "ReduceSum", [node("Mul", [_S.rules_input, m], "masked"), axes_t], "sum", keepdims=0
    )
    count = node("Max", [node("ReduceSum", [m, axes_t], "count", keepdims=0), one], "count1")
    v = node("Div", [total, count], "mean_state")  # [N,R,D]

    def normalise(x: str, tag: str) -> str:
        sq = node(
            "ReduceSum", [node("Mul", [x, x], f"{tag}_sq"), axes_last], f"{tag}_ss", keepdims=1
        )
        return node(
            "Div",
            [x, node("Add", [node("Sqrt", [sq], f"{tag}_n"), eps], f"{tag}_ne")],
            f"{tag}_unit",
        )

    y = normalise(
        node("MatMul", [node("Sub", [normalise(v, "v"), mean], "centred"), proj], "proj"), "y"
    )
    table = node("Cast", [vecs], "vectors_f32", to=TensorProto.FLOAT)
    sims = node("MatMul", [y, table], "sims")  # [N,R,n]
    g.node.append(
        helper.make_node(
            "TopK", [sims, k], [p + "top_sims", p + "top_ix"], name=p + "topk", axis=-1
        )
    )
    near = node("Gather", [labels, p + "top_ix"], "near_labels")  # [N,R,k]
    votes = node("OneHot", [near, depth, onehot], "votes", axis=-1)  # [N,R,k,C]
    g.node.append(
        helper.make_node(
            "ReduceSum", [votes, axes_t], [NEIGHBOUR_OUTPUT], name=p + "support", keepdims=0
        )
    )
    g.output.append(
        helper.make_tensor_value_info(
            NEIGHBOUR_OUTPUT, TensorProto.FLOAT, ["batch", _S.max_rules, n_classes]
        )
    )
    meta = {"k": index.k, "min_votes": index.min_votes, "dim": int(index.projection.shape[1]),
            "rules": len(index.labels)}  # fmt: skip
    helper.set_model_props(
        model, {**{e.key: e.value for e in model.metadata_props}, META_KEY: json.dumps(meta)}
    )
    return model


def index_of(model: Any) -> NeighbourIndex | None:
    """The index :func:`attach` stored in an onnx.ModelProto; None if it has none."""
    from onnx import numpy_helper

    init = {t.name: t for t in model.graph.initializer if t.name.startswith(_PREFIX)}
    meta = {e.key: e.value for e in model.metadata_props}
    if META_KEY not in meta or _PREFIX + "vectors_t" not in init:
        return None
    settings = json.loads(meta[META_KEY])

    def arr(name: str) -> np.ndarray:
        return numpy_helper.to_array(init[_PREFIX + name])

    return NeighbourIndex(
        arr("mean"),
        arr("projection"),
        np.ascontiguousarray(arr("vectors_t").T),
        arr("labels"),
        int(settings["k"]),
        int(settings["min_votes"]),
    )


def detach(model: Any) -> Any:
    """Remove what :func:`attach` added (in place; returned)."""
    g = model.graph
    keep_nodes = [n for n in g.node if not n.name.startswith(_PREFIX)]
    keep_init = [t for t in g.initializer if not t.name.startswith(_PREFIX)]
    keep_out = [o for o in g.output if o.name != NEIGHBOUR_OUTPUT]
    keep_meta = [(e.key, e.value) for e in model.metadata_props if e.key != META_KEY]
    for field_, kept in (("node", keep_nodes), ("initializer", keep_init), ("output", keep_out)):
        g.ClearField(field_)
        getattr(g, field_).extend(kept)
    model.ClearField("metadata_props")
    for key, value in keep_meta:
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    return model


def overrides(
    classes: np.ndarray,
    support: np.ndarray,
    mask: np.ndarray,
    rule_classes: tuple[str, ...],
    min_votes: int,
) -> list[tuple[int, int]]:
    """One rule set's readings the neighbours overrule: (rule index, class the neighbours give).

    ``classes`` [R, C] the reader's softmaxes, ``support`` [R, C] the neighbour votes, ``mask``
    [R, T]. A present rule is overruled when no neighbour shares its read kind and at least
    ``min_votes`` agree on one class; a rule the reader read as ``not_understood`` only when all
    its neighbours agree on one class that is not."""
    kinds = [c.split(":", 1)[0] for c in rule_classes]
    out = []
    for r in np.flatnonzero(np.asarray(mask).max(axis=1) > 0):
        top = int(np.argmax(classes[r]))
        best = int(np.argmax(support[r]))
        if rule_classes[top] == NOT_UNDERSTOOD:
            # Only a unanimous vote for a class that can be read: every neighbour.
            if rule_classes[best] != NOT_UNDERSTOOD and support[r, best] >= support[r].sum() > 0:
                out.append((int(r), best))
            continue
        same = [j for j, kind in enumerate(kinds) if kind == kinds[top]]
        if support[r, same].sum() == 0 and support[r, best] >= min_votes:
            out.append((int(r), best))
    return out
