"""Comment stance toward user-written topics (tasks/stance.py)."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import numpy as np
import pytest

from schemas.config import Topic
from tasks import stance
from tasks.stance_encoder import load_minilm

CHIPS = Topic(
    name="us-tech-controls",
    description="The US should restrict China's access to advanced chips and AI technology.",
)
# the five comments under the user's sample article (seeds/000_5bf2e83c85908633.txt)
SAMPLE_COMMENTS = [
    "Protecting US technology is paramount. It is important to see the concerns of the "
    "government.",
    "We need to be vigilant about China's tech advances. This is a smart move by Sacks and "
    "others.",
    "Controlling these technologies is the only way to protect US interests in the long run. "
    "We need to be in the front",
    "The AI race is critical, and the US is right to focus on staying ahead. This is national "
    "significance.",
    "Better to acknowledge China's progress than to be blindsided. This is the right approach.",
]


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


def test_duplicate_comments_get_identical_results() -> None:
    result = stance.classify_stances([SAMPLE_COMMENTS[0], SAMPLE_COMMENTS[0]], [CHIPS])
    assert result[0] == result[1]


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
