"""The stance cross-encoder tried for issue 18 (tasks/stance/crossencoder.py; not used by
the pipeline yet, docs/stance.md): onnxruntime only, no torch, no corpus."""

from __future__ import annotations

import numpy as np
import pytest

from tasks.stance import crossencoder as sx
from tests.sample import SAMPLE_COMMENTS

CHIPS = "The US should restrict China's access to advanced chips and AI technology"


@pytest.fixture(scope="module")
def model() -> sx.StanceCrossEncoder:
    return sx.load_cross_encoder()


def test_shipped_files_are_small_and_int8() -> None:
    size = (sx.models_dir() / sx.MODEL_FILE).stat().st_size
    assert size < 30e6  # int8: about a quarter of the 90 MB float32 model


def test_an_off_topic_comment_is_the_most_neutral(model: sx.StanceCrossEncoder) -> None:
    off_topic = "I made this pasta recipe last night with extra basil and it was delicious."
    probs = model.scores([CHIPS] * 6, [*SAMPLE_COMMENTS, off_topic])
    assert probs[:, 2].argmax() == 5
    assert model.labels([CHIPS], [off_topic])[0][0] == "neutral"


def test_probabilities_are_calibrated_rows(model: sx.StanceCrossEncoder) -> None:
    probs = model.scores([CHIPS, "gun control", CHIPS], [*SAMPLE_COMMENTS[:2], ""])
    assert probs.shape == (3, 3)
    assert probs.dtype == np.float32
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert probs[2].tolist() == [0.0, 0.0, 1.0]  # an empty comment is neutral
    assert model.scores([], []).shape == (0, 3)


def test_matrix_matches_aligned_pairs(model: sx.StanceCrossEncoder) -> None:
    topics = [CHIPS, "Cities should build more bike lanes."]
    grid = model.matrix(topics, SAMPLE_COMMENTS[:3])
    assert grid.shape == (3, 2, 3)
    one = model.scores([topics[1]], [SAMPLE_COMMENTS[2]])
    # dynamic int8 quantises activations per batch, so a batch's other rows move a pair's
    # probabilities a little (measured: < 0.005)
    assert np.allclose(grid[2, 1], one[0], atol=0.02)


def test_pair_ids_cut_the_comment_not_the_topic() -> None:
    ids, types = sx.pair_ids([5] * 50, [7] * 200, max_tokens=128, topic_tokens=40)
    assert len(ids) == len(types) == 128
    assert ids[:1] == [sx.CLS] and ids[41] == sx.SEP and ids[-1] == sx.SEP
    assert ids.count(5) == 40 and types == [0] * 42 + [1] * 86


def test_mentions_topic() -> None:
    assert sx.mentions_topic(CHIPS, "Chip exports are a bad idea.")
    assert not sx.mentions_topic(CHIPS, "I loved the pasta.")
    assert sx.mentions_topic(CHIPS, "I loved the pasta.", context="China tech rules")
    assert sx.mentions_topic("the", "anything")  # no content word: nothing to check
