"""The lexical warm start of a fresh text head (indexbench.generative.text_head)."""

from __future__ import annotations

import itertools

import pytest
import torch

from indexbench.generative.backbones import load_backbone
from indexbench.generative.text_head import lexical_text_head

TOPICS = {
    "garden": ["hose", "watering", "lawn", "sprinkler", "plants", "soil"],
    "kitchen": ["knife", "skillet", "blender", "spatula", "cookware", "oven"],
    "laboratory": ["beaker", "pipette", "microscope", "centrifuge", "flask", "reagent"],
    "electrical": ["cable", "charger", "voltage", "battery", "adapter", "wire"],
}
QUERIES = ["sprinkler for the lawn", "cast iron skillet", "glass beaker flask", "usb charger cable"]


def corpus() -> list[str]:
    texts = []
    for topic, words in TOPICS.items():
        for a, b, c in itertools.combinations(words, 3):
            texts.append(f"{topic} {a} with {b} and {c}, durable and easy to use")
    return texts


def step_zero_top_tokens(backbone, texts: list[str], k: int) -> list[set[int]]:
    tokens = backbone.text.tokenize(texts, max_length=32)
    ids, mask = backbone.text.collate(tokens, backbone.device)
    start = torch.full((len(texts), 1), backbone.decoder_start_token_id)
    with torch.no_grad():
        hidden, _ = backbone.decode(start, backbone.encode(ids, mask), mask)
        logits = backbone.text_logits(hidden[:, 0])
    return [set(row.topk(k).indices.tolist()) for row in logits]


def own_word_hits(backbone, texts: list[str], k: int = 10) -> int:
    """How many texts find one of their own words among the head's k likeliest first tokens."""
    words = backbone.text.tokenize_text_only(texts, max_length=32)
    return sum(bool(top & set(w)) for top, w in zip(step_zero_top_tokens(backbone, texts, k), words))


@pytest.fixture(scope="module")
def documents():
    return corpus()


def test_a_fresh_head_starts_writing_the_inputs_words(documents):
    backbone = load_backbone("minilm-encdec")
    assert own_word_hits(backbone, QUERIES) == 0  # the random transform: the same words for all
    report = lexical_text_head(backbone, backbone.text.tokenize(documents, max_length=32))
    assert report["applied"] and report["documents"] == len(documents)
    assert report["held_out_r2"] > 0.3
    assert report["held_out_cross_entropy"] < report["untouched_head_cross_entropy"]
    assert own_word_hits(backbone, QUERIES) == len(QUERIES)
    # and it is the input that decides: different queries, different first words
    tops = step_zero_top_tokens(backbone, QUERIES, 5)
    assert all(a != b for a, b in itertools.combinations(tops, 2))


def test_the_warm_start_is_repeatable(documents):
    heads = []
    for _ in range(2):
        backbone = load_backbone("minilm-encdec")
        lexical_text_head(backbone, backbone.text.tokenize(documents, max_length=32), seed=3)
        heads.append(backbone.model.decoder.cls.predictions.transform.dense.weight.detach().clone())
    assert torch.equal(heads[0], heads[1])


def test_a_pretrained_head_is_left_alone(documents):
    backbone = load_backbone("minilm-encdec")
    backbone.fresh_parameters = ("crossattention",)  # as if the head had come pretrained
    before = {k: v.clone() for k, v in backbone.model.decoder.cls.state_dict().items()}
    report = lexical_text_head(backbone, backbone.text.tokenize(documents, max_length=32))
    assert report == {"applied": False, "reason": "the text head is pretrained or has no transform"}
    after = backbone.model.decoder.cls.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_too_few_documents_leave_the_head_alone():
    backbone = load_backbone("minilm-encdec")
    report = lexical_text_head(backbone, backbone.text.tokenize(["one short text", "another one"], max_length=16))
    assert not report["applied"] and "too few documents" in report["reason"]
