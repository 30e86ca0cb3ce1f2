"""The whole code stage on small repositories: ingest -> shards -> cleaning funnel -> stats, plot and CLI."""

import gzip
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from pydantic import ValidationError

from abacus_repro.code import REASONS, check_paths, clean_shard
from abacus_repro.code.funnel import funnel_markdown, plot_funnel, summarize_funnel
from abacus_repro.code.pipeline import clean_files
from abacus_repro.config import REPO_ROOT
from abacus_repro.errors import InputError
from abacus_repro.ingest.code import ingest_code, shard_of
from abacus_repro.io import doc_meta, read_docs, write_docs
from abacus_repro.settings import CodeSettings

GOOD = "import os\n\n\ndef f():\n    return os.sep\n"

# repository -> {path: content (str, or bytes written as-is)}
REPOS = {
    "alpha": {
        "alpha/__init__.py": "from .core import run\n",
        "alpha/core.py": "from . import util\n\n\ndef run():\n    return util.helper()\n",
        "alpha/util.py": "def helper():   \n    return 1\n\n\n\n\n",  # trailing spaces, blank lines: fixed
        "alpha/old.py": 'print "python 2"\n',
        "alpha/broken.py": "def f(:\n    pass\n",
        "alpha/latin1.py": b"# caf\xe9\nx = 1\n",
        "alpha/nul.py": b"x = 1\x00\n",
        "alpha/empty.py": "",
        "README.md": "# Alpha\n\nA package.\n",
    },
    "beta": {
        "beta/copy_of_good.py": GOOD,
        "beta/good.py": GOOD.replace("\n\n\n", "\n\n\n\n"),  # same code, other whitespace: a duplicate
        "beta/undefined.py": "def f():\n    return nowhere\n",
        "beta/star.py": "from os.path import *\n\n\ndef f():\n    return join(sep, 'x')\n",
        "beta/data.py": 'ICON = "' + "QUJDRGVmZ2gxMjM0NTY3OA" * 20 + '"\n',
        "beta/repeat.py": "".join("value = compute_something(1)\n" for _ in range(30)),
        "docs/guide.rst": "Guide\n=====\n\nText.\n",
    },
    "gamma": {
        "gamma.py": GOOD + "\n\nVERSION = 1\n",
        "tests/test_gamma.py": "import gamma\n\n\ndef test():\n    assert gamma.f()\n",
    },
}


def code_settings(section: dict) -> CodeSettings:
    """The ``code:`` section a run with these keys gets (every other key at its default)."""
    return CodeSettings.model_validate(section)


def make_repos(root: Path) -> Path:
    for repo, files in REPOS.items():
        for rel, content in files.items():
            path = root / repo / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content, encoding="utf-8")
    return root


def run_stage(tmp_path: Path, out: str, shards=2, **code):
    settings = code_settings(
        {
            "source": "repos_dir",
            "path": str(make_repos(tmp_path / "repos")),
            "max_file_bytes": 10_000,
            "ruff_batch_size": 3,
            **code,
        },
    )
    out_dir = tmp_path / out
    shard_paths = [out_dir / f"shard-{i}.parquet" for i in range(shards)]
    ingest_stats = ingest_code(settings, shards, 7, shard_paths, out_dir / "docs.parquet", out_dir / "stats.json")
    parts = []
    for i, path in enumerate(shard_paths):
        kept, dropped, funnel = clean_shard(read_docs(path), settings)
        write_docs(out_dir / f"kept-{i}.parquet", kept)
        write_docs(out_dir / f"dropped-{i}.parquet", dropped, dropped=True)
        parts.append(funnel.to_dict())
    return out_dir, ingest_stats, parts


def test_funnel_reasons_and_counts_add_up(tmp_path):
    out, ingest_stats, parts = run_stage(tmp_path, "a")
    assert ingest_stats["repositories"] == 3
    assert ingest_stats["docs_found"] == 2
    stats = summarize_funnel(parts)
    assert stats["read"] == sum(ingest_stats["files_per_shard"]) == 16
    assert stats["read"] == stats["kept"] + sum(stats["dropped"].values())
    dropped = [row for i in range(2) for row in read_docs(out / f"dropped-{i}.parquet")]
    by_path = {doc_meta(row)["path"]: row["reason"] for row in dropped}
    assert by_path == {
        "alpha/old.py": "python2",
        "alpha/broken.py": "syntax_error",
        "alpha/latin1.py": "non_utf8",
        "alpha/nul.py": "nul_bytes",
        "alpha/empty.py": "empty",
        "beta/good.py": "duplicate",  # copy_of_good.py comes first in path order and is kept
        "beta/undefined.py": "undefined_name",
        "beta/data.py": "data_dense",
        "beta/repeat.py": "repetitive",
    }
    assert Counter(by_path.values()) == Counter(stats["dropped"])
    assert stats["star_import_unjudged"] == 1
    assert stats["fixed_files"] >= 1
    assert [step["step"] for step in stats["steps"]] == list(REASONS)
    assert stats["steps"][-1]["remaining"] == stats["kept"] == 7
    assert stats["dropped_fraction"]["python2"] == pytest.approx(1 / 16)
    by_step = {row["step"]: row for row in stats["recipe_steps_vs_paper"]}
    assert by_step["syntax_error + python2"]["ours"] == pytest.approx(2 / 16)
    assert by_step["kept"] == {"step": "kept", "ours": 7 / 16, "paper": 0.86}
    plot_funnel(stats, out / "funnel.png")
    assert (out / "funnel.png").read_bytes()[:4] == b"\x89PNG"


def test_kept_files_are_fixed_and_in_dependency_order(tmp_path):
    out, _, _ = run_stage(tmp_path, "a")
    kept = [row for i in range(2) for row in read_docs(out / f"kept-{i}.parquet")]
    alpha = [(doc_meta(r)["order"], doc_meta(r)["path"], r["text"]) for r in kept if doc_meta(r)["repo"] == "alpha"]
    assert [path for _, path, _ in sorted(alpha)] == ["alpha/util.py", "alpha/core.py", "alpha/__init__.py"]
    util = next(text for _, path, text in alpha if path == "alpha/util.py")
    assert util == "def helper():\n    return 1\n"
    gamma = sorted((doc_meta(r)["order"], doc_meta(r)["path"]) for r in kept if doc_meta(r)["repo"] == "gamma")
    assert gamma == [(0, "gamma.py"), (1, "tests/test_gamma.py")]


def test_repository_output_concatenates_files_with_path_headers(tmp_path):
    out, _, parts = run_stage(tmp_path, "r", repo_output="repo")
    kept = {doc_meta(r)["repo"]: r for i in range(2) for r in read_docs(out / f"kept-{i}.parquet")}
    assert set(kept) == {"alpha", "beta", "gamma"}
    text = kept["alpha"]["text"]
    assert (
        text.index("# path: alpha/util.py\n")
        < text.index("# path: alpha/core.py\n")
        < text.index("# path: alpha/__init__.py\n")
    )
    assert sum(p["output_documents"] for p in parts) == 3
    assert sum(p["kept"] for p in parts) == 7


def test_sharding_keeps_each_repository_together(tmp_path):
    out, _, _ = run_stage(tmp_path, "s", shards=3)
    seen = {}
    for i in range(3):
        for row in read_docs(out / f"shard-{i}.parquet"):
            repo = doc_meta(row)["repo"]
            assert seen.setdefault(repo, i) == i
            assert shard_of(repo, 3) == i
    assert set(seen) == set(REPOS)


def test_every_shard_is_written_even_when_empty(tmp_path):
    out, stats, parts = run_stage(tmp_path, "e", shards=8)
    assert all((out / f"shard-{i}.parquet").exists() for i in range(8))
    assert 0 in stats["files_per_shard"]
    empty = parts[stats["files_per_shard"].index(0)]
    assert empty["read"] == empty["kept"] == 0


def test_two_runs_are_byte_identical(tmp_path):
    first, _, _ = run_stage(tmp_path, "one")
    second, _, _ = run_stage(tmp_path, "two")
    names = sorted(p.name for p in first.iterdir())
    assert names == sorted(p.name for p in second.iterdir())
    for name in names:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_sampling_is_seeded(tmp_path):
    settings = code_settings(
        {"source": "repos_dir", "path": str(make_repos(tmp_path / "repos")), "max_repos": 2, "max_files_per_repo": 2},
    )
    runs = []
    for name in ("x", "y"):
        out = tmp_path / name
        stats = ingest_code(settings, 1, 3, [out / "s.parquet"], out / "d.parquet", out / "st.json")
        runs.append([doc_meta(r)["path"] for r in read_docs(out / "s.parquet")])
        assert stats["repositories"] == 2 and stats["files"] <= 4
    assert runs[0] == runs[1]


def test_stack_dump_source_and_broken_line(tmp_path):
    rows = [
        {"content": GOOD, "max_stars_repo_name": "org/one", "max_stars_repo_path": "a.py", "lang": "Python"},
        {"content": 'print "x"\n', "repo_name": "org/two", "path": "b.py", "lang": "Python"},
        {
            "content": "# Title\n",
            "max_stars_repo_name": "org/one",
            "max_stars_repo_path": "README.md",
            "lang": "Markdown",
        },
        {"content": "int main;", "max_stars_repo_name": "org/one", "max_stars_repo_path": "m.c", "lang": "C"},
    ]
    dump = tmp_path / "dump.jsonl.gz"
    with gzip.open(dump, "wt", encoding="utf-8") as handle:
        handle.writelines(json.dumps(row) + "\n" for row in rows)
    out = tmp_path / "out"
    stats = ingest_code(
        code_settings({"source": "stack_dump", "path": str(dump)}),
        1,
        1,
        [out / "s.parquet"],
        out / "d.parquet",
        out / "st.json",
    )
    assert stats["repositories"] == 2 and stats["files"] == 2 and stats["docs_found"] == 1
    kept, dropped, _funnel = clean_shard(read_docs(out / "s.parquet"), CodeSettings())
    assert [r["reason"] for r in dropped] == ["python2"] and len(kept) == 1
    broken = tmp_path / "broken.jsonl"
    broken.write_text(json.dumps(rows[0]) + "\n{not json\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"broken\.jsonl: line 2 is not valid JSON"):
        ingest_code(
            code_settings({"source": "stack_dump", "path": str(broken)}),
            1,
            1,
            [out / "s.parquet"],
            out / "d.parquet",
            out / "st.json",
        )


def test_python_installation_source_finds_stdlib_repositories():
    from abacus_repro.ingest.code import installation_roots, repositories_in_root

    label, root = installation_roots()[0]
    repos = {repo.name: repo for repo in repositories_in_root(label, root)}
    assert "stdlib/json" in repos and "stdlib/_modules" in repos
    assert not any(name.startswith("stdlib/site-packages") for name in repos)


def test_python_installation_takes_only_the_named_site_packages():
    """Installing another dependency must not change the default corpus: only code.packages are taken."""
    from abacus_repro.ingest.code import installation_repositories

    names = {repo.name for repo in installation_repositories(["yaml", "idna"])}
    assert {name for name in names if name.startswith("site-packages/")} == {"site-packages/yaml", "site-packages/idna"}
    assert "stdlib/json" in names
    assert not any(name.startswith("site-packages/") for name in (r.name for r in installation_repositories([])))
    with pytest.raises(InputError, match=r"code\.packages.*not_a_package"):
        installation_repositories(["yaml", "not_a_package"])


def test_check_paths_gives_the_workflow_decision(tmp_path):
    repos = make_repos(tmp_path / "repos")
    decisions = {Path(d["path"]).name: d for d in check_paths([repos / "alpha"], CodeSettings())}
    assert decisions["old.py"]["reason"] == "python2" and not decisions["old.py"]["kept"]
    assert decisions["nul.py"]["reason"] == "nul_bytes"
    assert decisions["util.py"]["kept"] and decisions["util.py"]["reason"] is None
    assert "README.md" not in decisions


def test_cli_prints_one_json_line_per_file(tmp_path):
    repos = make_repos(tmp_path / "repos")
    targets = [repos / "beta" / "beta" / "undefined.py", repos / "beta" / "beta" / "star.py"]
    completed = subprocess.run(
        [sys.executable, "-m", "abacus_repro.cli", "code", "check", *map(str, targets)],
        capture_output=True,
        text=True,
        check=True,
    )
    lines = [json.loads(line) for line in completed.stdout.splitlines()]
    assert [set(line) for line in lines] == [{"path", "kept", "reason", "detail"}] * 2
    assert lines[0]["reason"] == "undefined_name" and "nowhere" in lines[0]["detail"]
    assert lines[1]["kept"] is True and "not judged" in lines[1]["detail"]
    missing = subprocess.run(
        [sys.executable, "-m", "abacus_repro.cli", "code", "check", str(tmp_path / "nope.py")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert missing.returncode == 2 and "nope.py" in missing.stderr


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("max_line_lenght: 10", "code: Additional properties are not allowed ('max_line_lenght' was unexpected)"),
        ("max_line_length: many", "code.max_line_length: 'many' is not of type 'integer'"),
    ],
)
def test_cli_config_names_a_misspelt_key_or_a_wrong_type(tmp_path, line, message):
    config = (REPO_ROOT / "config" / "config.yaml").read_text(encoding="utf-8")
    assert "\n  repo_output: files\n" in config
    path = tmp_path / "config.yaml"
    path.write_text(config.replace("\n  repo_output: files\n", f"\n  {line}\n"), encoding="utf-8")
    completed = subprocess.run(
        [sys.executable, "-m", "abacus_repro.cli", "code", "check", "--config", str(path), str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 2 and message in completed.stderr and "Traceback" not in completed.stderr


def test_funnel_refuses_counts_that_do_not_add_up():
    with pytest.raises(AssertionError):
        summarize_funnel([{"read": 3, "kept": 1, "dropped": {"empty": 1}}])


def test_stack_dump_parquet_directory(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    dumps = tmp_path / "dumps"
    dumps.mkdir()
    table = pa.table(
        {"content": [GOOD, "x = undefined_thing\n"], "repo_name": ["org/p", "org/p"], "path": ["p/a.py", "p/b.py"]}
    )
    pq.write_table(table, dumps / "part-0.parquet")
    out = tmp_path / "out"
    stats = ingest_code(
        code_settings({"source": "stack_dump", "path": str(dumps)}),
        2,
        1,
        [out / "s0.parquet", out / "s1.parquet"],
        out / "d.parquet",
        out / "st.json",
    )
    assert stats["files"] == 2 and stats["files_per_shard"][shard_of("org/p", 2)] == 2
    docs = read_docs(out / f"s{shard_of('org/p', 2)}.parquet")
    kept, dropped, _funnel = clean_shard(docs, CodeSettings())
    assert [doc_meta(r)["path"] for r in dropped] == ["p/b.py"] and dropped[0]["reason"] == "undefined_name"
    assert [doc_meta(r)["path"] for r in kept] == ["p/a.py"]


def test_settings_take_the_whole_code_section_and_name_bad_values():
    settings = CodeSettings.model_validate({"source": "repos_dir", "path": "x", "max_blob_chars": 99})
    assert settings.max_blob_chars == 99
    with pytest.raises(ValidationError, match="repo_output"):
        CodeSettings.model_validate({"repo_output": "tarball"})


def test_same_path_twice_with_different_content_keeps_both():
    from abacus_repro.io import make_doc

    docs = [make_doc(GOOD + f"\nX = {i}\n", "code", {"repo": "r", "path": "m.py"}, id=f"id{i}") for i in range(2)]
    docs.append(make_doc(GOOD + "\nX = 0\n", "code", {"repo": "r", "path": "m.py"}, id="id9"))
    kept, dropped, funnel = clean_shard(docs, CodeSettings())
    assert sorted(doc["id"] for doc in kept) == ["id0", "id1"]
    assert [(row["id"], row["reason"]) for row in dropped] == [("id9", "duplicate")]
    assert funnel.to_dict()["kept"] == len(kept) == 2


def test_check_reads_python_files_as_python_does(tmp_path):
    # A PEP 263 coding line makes Latin-1 bytes valid source (much Python 2 code is Latin-1); without one they
    # are non_utf8. Syntax newer than this interpreter (PEP 695) is Python 3 when ruff's parser accepts it.
    (tmp_path / "latin1_py2.py").write_bytes(b"# -*- coding: latin-1 -*-\nprint 'caf\xe9'\n")
    (tmp_path / "latin1_plain.py").write_bytes(b"# caf\xe9\nx = 1\n")
    (tmp_path / "generic.py").write_text("def first[T](items: list[T]) -> T:\n    return items[0]\n", encoding="utf-8")
    # Python 3.14 reads this as two exception types (PEP 758); at the 3.13 target it is Python 2.
    (tmp_path / "except_comma.py").write_text("try:\n    pass\nexcept ValueError, err:\n    pass\n", encoding="utf-8")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "skipped.py").write_text("x = 1\n", encoding="utf-8")
    (tmp_path / "link.py").symlink_to(tmp_path / "generic.py")
    decisions = {Path(d["path"]).name: d for d in check_paths([tmp_path], CodeSettings())}
    assert set(decisions) == {"latin1_py2.py", "latin1_plain.py", "generic.py", "except_comma.py"}
    assert decisions["latin1_py2.py"]["reason"] == "python2"
    assert decisions["latin1_plain.py"]["reason"] == "non_utf8"
    assert decisions["generic.py"]["kept"] and "ruff" in decisions["generic.py"]["detail"]
    assert decisions["except_comma.py"]["reason"] == "python2"
    # A symlink named explicitly is read.
    assert check_paths([tmp_path / "link.py"], CodeSettings())[0]["kept"]


def test_decode_source_honours_coding_lines_for_python_only():
    from abacus_repro.ingest.code import decode_source

    raw = b"# -*- coding: latin-1 -*-\nname = 'caf\xe9'\n"
    assert decode_source(raw, 1000, python_source=True) == ("# -*- coding: latin-1 -*-\nname = 'café'\n", None, "")
    assert decode_source(raw, 1000)[1] == "non_utf8"  # docs and The Stack's (already decoded) text: UTF-8 only
    wrong = b"# coding: ascii\nname = 'caf\xe9'\n"
    _text, error, detail = decode_source(wrong, 1000, python_source=True)
    assert error == "non_utf8" and "ascii" in detail
    assert decode_source(b"\xef\xbb\xbfx = 1\n", 1000, python_source=True) == ("x = 1\n", None, "")


# code.steps: each switch off -> (reasons that must vanish, paths those reasons dropped, now kept).
STEPS_OFF = {
    "exact_dedup": ({"duplicate"}, {"beta/good.py"}),
    "syntax": ({"python2", "syntax_error"}, {"alpha/old.py", "alpha/broken.py"}),
    # repeat.py then reaches F821 (compute_something is defined nowhere): the later step still judges it.
    "content": ({"data_dense", "repetitive"}, {"beta/data.py"}),
    "undefined_names": ({"undefined_name"}, {"beta/undefined.py"}),
    "ruff_fixes": (set(), set()),
    "dependency_order": (set(), set()),
}


def kept_by_path(out: Path, shards=2) -> dict[str, dict]:
    return {doc_meta(row)["path"]: row for i in range(shards) for row in read_docs(out / f"kept-{i}.parquet")}


@pytest.mark.parametrize("step", sorted(STEPS_OFF))
def test_a_step_switched_off_judges_nothing_and_the_stats_say_so(tmp_path, step):
    reasons, now_kept = STEPS_OFF[step]
    out, _, parts = run_stage(tmp_path, "off", steps={step: False})
    stats = summarize_funnel(parts)
    assert stats["read"] == stats["kept"] + sum(stats["dropped"].values()) == 16
    assert stats["kept"] == 7 + len(now_kept)
    assert not reasons & set(stats["dropped"])
    assert now_kept <= set(kept_by_path(out))
    assert stats["steps_off"] == [step] and all(part["steps_off"] == [step] for part in parts)
    assert {row["step"] for row in stats["steps"] if row.get("off")} == reasons
    table = funnel_markdown({**stats, "near_dedup": {"enabled": False}})
    assert f"Steps switched off (config `code.steps` and others): {step}." in table
    assert all(f"| {reason} (off) | 0 |" in table for reason in reasons)


def test_syntax_off_keeps_unparsed_files_unjudged_and_untouched(tmp_path):
    out, _, parts = run_stage(tmp_path, "off", steps={"syntax": False})
    stats = summarize_funnel(parts)
    assert stats["syntax_unjudged"] == 2  # old.py and broken.py: no parser accepts them
    kept = kept_by_path(out)
    assert kept["alpha/broken.py"]["text"] == REPOS["alpha"]["alpha/broken.py"]
    assert doc_meta(kept["alpha/old.py"])["imports"] == []


def test_ruff_fixes_off_leaves_the_text_as_read(tmp_path):
    out, _, parts = run_stage(tmp_path, "off", steps={"ruff_fixes": False})
    assert sum(part["fixed_files"] for part in parts) == 0
    assert kept_by_path(out)["alpha/util.py"]["text"] == REPOS["alpha"]["alpha/util.py"]
    assert sum(part["star_import_unjudged"] for part in parts) == 1  # F821 still ran


def test_dependency_order_off_keeps_path_order_and_the_imports(tmp_path):
    out, _, parts = run_stage(tmp_path, "off", steps={"dependency_order": False})
    alpha = sorted((doc_meta(r)["order"], path) for path, r in kept_by_path(out).items() if path.startswith("alpha/"))
    assert [path for _, path in alpha] == ["alpha/__init__.py", "alpha/core.py", "alpha/util.py"]
    assert doc_meta(kept_by_path(out)["alpha/core.py"])["imports"] == ["alpha/util.py"]
    assert all("import_cycles_broken" not in part for part in parts)
    # Rule code_clean's stats do not depend on the later steps' switches (its job is the same for both variants).
    shard = tmp_path / "off" / "shard-0.parquet"
    _, _, funnel = clean_files(read_docs(shard), code_settings({"steps": {"dependency_order": False}}))
    assert "steps_off" not in funnel.to_dict()


def test_the_recipe_names_no_step_off(tmp_path):
    _, _, parts = run_stage(tmp_path, "on")
    stats = summarize_funnel(parts)
    assert "steps_off" not in stats and all("steps_off" not in part for part in parts)
    assert all("off" not in row for row in stats["steps"])
    assert all("syntax_unjudged" not in part for part in parts)
