"""The data contract between stages: shards, dropped records, funnels, JSON lines."""

from __future__ import annotations

import gzip

import pytest

from abacus_repro.errors import InputError
from abacus_repro.io import (
    Funnel,
    content_id,
    make_doc,
    merge_stats,
    read_docs,
    read_jsonl,
    write_docs,
)


def test_write_docs_is_byte_identical_and_round_trips(tmp_path):
    docs = [
        make_doc("print(1)\n", "code", {"repo": "r", "path": "a.py"}),
        make_doc("# 标题\n", "docs", {"b": 1, "a": 2}),
    ]
    first, second = tmp_path / "a.parquet", tmp_path / "b.parquet"
    assert write_docs(first, docs) == 2
    write_docs(second, docs)
    assert first.read_bytes() == second.read_bytes()
    back = read_docs(first)
    assert [d["text"] for d in back] == ["print(1)\n", "# 标题\n"]
    assert back[1]["meta"] == '{"a": 2, "b": 1}'  # sorted keys: same meta, same bytes


def test_empty_shard_keeps_schema(tmp_path):
    path = tmp_path / "empty.parquet"
    assert write_docs(path, [], dropped=True) == 0
    import pyarrow.parquet as pq

    assert pq.read_schema(path).names == ["id", "text", "source", "meta", "reason", "detail"]


def test_content_id_is_stable_and_separates_parts():
    assert content_id("a", "b") == content_id("a", "b")
    assert content_id("ab", "") != content_id("a", "b")
    assert len(content_id("x")) == 16


def test_read_docs_names_the_bad_file(tmp_path):
    bad = tmp_path / "corrupt.parquet"
    bad.write_bytes(b"not parquet at all")
    with pytest.raises(InputError, match="corrupt.parquet"):
        read_docs(bad)
    with pytest.raises(InputError, match="missing.parquet: document shard not found"):
        read_docs(tmp_path / "missing.parquet")


def test_funnel_accounts_for_every_record():
    funnel = Funnel("f")
    funnel.keep(3)
    funnel.drop("syntax_error", 2)
    funnel.drop("python2")
    stats = funnel.to_dict()
    assert stats == {"name": "f", "read": 6, "kept": 3, "dropped": {"python2": 1, "syntax_error": 2}}
    funnel.read += 1  # a record that vanished
    with pytest.raises(AssertionError, match="read 7"):
        funnel.to_dict()


def test_merge_stats_sums_and_refuses_inconsistent_parts():
    parts = [{"read": 3, "kept": 2, "dropped": {"a": 1}}, {"read": 4, "kept": 1, "dropped": {"a": 1, "b": 2}}]
    assert merge_stats("all", parts) == {"name": "all", "read": 7, "kept": 3, "dropped": {"a": 2, "b": 2}}
    with pytest.raises(AssertionError, match="do not add up"):
        merge_stats("all", [{"read": 5, "kept": 2, "dropped": {"a": 1}}])


def test_read_jsonl_names_file_and_line(tmp_path):
    path = tmp_path / "rows.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write('{"a": 1}\n\n{"a": 2}\n{broken\n')
    with pytest.raises(InputError, match=r"rows.jsonl.gz: line 4 is not valid JSON"):
        read_jsonl(path)
    path.write_bytes(gzip.compress(b'{"a": 1}\n'))
    assert read_jsonl(path) == [{"a": 1}]
