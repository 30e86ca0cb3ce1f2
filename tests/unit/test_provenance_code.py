"""The code fingerprint follows a script's imports into the package by content; git state names dirty files."""

from __future__ import annotations

import os
import subprocess

import pytest

from abacus_repro.provenance.code import changed_files, code_fingerprint, code_version, fingerprint_digest_of

from ..conftest import REPO_ROOT


@pytest.fixture
def checkout(tmp_path):
    """scripts/run.py -> abacus_repro.stage.api -> (relative) .helpers -> abacus_repro.io; other.py unused."""
    pkg = tmp_path / "src/abacus_repro"
    (pkg / "stage").mkdir(parents=True)
    files = {
        "src/abacus_repro/__init__.py": "",
        "src/abacus_repro/io.py": "def read():\n    return 1\n",
        "src/abacus_repro/other.py": "X = 1\n",
        "src/abacus_repro/stage/__init__.py": "",
        "src/abacus_repro/stage/api.py": "from .helpers import helper\n\n\ndef run():\n    return helper()\n",
        "src/abacus_repro/stage/helpers.py": "def helper():\n    from ..io import read  # a late import counts too\n"
        "    return read()\n",
        "src/abacus_repro/stage/rubric.txt": "score 1-5\n",
        "scripts/run.py": "import json\n\nfrom abacus_repro.stage.api import run\n\nrun()\n",
    }
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    return tmp_path


def _fingerprint(root):
    return code_fingerprint(root / "scripts/run.py", root / "src", root)


def test_fingerprint_covers_script_imports_and_package_data(checkout):
    fp = _fingerprint(checkout)
    assert fp["script"] == "scripts/run.py"
    assert set(fp["files"]) == {
        "scripts/run.py",
        "src/abacus_repro/__init__.py",
        "src/abacus_repro/io.py",
        "src/abacus_repro/stage/__init__.py",
        "src/abacus_repro/stage/api.py",
        "src/abacus_repro/stage/helpers.py",
        "src/abacus_repro/stage/rubric.txt",
    }
    assert fp["digest"].startswith("code-sha256:") and len(fp["digest"]) == len("code-sha256:") + 64


def test_fingerprint_changes_with_content_only(checkout):
    before = _fingerprint(checkout)
    helper = checkout / "src/abacus_repro/stage/helpers.py"
    stat = helper.stat()
    os.utime(helper, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # touched, not changed
    assert _fingerprint(checkout)["digest"] == before["digest"]
    (checkout / "src/abacus_repro/other.py").write_text("X = 2\n")  # not imported by the script
    assert _fingerprint(checkout)["digest"] == before["digest"]
    helper.write_text(helper.read_text() + "# edited\n")
    after = _fingerprint(checkout)
    assert after["digest"] != before["digest"]
    assert changed_files(before["files"], after["files"]) == ["src/abacus_repro/stage/helpers.py"]
    (checkout / "src/abacus_repro/stage/rubric.txt").write_text("score 1-10\n")
    assert changed_files(after["files"], _fingerprint(checkout)["files"]) == ["src/abacus_repro/stage/rubric.txt"]


def test_fingerprint_does_not_depend_on_where_the_checkout_lives(checkout, tmp_path_factory):
    other = tmp_path_factory.mktemp("elsewhere")
    subprocess.run(["cp", "-a", f"{checkout}/.", str(other)], check=True)
    assert _fingerprint(other)["digest"] == _fingerprint(checkout)["digest"]


def test_real_rule_scripts_reach_their_stage_modules():
    train = code_fingerprint(REPO_ROOT / "workflow/scripts/train.py", REPO_ROOT / "src", REPO_ROOT)
    assert "src/abacus_repro/pretrain/trainer.py" in train["files"]
    assert "src/abacus_repro/logging_setup.py" in train["files"]
    assert not any("/export/" in f for f in train["files"])
    judge = code_fingerprint(REPO_ROOT / "workflow/scripts/text_judge.py", REPO_ROOT / "src", REPO_ROOT)
    assert "src/abacus_repro/text/judge_rubric.txt" in judge["files"]


def test_fingerprint_is_found_among_recorded_params():
    assert fingerprint_digest_of({"seed": 7, "code": "code-sha256:abc", "settings": {"a": 1}}) == "code-sha256:abc"
    assert fingerprint_digest_of({"seed": 7}) is None and fingerprint_digest_of(None) is None


def _git(root, *args):
    subprocess.run(
        ["git", *args],
        cwd=root,
        check=True,
        capture_output=True,
        env=dict(
            os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t"
        ),
    )


def test_code_version_names_dirty_files(checkout):
    assert code_version(checkout)["git_commit"] is None  # not a checkout: unknown, not clean
    assert code_version(checkout)["dirty"] is None
    _git(checkout, "init", "-q")
    _git(checkout, "add", ".")
    _git(checkout, "commit", "-qm", "init")
    clean = code_version(checkout / "scripts")  # from a subdirectory too
    assert len(clean["git_commit"]) == 40 and clean["dirty"] is False and clean["dirty_files"] == []
    (checkout / "src/abacus_repro/io.py").write_text("changed\n")
    (checkout / "src/abacus_repro/new.py").write_text("new\n")  # untracked code counts
    (checkout / "notes.txt").write_text("not code\n")  # outside the code directories: ignored
    dirty = code_version(checkout)
    assert dirty["dirty"] is True
    assert dirty["dirty_files"] == ["src/abacus_repro/io.py", "src/abacus_repro/new.py"]
