"""Distil all-MiniLM-L6-v2 into the 3-layer comment encoder the stance task runs.

The stance task embeds every comment; on 2 cores that was the night's largest CPU cost
(issue 9) and kept the rate under 100 comments/s (issue 7). The student is MiniLM's own
first three layers with rank-32 LoRA on every linear map, trainable layer norms and a
384x384 projection after mean pooling, trained so that its unit embedding points where the
6-layer teacher's does (loss 1 - cosine). It costs half the teacher's matmuls, and what it
ships is only what differs from the installed model: `tasks/stance/models/stance_student.npz`.

Data (unlabelled text only; no stance label is used): the paragraphs of PolNeAR's train
articles (../shared/corpus/polnear/polnear_train.jsonl), each alone and joined with the
next one (comment-length texts of ~100 tokens), and SemEval-2016's train and validation
tweets (../shared/corpus/stance/semeval2016/*/{train,val}_text.txt). ARC and SemEval's
test tweets, the stance evaluation sets, are never seen here. 3% of the texts (by hash)
are held out to report the cosine to the teacher; ARC's comments are reported too.

Two steps, because the pipeline's Python has no torch:

    python bench/distill_stance_encoder.py --teacher      # tokens + teacher embeddings
    /tmp/stv/bin/python bench/distill_stance_encoder.py --train   # writes the .npz
    python bench/distill_stance_encoder.py --check        # cosine via the ONNX student

(/tmp/stv is the throwaway torch venv of bench/train_stance.py's docstring.) Tried and not
kept (docs/stance.md): `--teacher --augment` embeds 12,000 opinion-shaped texts
(`stance_texts`), then `--train --augment --resume` carries the shipped student on for
one epoch over them and the original texts; `--train --resume --pairs` adds a loss on the
batch's pairwise cosines. Then retrain
what reads the student's embeddings: `python bench/train_stance.py` and
`python bench/train_stance_gate.py`.
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
import math
import random
import re
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CORPUS = ROOT.parent / "shared" / "corpus"
CACHE = Path("/tmp/policywatch-distill")  # tokens and teacher vectors; never committed
OUT = ROOT / "tasks" / "stance" / "models" / "stance_student.npz"
LAYERS, RANK, ALPHA = 3, 64, 64
EPOCHS, LR, BATCH, SEED = 3, 1.5e-3, 32, 0
RESUME_EPOCHS, RESUME_LR = 1, 5e-4
HELD_OUT = 0.03
PAIRS, PAIR_WEIGHT = "--pairs", 5.0  # tried: in-batch pairwise-cosine loss
AUGMENT = 12_000  # opinion-shaped texts (`--augment`, stance_texts)


def corpus_texts() -> list[str]:
    """The distillation texts, deduplicated, in a fixed shuffled order."""
    texts: list[str] = []
    with (CORPUS / "polnear" / "polnear_train.jsonl").open(encoding="utf-8") as f:
        for line in f:
            paras = [p.strip() for p in json.loads(line)["text"].split("\n\n")
                     if len(p.strip()) > 30]
            texts += paras
            texts += [f"{a} {b}" for a, b in itertools.pairwise(paras)][::2]
    for folder in sorted((CORPUS / "stance" / "semeval2016").iterdir()):
        for split in ("train", "val"):
            path = folder / f"{split}_text.txt"
            if path.exists():
                texts += [t.replace("#SemST", "").strip()
                          for t in path.read_text(encoding="utf-8").splitlines() if t.strip()]
    unique = sorted(set(texts))
    random.Random(SEED).shuffle(unique)
    return unique


_AUX = re.compile(r"\b(should|must|will|would|can|could|is|are|was|were|has|have|does|do|"
                  r"did)( not|n't)?\b")
_OPINION = ("I agree that {s}", "I disagree that {s}", "It is wrong to claim that {s}",
            "Exactly right: {s}", "Nonsense. {n}", "I do not believe that {s}",
            "Of course {s}", "This is a mistake. {n}", "No. {n}", "Yes, {s}")


def _negated(sentence: str) -> str | None:
    """The sentence with its first auxiliary's negation flipped ("should" <-> "should
    not"), or None when it has no auxiliary."""
    m = _AUX.search(sentence)
    if m is None:
        return None
    flipped = m.group(1) if m.group(2) else f"{m.group(1)} not"
    return sentence[: m.start()] + flipped + sentence[m.end():]


def stance_texts() -> list[str]:
    """Opinion-shaped texts for `--augment`: PolNeAR train sentences that hold an
    auxiliary, with their negation flipped and inside agree/disagree frames, so that the
    student learns to copy what little the teacher tells apart between a claim, its
    negation and a reply to it (the default's edge on "against" comments)."""
    rng = random.Random(SEED + 1)
    sentences: list[str] = []
    with (CORPUS / "polnear" / "polnear_train.jsonl").open(encoding="utf-8") as f:
        for line in f:
            for sent in re.split(r"(?<=[.!?])\s+", json.loads(line)["text"]):
                sent = sent.strip().strip('"“”')
                if 40 <= len(sent) <= 220 and _AUX.search(sent):
                    sentences.append(sent)
    sentences = sorted(set(sentences))
    rng.shuffle(sentences)
    out: list[str] = []
    for sent in sentences[:AUGMENT // 2]:
        neg = _negated(sent)
        if neg is None:
            continue
        out.append(neg)
        frame = rng.choice(_OPINION)
        low = sent[0].lower() + sent[1:]
        out.append(frame.format(s=low, n=neg))
    return sorted(set(out) - set(corpus_texts()))


def held_out(text: str) -> bool:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) < HELD_OUT * 2**32


def arc_comments() -> list[str]:
    with (CORPUS / "stance" / "arc_bodies.csv").open(encoding="utf-8") as f:
        return sorted({row["articleBody"] for row in csv.DictReader(f)})


def teacher() -> int:
    """Token ids and the teacher's unit embeddings for every text, cached."""
    from tasks.stance.encoder import OnnxMiniLM

    encoder = OnnxMiniLM(threads=2)
    CACHE.mkdir(parents=True, exist_ok=True)
    sets = [("distil", corpus_texts()), ("arc", arc_comments())]
    if "--augment" in sys.argv:
        sets = [("augment", stance_texts())]
    for name, texts in sets:
        start = time.perf_counter()
        ids = [enc.ids for enc in encoder.tokenizer.encode_batch(texts)]
        vectors = encoder.encode(texts)
        flat = np.concatenate([np.asarray(i, dtype=np.int32) for i in ids])
        np.savez(CACHE / f"{name}.npz", flat=flat, lengths=np.array([len(i) for i in ids]),
                 teacher=vectors, held=np.array([held_out(t) for t in texts]))
        print(f"{name}: {len(texts)} texts, {flat.size} tokens, "
              f"{time.perf_counter() - start:.0f} s")
    return 0


def _load(name: str) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    with np.load(CACHE / f"{name}.npz") as data:  # each data[key] reads the file again
        flat, lengths, target, held = (data[k] for k in ("flat", "lengths", "teacher", "held"))
    bounds = np.cumsum([0, *lengths])
    ids = [flat[a:b] for a, b in itertools.pairwise(bounds)]
    return ids, target, held


def build_student() -> Any:
    import torch
    import torch.nn.functional as F

    from bench.lib.stance_training import attach_embeddings, torch_layer_norm
    from tasks.stance.encoder import LORA_TARGETS, model_dir, read_safetensors

    w = read_safetensors(model_dir() / "model.safetensors")

    class LoRALinear(torch.nn.Module):  # type: ignore[misc]
        def __init__(self, name: str) -> None:
            super().__init__()
            weight = torch.tensor(w[name + ".weight"])
            self.w = torch.nn.Parameter(weight, requires_grad=False)
            self.b = torch.nn.Parameter(torch.tensor(w[name + ".bias"]))
            self.A = torch.nn.Parameter(torch.randn(RANK, weight.shape[1])
                                        / math.sqrt(weight.shape[1]))
            self.B = torch.nn.Parameter(torch.zeros(weight.shape[0], RANK))

        def forward(self, x: Any) -> Any:
            return F.linear(x, self.w, self.b) + (x @ self.A.T) @ self.B.T * (ALPHA / RANK)

    class Student(torch.nn.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            attach_embeddings(self, w)
            self.blocks = torch.nn.ModuleList()
            for i in range(LAYERS):
                p, block = f"encoder.layer.{i}.", torch.nn.Module()
                for stem, name in LORA_TARGETS.items():
                    setattr(block, stem, LoRALinear(p + name))
                block.ln1 = torch_layer_norm(w, p + "attention.output.LayerNorm", True)
                block.ln2 = torch_layer_norm(w, p + "output.LayerNorm", True)
                self.blocks.append(block)
            self.proj = torch.nn.Linear(384, 384)
            torch.nn.init.eye_(self.proj.weight)
            torch.nn.init.zeros_(self.proj.bias)

        def forward(self, ids: Any, mask: Any) -> Any:
            n, length = ids.shape
            h = self.emb_ln(self.word[ids] + self.pos[:length] + self.type0)
            bias = ((1.0 - mask) * -1e9)[:, None, None, :]
            for b in self.blocks:
                q, k, v = (getattr(b, m)(h).view(n, length, 12, 32).transpose(1, 2)
                           for m in ("query", "key", "value"))
                attn = (q @ k.transpose(-1, -2) / math.sqrt(32) + bias).softmax(-1)
                ctx = (attn @ v).transpose(1, 2).reshape(n, length, 384)
                h = b.ln1(b.attn_out(ctx) + h)
                h = b.ln2(b.out(F.gelu(b.inter(h))) + h)
            m = mask[:, :, None]
            pooled = (h * m).sum(1) / m.sum(1)
            return F.normalize(self.proj(pooled), dim=-1)

    return Student()


def _batches(ids: list[np.ndarray], order: list[int]) -> list[list[int]]:
    """Batches of similar length (little padding), in shuffled batch order."""
    ranked = sorted(order, key=lambda i: len(ids[i]))
    return [ranked[s : s + BATCH] for s in range(0, len(ranked), BATCH)]


def _tensors(ids: list[np.ndarray], rows: list[int]) -> tuple[Any, Any]:
    import torch

    length = max(len(ids[i]) for i in rows)
    tok = torch.zeros((len(rows), length), dtype=torch.long)
    mask = torch.zeros((len(rows), length))
    for r, i in enumerate(rows):
        tok[r, : len(ids[i])] = torch.from_numpy(ids[i].astype(np.int64))
        mask[r, : len(ids[i])] = 1.0
    return tok, mask


def _cosines(model: Any, ids: list[np.ndarray], target: np.ndarray, rows: list[int]
             ) -> np.ndarray:
    import torch

    out = np.zeros(len(rows))
    with torch.no_grad():
        for batch in _batches(ids, rows):
            tok, mask = _tensors(ids, batch)
            got = model(tok, mask).numpy()
            out[[rows.index(i) for i in batch]] = (got * target[batch]).sum(1)
    return out


def train() -> int:
    import torch

    torch.manual_seed(SEED)
    torch.set_num_threads(2)
    ids, target, held = _load("distil")
    test_rows = [i for i in range(len(ids)) if held[i]]
    epochs, lr = EPOCHS, LR
    if "--augment" in sys.argv:  # the augmented texts join the training ones
        extra_ids, extra_target, extra_held = _load("augment")
        ids = ids + extra_ids
        target = np.concatenate([target, extra_target])
        held = np.concatenate([held, extra_held])
    train_rows = [i for i in range(len(ids)) if not held[i]]
    model = build_student()
    if "--resume" in sys.argv:  # carry on from the shipped student
        load_shipped(model)
        epochs, lr = RESUME_EPOCHS, RESUME_LR
    params = [p for p in model.parameters() if p.requires_grad]
    print(f"{len(train_rows)} training texts, {len(test_rows)} held out; "
          f"{sum(p.numel() for p in params)} trainable parameters")
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    rng = random.Random(SEED)
    steps = epochs * math.ceil(len(train_rows) / BATCH)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / 200) * max(0.0, 1 - s / steps))
    goal = torch.from_numpy(target)
    print(f"before: held-out cosine {_cosines(model, ids, target, test_rows[:500]).mean():.4f}")
    step, start = 0, time.perf_counter()
    for epoch in range(epochs):
        batches = _batches(ids, train_rows)
        rng.shuffle(batches)
        running = 0.0
        for batch in batches:
            tok, mask = _tensors(ids, batch)
            got = model(tok, mask)
            loss = (1 - (got * goal[batch]).sum(1)).mean()
            if PAIRS in sys.argv:  # relational: the batch's pairwise cosines, as the teacher's
                want = goal[batch] @ goal[batch].T
                loss = loss + PAIR_WEIGHT * ((got @ got.T - want) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            value = float(loss.detach())
            running = 0.98 * running + 0.02 * value if step > 1 else value
            if step % 100 == 0:
                print(f"epoch {epoch} step {step}/{steps} loss {running:.4f} "
                      f"{time.perf_counter() - start:.0f} s", flush=True)
    cos = _cosines(model, ids, target, test_rows)
    print(f"held-out cosine to the teacher: mean {cos.mean():.4f}, 5th percentile "
          f"{np.percentile(cos, 5):.4f}")
    arc_ids, arc_target, _ = _load("arc")
    arc = _cosines(model, arc_ids, arc_target, list(range(len(arc_ids))))
    print(f"ARC comments (never trained on): mean {arc.mean():.4f}, 5th percentile "
          f"{np.percentile(arc, 5):.4f}")
    export(model)
    print(f"wrote {OUT} ({OUT.stat().st_size // 1024} KB)")
    return 0


def load_shipped(model: Any) -> None:
    """Set the student's trainable parts from the shipped .npz (the inverse of export)."""
    import torch

    from tasks.stance.encoder import LORA_TARGETS

    with np.load(OUT) as saved:
        got = {k: torch.from_numpy(saved[k].astype(np.float32)) for k in saved.files}
    with torch.no_grad():
        for i, block in enumerate(model.blocks):
            for stem in LORA_TARGETS:
                lin = getattr(block, stem)
                lin.A.copy_(got[f"l{i}.{stem}.A"])
                lin.B.copy_(got[f"l{i}.{stem}.B"] / (ALPHA / RANK))
                lin.b.copy_(got[f"l{i}.{stem}.bias"])
            for ln in ("ln1", "ln2"):
                for part in ("weight", "bias"):
                    getattr(getattr(block, ln), part).copy_(got[f"l{i}.{ln}.{part}"])
        model.proj.weight.copy_(got["proj.weight"])
        model.proj.bias.copy_(got["proj.bias"])


def export(model: Any) -> None:
    """What differs from the installed MiniLM: the LoRA factors (B scaled by alpha/r) and
    biases of layers 0..2, their layer norms, the projection; float16 where it is big."""
    from tasks.stance.encoder import LORA_TARGETS

    out: dict[str, np.ndarray] = {"layers": np.array(LAYERS, dtype=np.int64)}
    for i, block in enumerate(model.blocks):
        for stem in LORA_TARGETS:
            lin = getattr(block, stem)
            out[f"l{i}.{stem}.A"] = lin.A.detach().numpy().astype(np.float16)
            out[f"l{i}.{stem}.B"] = (lin.B.detach().numpy() * (ALPHA / RANK)).astype(
                np.float16)
            out[f"l{i}.{stem}.bias"] = lin.b.detach().numpy().astype(np.float32)
        for ln in ("ln1", "ln2"):
            for part in ("weight", "bias"):
                tensor = getattr(getattr(block, ln), part)
                out[f"l{i}.{ln}.{part}"] = tensor.detach().numpy().astype(np.float32)
    out["proj.weight"] = model.proj.weight.detach().numpy().astype(np.float16)
    out["proj.bias"] = model.proj.bias.detach().numpy().astype(np.float32)
    np.savez_compressed(OUT, **out)  # type: ignore[arg-type]


def check() -> int:
    """The shipped student, run by onnxruntime as the pipeline runs it, against the cache."""
    from tasks.stance.encoder import load_distilled

    encoder = load_distilled()
    for name, texts in (("distil", corpus_texts()), ("arc", arc_comments())):
        with np.load(CACHE / f"{name}.npz") as data:
            target, held = data["teacher"], data["held"]
        rows = np.flatnonzero(held) if name == "distil" else np.arange(len(texts))
        start = time.process_time()
        got = encoder.encode([texts[i] for i in rows])
        ms = (time.process_time() - start) / len(rows) * 1000
        cos = (got * target[rows]).sum(1)
        print(f"{name}: ONNX student vs teacher cosine mean {cos.mean():.4f}, 5th percentile "
              f"{np.percentile(cos, 5):.4f} ({len(rows)} texts, {ms:.1f} CPU ms each)")
    return 0


def main() -> int:
    if not (CORPUS / "polnear" / "polnear_train.jsonl").exists():
        print(f"corpus not found at {CORPUS}; nothing to distil")
        return 0
    if "--teacher" in sys.argv:
        return teacher()
    if "--train" in sys.argv:
        return train()
    if "--check" in sys.argv:
        return check()
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main())
