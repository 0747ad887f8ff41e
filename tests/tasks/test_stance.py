"""Comment stance toward user-written topics (tasks/stance/classifier.py)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from schemas.config import Topic
from tasks.stance import classifier as stance
from tasks.stance import load_minilm
from tasks.stance.encoder import load_distilled
from tests.sample import SAMPLE_COMMENTS

CHIPS = Topic(
    name="us-tech-controls",
    description="The US should restrict China's access to advanced chips and AI technology.",
)


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Loading and running the model must never reach for the network."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("stance classification tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    yield


def test_sample_article_comments_favor_the_topic() -> None:
    result = stance.classify_stances(SAMPLE_COMMENTS, [CHIPS])
    assert [row[0][0] for row in result] == ["favor"] * 5


def test_off_topic_comment_is_neutral() -> None:
    off_topic = "What a match last night, the striker scored twice in the second half."
    [[(label, _)]] = stance.classify_stances([off_topic], [CHIPS])
    assert label == "neutral"


def test_opposing_comment_is_against() -> None:
    text = "Export controls on chips are a mistake and only hurt American companies."
    [[(label, _)]] = stance.classify_stances([text], [CHIPS])
    assert label == "against"


def test_shape_labels_and_scores() -> None:
    topics = [CHIPS, Topic(name="football", description="Football clubs should cap wages.")]
    comments = [*SAMPLE_COMMENTS[:2], "", "I love football."]
    result = stance.classify_stances(comments, topics)
    assert len(result) == len(comments)
    for row in result:
        assert len(row) == len(topics)
        for label, score in row:
            assert label in ("favor", "against", "neutral")
            assert 0.0 <= score <= 1.0
    assert result[2] == [("neutral", 1.0), ("neutral", 1.0)]
    assert stance.classify_stances([], topics) == []
    assert stance.classify_stances(["text"], []) == [[]]


def test_label_score_maps() -> None:
    probs = np.array([[0.7, 0.2, 0.1], [0.2, 0.5, 0.3], [0.1, 0.1, 0.8], [0.9, 0.05, 0.05]],
                     dtype=np.float32)
    labels = probs.argmax(axis=1)
    # the identity map gives the top probability back
    same = stance.label_scores(probs, labels, np.ones(3), np.zeros(3))
    assert np.allclose(same, [0.7, 0.5, 0.8, 0.9], atol=1e-6)
    # a map per label: favor pulled down, neutral left alone
    a, b = np.array([0.5, 1.0, 1.0]), np.array([-1.0, 0.0, 0.0])
    got = stance.label_scores(probs, labels, a, b)
    expected_favor = 1 / (1 + np.exp(-(0.5 * np.log(0.7 / 0.3) - 1.0)))
    assert got[0] == pytest.approx(expected_favor, abs=1e-6)
    assert got[2] == pytest.approx(0.8, abs=1e-6)
    assert got[3] > got[0]  # increasing within a label


def test_scores_are_the_heads_calibrated_maps() -> None:
    """The shipped score is the per-label map of the head's top probability, not the raw
    probability: on unseen ARC claims the raw one overstated favor/against
    (docs/stance.md)."""
    head = stance.load_head()
    assert (head.score_a >= 0).all()
    assert not np.allclose(head.score_b, 0)  # fitted maps, not the identity
    comments = SAMPLE_COMMENTS[:3]
    result = stance.classify_stances(comments, [CHIPS])
    encoder = stance.load_encoder()
    vectors = encoder.encode([stance.topic_text(CHIPS), *comments])
    cues = np.stack([stance.cue_features(c) for c in comments])
    probs = head.probabilities(stance.pair_features(vectors[0], vectors[1:], cues))
    labels, scores = head.label_scores(probs)
    assert [r[0] for r in result] == [(stance.LABELS[k], round(float(v), 4))
                                      for k, v in zip(labels, scores, strict=True)]
    assert not np.allclose(scores, probs.max(axis=1), atol=1e-3)


def test_duplicate_comments_get_identical_results() -> None:
    result = stance.classify_stances([SAMPLE_COMMENTS[0], SAMPLE_COMMENTS[0]], [CHIPS])
    assert result[0] == result[1]


def test_onnx_encoder_matches_the_numpy_forward_pass() -> None:
    """The pipeline's onnxruntime graph and the numpy pass are the same model: padding,
    length sorting and truncation (the 300-word text) included."""
    from tasks.stance.encoder import MiniLM

    texts = ["Export controls on chips are a mistake.", "I agree.", "word " * 300,
             "Restricting semiconductor sales to Beijing protects national security."]
    onnx_vectors = load_minilm().encode(texts)
    assert np.allclose(onnx_vectors, MiniLM().encode(texts), atol=1e-5)
    # the weight arrays are dropped once the sessions exist (onnxruntime copies them):
    # reuse their memory, then the encoder must still give the same vectors
    from tasks.stance.encoder import OnnxMiniLM

    fresh = OnnxMiniLM(threads=1)
    churn = [np.full(4_000_000, 7.0, dtype=np.float32) for _ in range(30)]
    assert np.allclose(fresh.encode(texts), onnx_vectors, atol=1e-6)
    del churn
    assert np.allclose(onnx_vectors[1:2], load_minilm().encode(texts[1:2]), atol=1e-6)


def test_encoder_threads_follow_the_worker_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from tasks.stance import THREADS_ENV
    from tasks.stance.encoder import encoder_threads

    monkeypatch.setenv(THREADS_ENV, "1")
    assert encoder_threads() == 1
    monkeypatch.delenv(THREADS_ENV)
    assert encoder_threads() >= 1


def test_numpy_encoder_gives_unit_vectors_that_reflect_meaning() -> None:
    vectors = load_minilm().encode(
        ["Chips export controls on China", "Restricting semiconductor sales to Beijing",
         "My cat likes to sleep in the sun"])
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2


def test_cue_features_count_negation_and_disapproval() -> None:
    neg = stance.cue_features("This is not right, it is a mistake and wrong.")
    plain = stance.cue_features("This is a plan.")
    names = list(stance.CUES)
    assert neg[names.index("negation")] > 0
    assert neg[names.index("disapprove")] > plain[names.index("disapprove")]


def _zero_adapter(split: int, rank: int = 2) -> dict[str, np.ndarray]:
    """An adapter whose LoRA deltas are zero and whose norms are the base model's."""
    from tasks.stance.encoder import LORA_TARGETS, model_dir, read_safetensors

    base = read_safetensors(model_dir() / "model.safetensors")
    adapter: dict[str, np.ndarray] = {}
    for i in range(split, 6):
        p = f"encoder.layer.{i}."
        for stem, name in LORA_TARGETS.items():
            out_dim, in_dim = base[p + name + ".weight"].shape
            adapter[f"l{i}.{stem}.A"] = np.ones((rank, in_dim), dtype=np.float16)
            adapter[f"l{i}.{stem}.B"] = np.zeros((out_dim, rank), dtype=np.float16)
        for stem, name in (("ln1", "attention.output.LayerNorm"), ("ln2", "output.LayerNorm")):
            for part in ("weight", "bias"):
                adapter[f"l{i}.{stem}.{part}"] = base[f"{p}{name}.{part}"]
    return adapter


def test_zero_lora_reproduces_the_base_encoder() -> None:
    from tasks.stance.encoder import MiniLM

    texts = ["Export controls on chips are a mistake.", "I agree with the plan."]
    adapted = MiniLM(adapter=_zero_adapter(split=0)).encode(texts)
    assert np.array_equal(adapted, MiniLM().encode(texts))


def test_lora_merge_adds_scaled_low_rank_product() -> None:
    from tasks.stance.encoder import apply_lora

    rng = np.random.default_rng(0)
    name = "encoder.layer.5.intermediate.dense.weight"
    base = {name: rng.normal(size=(6, 4)).astype(np.float32)}
    a = rng.normal(size=(2, 4)).astype(np.float16)
    b = rng.normal(size=(6, 2)).astype(np.float16)
    merged = apply_lora(base, {"l5.inter.A": a, "l5.inter.B": b})
    expected = base[name] + b.astype(np.float32) @ a.astype(np.float32)
    assert np.allclose(merged[name], expected, atol=1e-6)
    assert not np.allclose(merged[name], base[name])  # the delta really was applied
    assert base[name] is not merged[name]  # base weights untouched


def test_cross_encoder_rows_do_not_depend_on_batch_or_other_topics(tmp_path: Path) -> None:
    """Padding, length bucketing and shared lower layers must not change any result."""
    from tasks.stance.cross import StanceCrossEncoder

    rng = np.random.default_rng(1)
    adapter = _zero_adapter(split=4)
    adapter.update({
        "segment": rng.normal(size=384).astype(np.float32) * 0.1,
        "head.weight": rng.normal(size=(3, 4 * 384)).astype(np.float32),
        "head.bias": np.zeros(3, dtype=np.float32),
        "split": np.array(4), "topic_len": np.array(32), "comment_len": np.array(64),
        "temperature": np.array(1.0, dtype=np.float32),
    })
    path = tmp_path / "adapter.npz"
    np.savez(path, **adapter)  # type: ignore[arg-type]
    model = StanceCrossEncoder(path)
    topics = ["The US should restrict chip exports.", "Cities need more bike lanes."]
    comments = [f"Comment {i}: " + "word " * (3 * i) for i in range(20)]
    both = model.probabilities(topics, comments)
    assert both.shape == (2, 20, 3)
    assert np.allclose(both.sum(axis=2), 1.0, atol=1e-5)
    alone = model.probabilities(topics[1:], comments[7:8])
    assert np.allclose(both[1, 7], alone[0, 0], atol=1e-5)
    assert not np.allclose(both[0], both[1])  # the topic matters


def test_split_graphs_compose_to_the_whole_encoder() -> None:
    """The cascade's lower and upper graphs give the full graph's embedding."""
    from tasks.stance.encoder import model_dir, padded, read_safetensors
    from tasks.stance.graph import build_graph, make_session

    weights = read_safetensors(model_dir() / "model.safetensors")
    encoder = load_minilm()
    ids, mask = padded([e.ids for e in encoder.tokenizer.encode_batch(
        [SAMPLE_COMMENTS[0], "Chips.", "I love football and long walks on the beach."])])
    whole = make_session(build_graph(weights), threads=1).run(
        ["embedding"], {"input_ids": ids, "attention_mask": mask})[0]
    for split in (1, 3):
        _, state = make_session(build_graph(weights, 0, split), threads=1).run(
            ["embedding", "state"], {"input_ids": ids, "attention_mask": mask})
        upper = make_session(build_graph(weights, split), threads=1).run(
            ["embedding"], {"hidden": state, "attention_mask": mask})[0]
        assert np.abs(upper - whole).max() < 1e-6


def test_distilled_stance_encoder_points_where_minilm_points() -> None:
    """The stance task's 3-layer encoder was trained to give the 6-layer model's vectors;
    an adapter merged wrongly (or not at all) lands far from them."""
    student, teacher = load_distilled(), load_minilm()
    assert student.depth == 3 and teacher.depth == 6
    texts = [*SAMPLE_COMMENTS, CHIPS.description, "I love football and long walks.",
             "Nvidia's new GPUs sold out in a day.", "The tariffs will raise prices for "
             "everyone, and China will simply build its own chips."]
    s, t = student.encode(texts), teacher.encode(texts)
    assert np.allclose(np.linalg.norm(s, axis=1), 1.0, atol=1e-5)
    cosine = (s * t).sum(axis=1)
    # measured on 778 held-out texts: mean 0.89, 5th percentile 0.81 (very short texts
    # such as "lol no" fare worse)
    assert cosine.mean() > 0.82 and cosine.min() > 0.7
    # which texts are close to which is kept too
    assert np.corrcoef((s @ s.T).ravel(), (t @ t.T).ravel())[0, 1] > 0.9
    # the first three layers without the adapter are much further away
    from tasks.stance.encoder import model_dir, padded, read_safetensors
    from tasks.stance.graph import build_graph, make_session

    ids, mask = padded([e.ids for e in student.tokenizer.encode_batch(texts)])
    plain = make_session(build_graph(read_safetensors(model_dir() / "model.safetensors"),
                                     0, 3, depth=3), threads=1).run(
        ["embedding"], {"input_ids": ids, "attention_mask": mask})[0]
    assert (plain * t).sum(axis=1).mean() < cosine.mean() - 0.1


def test_distilled_encoder_has_its_own_head_and_gate() -> None:
    """`performance.stance_encoder: distilled` runs the 3-layer encoder with the head and
    gate trained on its embeddings; the sample's comments still favor the topic."""
    gate = stance.load_gate("distilled")
    assert gate.layers == load_distilled().split and stance.load_head("distilled") is not (
        stance.load_head())
    fast = stance.classify_stances([*SAMPLE_COMMENTS, "I love football and long walks on "
                                    "the beach."], [CHIPS], "distilled")
    assert [row[0][0] for row in fast] == ["favor"] * 5 + ["neutral"]
    slow = stance.classify_stances(SAMPLE_COMMENTS, [CHIPS])
    assert [row[0][1] for row in fast[:5]] != [row[0][1] for row in slow]


def test_distilled_encoder_graphs_compose_to_its_whole_graph() -> None:
    """The gate's lower graph and the upper one with the projection are one model."""
    from tasks.stance.encoder import STUDENT, apply_lora, model_dir, padded, read_safetensors
    from tasks.stance.graph import build_graph, make_session

    with np.load(stance.model_path(STUDENT)) as saved:
        weights = apply_lora(read_safetensors(model_dir() / "model.safetensors"),
                             {k: saved[k] for k in saved.files if k != "layers"})
    encoder = load_distilled()
    ids, mask = padded([e.ids for e in encoder.tokenizer.encode_batch(
        [SAMPLE_COMMENTS[0], "Chips.", "I love football and long walks on the beach."])])
    whole = make_session(build_graph(weights, 0, 3, depth=3), threads=1).run(
        ["embedding"], {"input_ids": ids, "attention_mask": mask})[0]
    assert np.abs(encoder.encode([SAMPLE_COMMENTS[0], "Chips.",
                                  "I love football and long walks on the beach."]) - whole
                  ).max() < 1e-5


def test_gated_encoding_runs_the_upper_layers_only_for_kept_rows() -> None:
    encoder = load_minilm()
    texts = [*SAMPLE_COMMENTS, "I love football."]
    full = encoder.encode(texts)
    assert np.allclose(np.linalg.norm(full, axis=1), 1.0, atol=1e-5)
    vectors, lower, kept = encoder.encode_gated(texts, lambda p: np.arange(len(p)) % 2 == 0)
    assert kept.sum() == 3 and np.array_equal(kept, np.linalg.norm(vectors, axis=1) > 0)
    # kept rows lose their batch mates and some padding, and still match the full pass
    assert np.allclose(vectors[kept], full[kept], atol=1e-5)
    assert not np.allclose(lower, full, atol=1e-2)  # the lower states are not the output
    assert np.allclose(np.linalg.norm(lower, axis=1), 1.0, atol=1e-5)


def test_on_topic_comments_pass_the_relevance_gate() -> None:
    """The sample's on-topic comments reach the full encoder and the head."""
    gate, encoder = stance.load_gate(), load_minilm()
    assert gate.layers == encoder.split and 0.0 < gate.threshold < 0.5
    assert 0.9 < gate.exit_score < 1.0
    _, topic, _ = encoder.encode_gated([stance.topic_text(CHIPS)])
    _, comments, _ = encoder.encode_gated(
        [*SAMPLE_COMMENTS, "Export controls on chips are a mistake and only hurt American "
         "companies."], lambda p: np.zeros(len(p), dtype=bool))
    assert gate.relevant(topic, comments).all()


def test_pairs_stopped_by_the_gate_are_neutral(monkeypatch: pytest.MonkeyPatch) -> None:
    gate = stance.load_gate()
    monkeypatch.setattr(gate, "threshold", 1.1)  # nothing may pass
    result = stance.classify_stances(SAMPLE_COMMENTS[:2], [CHIPS])
    assert result == [[("neutral", round(gate.exit_score, 4))]] * 2
    monkeypatch.setattr(gate, "threshold", 0.0)  # everything passes: the full head
    assert [r[0][0] for r in stance.classify_stances(SAMPLE_COMMENTS, [CHIPS])] == [
        "favor"] * 5
