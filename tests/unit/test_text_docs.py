"""Docs ingest and filter: the shipped sample pages and real pages from the shared docs corpus."""

from __future__ import annotations

import json
import tarfile

import pytest

from abacus_repro.cli import main as cli_main
from abacus_repro.errors import InputError
from abacus_repro.ingest.docs import ingest_docs
from abacus_repro.io import make_doc, write_docs
from abacus_repro.settings import DocsSettings
from abacus_repro.text.docs_filter import check_page, filter_docs, markdown_blocks, parses_as_python, rst_blocks

SAMPLES = "data/samples/docs"
EXPECTED_SAMPLES = {  # file: (kept, reason, language)
    "en_pathlib_recipes.md": (True, "", "en"),
    "en_logging_setup.rst": (True, "", "en"),
    "en_itertools_doctests.rst": (True, "", "en"),  # only >>> doctest blocks
    "en_myst_config_loading.md": (True, "", "en"),  # MyST ```{code-block} python
    "zh_dataclasses_guide.md": (True, "", "zh"),
    "zh_json_literal_blocks.rst": (True, "", "zh"),  # only :: literal blocks
    "mixed_bilingual_readme.md": (True, "", "mixed"),
    "en_install_shell_only.md": (False, "no_python_code", "en"),
    "de_einfuehrung_listen.md": (False, "language", "de"),
    "fr_guide_dictionnaires.rst": (False, "language", "fr"),
    "short_note.md": (False, "too_short", "und"),
}
CORPUS_PAGES = {  # path inside docs_corpus/: (kept, reason, language)
    "requests/docs/user/quickstart.rst": (True, "", "en"),  # Python only in :: literal blocks and >>>
    "requests/docs/user/install.rst": (False, "no_python_code", "en"),  # shell only
    "flask/docs/deploying/waitress.rst": (False, "no_python_code", "en"),
    "flask/docs/deploying/eventlet.rst": (False, "too_short", "und"),
    "mmengine/docs/zh_cn/tutorials/hook.md": (True, "", "zh"),
    "mmengine/docs/en/tutorials/hook.md": (True, "", "en"),
    "mmengine/docs/en/api/hub.rst": (False, "language", "und"),  # an autodoc stub: no prose to judge
    "mmcv/README_zh-CN.md": (False, "no_python_code", "zh"),  # its code blocks are all shell
}


@pytest.fixture(scope="module")
def corpus(shared_data, tmp_path_factory):
    archive = shared_data / "docs_corpus.tar.gz"
    if not archive.is_file():
        pytest.skip(f"{archive} not found")
    target = tmp_path_factory.mktemp("docs_corpus")
    with tarfile.open(archive) as tar:
        members = [tar.getmember(f"docs_corpus/{name}") for name in CORPUS_PAGES]
        tar.extractall(target, members=members, filter="data")
    return target / "docs_corpus"


def _sample_files(repo_root):
    return sorted((repo_root / SAMPLES).glob("*.*"))


def test_sample_pages_decisions(repo_root):
    files = _sample_files(repo_root)
    assert {f.name for f in files} == set(EXPECTED_SAMPLES)
    for path in files:
        fmt = "rst" if path.suffix == ".rst" else "md"
        decision = check_page(path.read_text(encoding="utf-8"), fmt, DocsSettings())
        assert (decision.keep, decision.reason, decision.language) == EXPECTED_SAMPLES[path.name], path.name
        if decision.keep:
            assert sum(decision.python_blocks.values()) > 0


@pytest.mark.parametrize("name", sorted(CORPUS_PAGES))
def test_real_corpus_pages(corpus, name):
    path = corpus / name
    decision = check_page(path.read_text(encoding="utf-8"), "rst" if path.suffix == ".rst" else "md", DocsSettings())
    assert (decision.keep, decision.reason, decision.language) == CORPUS_PAGES[name], decision.to_dict()


def test_literal_and_doctest_blocks_found_in_real_rst(corpus):
    text = (corpus / "requests/docs/user/quickstart.rst").read_text(encoding="utf-8")
    decision = check_page(text, "rst", DocsSettings())
    assert decision.python_blocks["literal"] >= 10 and decision.python_blocks.get("doctest", 0) >= 1


def test_ingest_then_filter_accounts_for_every_page(repo_root, tmp_path):
    from_code = tmp_path / "from_code.parquet"
    pages = [
        make_doc(
            "# Tool\n\nA tool.\n\n```python\nimport os\nprint(os.sep)\n```\n" + "It prints things. " * 20,
            "docs",
            {"repo": "tool", "path": "README.md", "format": "markdown"},
        ),
        make_doc("Plain readme without code. " * 20, "docs", {"repo": "tool", "path": "README", "format": "text"}),
    ]
    write_docs(from_code, pages + [dict(pages[0], id="copy-of-readme")])
    settings = DocsSettings(sample_dir=str(repo_root / SAMPLES), from_code_repos=True)
    docs, stats = ingest_docs(from_code, _sample_files(repo_root), settings)
    assert stats["read"] == stats["kept"] == len(docs) == len(EXPECTED_SAMPLES) + 3
    assert stats["by_origin_format"]["code_repos/md"] == 2
    assert json.loads(docs[0]["meta"])["path"] == "de_einfuehrung_listen.md"  # relative to the sample dir

    kept, dropped, funnel = filter_docs(docs, DocsSettings(languages=["zh", "en", "mixed"], min_chars=200))
    assert funnel["read"] == len(docs) == len(kept) + len(dropped)
    assert funnel["dropped"]["duplicate"] == 1
    assert funnel["dropped"]["no_python_code"] == 2  # the shell-only sample and the plain readme
    assert funnel["kept_by_language"] == {"en": 5, "mixed": 1, "zh": 2}
    assert all(json.loads(d["meta"])["python_blocks"] for d in kept)
    assert all(d["reason"] and d["detail"] for d in dropped)

    samples_only = settings.model_copy(update={"from_code_repos": False})
    only_samples, _ = ingest_docs(from_code, _sample_files(repo_root), samples_only)
    assert len(only_samples) == len(EXPECTED_SAMPLES)


def test_bad_sample_pages_are_input_errors(tmp_path):
    latin1 = tmp_path / "page.md"
    latin1.write_bytes("Größe".encode("latin-1"))
    with pytest.raises(InputError, match="not UTF-8"):
        ingest_docs(None, [latin1], DocsSettings(sample_dir=None))
    empty = tmp_path / "empty.rst"
    empty.write_text("  \n")
    with pytest.raises(InputError, match="empty"):
        ingest_docs(None, [empty], DocsSettings(sample_dir=None))


@pytest.mark.parametrize("code", ["import os", "x: int = 1", "def f():\n    return 1", "print('hi')", "a = [1]"])
def test_python_detection_accepts_real_statements(code):
    assert parses_as_python(code)


@pytest.mark.parametrize("code", ["ls", "make html", "pip install mmcv", '{"a": [1, 2]}', "key: value", "$ python x"])
def test_python_detection_rejects_shell_json_yaml(code):
    assert not parses_as_python(code)


def test_block_extraction_markdown_and_rst():
    md_blocks, prose = markdown_blocks("text\n\n~~~py\nx = 1\n~~~\n\n````{note}\ninner\n````\nend")
    assert [(b.language, b.text) for b in md_blocks] == [("py", "x = 1")]
    assert "inner" in prose and "x = 1" not in prose
    rst = ".. highlight:: python\n\nExample::\n\n    y = 2\n\n.. code-block:: bash\n   :caption: c\n\n   ls\n"
    blocks, prose = rst_blocks(rst)
    assert [(b.kind, b.language, b.text) for b in blocks] == [
        ("literal", "python", "y = 2"),
        ("directive", "bash", "ls"),
    ]
    assert "Example" in prose


def test_cli_docs_check_prints_the_decision(repo_root, capsys):
    assert cli_main(["text", "docs-check", str(repo_root / SAMPLES / "short_note.md")]) == 0
    decision = json.loads(capsys.readouterr().out)
    assert decision["keep"] is False and decision["reason"] == "too_short"
