"""The comparison of recipe variants: per-source validation losses aggregated over seeds, evaluation scores, cost
from Snakemake benchmark files, deterministic JSON and markdown, the curves plot, and errors naming the file."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from abacus_repro.errors import InputError
from abacus_repro.pretrain import experiments as cmp
from abacus_repro.rules import RulePaths

from .script_fixtures import run_script

MODEL = "abacus-repro"
PRETRAIN_SOURCES = ("code", "math", "text")
ALL_SOURCES = (*PRETRAIN_SOURCES, "sft")
# Each phase's steps; validation every 4 steps and at the last (as train.eval_every would).
PHASE_STEPS = {"cosine": 10, "anneal": 6, "sft": 5}
BENCHMARK_HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def write_metrics(path: Path, phase: str, final: dict[str, float], with_sources: bool = True) -> str:
    """A phase's metrics.jsonl as training writes it: train lines, validation lines (the phase's own split without
    a source, each source's with one) at step 0, every 4 steps and the last, then the summary. Each source's loss
    falls linearly from final + 1 to ``final``."""
    steps = PHASE_STEPS[phase]
    sources = ALL_SOURCES if phase in ("anneal", "sft") else PRETRAIN_SOURCES
    lines = []
    for step in range(steps + 1):
        if step:
            lines.append({"kind": "train", "step": step, "global_step": step, "loss": 5.0, "lr": 1e-3})
        if step % 4 == 0 or step == steps:
            lines.append({"kind": "validation", "step": step, "loss": 9.0})  # the phase's own split: ignored
            if with_sources:
                remaining = 1 - step / steps
                lines += [
                    {"kind": "validation", "step": step, "source": s, "loss": final[s] + remaining} for s in sources
                ]
    lines.append({"kind": "summary", "steps": steps, "steps_run": steps, "seconds": 1.0})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return str(path)


def write_summary(path: Path, scores: dict[str, float | None]) -> str:
    """An eval summary.json: our model's entries (score None -> skipped) beside another model's."""
    ours = {
        name: {"score": score, "status": "ok"} if score is not None else {"score": None, "status": "skipped"}
        for name, score in scores.items()
    }
    summary = {MODEL: ours, "someone-else": {"zeta": {"score": 99.0, "status": "ok"}}}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary), encoding="utf-8")  # not sorted: the file's order is the table's
    return str(path)


def write_benchmark(directory: Path, name: str, rows: list[tuple[str, str, str]]) -> None:
    """A Snakemake benchmark .tsv with one row per repeat: (s, max_rss, cpu_time)."""
    directory.mkdir(parents=True, exist_ok=True)
    body = "".join(f"{s}\t0:00:01\t{rss}\t1.0\t1.0\t1.0\t0.0\t0.0\t50.0\t{cpu}\n" for s, rss, cpu in rows)
    (directory / f"{name}.tsv").write_text(BENCHMARK_HEADER + body, encoding="utf-8")


def make_run(root: Path, variant: str, seed: int | None, losses: dict[str, float], overrides: dict) -> dict:
    """One run's files (three phases, a summary) and its settings; the sft phase ends ``losses`` lower by 0.5."""
    name = f"{variant}/seed-{seed}" if seed is not None else variant
    base = root / "results" / "experiments" / name
    metrics = {
        "cosine": write_metrics(base / "cosine.jsonl", "cosine", {s: v + 1 for s, v in losses.items()}),
        "anneal": write_metrics(base / "anneal.jsonl", "anneal", losses),
        "sft": write_metrics(base / "sft.jsonl", "sft", {s: v - 0.5 for s, v in losses.items()}),
    }
    summary = write_summary(base / "summary.json", {"zeta_bench": losses["code"] * 10, "alpha_bench": None})
    return {
        "name": name,
        "variant": variant,
        "seed": seed,
        "overrides": overrides,
        "metrics": metrics,
        "eval_summary": summary,
        "eval_model": MODEL,
        "benchmarks": str(root / "benchmarks" / "rules" / "experiments" / name),
    }


# The anneal losses of the three seeds of "wsd" (code varies, the rest is constant) and of "plain" (one run).
WSD_CODE = (1.0, 2.0, 4.0)


def two_variants(root: Path) -> list[dict]:
    runs = [
        make_run(
            root, "wsd", seed, {"code": code, "math": 3.0, "text": 3.5, "sft": 2.0}, {"train.schedule.kind": "wsd"}
        )
        for seed, code in zip((1, 2, 3), WSD_CODE, strict=True)
    ]
    runs.append(
        make_run(root, "plain", None, {"code": 2.0, "math": 3.0, "text": 3.0, "sft": 1.5}, {"train.attention": "plain"})
    )
    return runs


def outputs(directory: Path) -> dict[str, str]:
    return {name: str(directory / file) for name, file in (("table", "c.md"), ("json", "c.json"), ("curves", "c.png"))}


def run_job(runs: list[dict], out: Path) -> dict[str, str]:
    paths = RulePaths(input={}, output=outputs(out), log={"log": str(out / "log")})
    cmp.run_experiments_compare(cmp.CompareJob.model_validate({"runs": runs}), paths)
    return paths.output


def test_summary_of_three_seeds_matches_a_hand_computation_and_one_run_has_no_std():
    mean = (1.0 + 2.0 + 4.0) / 3
    std = math.sqrt(((1.0 - mean) ** 2 + (2.0 - mean) ** 2 + (4.0 - mean) ** 2) / 2)  # ddof = 1
    assert cmp.summarize(WSD_CODE) == {"n": 3, "mean": round(mean, 4), "std": round(std, 4), "min": 1.0, "max": 4.0}
    assert cmp.summarize([2.5]) == {"n": 1, "mean": 2.5, "std": None, "min": 2.5, "max": 2.5}
    assert cmp.summarize([None, 2.0, None, 4.0])["n"] == 2  # a diverged run's missing loss is not counted


def test_the_job_aggregates_losses_eval_and_cost_per_variant(tmp_path):
    runs = two_variants(tmp_path)
    write_benchmark(Path(runs[0]["benchmarks"]), "train_anneal", [("10.5", "100.0", "20.25"), ("11.5", "300.0", "21")])
    write_benchmark(Path(runs[0]["benchmarks"]), "train_sft", [("4.0", "NA", "-")])
    write_benchmark(Path(runs[1]["benchmarks"]), "train_sft", [("2.0", "50.0", "3.0")])
    (Path(runs[1]["benchmarks"]) / "nested").mkdir()  # not recursive: a folder is no job
    write_benchmark(Path(runs[1]["benchmarks"]) / "nested", "eval_x", [("1000", "1", "1000")])
    result = json.loads(Path(run_job(runs, tmp_path / "out")["json"]).read_text(encoding="utf-8"))

    wsd, plain = result["variants"]
    assert (wsd["name"], wsd["seeds"], wsd["runs"]) == ("wsd", [1, 2, 3], ["wsd/seed-1", "wsd/seed-2", "wsd/seed-3"])
    assert wsd["validation"]["anneal"]["code"] == cmp.summarize(WSD_CODE)
    assert wsd["validation"]["anneal"]["math"] == {"n": 3, "mean": 3.0, "std": 0.0, "min": 3.0, "max": 3.0}
    assert wsd["validation"]["sft"]["sft"]["mean"] == 1.5
    assert "sft" not in wsd["validation"]["cosine"]  # pretraining phases do not score the SFT source
    assert plain["validation"]["sft"]["code"] == {"n": 1, "mean": 1.5, "std": None, "min": 1.5, "max": 1.5}
    assert result["phases"] == ["cosine", "anneal", "sft"] and result["sources"] == list(ALL_SOURCES)
    assert result["runs"][0]["phases"]["anneal"] == {
        "steps": 6,
        "final_loss": {"code": 1.0, "math": 3.0, "text": 3.5, "sft": 2.0},
    }

    difference = plain["difference_to_first"]["anneal"]
    assert difference["code"] == {"mean_difference": round(2.0 - 7 / 3, 4), "combined_std": None, "beyond_spread": None}

    assert result["benchmarks"] == ["zeta_bench", "alpha_bench"]  # the summary's order, not sorted
    assert wsd["evaluation"]["zeta_bench"] | {"other_statuses": None} == cmp.summarize([10.0, 20.0, 40.0]) | {
        "other_statuses": None
    }
    assert wsd["evaluation"]["alpha_bench"] == {
        "n": 0,
        "mean": None,
        "std": None,
        "min": None,
        "max": None,
        "other_statuses": {"skipped": 3},
    }

    costs = [run["cost"] for run in result["runs"]]
    assert costs[0] == {"jobs": 2, "wall_seconds": 26.0, "cpu_seconds": 41.25, "max_rss_mb": 300.0, "unmeasured": 2}
    assert costs[1] == {"jobs": 1, "wall_seconds": 2.0, "cpu_seconds": 3.0, "max_rss_mb": 50.0, "unmeasured": 0}
    assert (
        costs[2]
        == costs[3]
        == {"jobs": 0, "wall_seconds": 0.0, "cpu_seconds": 0.0, "max_rss_mb": None, "unmeasured": 0}
    )
    assert wsd["cost"] == {"jobs": 3, "wall_seconds": 28.0, "cpu_seconds": 44.25, "max_rss_mb": 300.0, "unmeasured": 2}


def test_markdown_names_overrides_seeds_the_scale_and_the_tables(tmp_path):
    runs = two_variants(tmp_path)
    table = Path(run_job(runs, tmp_path / "out")["table"]).read_text(encoding="utf-8")
    assert "Tiny-scale numbers" in table and "not evidence for or against the paper's claims" in table
    assert "- **wsd**: `train.schedule.kind = wsd`; seeds: 1, 2, 3" in table
    assert "- **plain**: `train.attention = plain`" in table
    assert "## Validation loss after pretraining (anneal)" in table and "## Validation loss after SFT" in table
    mean, std = cmp.summarize(WSD_CODE)["mean"], cmp.summarize(WSD_CODE)["std"]
    assert (
        f"| wsd | {mean:.4f} ± {std:.4f} (3) | 3.0000 ± 0.0000 (3) | 3.5000 ± 0.0000 (3) | 2.0000 ± 0.0000 (3) |"
        in table
    )
    assert "| plain | 2.0000 (1) | 3.0000 (1) | 3.0000 (1) | 1.5000 (1) |" in table
    assert "spread unknown, n=1" in table
    assert f"| zeta_bench | {cmp.summarize([10.0, 20.0, 40.0])['mean']:.4f} ±" in table
    assert "| alpha_bench | — (skipped ×3) | — (skipped ×1) |" in table
    assert "not counted in its cost" in table and "re-ran nothing (0 jobs, 0 s)" in table


def test_outputs_are_byte_identical_for_the_same_inputs_and_the_plot_is_written(tmp_path):
    runs = two_variants(tmp_path)
    first, second = run_job(runs, tmp_path / "a"), run_job(runs, tmp_path / "b")
    for name in ("table", "json"):
        assert Path(first[name]).read_bytes() == Path(second[name]).read_bytes()
    png = Path(first["curves"]).read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 1000


def test_curves_put_phases_on_one_step_axis(tmp_path):
    run = cmp.read_run(cmp.ComparedRun.model_validate(two_variants(tmp_path)[0]))
    assert cmp.phase_starts(run) == {"cosine": 0, "anneal": 10, "sft": 16}
    curves = cmp.cumulative_curves(run)
    assert sorted(curves["code"]) == [0, 4, 8, 10, 14, 16, 20, 21]
    assert curves["code"][21] == 0.5 and min(curves["sft"]) == 10  # SFT is first scored when the anneal begins


def test_missing_metrics_file_is_named(tmp_path):
    runs = two_variants(tmp_path)
    Path(runs[1]["metrics"]["anneal"]).unlink()
    with pytest.raises(InputError, match=r"anneal\.jsonl: metrics file not found"):
        run_job(runs, tmp_path / "out")


def test_metrics_without_per_source_lines_are_refused(tmp_path):
    runs = two_variants(tmp_path)
    old = write_metrics(tmp_path / "old" / "metrics.jsonl", "anneal", {}, with_sources=False)
    runs[0]["metrics"]["anneal"] = old
    with pytest.raises(InputError, match=r"old/metrics\.jsonl: no per-source validation lines"):
        run_job(runs, tmp_path / "out")


def test_summary_without_our_model_is_refused(tmp_path):
    runs = two_variants(tmp_path)
    runs[2]["eval_model"] = "not-evaluated"
    with pytest.raises(InputError, match=r"summary\.json: no results for model 'not-evaluated'"):
        run_job(runs, tmp_path / "out")


def test_benchmark_file_without_header_is_refused(tmp_path):
    directory = tmp_path / "bench"
    directory.mkdir()
    (directory / "broken.tsv").write_text("", encoding="utf-8")
    with pytest.raises(InputError, match=r"broken\.tsv: not a Snakemake benchmark file"):
        cmp.read_cost(directory)


def test_runs_without_an_eval_summary_are_compared_on_loss_alone(tmp_path):
    runs = [run | {"eval_summary": None} for run in two_variants(tmp_path)]
    output = run_job(runs, tmp_path / "out")
    result = json.loads(Path(output["json"]).read_text(encoding="utf-8"))
    assert result["benchmarks"] == [] and [v["evaluation"] for v in result["variants"]] == [None, None]
    assert "No run has an evaluation summary." in Path(output["table"]).read_text(encoding="utf-8")


def test_a_metrics_line_without_its_loss_is_named(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text(json.dumps({"kind": "validation", "step": 0, "source": "code"}) + "\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"metrics\.jsonl: a metrics line lacks its kind, step or loss"):
        cmp.read_phase(path)


def test_the_rule_script_runs_the_entry_from_params_settings(tmp_path):
    output = outputs(tmp_path / "out")
    run_script("experiments_compare", tmp_path, {}, {}, output, {"settings": {"runs": two_variants(tmp_path)}}, {})
    assert json.loads(Path(output["json"]).read_text(encoding="utf-8"))["reference_variant"] == "wsd"
