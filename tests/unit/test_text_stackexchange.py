"""StackExchange ingest: real dumps in both layouts, the shipped sample, corrupt input, HTML -> Markdown."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from abacus_repro.errors import InputError
from abacus_repro.ingest.html2md import html_to_markdown
from abacus_repro.ingest.stackexchange import ingest_stackexchange, parse_dump, parse_tags, site_from_path
from abacus_repro.settings import StackExchangeSettings

SAMPLE = "data/samples/stackexchange/python.sample.stackexchange.com.Posts.xml"
BIO = "stackexchange/bioinformatics.stackexchange.com.Posts.xml"
META = "stackexchange/datascience.meta.stackexchange.com.Posts.xml"


def _metas(docs):
    return [json.loads(d["meta"]) for d in docs]


def _check_accounting(stats):
    assert stats["read"] == stats["kept"] + sum(stats["dropped"].values())
    for site in stats["sites"].values():
        rows = site["rows"]
        assert rows["read"] == rows["questions"] + rows["answers"] + rows.get("other_types", 0) + rows.get(
            "malformed", 0
        )
        assert sum(rows["answers_detail"].values()) == rows["answers"]


@pytest.mark.parametrize(
    ("dump", "rows", "questions", "answers", "other", "tag_sample"),
    [
        (BIO, 1300, 419, 801, 80, "human-genome"),  # older layout: Tags="<a><b>", no ContentLicense
        (META, 624, 257, 341, 26, "feature-request"),  # 2024 layout: Tags="|a|b|", ContentLicense
    ],
)
def test_real_dumps_parse_with_counts_adding_up(shared_data, dump, rows, questions, answers, other, tag_sample):
    docs, dropped, stats = ingest_stackexchange(
        StackExchangeSettings(dumps=[str(shared_data / dump)], answers_per_question=2)
    )
    _check_accounting(stats)
    site = next(iter(stats["sites"].values()))
    assert (site["rows"]["read"], site["rows"]["questions"], site["rows"]["answers"]) == (rows, questions, answers)
    assert site["rows"]["other_types"] == other
    assert stats["read"] == questions  # every question row is one document or one dropped record
    assert len(docs) == stats["kept"] and len(dropped) == sum(stats["dropped"].values())
    assert {d["reason"] for d in dropped} <= {"no_answer", "empty_body", "malformed_row", "duplicate_id"}
    metas = _metas(docs)
    all_tags = [tag for meta in metas for tag in meta["tags"]]
    assert tag_sample in all_tags
    assert not any(c in tag for tag in all_tags for c in "<>|")  # both layouts parsed to plain names
    for doc, meta in zip(docs, metas, strict=True):
        assert 1 <= len(meta["answer_ids"]) <= 3  # accepted + up to 2 others
        assert doc["text"].startswith("# ") and "## " in doc["text"]
        if meta["accepted"]:
            assert "## Accepted answer" in doc["text"]


def test_real_dump_keeps_code_blocks(shared_data):
    docs, _, _ = ingest_stackexchange(StackExchangeSettings(dumps=[str(shared_data / BIO)]))
    with_code = [d for d, m in zip(docs, _metas(docs), strict=True) if m["has_code"]]
    assert len(with_code) > 100
    assert all("```" in d["text"] for d in with_code)


def test_sample_dump_funnel_and_both_tag_layouts():
    docs, _dropped, stats = ingest_stackexchange(StackExchangeSettings(dumps=[SAMPLE], answers_per_question=2))
    _check_accounting(stats)
    rows = stats["sites"]["python.sample.stackexchange.com"]["rows"]
    assert rows["questions"] == 61 and rows["answers"] == 121 and rows["other_types"] == 2
    assert rows["answers_detail"]["orphan"] == 1  # an answer whose question is not in the dump
    assert stats["dropped"] == {"empty_body": 1, "no_answer": 3}
    metas = _metas(docs)
    assert all("python" in m["tags"] for m in metas)  # angle-bracket tags (first half) and pipe tags (second)
    assert any(m["closed"] for m in metas) and any(m["score"] < 0 for m in metas)
    assert min(m["question_id"] for m in metas) > 0
    again, _, _ = ingest_stackexchange(StackExchangeSettings(dumps=[SAMPLE], answers_per_question=2))
    assert again == docs  # deterministic, ids included


def test_answers_accepted_first_then_best_scored(tmp_path):
    body = "&lt;p&gt;text&lt;/p&gt;"
    rows = [
        f'<row Id="1" PostTypeId="1" AcceptedAnswerId="3" Score="5" Title="Q" Body="{body}" Tags="|python|" />',
        f'<row Id="2" PostTypeId="2" ParentId="1" Score="10" Body="{body}" />',
        f'<row Id="3" PostTypeId="2" ParentId="1" Score="1" Body="{body}" />',
        f'<row Id="4" PostTypeId="2" ParentId="1" Score="7" Body="{body}" />',
        f'<row Id="5" PostTypeId="2" ParentId="1" Score="7" Body="{body}" />',
        f'<row Id="6" PostTypeId="2" ParentId="1" Score="-3" Body="{body}" />',
    ]
    path = tmp_path / "x.stackexchange.com.Posts.xml"
    path.write_text('\ufeff<?xml version="1.0" encoding="utf-8"?>\n<posts>\n' + "\n".join(rows) + "\n</posts>")
    docs, _, rows_stats = parse_dump(path, answers_per_question=2)
    meta = json.loads(docs[0]["meta"])
    assert meta["answer_ids"] == [3, 2, 4]  # accepted, then 10, then 7 (older post wins the tie)
    assert meta["accepted"] is True and meta["answer_count"] == 5
    assert rows_stats["answers_detail"]["not_chosen"] == 2


def test_malformed_rows_are_counted_not_lost(tmp_path):
    rows = [
        '<row Id="1" Score="1" Title="no type" Body="x" />',
        '<row Id="2" PostTypeId="1" Title="no score" Body="&lt;p&gt;x&lt;/p&gt;" />',
        '<row Id="3" PostTypeId="2" Score="1" Body="no parent" />',
        '<row Id="4" PostTypeId="1" Score="1" Title="fine" Body="&lt;p&gt;q&lt;/p&gt;" Tags="&lt;a&gt;" />',
        '<row Id="5" PostTypeId="2" ParentId="4" Score="1" Body="&lt;p&gt;a&lt;/p&gt;" />',
    ]
    path = tmp_path / "odd.Posts.xml"
    path.write_text("<posts>" + "".join(rows) + "</posts>", encoding="utf-8")
    _docs, dropped, stats = ingest_stackexchange(StackExchangeSettings(dumps=[str(path)]))
    _check_accounting(stats)
    assert stats["kept"] == 1 and stats["dropped"] == {"malformed_row": 2}
    assert stats["sites"]["odd"]["rows"]["answers_detail"]["malformed"] == 1
    assert sorted(d["detail"] for d in dropped) == ["missing PostTypeId", "missing Score"]


def test_truncated_xml_is_an_input_error_naming_the_file(tmp_path):
    data = Path(SAMPLE).read_bytes()
    path = tmp_path / "cut.stackexchange.com.Posts.xml"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError) as err:
        parse_dump(path, 2)
    assert str(path) in str(err.value) and "line" in str(err.value) and "column" in str(err.value)


@pytest.mark.parametrize(
    ("content", "problem"),
    [(b"", "empty"), (b"<users><row Id='1'/></users>", "expected <posts>"), (b"\xff\xfe<posts>", "line 1")],
)
def test_bad_dumps_are_input_errors(tmp_path, content, problem):
    path = tmp_path / "bad.Posts.xml"
    path.write_bytes(content)
    with pytest.raises(InputError, match=problem):
        parse_dump(path, 2)


def test_tags_and_site_names():
    assert parse_tags("<python><list-comprehension>") == ["python", "list-comprehension"]
    assert parse_tags("|python|list-comprehension|") == ["python", "list-comprehension"]
    assert parse_tags(None) == []
    assert site_from_path("dumps/python.stackexchange.com.Posts.xml") == "python.stackexchange.com"
    assert site_from_path("dumps/stackoverflow.com/Posts.xml") == "stackoverflow.com"


def test_html_to_markdown_keeps_code_exactly():
    html = (
        "<p>Use <code>x[::-1]</code> or <code>a `b`</code>, see <a href='https://docs.python.org'>docs</a>.</p>\n"
        '<pre class="lang-py prettyprint-override"><code>def f(a, b):\n    return a &lt; b  # &amp;\n\n'
        "print(f(1, 2))\n</code></pre>\n<ul><li>one</li><li><strong>two</strong></li></ul>"
        "<blockquote><p>quoted</p></blockquote><pre><code>$ pip install x\n</code></pre>"
    )
    md = html_to_markdown(html)
    assert "Use `x[::-1]` or `` a `b` ``, see [docs](https://docs.python.org)." in md
    assert "```python\ndef f(a, b):\n    return a < b  # &\n\nprint(f(1, 2))\n```" in md
    assert "- one\n\n- **two**" in md
    assert "> quoted" in md
    assert "```\n$ pip install x\n```" in md


def test_html_to_markdown_fence_survives_backticks_in_code():
    md = html_to_markdown("<pre><code>```\ninside\n```</code></pre>")
    assert md.startswith("````\n```\ninside\n```\n````")


def _expected_threads(path: Path, per_question: int) -> tuple[dict[int, list[int]], dict[int, str]]:
    """An independent oracle from a full DOM parse: question id -> the answer ids the recipe attaches.

    Answers with text, the accepted one first, then the best-scored others (ties: older post first). Also
    returns every post's HTML body by id.
    """
    import xml.etree.ElementTree as ET

    from abacus_repro.ingest.stackexchange import has_text

    questions, answers, bodies = {}, {}, {}
    for row in ET.parse(path).getroot().iter("row"):
        attrs = row.attrib
        bodies[int(attrs["Id"])] = attrs.get("Body", "")
        if attrs.get("PostTypeId") == "1" and has_text(attrs.get("Body", "")) and attrs.get("Title", "").strip():
            questions[int(attrs["Id"])] = attrs.get("AcceptedAnswerId")
        elif attrs.get("PostTypeId") == "2" and has_text(attrs.get("Body", "")):
            answers.setdefault(int(attrs["ParentId"]), []).append((int(attrs["Score"]), int(attrs["Id"])))
    expected = {}
    for qid, accepted in questions.items():
        pool = answers.get(qid, [])
        if not pool:
            continue
        first = [aid for _, aid in pool if str(aid) == accepted]
        rest = sorted((a for a in pool if str(a[1]) != accepted), key=lambda a: (-a[0], a[1]))
        chosen = first + [aid for _, aid in rest[:per_question]]
        if chosen:  # with per_question=0, a question without an accepted answer has nothing to attach
            expected[qid] = chosen
    return expected, bodies


@pytest.mark.parametrize("dump", [BIO, META])
@pytest.mark.parametrize("per_question", [0, 2])
def test_every_answered_question_comes_out_once_with_the_right_answers(shared_data, dump, per_question):
    """The issue's check on real site dumps: each question with answers exactly once, its answers attached."""
    path = shared_data / dump
    docs, dropped, stats = ingest_stackexchange(
        StackExchangeSettings(dumps=[str(path)], answers_per_question=per_question)
    )
    expected, bodies = _expected_threads(path, per_question)
    metas = _metas(docs)
    got = {meta["question_id"]: meta["answer_ids"] for meta in metas}
    assert len(got) == len(docs) == len({d["id"] for d in docs})  # exactly once
    assert got == expected  # every answered question, with exactly the answers the rule picks
    for doc, meta in zip(docs, metas, strict=True):
        position = doc["text"].index(html_to_markdown(bodies[meta["question_id"]]))
        for answer_id in meta["answer_ids"]:  # each chosen answer's text, in order, after the question
            position = doc["text"].index(html_to_markdown(bodies[answer_id]), position)
    _check_accounting(stats)
    site = next(iter(stats["sites"].values()))
    assert stats["read"] == site["rows"]["questions"] == len(docs) + len(dropped)
    assert site["rows"]["answers_detail"]["used"] == sum(len(ids) for ids in expected.values())
    no_answer = {int(json.loads(d["meta"])["question_id"]) for d in dropped if d["reason"] == "no_answer"}
    assert no_answer.isdisjoint(expected) and len(no_answer) == stats["dropped"].get("no_answer", 0)


def _seven_zip(path: Path, members: dict[str, bytes | Path], **kwargs) -> Path:
    py7zr = pytest.importorskip("py7zr")
    with py7zr.SevenZipFile(path, "w", **kwargs) as archive:
        for name, content in members.items():
            if isinstance(content, Path):
                archive.write(content, name)
            else:
                archive.writestr(content, name)
    return path


def test_site_7z_archive_is_read_straight_from_the_archive(tmp_path):
    """The official layout: python.sample.stackexchange.com.7z holding Posts.xml beside the other tables."""
    archive = _seven_zip(
        tmp_path / "python.sample.stackexchange.com.7z",
        {"Badges.xml": b"<badges />", "Posts.xml": Path(SAMPLE), "Users.xml": b"<users />"},
    )
    plain = ingest_stackexchange(StackExchangeSettings(dumps=[SAMPLE]))
    packed = ingest_stackexchange(StackExchangeSettings(dumps=[str(archive)]))
    assert packed[0] == plain[0] and packed[1] == plain[1]  # same documents, same ids, same drops
    assert list(packed[2]["sites"]) == ["python.sample.stackexchange.com"]
    assert (
        packed[2]["sites"]["python.sample.stackexchange.com"]["rows"]
        == plain[2]["sites"]["python.sample.stackexchange.com"]["rows"]
    )
    assert site_from_path("dumps/stackoverflow.com-Posts.7z") == "stackoverflow.com"


def test_broken_7z_archives_are_input_errors(tmp_path):
    sample = Path(SAMPLE).read_bytes()
    good = _seven_zip(tmp_path / "a.stackexchange.com.7z", {"Posts.xml": sample}).read_bytes()
    cases = {
        "truncated.7z": (good[: len(good) // 2], "not a readable 7z archive"),
        "empty.7z": (b"", "empty"),
    }
    for name, (content, problem) in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(InputError, match=problem) as err:
            parse_dump(tmp_path / name, 2)
        assert name in str(err.value)
    no_posts = _seven_zip(tmp_path / "b.7z", {"Users.xml": b"<users />"})
    with pytest.raises(InputError, match=r"no Posts.xml \(members: Users.xml\)"):
        parse_dump(no_posts, 2)
    cut = _seven_zip(tmp_path / "c.7z", {"Posts.xml": sample[:5000]})
    with pytest.raises(InputError, match=r"c.7z:Posts.xml: corrupt or truncated XML at line \d+, column \d+"):
        parse_dump(cut, 2)
    # Stored uncompressed, one flipped byte decodes fine but fails the member's CRC at its end.
    py7zr = pytest.importorskip("py7zr")
    stored = _seven_zip(tmp_path / "d.7z", {"Posts.xml": sample}, filters=[{"id": py7zr.FILTER_COPY}])
    stored = bytearray(stored.read_bytes())
    stored[stored.index(b"virtualenv vs venv")] ^= 0x20
    (tmp_path / "d.7z").write_bytes(bytes(stored))
    with pytest.raises(InputError, match="d.7z: 7z archive is corrupt or truncated in Posts.xml .*Crc"):
        parse_dump(tmp_path / "d.7z", 2)


def test_streamed_parquet_output_equals_the_lists(tmp_path):
    from abacus_repro.ingest.stackexchange import ingest_stackexchange_to_files
    from abacus_repro.io import read_docs

    docs, dropped, stats = ingest_stackexchange(StackExchangeSettings(dumps=[SAMPLE]))
    streamed = ingest_stackexchange_to_files(
        StackExchangeSettings(dumps=[SAMPLE]), tmp_path / "qa.parquet", tmp_path / "dropped.parquet"
    )
    assert streamed == stats
    assert read_docs(tmp_path / "qa.parquet") == docs
    kept_again = tmp_path / "again.parquet"
    ingest_stackexchange_to_files(StackExchangeSettings(dumps=[SAMPLE]), kept_again, tmp_path / "dropped2.parquet")
    assert kept_again.read_bytes() == (tmp_path / "qa.parquet").read_bytes()  # byte-identical re-run
    assert [{k: d[k] for k in ("id", "reason", "detail")} for d in read_docs(tmp_path / "dropped.parquet")] == [
        {k: d[k] for k in ("id", "reason", "detail")} for d in dropped
    ]
    with pytest.raises(InputError, match="does-not-exist"):
        ingest_stackexchange_to_files(
            StackExchangeSettings(dumps=["does-not-exist.Posts.xml"]), tmp_path / "x.parquet", tmp_path / "y.parquet"
        )
    assert not (tmp_path / "x.parquet").exists() and not list(tmp_path.glob("*.tmp"))


def test_answers_before_their_question_and_duplicate_answer_rows(tmp_path):
    body = "&lt;p&gt;text&lt;/p&gt;"
    rows = [
        f'<row Id="9" PostTypeId="2" ParentId="5" Score="3" Body="{body}" />',  # before its question
        f'<row Id="9" PostTypeId="2" ParentId="5" Score="3" Body="{body}" />',  # the same answer twice
        f'<row Id="5" PostTypeId="1" Score="1" Title="Q" Body="{body}" Tags="|a|" />',
        f'<row Id="7" PostTypeId="2" ParentId="999" Score="1" Body="{body}" />',  # orphan, parent after all
        f'<row Id="8" PostTypeId="2" ParentId="1" Score="1" Body="{body}" />',  # orphan, parent before all
    ]
    path = tmp_path / "order.stackexchange.com.Posts.xml"
    path.write_text("<posts>" + "".join(rows) + "</posts>", encoding="utf-8")
    docs, _, rows_stats = parse_dump(path, 2)
    assert [json.loads(d["meta"])["answer_ids"] for d in docs] == [[9]]
    assert rows_stats["answers_detail"] == {
        "used": 1,
        "not_chosen": 0,
        "orphan": 2,
        "parent_unknown_post_type": 0,
        "empty_body": 0,
        "malformed": 0,
        "duplicate_id": 1,
    }
