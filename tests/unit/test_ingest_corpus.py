"""Math from document corpora: OpenWebMath-like Parquet, algebraic-stack-like .jsonl.zst, .jsonl.gz and plain
JSON Lines, streamed into one document shard; every record counted, bad files named, ids stable, and the rule
wired through Snakemake with the corpus files as its inputs."""

from __future__ import annotations

import copy
import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
import zstandard
from snakemake.utils import validate

from abacus_repro.errors import InputError
from abacus_repro.ingest import corpus as corpus_module
from abacus_repro.ingest.corpus import CorpusReader, corpus_files, corpus_specs
from abacus_repro.ingest.math import ingest_math, write_math
from abacus_repro.io import content_id, doc_meta, read_docs
from abacus_repro.settings import MathSettings, MixtureSettings

from ..conftest import REPO_ROOT, micro_config

SCHEMA = REPO_ROOT / "workflow/schemas/config.schema.yaml"
THEOREM = "Theorem. For every prime $p > 2$, $p$ is odd. Proof: an even number greater than 2 has the factor 2."


def resolved_math(math: dict) -> MathSettings:
    """The math section as the workflow sees it: validated by the schema, which fills every default."""
    config = micro_config()
    config["math"] = copy.deepcopy(math)
    validate(config, str(SCHEMA))
    return MathSettings.model_validate(config["math"])


def owm_text(i: int) -> str:
    return f"# Page {i}\nLet $x_{i} = {i}^2$. Then $x_{i} = {i * i}$, and {THEOREM} (page {i})"


def write_owm_shard(path: Path, start: int, n: int) -> None:
    """OpenWebMath's layout: url, text, date, metadata (a JSON string)."""
    rows = {
        "url": [f"https://math.example.org/q/{i}" for i in range(start, start + n)],
        "text": [owm_text(i) for i in range(start, start + n)],
        "date": [f"2023-0{1 + i % 9}-1{i % 10}T00:00:00Z" for i in range(start, start + n)],
        "metadata": [json.dumps({"extraction_info": {"found_math": True}, "score": i / 100}) for i in range(n)],
    }
    pq.write_table(pa.table(rows), path, row_group_size=7)  # several row groups per shard


def stack_text(i: int) -> str:
    return f"theorem add_comm_{i} (a b : ℕ) : a + b = b + a := by\n  exact Nat.add_comm a b  -- lemma {i}\n"


def stack_line(i: int) -> bytes:
    """algebraic-stack's layout: text plus a meta object."""
    meta = {"max_stars_repo_path": f"Mathlib/Lemma{i}.lean", "max_stars_count": i}
    return json.dumps({"text": stack_text(i), "meta": meta}, ensure_ascii=False).encode() + b"\n"


def write_zst(path: Path, lines: list[bytes], frames: int = 1) -> None:
    """Several zstd frames when asked, as pzstd writes them."""
    compressor = zstandard.ZstdCompressor(level=3)
    step = max(1, -(-len(lines) // frames))
    path.write_bytes(b"".join(compressor.compress(b"".join(lines[i : i + step])) for i in range(0, len(lines), step)))


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpora")
    owm = root / "open-web-math" / "data"
    owm.mkdir(parents=True)
    write_owm_shard(owm / "train-00001-of-00002.parquet", 20, 20)
    write_owm_shard(owm / "train-00000-of-00002.parquet", 0, 20)
    (owm / "README.md").write_text("not a shard")
    stack = root / "proof-pile-2" / "algebraic-stack" / "train"
    stack.mkdir(parents=True)
    write_zst(stack / "algebraic-stack-train-0000.jsonl.zst", [stack_line(i) for i in range(15)], frames=3)
    write_zst(stack / "algebraic-stack-train-0001.jsonl.zst", [stack_line(i) for i in range(15, 30)])
    gz = root / "extra.jsonl.gz"
    with gzip.open(gz, "wb") as handle:
        handle.writelines(json.dumps({"content": f"Lemma {i}: {THEOREM}", "doc_id": f"x{i}"}).encode() + b"\n"
                          for i in range(8))  # fmt: skip
    return root


def paper_like_math(root: Path, **extra) -> dict:
    return {
        "source": "corpus",
        "corpus": [
            {"name": "open-web-math", "path": str(root / "open-web-math/data/*.parquet"), "format": "parquet",
             "text_field": "text", "id_field": "url", "meta_fields": ["url", "date"]},
            {"name": "algebraic-stack", "path": str(root / "proof-pile-2/algebraic-stack/train"),
             "meta_fields": ["meta"]},
            {"name": "extra", "path": str(root / "extra.jsonl.gz"), "text_field": "content", "id_field": "doc_id",
             **extra},
        ],
    }  # fmt: skip


def test_three_layouts_in_one_shard(corpora, tmp_path):
    stats = write_math(resolved_math(paper_like_math(corpora)), 0, tmp_path / "math.parquet")
    docs = read_docs(tmp_path / "math.parquet")
    assert stats["read"] == stats["kept"] == len(docs) == 40 + 30 + 8 and stats["dropped"] == {}
    assert {name: s["kept"] for name, s in stats["corpora"].items()} == {
        "open-web-math": 40, "algebraic-stack": 30, "extra": 8}  # fmt: skip
    assert stats["corpora"]["open-web-math"]["files"] == 2  # README.md is not a shard
    # Corpora in config order, files in sorted order, records in file order.
    assert [d["text"] for d in docs[:40]] == [owm_text(i) for i in range(40)]
    assert [d["text"] for d in docs[40:70]] == [stack_text(i) for i in range(30)]
    assert docs[70]["text"].startswith("Lemma 0:") and {d["source"] for d in docs} == {"math"}
    first = doc_meta(docs[0])
    assert first == {"corpus": "open-web-math", "origin": str(corpora / "open-web-math/data/train-00000-of-00002.parquet"),
                     "record": 1, "url": "https://math.example.org/q/0", "date": "2023-01-10T00:00:00Z"}  # fmt: skip
    stack = doc_meta(docs[40])
    assert stack["meta"] == {"max_stars_repo_path": "Mathlib/Lemma0.lean", "max_stars_count": 0}
    assert stack["origin"].endswith("algebraic-stack-train-0000.jsonl.zst") and stack["record"] == 1
    # Ids: from the source id within its corpus, else from the text.
    assert docs[0]["id"] == content_id("math", "open-web-math", "https://math.example.org/q/0")
    assert docs[40]["id"] == content_id("math", stack_text(0))
    assert docs[70]["id"] == content_id("math", "extra", "x0") and len({d["id"] for d in docs}) == 78


def test_output_is_byte_identical_across_runs(corpora, tmp_path):
    math = resolved_math(paper_like_math(corpora))
    first = write_math(math, 0, tmp_path / "a" / "math.parquet")
    second = write_math(math, 99, tmp_path / "b" / "math.parquet")  # the seed plays no part in reading a corpus
    assert (tmp_path / "a/math.parquet").read_bytes() == (tmp_path / "b/math.parquet").read_bytes()
    assert first == second


def test_rule_inputs_may_be_directories(corpora, tmp_path):
    """The rule hands each corpus's inputs over; a directory a rule made (the rehearsal's stand-ins) is expanded."""
    math = resolved_math(paper_like_math(corpora))
    write_math(math, 0, tmp_path / "by_config.parquet")
    inputs = [[str(corpora / "open-web-math/data")], [str(corpora / "proof-pile-2")], [str(corpora / "extra.jsonl.gz")]]
    write_math(math, 0, tmp_path / "by_inputs.parquet", corpus_files=inputs)
    assert (tmp_path / "by_inputs.parquet").read_bytes() == (tmp_path / "by_config.parquet").read_bytes()


def test_small_row_groups_give_the_same_documents(corpora, tmp_path, monkeypatch):
    """Streaming: tiny read chunks and row groups (lines split across chunks and zstd frames) change nothing."""
    math = resolved_math(paper_like_math(corpora))
    write_math(math, 0, tmp_path / "big.parquet")
    monkeypatch.setattr(corpus_module, "READ_CHUNK_BYTES", 7)
    monkeypatch.setattr(corpus_module, "PARQUET_BATCH_ROWS", 3)
    monkeypatch.setattr(corpus_module, "WRITE_GROUP_DOCS", 5)
    write_math(math, 0, tmp_path / "small.parquet")
    assert pq.ParquetFile(tmp_path / "small.parquet").num_row_groups == 16
    assert read_docs(tmp_path / "small.parquet") == read_docs(tmp_path / "big.parquet")


def write_messy_jsonl(path: Path) -> None:
    lines = [
        json.dumps({"text": f"Good document one. {THEOREM}"}).encode(),
        b'{"text": "broken line, no closing brace"',
        json.dumps({"text": "   \n "}).encode(),
        json.dumps({"body": "the text is under another field"}).encode(),
        b'{"text": "caf\xe9 in Latin-1"}',
        json.dumps(["not", "an", "object"]).encode(),
        json.dumps({"text": 42}).encode(),
        json.dumps({"text": "short"}).encode(),
        b"",  # a blank line is no record
        json.dumps({"text": f"Good document one. {THEOREM}"}).encode(),  # the same text again
        json.dumps({"text": "lone \ud800 surrogate in JSON escapes " + THEOREM}).encode(),
        json.dumps({"text": f"Good document two. {THEOREM}"}).encode(),
    ]
    path.write_bytes(b"\n".join(lines))  # no newline after the last line


def test_every_bad_record_is_counted_and_named(tmp_path):
    path = tmp_path / "messy.jsonl"
    write_messy_jsonl(path)
    math = resolved_math({"source": "corpus", "corpus": [{"name": "messy", "path": str(path), "min_chars": 20}]})
    docs, stats = ingest_math(math, seed=0)
    assert [d["text"][:18] for d in docs] == ["Good document one.", "Good document two."]
    messy = stats["corpora"]["messy"]
    assert messy["dropped"] == {"bad_json": 1, "empty_text": 1, "missing_field": 1, "not_utf8": 2,
                                "not_an_object": 1, "text_not_string": 1, "too_short": 1, "duplicate": 1}  # fmt: skip
    assert messy["read"] == 11 == messy["kept"] + sum(messy["dropped"].values())
    assert stats["read"] == 11 and stats["kept"] == 2
    assert messy["examples"]["bad_json"] == [f"{path}:2: Expecting ',' delimiter at column 41"]
    assert messy["examples"]["missing_field"] == [f"{path}:4: no 'text' field"]
    assert messy["examples"]["not_utf8"] == [
        f"{path}:5: invalid UTF-8 at byte 13",
        f"{path}:11: text holds a lone surrogate",
    ]
    assert messy["examples"]["duplicate"][0].startswith(f"{path}:10: id ")


def test_a_corpus_that_keeps_nothing_names_its_key(tmp_path):
    path = tmp_path / "wrong_field.jsonl"
    path.write_text("".join(json.dumps({"content": THEOREM + str(i)}) + "\n" for i in range(3)))
    math = resolved_math({"source": "corpus", "corpus": [{"name": "w", "path": str(path)}]})
    with pytest.raises(InputError, match=r"math\.corpus\[0\].*'missing_field': 3"):
        ingest_math(math, seed=0)


def test_parquet_without_the_text_column_is_refused(corpora):
    math = paper_like_math(corpora)
    math["corpus"][0]["text_field"] = "content"
    with pytest.raises(
        InputError,
        match=r"train-00000-of-00002\.parquet: has no column 'content' "
        r"\(math\.corpus\[0\]\.text_field\); its columns are \['url', 'text'",
    ):
        ingest_math(resolved_math(math), seed=0)


@pytest.mark.parametrize(
    ("name", "make", "message"),
    [
        ("cut.jsonl.gz", lambda p: p.write_bytes(gzip.compress(b"".join(stack_line(i) for i in range(200)))[:-40]),
         r"truncated gzip stream.*read \d+ complete lines"),
        ("plain.jsonl.gz", lambda p: p.write_bytes(stack_line(0)), r"not gzip-compressed although named \.gz"),
        ("cut.jsonl.zst", lambda p: write_zst(p, [stack_line(i) for i in range(200)]) or
         p.write_bytes(p.read_bytes()[:-30]), "truncated zstd stream: the file ends inside a frame"),
        ("plain.jsonl.zst", lambda p: p.write_bytes(stack_line(0)), r"not zstd-compressed although named \.zst"),
        ("broken.parquet", lambda p: p.write_bytes(b"PAR1 not really"), "not a readable Parquet file"),
    ],
)  # fmt: skip
def test_broken_files_are_input_errors_naming_the_file(tmp_path, name, make, message):
    path = tmp_path / name
    make(path)
    math = resolved_math({"source": "corpus", "corpus": [{"name": "x", "path": str(path)}]})
    with pytest.raises(InputError, match=message) as caught:
        write_math(math, 0, tmp_path / "out" / "math.parquet")
    assert caught.value.path == str(path)
    assert not (tmp_path / "out" / "math.parquet").exists() and not list((tmp_path / "out").glob("*.tmp"))


def test_caps_stop_reading_in_file_order(corpora):
    math = paper_like_math(corpora)
    math["corpus"][0]["max_documents"] = 25
    math["corpus"][1]["max_chars"] = 3 * len(stack_text(0)) + 1
    docs, stats = ingest_math(resolved_math(math), seed=0)
    owm, stack = stats["corpora"]["open-web-math"], stats["corpora"]["algebraic-stack"]
    assert owm["kept"] == owm["read"] == 25 and owm["capped"] == "max_documents" and owm["files_read"] == 2
    assert stack["kept"] == 4 and stack["capped"] == "max_chars" and stack["files_read"] == 1
    assert stats["corpora"]["extra"]["capped"] is None
    assert [d["text"] for d in docs[:25]] == [owm_text(i) for i in range(25)]
    assert docs == ingest_math(resolved_math(math), seed=0)[0]


def test_paths_expand_to_sorted_files(corpora):
    by_glob = corpus_files(str(corpora / "open-web-math/data/*.parquet"), "k", "auto")
    by_dir = corpus_files(str(corpora / "open-web-math"), "k", "auto")
    assert by_glob == by_dir == sorted(by_glob) and len(by_glob) == 2
    (corpora / "proof-pile-2/.cache").mkdir(exist_ok=True)
    (corpora / "proof-pile-2/.cache/partial.jsonl.zst").write_bytes(b"")
    assert len(corpus_files(str(corpora / "proof-pile-2"), "k", "auto")) == 2  # hidden download caches are skipped
    with pytest.raises(InputError, match=r"config math\.corpus\[1\]\.path: .*matches files"):
        corpus_files(str(corpora / "nowhere"), "math.corpus[1].path", "auto")
    with pytest.raises(InputError, match=r"config k: .* holds no corpus files"):
        corpus_files(str(corpora / "*.csv"), "k", "auto")


def test_config_errors_name_the_key(corpora):
    config = micro_config()
    for math, key in [({"source": "corpus"}, "corpus"), ({"source": "corpus", "corpus": []}, "corpus"),
                      ({"source": "corpus", "corpus": [{"name": "a"}]}, "path"),
                      ({"source": "corpus", "corpus": [{"name": "a", "path": "x", "format": "csv"}]}, "format"),
                      ({"source": "jsonl"}, "path")]:  # fmt: skip
        config["math"] = math
        with pytest.raises(Exception, match=rf"(?s)instance\['math'\].*{key}|'{key}' is a required"):
            validate(copy.deepcopy(config), str(SCHEMA))
    twice = paper_like_math(corpora)
    twice["corpus"][1]["name"] = "open-web-math"
    with pytest.raises(InputError, match=r"math\.corpus: corpus names must be unique; repeated: \['open-web-math'\]"):
        corpus_specs(resolved_math(twice).corpus, "math.corpus")
    with pytest.raises(InputError, match=r"config math\.corpus\[0\]: txt_field: Extra inputs are not permitted"):
        corpus_specs([{"name": "a", "path": "x", "txt_field": "t"}], "math.corpus")
    with pytest.raises(InputError, match=r"config math\.corpus\[0\]: meta_fields \['record'\] are set by the reader"):
        corpus_specs([{"name": "a", "path": "x", "meta_fields": ["record"]}], "math.corpus")


def test_paper_config_reads_openwebmath_and_algebraic_stack():
    config = yaml.safe_load((REPO_ROOT / "config/abacus-2.7b.yaml").read_text())
    validate(config, str(SCHEMA))
    specs = corpus_specs(config["math"]["corpus"], "math.corpus")
    assert config["math"]["source"] == "corpus" and [s.name for s in specs] == ["open-web-math", "algebraic-stack"]
    assert specs[0].path.endswith(".parquet") and specs[1].path.endswith(".jsonl.zst")
    assert {s.text_field for s in specs} == {"text"}


def test_mixture_samples_many_long_corpus_documents(corpora, tmp_path):
    """The mixture takes math's share from a corpus of long documents: sampled without repeats when large."""
    from abacus_repro.io import write_docs
    from abacus_repro.mixture import build_mixture

    from .pretrain_fixtures import CODE_SNIPPETS, TEXT_SNIPPETS, build_tokenizer, synthetic_corpus

    tokenizer = build_tokenizer(tmp_path / "tok")
    long_docs = tmp_path / "long.jsonl.zst"
    write_zst(long_docs, [json.dumps({"text": f"Lemma {i}. " + THEOREM * (1 + i % 8)}).encode() + b"\n"
                          for i in range(300)], frames=4)  # fmt: skip
    math = resolved_math({"source": "corpus", "corpus": [{"name": "long", "path": str(long_docs)}]})
    write_math(math, 0, tmp_path / "math.parquet")
    write_docs(tmp_path / "code.parquet", synthetic_corpus(400, CODE_SNIPPETS, "code"))
    write_docs(tmp_path / "text.parquet", synthetic_corpus(200, TEXT_SNIPPETS, "text"))
    settings = MixtureSettings(shares={"code": 0.7, "math": 0.1, "text": 0.2},
                               tokens={"base": 40000, "cosine": 40000, "anneal": 40000})  # fmt: skip
    sources = {name: [str(tmp_path / f"{name}.parquet")] for name in ("code", "math", "text")}
    docs, stats = build_mixture(sources, "cosine", settings, tokenizer, seed=3)
    math_stats = stats["sources"]["math"]
    assert math_stats["available_docs"] == 300 and math_stats["repeats"] == 0
    assert abs(math_stats["achieved_pretrain_share"] - 0.1) < 0.01
    assert all(doc_meta(d)["corpus"] == "long" for d in docs if doc_meta(d)["mixture_source"] == "math")


def test_rule_reads_the_corpus_files_as_inputs(corpora, tmp_path):
    """ingest_math through Snakemake: the corpus files are the rule's inputs, the script writes shard and stats."""
    corpora = Path(shutil.copytree(corpora, tmp_path / "corpora"))  # this test changes a shard
    config = micro_config()
    config["math"] = paper_like_math(corpora)
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO_ROOT / "workflow/Snakefile"),
           "--directory", str(tmp_path / "run"), "--configfile", str(config_path), "--cores", "1",
           "results/ingest/math/math.parquet"]  # fmt: skip
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    stats = json.loads((tmp_path / "run/results/ingest/math/stats.json").read_text())
    assert stats["kept"] == 78 and stats["read"] == stats["kept"] + sum(stats["dropped"].values())
    # A changed shard makes the rule due again: Snakemake tracks the expanded corpus files as its inputs.
    write_owm_shard(corpora / "open-web-math/data/train-00000-of-00002.parquet", 0, 21)
    rerun = subprocess.run([*cmd, "--dry-run"], capture_output=True, text=True,
                           env=env, timeout=300, check=False)  # fmt: skip
    assert rerun.returncode == 0 and "ingest_math" in rerun.stdout, rerun.stdout + rerun.stderr


def test_reader_stats_need_a_full_pass(corpora):
    reader = CorpusReader(corpus_specs(resolved_math(paper_like_math(corpora)).corpus, "math.corpus"), "math")
    with pytest.raises(RuntimeError):
        reader.stats()
