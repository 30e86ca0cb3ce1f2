"""Licences from The Stack's dumps (v1 Parquet, v2 JSONL) through ingest, the allow-list and the licence table."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from abacus_repro.code import REASONS, clean_shard
from abacus_repro.code.funnel import summarize_funnel
from abacus_repro.errors import InputError
from abacus_repro.ingest.code import ingest_code
from abacus_repro.io import doc_meta, read_docs
from abacus_repro.settings import CodeSettings

GOOD = "import os\n\n\ndef f():\n    return os.sep\n"


def _code(n: int) -> str:
    return GOOD + f"\n\nVALUE = {n}\n"


def _v2_dump(path):
    """The Stack v2's fields: detected_licenses (SPDX ids) and license_type; the third row has no licence field."""
    rows = [
        {"repo_name": "org/mit", "path": "a.py", "content": _code(1), "language": "Python",
         "detected_licenses": ["MIT"], "license_type": "permissive"},
        {"repo_name": "org/none", "path": "b.py", "content": _code(2), "language": "Python",
         "detected_licenses": [], "license_type": "no_license"},
        {"repo_name": "org/bare", "path": "c.py", "content": _code(3), "language": "Python"},
    ]  # fmt: skip
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def _v1_dump(path):
    """The Stack v1's fields: a licence list per repository role (stars, issues, forks)."""
    table = pa.table(
        {
            "max_stars_repo_name": ["org/dual", "org/gpl"],
            "max_stars_repo_path": ["d.py", "e.py"],
            "max_stars_repo_licenses": [["Apache-2.0"], ["GPL-3.0-only"]],
            "max_issues_repo_licenses": [["MIT"], None],
            "max_forks_repo_licenses": [["Apache-2.0"], ["GPL-3.0-only"]],
            "lang": ["Python", "Python"],
            "content": [_code(4), _code(5)],
        }
    )
    pq.write_table(table, path)
    return path


def _ingest(tmp_path, dump, **code) -> list[dict]:
    settings = CodeSettings.model_validate({"source": "stack_dump", "path": str(dump), **code})
    out = tmp_path / "out"
    ingest_code(settings, 1, 1, [out / "s.parquet"], out / "d.parquet", out / "st.json")
    return read_docs(out / "s.parquet")


def test_ingest_carries_the_licence_fields_in_meta(tmp_path):
    v2 = {doc_meta(d)["repo"]: doc_meta(d) for d in _ingest(tmp_path, _v2_dump(tmp_path / "v2.jsonl"))}
    assert (v2["org/mit"]["licenses"], v2["org/mit"]["license_type"]) == (["MIT"], "permissive")
    assert (v2["org/none"]["licenses"], v2["org/none"]["license_type"]) == ([], "no_license")
    assert "licenses" not in v2["org/bare"] and "license_type" not in v2["org/bare"]
    v1 = {doc_meta(d)["repo"]: doc_meta(d) for d in _ingest(tmp_path, _v1_dump(tmp_path / "v1.parquet"))}
    assert v1["org/dual"]["licenses"] == ["Apache-2.0", "MIT"]  # the union, sorted
    assert v1["org/gpl"]["licenses"] == ["GPL-3.0-only"] and "license_type" not in v1["org/gpl"]


def test_allow_list_drops_with_reason_license_and_counts_per_licence(tmp_path):
    docs = _ingest(tmp_path, _v2_dump(tmp_path / "v2.jsonl"))
    kept, dropped, funnel = clean_shard(docs, CodeSettings.model_validate({"licenses": {"allow": ["permissive"]}}))
    assert [doc_meta(d)["repo"] for d in kept] == ["org/mit"]
    details = {doc_meta(d)["repo"]: (d["reason"], d["detail"]) for d in dropped}
    assert details["org/none"] == ("license", "licences no_license: none in code.licenses.allow")
    assert details["org/bare"] == ("license", "licences unknown: none in code.licenses.allow")
    stats = funnel.to_dict()
    assert stats["read"] == stats["kept"] + sum(stats["dropped"].values()) == 3
    assert stats["dropped"] == {"license": 2}
    size = {doc_meta(d)["repo"]: len(d["text"].encode()) for d in docs}
    assert stats["license_table"] == {
        "MIT": {"files": 1, "bytes": size["org/mit"], "kept_files": 1, "kept_bytes": size["org/mit"]},
        "no_license": {"files": 1, "bytes": size["org/none"], "kept_files": 0, "kept_bytes": 0},
        "unknown": {"files": 1, "bytes": size["org/bare"], "kept_files": 0, "kept_bytes": 0},
    }
    assert REASONS.index("license") == REASONS.index("non_utf8") + 1  # right after the ingest errors


def test_any_allowed_licence_keeps_a_file_and_unknown_must_be_named(tmp_path):
    v1 = _ingest(tmp_path, _v1_dump(tmp_path / "v1.parquet"))
    kept, dropped, _ = clean_shard(v1, CodeSettings.model_validate({"licenses": {"allow": ["MIT"]}}))
    assert [doc_meta(d)["repo"] for d in kept] == ["org/dual"]  # MIT on its issues repository is enough
    assert [(doc_meta(d)["repo"], d["reason"]) for d in dropped] == [("org/gpl", "license")]
    assert "GPL-3.0-only" in dropped[0]["detail"]
    v2 = _ingest(tmp_path, _v2_dump(tmp_path / "v2.jsonl"))
    kept, _, _ = clean_shard(v2, CodeSettings.model_validate({"licenses": {"allow": ["MIT", "unknown"]}}))
    assert sorted(doc_meta(d)["repo"] for d in kept) == ["org/bare", "org/mit"]
    kept, dropped, funnel = clean_shard(v2, CodeSettings())  # allow null: every licence is kept
    assert len(kept) == 3 and not dropped and set(funnel.to_dict()["license_table"]) == {"MIT", "no_license", "unknown"}


def test_summary_merges_the_licence_tables(tmp_path):
    settings = CodeSettings.model_validate({"licenses": {"allow": ["permissive"]}})
    first = clean_shard(_ingest(tmp_path, _v2_dump(tmp_path / "v2.jsonl")), settings)[2].to_dict()
    second = clean_shard(_ingest(tmp_path, _v1_dump(tmp_path / "v1.parquet")), settings)[2].to_dict()
    summary = summarize_funnel([first, second])
    table = summary["license_table"]
    assert set(table) == {"Apache-2.0", "MIT", "GPL-3.0-only", "no_license", "unknown"}
    assert table["MIT"]["files"] == 2 and table["MIT"]["kept_files"] == 1  # v2's MIT kept, v1's dual dropped
    assert sum(row["kept_files"] for row in table.values()) == summary["kept"] == 1
    assert summary["dropped"]["license"] == 4
    sizes = [row["bytes"] for row in table.values()]
    assert sizes == sorted(sizes, reverse=True)  # largest first


def test_a_licence_field_of_the_wrong_type_names_the_file_and_row(tmp_path):
    dump = tmp_path / "bad.jsonl"
    row = {"repo_name": "org/x", "path": "a.py", "content": GOOD, "detected_licenses": "MIT"}
    dump.write_text(json.dumps(row) + "\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"bad\.jsonl: line 1: 'detected_licenses' is not a list of licence ids"):
        _ingest(tmp_path, dump)


def test_code_check_does_not_apply_the_allow_list_to_files_on_disk(tmp_path):
    from abacus_repro.code.pipeline import check_paths

    source = tmp_path / "mod.py"
    source.write_text("def double(x):\n    return 2 * x\n", encoding="utf-8")
    settings = CodeSettings(licenses={"allow": ["permissive"]})
    (decision,) = check_paths([source], settings)
    assert decision["kept"], decision
    assert decision["reason"] is None
