"""NL instruction data from sft.nl_path: StackExchange shards as they are, instruction sets in the usual JSON Lines
layouts (Alpaca, prompt/response, ShareGPT/Infinity-Instruct, chat messages), directories, and clear errors."""

from __future__ import annotations

import gzip
import json

import pytest

from abacus_repro.errors import InputError
from abacus_repro.io import doc_meta, make_doc, write_docs
from abacus_repro.settings import SftSettings
from abacus_repro.sft.dataset import build_dataset, nl_pair
from abacus_repro.sft.nl_data import read_nl_source, record_pair

RECORDS = [
    {"instruction": "Add two numbers.", "input": "2 and 3", "output": "5"},
    {"prompt": "Name a prime.", "completion": "7"},
    {"id": "ii-42", "conversations": [{"from": "system", "value": "Be brief."}, {"from": "human", "value": "2+2?"},
                                      {"from": "gpt", "value": "4"}, {"from": "human", "value": "3+3?"},
                                      {"from": "gpt", "value": "6"}]},
    {"messages": [{"role": "user", "content": "Capital of France?"}, {"role": "assistant", "content": "Paris."}]},
]  # fmt: skip


def test_record_layouts():
    assert record_pair(RECORDS[0]) == ("Add two numbers.\n\n2 and 3", "5")
    assert record_pair(RECORDS[1]) == ("Name a prime.", "7")
    assert record_pair(RECORDS[2]) == ("2+2?", "4")  # the first exchange of a multi-turn conversation
    assert record_pair(RECORDS[3]) == ("Capital of France?", "Paris.")
    assert record_pair({"text": "no pair"}) is None
    assert record_pair({"conversations": [{"from": "human", "value": "unanswered"}]}) is None


def test_jsonl_and_gzip_files_and_directories_become_pair_documents(tmp_path):
    plain = tmp_path / "set" / "a.jsonl"
    plain.parent.mkdir()
    plain.write_text("\n".join(json.dumps(r) for r in RECORDS[:2]) + "\n\n", encoding="utf-8")
    with gzip.open(tmp_path / "set" / "b.jsonl.gz", "wt", encoding="utf-8") as handle:
        handle.write("\n".join(json.dumps(r) for r in RECORDS[2:]))
    (tmp_path / "set" / "notes.txt").write_text("ignored")
    docs = read_nl_source(tmp_path / "set")
    assert [nl_pair(d) for d in docs] == [record_pair(r) for r in RECORDS]
    assert doc_meta(docs[2])["origin"] == "nl_instruct:ii-42"
    assert docs[0]["text"] == "<用户>Add two numbers.\n\n2 and 3<AI>5"
    assert read_nl_source(tmp_path / "set") == docs  # deterministic ids and order
    dataset, stats = build_dataset([], docs, SftSettings(), seed=0)
    assert stats["nl"] == 4 and {doc_meta(d)["origin"] for d in dataset} >= {"nl_instruct:ii-42"}


def test_stackexchange_shard_is_read_as_it_is(tmp_path):
    doc = make_doc("# Q?\n\nBody.\n\n## Accepted answer\n\nA.", "stackexchange", {"question_id": 5})
    write_docs(tmp_path / "kept.parquet", [doc])
    assert read_nl_source(tmp_path / "kept.parquet") == [doc]
    dataset, _ = build_dataset([], [doc], SftSettings(), seed=0)
    assert doc_meta(dataset[0])["origin"] == f"stackexchange:{doc['id']}"


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("broken.jsonl", '{"instruction": "x", "output": "y"}\n{not json\n', "line 2 is not JSON"),
        ("odd.jsonl", '{"instruction": "x", "output": "y"}\n{"text": "no pair"}\n', "line 2 is no instruction pair"),
        ("empty.jsonl", "\n", "empty NL instruction file"),
        ("latin1.jsonl", b'{"instruction": "caf\xe9", "output": "y"}\n', "not UTF-8"),
        ("data.csv", "a,b\n", "must be .parquet or .jsonl"),
    ],
)
def test_bad_input_names_the_file(tmp_path, name, content, message):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(InputError, match=message) as raised:
        read_nl_source(path)
    assert name in str(raised.value)


def test_missing_path_and_empty_directory(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_nl_source(tmp_path / "nowhere.jsonl")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no .parquet or .jsonl"):
        read_nl_source(tmp_path / "empty")
