"""Near-duplicate removal (code/near_dedup.py) with real datasketch MinHash on real standard-library files: the
estimate against the exact shingle Jaccard, and a planted corpus through the rule entries code_clean ->
code_minhash -> code_lsh -> code_near_clusters -> code_finish."""

from __future__ import annotations

import math
import sysconfig
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from abacus_repro.code.funnel import run_code_funnel
from abacus_repro.code.near_dedup import (
    NearDedupJob,
    band_groups,
    estimated_jaccard,
    minhash_template,
    run_code_lsh,
    run_code_minhash,
    run_code_near_clusters,
    shingles,
    signature,
)
from abacus_repro.code.pipeline import (
    clean_files,
    clean_shard,
    cleaned_documents,
    finish_shard,
    run_code_clean,
    run_code_finish,
)
from abacus_repro.errors import InputError
from abacus_repro.io import doc_meta, make_doc, read_docs, read_json, write_docs
from abacus_repro.rules import RulePaths
from abacus_repro.settings import CodeSettings, NearDedupSettings, NoSettings

STDLIB = Path(sysconfig.get_paths()["stdlib"])
SEED = 1234


def stdlib_text(name: str) -> str:
    return (STDLIB / name).read_text(encoding="utf-8")


def exact_jaccard(a: str, b: str, ngram: int = 5) -> float:
    sa, sb = shingles(a, ngram), shingles(b, ngram)
    return len(sa & sb) / len(sa | sb)


def with_comment_lines(text: str, every: int, tag: str) -> str:
    """``text`` with a comment line of new words after every ``every``-th line (never after a line continued
    by a backslash), so the copy stays valid Python with fewer shared shingles the smaller ``every`` is."""
    out = []
    for number, line in enumerate(text.splitlines(keepends=True), 1):
        out.append(line)
        if number % every == 0 and not line.rstrip("\n").endswith("\\"):
            out.append(f"# {tag} planted edit number {number} words\n")
    return "".join(out)


def edited_copy(text: str, at_most: float, tag: str) -> tuple[str, float]:
    """The least edited copy whose exact Jaccard to ``text`` is at most ``at_most`` (and that Jaccard)."""
    for every in range(60, 0, -1):
        copy = with_comment_lines(text, every, tag)
        similarity = exact_jaccard(text, copy)
        if similarity <= at_most:
            return copy, similarity
    raise AssertionError(f"no copy of Jaccard <= {at_most}")


def test_shingles_are_word_ngrams_of_code_tokens():
    assert shingles("def f(x_1):\n    return x_1+2", 3) == {
        b"def f x_1",
        b"f x_1 return",
        b"x_1 return x_1",
        b"return x_1 2",
    }
    assert shingles("import os", 5) == {b"import os"}  # fewer tokens than n: one shingle of all


@pytest.mark.parametrize("name", ["textwrap.py", "shlex.py", "calendar.py"])
def test_estimate_is_within_three_sigma_of_exact_jaccard(name):
    job = NearDedupJob(seed=SEED, near_dedup=NearDedupSettings())
    template = minhash_template(job)
    num_perm = job.near_dedup.num_perm
    text = stdlib_text(name)
    for target in (0.95, 0.8, 0.6, 0.4, 0.2):
        copy, exact = edited_copy(text, target, "sigma")
        estimate = estimated_jaccard(signature(text, template, 5), signature(copy, template, 5), template)
        sigma = math.sqrt(exact * (1 - exact) / num_perm)
        assert abs(estimate - exact) <= 3 * sigma, (name, target, exact, estimate, sigma)


# --------------------------------------------------------------------------------------------- planted corpus


def planted_shards() -> tuple[list[list[dict]], dict[str, str]]:
    """Two shards of real files and near copies; returns the shards and, for each file expected to be dropped,
    the repo/path of the file kept in its place.

    - textwrap.py (alpha, shard 0) and a copy at Jaccard ~0.9 (beta, shard 1): the copy goes, alpha's stays;
    - shlex.py (alpha, shard 0), a copy at ~0.9 (zeta, shard 0: same shard) and one at ~0.45 (beta, shard 1): the
      first copy goes, the far one stays;
    - fnmatch.py (omega, shard 0) and a copy at ~0.9 (aardvark, shard 1): aardvark comes first in repository
      order, so the copy stays and the original goes;
    - colorsys.py (beta) alone: stays.
    """
    textwrap, shlex, fnmatch = stdlib_text("textwrap.py"), stdlib_text("shlex.py"), stdlib_text("fnmatch.py")
    near_textwrap, j1 = edited_copy(textwrap, 0.92, "tw")
    near_shlex, j2 = edited_copy(shlex, 0.92, "sh")
    far_shlex, j3 = edited_copy(shlex, 0.45, "far")
    near_fnmatch, j4 = edited_copy(fnmatch, 0.92, "fn")
    assert min(j1, j2, j4) >= 0.85 and j3 <= 0.45

    def doc(repo: str, path: str, text: str) -> dict:
        return make_doc(text, "code", {"repo": repo, "path": path}, id=f"{repo}:{path}")

    shard0 = [
        doc("alpha", "textwrap.py", textwrap),
        doc("alpha", "shlex.py", shlex),
        doc("zeta", "shlex_copy.py", near_shlex),
        doc("omega", "fnmatch.py", fnmatch),
    ]
    shard1 = [
        doc("beta", "textwrap2.py", near_textwrap),
        doc("beta", "shlex_far.py", far_shlex),
        doc("beta", "colorsys.py", stdlib_text("colorsys.py")),
        doc("aardvark", "fnmatch_copy.py", near_fnmatch),
    ]
    expected = {
        "beta/textwrap2.py": "alpha/textwrap.py",
        "zeta/shlex_copy.py": "alpha/shlex.py",
        "omega/fnmatch.py": "aardvark/fnmatch_copy.py",
    }
    return [shard0, shard1], expected


def run_near_dedup(root: Path, shards: list[list[dict]], near_dedup: dict) -> Path:
    """The code rules' entries, in DAG order, on ``shards`` under ``root`` (paths as the workflow names them)."""
    code = CodeSettings.model_validate({"near_dedup": near_dedup})
    job = NearDedupJob(seed=SEED, near_dedup=code.near_dedup)
    out = root / "results/code"
    signatures = [str(out / f"near_dedup/signatures/{i}.parquet") for i in range(len(shards))]
    groups = range(code.near_dedup.bucket_jobs)
    candidates = [str(out / f"near_dedup/candidates/{g}.parquet") for g in groups]
    for i, docs in enumerate(shards):
        write_docs(root / f"ingest/shard-{i}.parquet", docs)
        shard_dir = out / f"shards/{i}"
        run_code_clean(
            code,
            RulePaths(
                input={"shard": str(root / f"ingest/shard-{i}.parquet")},
                output={
                    "cleaned": str(shard_dir / "cleaned.parquet"),
                    "dropped": str(shard_dir / "dropped.parquet"),
                    "stats": str(shard_dir / "clean_stats.json"),
                },
                wildcards={"shard": str(i)},
            ),
        )
        if code.near_dedup.enabled:
            run_code_minhash(
                job,
                RulePaths(
                    input={"cleaned": str(shard_dir / "cleaned.parquet")},
                    output={"signatures": signatures[i]},
                    wildcards={"shard": str(i)},
                ),
            )
    if code.near_dedup.enabled:
        for g in groups:
            run_code_lsh(
                code.near_dedup,
                RulePaths(
                    input={"signatures": signatures},
                    output={"candidates": candidates[g]},
                    wildcards={"group": str(g)},
                ),
            )
    inputs = {"signatures": signatures, "candidates": candidates} if code.near_dedup.enabled else {}
    clusters = {"clusters": str(out / "near_dedup/clusters.parquet"), "stats": str(out / "near_dedup/stats.json")}
    run_code_near_clusters(job, RulePaths(input=inputs, output=clusters))
    for i in range(len(shards)):
        shard_dir = out / f"shards/{i}"
        run_code_finish(
            code,
            RulePaths(
                input={
                    "cleaned": str(shard_dir / "cleaned.parquet"),
                    "stats": str(shard_dir / "clean_stats.json"),
                    "clusters": clusters["clusters"],
                },
                output={
                    "kept": str(shard_dir / "kept.parquet"),
                    "near_dropped": str(shard_dir / "near_dropped.parquet"),
                    "stats": str(shard_dir / "stats.json"),
                },
                wildcards={"shard": str(i)},
            ),
        )
    return out


def _name(row: dict) -> str:
    """repo/path of a document or a dropped record."""
    meta = doc_meta(row)
    return f"{meta['repo']}/{meta['path']}"


@pytest.fixture(scope="module")
def planted():
    return planted_shards()


def test_planted_near_copies_above_the_threshold_are_dropped(tmp_path, planted):
    shards, expected = planted
    out = run_near_dedup(tmp_path, shards, {"bucket_jobs": 2})
    dropped = {_name(row): row for i in range(2) for row in read_docs(out / f"shards/{i}/near_dropped.parquet")}
    assert set(dropped) == set(expected)
    for name, row in dropped.items():
        assert row["reason"] == "near_duplicate"
        assert f"kept {expected[name]} " in row["detail"] and "estimated Jaccard 0." in row["detail"]
    kept = {_name(row) for i in range(2) for row in read_docs(out / f"shards/{i}/kept.parquet")}
    assert kept == {_name(doc) for docs in shards for doc in docs} - set(expected)
    for i in range(2):
        stats = read_json(out / f"shards/{i}/stats.json")
        assert stats["read"] == len(shards[i]) == stats["kept"] + sum(stats["dropped"].values())
        assert stats["read_bytes"] == stats["kept_bytes"] + sum(stats["dropped_bytes"].values())
        assert stats["read_bytes"] == sum(len(doc["text"].encode("utf-8")) for doc in shards[i])
        assert stats["dropped"].get("near_duplicate", 0) == sum(_name(doc) in expected for doc in shards[i])
    near = read_json(out / "near_dedup/stats.json")
    assert near["files_dropped"] == 3 and near["cluster_size_histogram"] == {"2": 3} and near["seed"] == SEED
    assert near["bytes_dropped"] == sum(
        len(doc["text"].encode()) for s in shards for doc in s if _name(doc) in expected
    )


def test_funnel_shows_files_and_bytes_per_reason_and_the_cluster_sizes(tmp_path, planted):
    shards, expected = planted
    out = run_near_dedup(tmp_path, shards, {"bucket_jobs": 2})
    outputs = {
        "stats": str(out / "stats.json"),
        "table": str(out / "funnel.md"),
        "plot": str(out / "funnel.png"),
        "clusters_plot": str(out / "near_dedup/cluster_sizes.png"),
    }
    inputs = {
        "stats": [str(out / f"shards/{i}/stats.json") for i in range(2)],
        "near_dedup": str(out / "near_dedup/stats.json"),
    }
    stats = run_code_funnel(NoSettings(), RulePaths(input=inputs, output=outputs))
    last = stats["steps"][-1]
    assert last["step"] == "near_duplicate" and last["dropped"] == len(expected)
    assert last["remaining"] == stats["kept"] and last["remaining_bytes"] == stats["kept_bytes"]
    assert last["dropped_bytes"] == stats["near_dedup"]["bytes_dropped"] > 0
    assert stats["read_bytes"] == stats["kept_bytes"] + sum(step["dropped_bytes"] for step in stats["steps"])
    for name in ("plot", "clusters_plot"):
        assert Path(outputs[name]).read_bytes()[:4] == b"\x89PNG"
    table = Path(outputs["table"]).read_text(encoding="utf-8")
    near_row = next(line for line in table.splitlines() if line.startswith("| near_duplicate |"))
    assert near_row.split("|")[2].strip() == str(len(expected))
    histogram = stats["near_dedup"]["cluster_size_histogram"]
    for size, count in histogram.items():
        assert f"| {size} | {count} |" in table
    assert "| unknown |" in table  # the planted files carry no licence fields


def test_one_or_two_band_groups_give_identical_clusters(tmp_path, planted):
    shards, _expected = planted
    one = run_near_dedup(tmp_path / "one", shards, {"bucket_jobs": 1})
    two = run_near_dedup(tmp_path / "two", shards, {"bucket_jobs": 2})
    clusters = "near_dedup/clusters.parquet"
    assert (one / clusters).read_bytes() == (two / clusters).read_bytes()
    assert pq.read_table(one / clusters).num_rows == 6
    for i in range(2):
        assert (one / f"shards/{i}/kept.parquet").read_bytes() == (two / f"shards/{i}/kept.parquet").read_bytes()


def test_disabled_drops_nothing_and_matches_the_one_job_cleaning(tmp_path, planted):
    shards, _expected = planted
    out = run_near_dedup(tmp_path, shards, {"enabled": False})
    assert read_json(out / "near_dedup/stats.json")["enabled"] is False
    for i, docs in enumerate(shards):
        assert read_docs(out / f"shards/{i}/near_dropped.parquet") == []
        # The split into code_clean and code_finish changes no byte of what the one-job cleaning kept.
        kept, _dropped, funnel = clean_shard(docs, CodeSettings(near_dedup={"enabled": False}))
        write_docs(tmp_path / f"one_job_{i}.parquet", kept)
        assert (out / f"shards/{i}/kept.parquet").read_bytes() == (tmp_path / f"one_job_{i}.parquet").read_bytes()
        stats = read_json(out / f"shards/{i}/stats.json")
        assert {k: v for k, v in stats.items() if k != "shard"} == funnel.to_dict()
        assert stats["steps_off"] == ["near_dedup"]  # the funnel says the step was off, not that it found nothing


def test_band_groups_split_every_band_once():
    for bands in (1, 7, 25):
        for jobs in range(1, bands + 1):
            groups = band_groups(bands, jobs)
            assert [b for g in groups for b in g] == list(range(bands)) and len(groups) == jobs


def test_stale_or_foreign_inputs_are_errors_naming_the_file():
    code = CodeSettings()
    source = "import os\n\n\ndef f():\n    return os.sep\n"
    kept, _dropped, funnel = clean_files([make_doc(source, "code", {"repo": "r", "path": "a.py"}, id="a")], code)
    cleaned = cleaned_documents(kept)
    stale = {0: {"id": "b", "bytes": 1, "cluster": 0, "kept_repo": "r", "kept_path": "x.py", "kept_id": "x"}}
    with pytest.raises(InputError, match=r"^cleaned\.parquet: row 0 is a, the near-duplicate clusters name b"):
        finish_shard(cleaned, stale, funnel.to_dict(), code, "cleaned.parquet")
    ingested = [make_doc(source, "code", {"repo": "r", "path": "a.py"}, id="a")]
    with pytest.raises(InputError, match=r"^kept\.parquet: document a lacks meta _clean"):
        finish_shard(ingested, {}, funnel.to_dict(), code, "kept.parquet")
