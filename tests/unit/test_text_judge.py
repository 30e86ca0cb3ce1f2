"""The judge: strict score parsing, seeded sampling, the metadata fallback named as such, reject counting."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from abacus_repro.errors import InputError
from abacus_repro.ingest.stackexchange import ingest_stackexchange
from abacus_repro.llm import METADATA_NAME, MetadataClient
from abacus_repro.settings import JudgeSettings, StackExchangeSettings
from abacus_repro.text.judge import (
    RUBRIC_PATH,
    build_prompt,
    client_from_settings,
    constraint_for,
    judge_documents,
    parse_score,
    reply_format_for,
    sample_for_judging,
    score_from_signals,
    signals_of,
)

SAMPLE = "data/samples/stackexchange/python.sample.stackexchange.com.Posts.xml"


@pytest.fixture(scope="module")
def threads():
    docs, _, _ = ingest_stackexchange(StackExchangeSettings(dumps=[SAMPLE]))
    return docs


@pytest.mark.parametrize("reply", ["4", " 5\n", "Score: 3", "score=2", "4/5", "**1**", "3."])
def test_parse_score_accepts_one_integer_1_to_5(reply):
    assert parse_score(reply) in {1, 2, 3, 4, 5}


@pytest.mark.parametrize(
    "reply", ["0", "6", "10", "-1", "3.5", "four", "", None, "4 or 5", "Score: 4\nor maybe 2", "I think 4", "45"]
)
def test_parse_score_rejects_everything_else(reply):
    assert parse_score(reply) is None


def test_rubric_prompt_shows_thread_and_signals(threads):
    rubric = RUBRIC_PATH.read_text(encoding="utf-8")
    assert "5 = Excellent" in rubric and "{document}" in rubric and "SIGNALS: {signals}" in rubric
    assert rubric.rstrip().endswith("{reply_instruction}")
    prompt = build_prompt(threads[0], rubric, max_chars=100)
    assert threads[0]["text"][:100] in prompt and "[... thread cut here ...]" in prompt
    assert "question_score=" in prompt and prompt.rstrip().endswith(
        "Reply with the score only: a single integer from 1 to 5."
    )
    json_prompt = build_prompt(threads[0], rubric, max_chars=100, reply_format="json")
    assert json_prompt.rstrip().endswith('in the form {"score": N} where N is an integer from 1 to 5.')
    assert json_prompt.rsplit("\n", 2)[0] == prompt.rsplit("\n", 2)[0]  # only the last instruction differs


@pytest.mark.parametrize("reply", ['{"score": 4}', '{"score" : 1}', ' {\n"score":5 }\n'])
def test_parse_score_reads_a_constrained_json_reply(reply):
    assert parse_score(reply) in {1, 2, 3, 4, 5}


@pytest.mark.parametrize(
    "reply",
    ['{"score": 6}', '{"score": true}', '{"score": "4"}', '{"score": 4.0}', '{"rating": 4}', '{"score": 4', "[4]"],
)
def test_parse_score_rejects_json_that_is_not_a_score(reply):
    assert parse_score(reply) is None  # a reply cut by max_tokens, a wrong key or type: counted, never guessed


def test_constraint_follows_backend_server_and_the_users_own():
    openai = JudgeSettings(backend="openai")
    assert constraint_for(openai, server_engine="llama_cpp") == "json_object"  # the job serves with llama_cpp
    assert constraint_for(openai, server_engine="vllm") == "json_schema"
    assert constraint_for(JudgeSettings(backend="openai", base_url="http://x/v1")) == "json_schema"  # external
    grammar = JudgeSettings(backend="openai", extra_body={"grammar": "root ::= [1-5]"})
    assert constraint_for(grammar, server_engine="llama_cpp") == "none"
    assert constraint_for(JudgeSettings(backend="openai", extra_body={"guided_choice": ["1", "2"]})) == "none"
    assert constraint_for(JudgeSettings(backend="openai", constrain="json_object")) == "json_object"
    assert constraint_for(JudgeSettings(backend="metadata", constrain="json_schema")) == "none"
    assert reply_format_for(JudgeSettings(backend="openai", constrain="none")) == "plain"
    with pytest.raises(ValidationError, match="constrain"):
        JudgeSettings(backend="openai", constrain="regex")  # what the schema refuses
    # The user's grammar is sent as it is, with no response_format beside it.
    settings = JudgeSettings(backend="openai", base_url="http://x/v1", model="m", extra_body={"grammar": "g"})
    assert client_from_settings(settings).extra_body == {"grammar": "g"}


def test_metadata_fallback_labels_are_named_and_have_both_classes(threads):
    client = client_from_settings(JudgeSettings(backend="metadata"))
    labels, stats = judge_documents(threads, client, JudgeSettings(sample_size=400, good_score=3), seed=7)
    assert stats["sampled"] == len(threads) == stats["labelled"]  # min(sample_size, available)
    assert stats["read"] == stats["kept"] + sum(stats["dropped"].values())
    metas = [json.loads(doc["meta"]) for doc in labels]
    assert {m["judge"] for m in metas} == {METADATA_NAME} == {stats["judge"]}
    scores = [m["judge_score"] for m in metas]
    assert stats["good"] == sum(s >= 3 for s in scores) and stats["good"] > 5 and stats["bad"] > 5
    # The fallback follows the community: the best-voted threads score higher than the down-voted ones.
    top = [m["judge_score"] for m in metas if m["score"] >= 20]
    down = [m["judge_score"] for m in metas if m["score"] < 0]
    assert min(top) > max(down)


def test_sample_is_seeded_and_independent_of_input_order(threads):
    first = sample_for_judging(threads, 20, seed=3)
    assert [d["id"] for d in first] == [d["id"] for d in sample_for_judging(list(reversed(threads)), 20, seed=3)]
    assert [d["id"] for d in first] != [d["id"] for d in sample_for_judging(threads, 20, seed=4)]
    assert len(sample_for_judging(threads, 10_000, seed=3)) == len(threads)


def test_unparseable_replies_are_counted_not_guessed(threads):
    replies = iter(["5", "probably a 4", "2", "7"] * 100)
    client = MetadataClient(responder=lambda prompt: next(replies))
    labels, stats = judge_documents(threads[:8], client, JudgeSettings(sample_size=8), seed=1)
    assert stats["labelled"] == len(labels) == 4 and stats["rejected"] == 4
    assert stats["dropped"] == {"unparseable_score": 4}
    assert {ex["reply"] for ex in stats["rejected_examples"]} == {"probably a 4", "7"}


def test_score_from_signals_is_bounded():
    worst = {
        "question_score": -9,
        "best_answer_score": -5,
        "accepted_answer": "no",
        "answers": 0,
        "closed": "yes",
        "has_code": "no",
        "length_chars": 50,
    }
    best = {
        "question_score": 90,
        "best_answer_score": 120,
        "accepted_answer": "yes",
        "answers": 9,
        "closed": "no",
        "has_code": "yes",
        "length_chars": 5000,
    }
    assert score_from_signals(worst) == 1 and score_from_signals(best) == 5


def test_signals_read_the_ingest_meta(threads):
    signals = signals_of(threads[0])
    assert set(signals) == {
        "question_score",
        "best_answer_score",
        "accepted_answer",
        "answers",
        "closed",
        "has_code",
        "length_chars",
    }


def test_sample_read_from_the_shard_equals_the_in_memory_sample(threads, tmp_path):
    """The rule reads only ids, then the sampled rows: the same threads as sampling the whole list."""
    from abacus_repro.io import write_docs
    from abacus_repro.text.judge import read_judge_sample

    write_docs(tmp_path / "qa.parquet", list(reversed(threads)))  # file order must not matter
    for size in (1, 12, 400):
        sample, available = read_judge_sample(tmp_path / "qa.parquet", size, seed=5)
        assert available == len(threads)
        assert sample == sample_for_judging(threads, size, seed=5)
    write_docs(tmp_path / "dup.parquet", threads + threads[:1])
    with pytest.raises(InputError, match="not unique"):
        read_judge_sample(tmp_path / "dup.parquet", 5, seed=5)
