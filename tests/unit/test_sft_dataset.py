"""The SFT mix: NL pairs from StackExchange documents, exact dedup, the 1:ratio balance; and the three rule
scripts end to end on the synthetic module."""

from __future__ import annotations

import contextlib
import json
import runpy
from pathlib import Path

import pytest

from abacus_repro.io import make_doc, read_docs, read_json, write_docs
from abacus_repro.settings import SftSettings
from abacus_repro.sft.dataset import build_dataset, nl_pair, split_qa_text

from .sft_fixtures import COLLECTABLE, write_code_shard

SCRIPTS = Path(__file__).resolve().parents[2] / "workflow" / "scripts"


def _se_doc(i: int, title: str | None = None, answer: str = "Use a list comprehension.") -> dict:
    text = f"# {title or f'How do I do thing {i}?'}\n\nI tried `x{i}`.\n\n## Accepted answer\n\n{answer}\n\n## Answer\n\nOther."
    return make_doc(text, "stackexchange", {"site": "python", "question_id": i})


def _code_doc(i: int, tests: int, instruction: str | None = None) -> dict:
    instruction = instruction or f"Write a Python function `f{i}(x)`."
    response = f"```python\ndef f{i}(x):\n    return x\n```"
    meta = {"instruction": instruction, "response": response, "kind": "code", "tests_passed": tests}
    return make_doc(f"<用户>{instruction}<AI>{response}", "sft_code", meta)


def test_nl_pair_from_the_document_layout_and_from_meta():
    instruction, response = nl_pair(_se_doc(1))
    assert instruction == "How do I do thing 1?\n\nI tried `x1`."
    assert response == "Use a list comprehension."
    from_meta = make_doc("ignored", "stackexchange", {"title": "T", "question": "Q?", "answer": "A."})
    assert nl_pair(from_meta) == ("T\n\nQ?", "A.")
    assert nl_pair(make_doc("# Only a title\n\nno answers here", "stackexchange", {})) is None
    assert split_qa_text("# T\n\nQ\n\n## Answer\n\nA1\n\n## Answer\n\nA2") == ("T", "Q", "A1")


def test_mix_dedup_and_counts():
    code = [_code_doc(i, tests=i % 3 + 1) for i in range(4)] + [_code_doc(9, 1, "Write a Python function `f0(x)`.")]
    nl = [_se_doc(i) for i in range(10)] + [make_doc(_se_doc(3)["text"], "stackexchange", {"question_id": 99})]
    nl.append(make_doc("no answer at all", "stackexchange", {}))
    dataset, stats = build_dataset(code, nl, SftSettings(), seed=0)
    kinds = [json.loads(d["meta"])["kind"] for d in dataset]
    assert kinds.count("code") == 4 and kinds.count("nl") == 4
    assert stats["read"] == len(code) + len(nl) == stats["kept"] + sum(stats["dropped"].values())
    # One duplicated code instruction, one NL question posted twice, one non-pair, and the NL pairs beyond 1:1.
    assert stats["dropped"] == {"duplicate_instruction": 2, "not_a_qa_pair": 1, "ratio_excess": 6}
    assert kinds[:2] != ["code", "code"] or kinds[-2:] != ["code", "code"]  # spread, not appended
    for doc in dataset:
        meta = json.loads(doc["meta"])
        assert doc["text"] == f"<用户>{meta['instruction']}<AI>{meta['response']}"
    again, _ = build_dataset(code, nl, SftSettings(), seed=0)
    assert again == dataset


def test_scarce_nl_keeps_every_code_pair_and_reports_the_ratio():
    code = [_code_doc(i, tests=t) for i, t in enumerate([1, 2, 3, 4, 5])]
    dataset, stats = build_dataset(code, [_se_doc(1), _se_doc(2)], SftSettings(nl_shortfall="keep"), seed=0)
    kinds = [json.loads(d["meta"])["kind"] for d in dataset]
    assert kinds.count("code") == 5 and kinds.count("nl") == 2
    assert stats["dropped"] == {} and stats["ratio_met"] is False and stats["achieved_nl_per_code"] == 0.4
    tests = [json.loads(d["meta"])["tests_passed"] for d in dataset if json.loads(d["meta"])["kind"] == "code"]
    assert tests == [1, 2, 3, 4, 5]  # the curriculum order survives the interleaving
    half, half_stats = build_dataset(code, [_se_doc(i) for i in range(10)], SftSettings(code_nl_ratio=0.4), seed=0)
    assert [json.loads(d["meta"])["kind"] for d in half].count("nl") == 2
    assert half_stats["ratio_met"] is True and half_stats["dropped"] == {"ratio_excess": 8}


def test_scarce_nl_is_repeated_by_seeded_sampling_to_meet_the_ratio():
    code = [_code_doc(i, tests=1) for i in range(7)]
    nl = [_se_doc(i) for i in range(3)]
    dataset, stats = build_dataset(code, nl, SftSettings(), seed=0)  # default: repeat
    nl_rows = [d for d in dataset if json.loads(d["meta"])["kind"] == "nl"]
    assert len(nl_rows) == 7 and stats["ratio_met"] is True
    assert stats["nl_unique"] == 3 and stats["nl_repeated"] == 4 and stats["rows"] == 14
    # Records read are counted once: the copies are not records read.
    assert stats["read"] == 10 == stats["kept"] + sum(stats["dropped"].values())
    assert len({d["id"] for d in dataset}) == len(dataset)  # every copy has an id of its own
    originals = {d["id"]: d["text"] for d in nl_rows if "copy_of" not in json.loads(d["meta"])}
    copies = [d for d in nl_rows if "copy_of" in json.loads(d["meta"])]
    assert all(originals[json.loads(d["meta"])["copy_of"]] == d["text"] for d in copies)
    # Two whole rounds of all three, then one pair drawn for the remainder.
    counts = sorted(sum(d["text"] == text for d in nl_rows) for text in originals.values())
    assert counts == [2, 2, 3]
    assert build_dataset(code, nl, SftSettings(), seed=0)[0] == dataset
    assert build_dataset(code, nl, SftSettings(), seed=1)[0] != dataset


def test_scarce_nl_can_trim_code_instead_keeping_the_curriculum_order():
    code = [_code_doc(i, tests=t) for i, t in enumerate([1, 2, 3, 4, 5, 6])]
    dataset, stats = build_dataset(code, [_se_doc(1), _se_doc(2)], SftSettings(nl_shortfall="trim_code"), seed=0)
    kinds = [json.loads(d["meta"])["kind"] for d in dataset]
    assert kinds.count("code") == 2 and kinds.count("nl") == 2 and stats["ratio_met"] is True
    assert stats["dropped"] == {"ratio_excess": 4} and stats["read"] == 8
    tests = [json.loads(d["meta"])["tests_passed"] for d in dataset if json.loads(d["meta"])["kind"] == "code"]
    assert tests == sorted(tests)
    with pytest.raises(ValueError, match="nl_shortfall"):
        SftSettings(nl_shortfall="upsample")


class _Named(dict):
    __getattr__ = dict.__getitem__


class _Logs(list):
    """Snakemake's log: by position, and by name (sft_semi_instruct's second log is its LLM server's)."""

    def items(self):
        return {"main": self[0], "server": self[1]}.items()


def _run_script(name, tmp, input, output, settings, threads=1):
    snakemake = type("Snakemake", (), {})()
    snakemake.input, snakemake.output = _Named(**input), _Named(**output)
    snakemake.params, snakemake.wildcards, snakemake.resources = _Named(settings=settings), _Named(), _Named()
    snakemake.log = _Logs([str(tmp / f"{name}.log"), str(tmp / f"{name}.server.log")])
    snakemake.threads, snakemake.rule = threads, name
    # Snakemake runs a job in its run directory, where run_rule writes the job's record (logs/jobs/).
    with contextlib.chdir(tmp):
        runpy.run_path(str(SCRIPTS / f"{name}.py"), init_globals={"snakemake": snakemake}, run_name="__main__")


@pytest.mark.parametrize("threads", [2])
def test_rule_scripts_end_to_end(tmp_path, threads):
    shard = write_code_shard(tmp_path / "code" / "0" / "kept.parquet")
    nl_path = tmp_path / "kept_nl.parquet"
    reworded = _se_doc(0, title="How would I do thing 0?")
    write_docs(nl_path, [_se_doc(i) for i in range(6)] + [reworded])
    sft = {"max_functions": 400, "max_tests_per_function": 3, "code_nl_ratio": 1.0, "nl_shortfall": "repeat",
           "sandbox": {"timeout_s": 5, "memory_mb": 512}, "rewriter": {"backend": "metadata"}}  # fmt: skip
    out = tmp_path / "sft"
    collect = {"seed": 1234, "max_functions": sft["max_functions"]}
    _run_script("sft_collect", tmp_path, {"code": [str(shard)]},
                {"natural": str(out / "natural.parquet"), "stats": str(out / "natural.stats.json")}, collect)  # fmt: skip
    semi_instruct = {"seed": 1234, "llm_server": None,  # the template rewriter needs no server
                     **{key: sft[key] for key in ("rewriter", "sandbox", "max_tests_per_function")}}  # fmt: skip
    _run_script("sft_semi_instruct", tmp_path, {"natural": str(out / "natural.parquet")},
                {"kept": str(out / "semi.parquet"), "dropped": str(out / "semi.dropped.parquet"),
                 "stats": str(out / "semi.stats.json")}, semi_instruct, threads=threads)  # fmt: skip
    # The NL side asks one question twice in other words: SemDeDup (the real encoder) removes one of them.
    dedup = {"semdedup": {"clusters": 2, "eps": 0.05, "eps_list": [0.02, 0.05], "max_tokens": 64}, "seed": 1234}
    semdedup_out = {name: str(out / "semdedup" / f"{name}.parquet") for name in ("code", "nl", "dropped")}
    semdedup_out.update(stats=str(out / "semdedup" / "stats.json"), plot=str(out / "semdedup" / "plot.png"))
    _run_script("sft_semdedup", tmp_path, {"code": str(out / "semi.parquet"), "nl": str(nl_path)}, semdedup_out,
                dedup, threads=threads)  # fmt: skip
    dedup_stats = read_json(out / "semdedup" / "stats.json")
    dataset_settings = {"seed": 1234, "sft": sft}
    assert dedup_stats["nl_read"] == 7 and dedup_stats["nl_kept"] == 6
    assert dedup_stats["read"] == dedup_stats["kept"] + len(read_docs(out / "semdedup" / "dropped.parquet"))
    assert (out / "semdedup" / "plot.png").stat().st_size > 0
    _run_script("sft_dataset", tmp_path, {"code": semdedup_out["code"], "nl": semdedup_out["nl"]},
                {"dataset": str(out / "dataset.parquet"), "stats": str(out / "stats.json")}, dataset_settings)  # fmt: skip
    assert read_json(out / "natural.stats.json")["kept"] == len(COLLECTABLE)
    semi = read_json(out / "semi.stats.json")
    assert semi["kept"] + sum(semi["dropped"].values()) == len(COLLECTABLE)
    assert len(read_docs(out / "semi.dropped.parquet")) == sum(semi["dropped"].values())
    dataset = read_docs(out / "dataset.parquet")
    kinds = [json.loads(d["meta"])["kind"] for d in dataset]
    assert kinds.count("code") == semi["kept"]
    assert kinds.count("nl") == min(6, semi["kept"])
    first = (out / "dataset.parquet").read_bytes()
    _run_script("sft_dataset", tmp_path, {"code": semdedup_out["code"], "nl": semdedup_out["nl"]},
                {"dataset": str(out / "dataset.parquet"), "stats": str(out / "stats.json")}, dataset_settings)  # fmt: skip
    assert (out / "dataset.parquet").read_bytes() == first
