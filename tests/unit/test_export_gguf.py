"""GGUF export checked with the real llama.cpp (llama-cpp-python): metadata, tokenizer, logits, generation."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from abacus_repro.config import resolved_section
from abacus_repro.errors import InputError
from abacus_repro.export import ExportVerificationError, verify_exports, write_gguf
from abacus_repro.export.quantize import parse_fallback_warnings
from abacus_repro.export.reader import gguf_metadata, gguf_tensor_types
from abacus_repro.export.stage import export_gguf_files
from abacus_repro.export.tensor_types import plan_written_type
from abacus_repro.export.tensors import export_plan, rope_rows_from_interleaved, rope_rows_to_interleaved
from abacus_repro.export.verify import check_report, type_thresholds
from abacus_repro.export.writer import export_gguf
from abacus_repro.rules import RulePaths
from abacus_repro.settings import ExportSettings, Thresholds, VerifySettings

from .model_fixtures import make_model, make_tokenizer

pytest.importorskip("llama_cpp")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """The default tiny configuration: hidden 128, 4 layers, vocab 4096, random init."""
    root = tmp_path_factory.mktemp("export")
    tokenizer_dir = make_tokenizer(root / "tok", vocab_size=4096)
    return make_model(root / "model", tokenizer_dir)


@pytest.fixture(scope="module")
def exported(model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("gguf")
    types = ["F16", "Q8_0", "Q4_K_M"]
    paths = [out / f"model-{t}.gguf" for t in types]
    # Through the rule's entry point, as Snakemake's job would call it.
    job = RulePaths(input={"model": str(model_dir)}, output={"gguf": paths, "verify": out / "verify.json"}, threads=2)
    report = export_gguf_files(ExportSettings(types=types), job)
    return out, paths, report


def test_rope_permutation_turns_rotate_half_into_adjacent_pairs():
    rng = np.random.default_rng(0)
    n_heads, head_dim, dim_in = 3, 8, 5
    weight = rng.normal(size=(n_heads * head_dim, dim_in))
    x = rng.normal(size=dim_in)
    theta = 0.37 * (np.arange(head_dim // 2) + 1)  # any per-pair angles

    def rope_rotate_half(q):  # Hugging Face: dimension i pairs with i + head_dim / 2
        half = head_dim // 2
        a, b = q[:half], q[half:]
        return np.concatenate([a * np.cos(theta) - b * np.sin(theta), b * np.cos(theta) + a * np.sin(theta)])

    def rope_adjacent(q):  # GGML "normal" RoPE: dimension 2i pairs with 2i + 1
        a, b = q[0::2], q[1::2]
        out = np.empty_like(q)
        out[0::2], out[1::2] = a * np.cos(theta) - b * np.sin(theta), b * np.cos(theta) + a * np.sin(theta)
        return out

    permuted = rope_rows_to_interleaved(weight, n_heads)
    assert np.array_equal(rope_rows_from_interleaved(permuted, n_heads), weight)
    hf = (weight @ x).reshape(n_heads, head_dim)
    gg = (permuted @ x).reshape(n_heads, head_dim)
    k_hf = (weight @ (x + 1)).reshape(n_heads, head_dim)
    k_gg = (permuted @ (x + 1)).reshape(n_heads, head_dim)
    for h in range(n_heads):
        # Attention scores (q . k after rotation) are what must agree; the dimension order may differ.
        assert np.isclose(
            rope_rotate_half(hf[h]) @ rope_rotate_half(k_hf[h]), rope_adjacent(gg[h]) @ rope_adjacent(k_gg[h])
        )


def test_tensor_names_and_order_are_llama_cpps_minicpm():
    """gguf's name map, restricted to what our MiniCPM has: the output projection only when it is not tied."""
    from types import SimpleNamespace

    layer = ["input_layernorm", "self_attn.q_proj", "self_attn.k_proj", "mlp.down_proj", "post_attention_layernorm"]
    names = ["lm_head.weight", "model.norm.weight", "model.embed_tokens.weight"]
    names += [f"model.layers.{i}.{p}.weight" for i in (1, 0) for p in layer]
    state_dict = {name: np.zeros((4, 4)) for name in names}
    config = SimpleNamespace(num_hidden_layers=2, tie_word_embeddings=False)
    per_layer = ["attn_norm", "ffn_down", "ffn_norm", "attn_k", "attn_q"]  # by Hugging Face name within a layer
    assert [gguf_name for _, gguf_name, _ in export_plan(state_dict, config)] == [
        "token_embd.weight",
        *(f"blk.{i}.{suffix}.weight" for i in (0, 1) for suffix in per_layer),
        "output.weight",
        "output_norm.weight",
    ]
    tied = SimpleNamespace(num_hidden_layers=2, tie_word_embeddings=True)
    assert "output.weight" not in [gguf_name for _, gguf_name, _ in export_plan(state_dict, tied)]
    # gguf's map knows a mixture-of-experts router for this architecture; our MiniCPM has none to write.
    with pytest.raises(InputError, match="mlp.gate.weight has no place"):
        export_plan({**state_dict, "model.layers.0.mlp.gate.weight": np.zeros((4, 4))}, config)


def test_metadata_is_what_llama_cpp_minicpm_reads(exported):
    _out, paths, _ = exported
    meta = gguf_metadata(paths[0])
    assert meta["general.architecture"] == "minicpm"
    assert meta["general.file_type"] == 1
    assert meta["minicpm.block_count"] == 4
    assert meta["minicpm.embedding_length"] == 128
    assert meta["minicpm.attention.head_count_kv"] == 2
    assert meta["minicpm.rope.dimension_count"] == 32
    assert meta["minicpm.embedding_scale"] == pytest.approx(12)
    assert meta["minicpm.residual_scale"] == pytest.approx(1.4 / math.sqrt(4))
    assert meta["minicpm.logit_scale"] == pytest.approx(128 / 64)
    assert meta["tokenizer.ggml.model"] == "gpt2" and meta["tokenizer.ggml.pre"] == "gpt-2"
    assert (meta["tokenizer.ggml.bos_token_id"], meta["tokenizer.ggml.eos_token_id"]) == (1, 2)
    assert meta["tokenizer.ggml.add_bos_token"] is False
    assert meta["tokenizer.chat_template"].startswith("{% for message in messages %}")


def test_tensors_and_token_types(exported):
    import gguf

    _, paths, _ = exported
    reader = gguf.GGUFReader(str(paths[0]))
    names = {t.name: t for t in reader.tensors}
    assert "output.weight" not in names  # tied: llama.cpp reuses token_embd
    assert len(names) == 1 + 4 * 9 + 1
    assert names["token_embd.weight"].tensor_type == gguf.GGMLQuantizationType.F16
    assert names["blk.0.attn_norm.weight"].tensor_type == gguf.GGMLQuantizationType.F32
    q8 = {t.name: t for t in gguf.GGUFReader(str(paths[1])).tensors}
    assert q8["blk.3.ffn_down.weight"].tensor_type == gguf.GGMLQuantizationType.Q8_0
    types = reader.fields["tokenizer.ggml.token_type"]
    token_types = [int(types.parts[i][0]) for i in types.data[:12]]
    # <unk> <s> </s> <pad> <用户> <AI>, then the four FIM markers: all special, so CONTROL for llama.cpp.
    assert token_types[:10] == [gguf.TokenType.CONTROL] * 10 and token_types[10] == gguf.TokenType.NORMAL


FIM_PREFIX_TEXT = "def mean(values):\n    total = "
FIM_SUFFIX_TEXT = "\n    return total / len(values)\n"


def test_fim_token_ids_are_written_where_llama_cpp_reads_them(exported):
    _out, paths, _ = exported
    meta = gguf_metadata(paths[0])
    # gguf 0.19's keys (Keys.Tokenizer.FIM_*_ID), which llama.cpp reads; the tiny tokenizer's ids 6-9.
    assert [meta[f"tokenizer.ggml.fim_{name}_token_id"] for name in ("pre", "mid", "suf", "pad")] == [6, 7, 8, 9]
    assert not {"tokenizer.ggml.prefix_token_id", "tokenizer.ggml.suffix_token_id"} & set(meta)  # deprecated


@pytest.fixture(scope="module")
def fim_llama(exported):
    import llama_cpp

    from abacus_repro.export.llama_logs import route_llama_logs

    route_llama_logs()
    return llama_cpp.Llama(model_path=str(exported[1][1]), n_ctx=256, n_threads=2, verbose=False, seed=0)


def test_llama_cpp_reads_the_fim_ids_and_tokenizes_infill_prompts_as_packing_does(model_dir, fim_llama):
    from transformers import AutoTokenizer

    from abacus_repro.model.tokenizer import FIM_MIDDLE, FIM_PREFIX, FIM_SUFFIX
    from abacus_repro.tokenization.fim import PSM, SPM, FimIds, layout

    model = fim_llama._model
    assert (model.token_prefix(), model.token_middle(), model.token_suffix()) == (6, 7, 8)
    ids = FimIds(prefix=6, middle=7, suffix=8)
    hf = AutoTokenizer.from_pretrained(str(model_dir))
    prefix, suffix = (hf(text, add_special_tokens=False)["input_ids"] for text in (FIM_PREFIX_TEXT, FIM_SUFFIX_TEXT))
    prompts = {
        PSM: f"{FIM_PREFIX}{FIM_PREFIX_TEXT}{FIM_SUFFIX}{FIM_SUFFIX_TEXT}{FIM_MIDDLE}",
        SPM: f"{FIM_SUFFIX}{FIM_SUFFIX_TEXT}{FIM_PREFIX}{FIM_PREFIX_TEXT}{FIM_MIDDLE}",
    }
    for mode, prompt in prompts.items():
        # The prompt a user writes is tokenized by llama.cpp into exactly what packing trained on (empty middle).
        packed = layout(mode, prefix, [], suffix, ids)
        assert fim_llama.tokenize(prompt.encode(), add_bos=False, special=True) == packed
        assert hf(prompt, add_special_tokens=False)["input_ids"] == packed
    # As plain text (special=False, how llama.cpp reads user text it must not interpret) a marker is not one token.
    assert 6 not in fim_llama.tokenize(FIM_PREFIX.encode(), add_bos=False, special=False)


def test_llama_cpp_completes_an_infill_prompt(fim_llama):
    """The PSM prompt as text completes exactly like the same prompt built from llama.cpp's own FIM ids."""
    from abacus_repro.model.tokenizer import FIM_MIDDLE, FIM_PREFIX, FIM_SUFFIX

    model = fim_llama._model
    text = f"{FIM_PREFIX}{FIM_PREFIX_TEXT}{FIM_SUFFIX}{FIM_SUFFIX_TEXT}{FIM_MIDDLE}"

    def plain(chunk: str) -> list[int]:
        return fim_llama.tokenize(chunk.encode(), add_bos=False, special=False)

    built = [model.token_prefix(), *plain(FIM_PREFIX_TEXT), model.token_suffix(), *plain(FIM_SUFFIX_TEXT)]
    built.append(model.token_middle())
    greedy = {"max_tokens": 6, "temperature": 0.0, "seed": 0}
    from_text = fim_llama.create_completion(text, **greedy)
    from_ids = fim_llama.create_completion(built, **greedy)
    assert from_text["usage"]["prompt_tokens"] == from_ids["usage"]["prompt_tokens"] == len(built)
    assert from_text["usage"]["completion_tokens"] >= 1
    assert from_text["choices"][0]["text"] == from_ids["choices"][0]["text"]


def test_llama_cpp_python_suffix_argument_ignores_the_fim_ids(fim_llama, monkeypatch):
    """llama-cpp-python 0.3.36 builds ``create_completion(prompt, suffix=...)`` with token 0 where the FIM markers
    belong (its prefix/suffix/middle ids are hard-coded to 0, "TODO: Fix"): an infill prompt must be sent as the
    PSM text above, not through ``suffix``. If this test fails, llama-cpp-python has fixed it."""
    seen: list[list[int]] = []
    generate = type(fim_llama).generate

    def spy(self, tokens, *args, **kwargs):
        seen.append(list(tokens))
        return generate(self, tokens, *args, **kwargs)

    monkeypatch.setattr(type(fim_llama), "generate", spy)
    fim_llama.create_completion(FIM_PREFIX_TEXT, suffix=FIM_SUFFIX_TEXT, max_tokens=1, temperature=0.0)

    prefix = fim_llama.tokenize(FIM_PREFIX_TEXT.encode(), add_bos=False, special=False)
    prompt = seen[0]
    # <unk> (0) before the prefix, after it and last; none of the model's FIM ids. (The suffix is mangled too: a
    # SentencePiece space hack, "☺" + suffix minus two tokens, applied because our byte-level GGUF has no
    # add_space_prefix key and llama-cpp-python assumes true.)
    assert prompt[: len(prefix) + 2] == [0, *prefix, 0] and prompt[-1] == 0
    assert not {6, 7, 8} & set(prompt)


def test_llama_cpp_reproduces_the_model(exported):
    out, _, report = exported
    assert report["passed"] and json.loads((out / "verify.json").read_text())["passed"]
    f16, q8 = report["files"]["F16"], report["files"]["Q8_0"]
    assert f16["tokenization_equal"] and q8["tokenization_equal"]
    # Beyond near ties (our two best tokens closer than F16's error) llama.cpp's top-1 is always ours.
    assert f16["vs_hf"]["top1_agreement_beyond_ties"] == 1.0
    for prompt in f16["prompts"]:
        assert all(d["margin"] <= f16["tie_margin"] for d in prompt["vs_hf"]["top1_disagreements"])
    assert f16["vs_hf"]["max_abs_diff"] < 0.05
    assert f16["greedy_equal_up_to_ties"]
    assert all(len(p["greedy_llama_cpp"]) == 32 or p["greedy_llama_cpp"][-1] == 2 for p in f16["prompts"])
    # llama.cpp also quantises the activations to Q8_0 for these matmuls, so some difference remains.
    assert q8["vs_hf_stored_weights"]["max_abs_diff"] < 0.2
    assert q8["vs_hf"]["top1_agreement"] >= 0.9
    for kind in ("F16", "Q8_0", "Q4_K_M"):
        assert report["files"][kind]["passed"] and report["files"][kind]["thresholds"]["min_top1"] > 0


def test_q4_k_m_fallbacks_are_reported_per_tensor(exported, caplog):
    """At hidden 128 no matrix row is a whole 256-value K-block: llama.cpp falls back, and the report says so."""
    import gguf

    out, paths, report = exported
    q4 = report["files"]["Q4_K_M"]
    on_disk = {t.name: gguf.GGMLQuantizationType(t.tensor_type).name for t in gguf.GGUFReader(str(paths[2])).tensors}
    table = {row["name"]: row for row in q4["tensors"]}
    assert set(table) == set(on_disk) and all(table[n]["written"] == on_disk[n] for n in on_disk)
    matrices = [row for row in q4["tensors"] if len(row["shape"]) == 2]
    assert len(matrices) == 1 + 4 * 7 and q4["fallbacks"] == len(matrices)
    for row in matrices:
        assert row["fallback"] and (row["requested"], row["written"]) in {("Q4_K", "Q5_0"), ("Q6_K", "Q8_0")}
        assert "not divisible by 256" in row["reason"]
    # llama.cpp's Q4_K_M mixture asks more bits of the tied output/embedding and of some attn_v / ffn_down.
    assert table["token_embd.weight"]["requested"] == "Q6_K"
    assert table["blk.3.ffn_down.weight"]["requested"] == "Q6_K"
    assert table["blk.0.attn_q.weight"]["requested"] == "Q4_K"
    assert q4["tensor_types_written"]["F32"] == 9  # the norms, F32 by design
    assert report["files"]["F16"]["fallbacks"] == report["files"]["Q8_0"]["fallbacks"] == 0
    saved = json.loads((out / "verify.json").read_text())["files"]["Q4_K_M"]["tensors"]
    assert saved == q4["tensors"]


def test_k_quants_where_rows_fit_and_the_paper_like_ffn_down(model_dir, tmp_path, caplog):
    """Hidden 256 fits K-blocks; intermediate 352, like the 2.7B model's 5760, does not: only ffn_down falls back."""
    import logging

    from .model_fixtures import make_model

    wide = make_model(tmp_path / "wide", model_dir, hidden_size=256, intermediate_size=352, num_hidden_layers=2)
    with caplog.at_level(logging.INFO, logger="abacus_repro.export.tensor_types"):
        records = export_gguf(wide, tmp_path / "wide-Q4_K_M.gguf", "Q4_K_M")
    by_name = {row["name"]: row for row in records}
    for name, row in by_name.items():
        if name.endswith("ffn_down.weight"):
            assert row["fallback"] and row["reason"] == "ncols 352 not divisible by 256"
        elif len(row["shape"]) == 2:
            assert not row["fallback"] and row["written"] in ("Q4_K", "Q6_K"), row
    assert by_name["token_embd.weight"]["written"] == "Q6_K"
    assert {n: t for n, (_, t) in gguf_tensor_types(tmp_path / "wide-Q4_K_M.gguf").items()} == {
        n: row["written"] for n, row in by_name.items()
    }
    assert "2 of 15 weight matrices fell back" in caplog.text
    assert "blk.1.ffn_down.weight [256, 352]: asked Q6_K, written Q8_0" in caplog.text


def test_fallback_warnings_are_parsed_from_llama_cpp_text():
    # llama.cpp prints each warning in pieces; these are its formats (llama-quant.cpp, tensor_type_fallback).
    text = (
        "warning: blk.0.ffn_down.weight                - ncols    352 not divisible by 256 (required for type    q4_K) "
        "-> falling back to    q5_0\n"
        "warning: blk.9.attn_v.weight                  - ncols     40 not divisible by 256 (required for type    q6_K) "
        "(WARNING: must use F16 due to unusual shape) -> falling back to     f16\n"
    )
    assert parse_fallback_warnings(text) == {
        "blk.0.ffn_down.weight": {"requested": "Q4_K", "written": "Q5_0", "reason": "ncols 352 not divisible by 256"},
        "blk.9.attn_v.weight": {"requested": "Q6_K", "written": "F16", "reason": "ncols 40 not divisible by 256"},
    }


def test_our_q8_0_falls_back_to_f16_when_rows_do_not_fit():
    assert plan_written_type("blk.0.ffn_down.weight", (64, 48), "Q8_0")["written"] == "F16"
    assert plan_written_type("blk.0.ffn_down.weight", (64, 48), "Q8_0")["reason"] == "ncols 48 not divisible by 32"
    assert not plan_written_type("blk.0.ffn_up.weight", (48, 64), "Q8_0")["fallback"]
    norm = plan_written_type("blk.0.attn_norm.weight", (64,), "Q8_0")
    assert (norm["requested"], norm["written"], norm["fallback"]) == ("F32", "F32", False)


def test_verification_fails_loudly(model_dir, exported, tmp_path):
    _, paths, _ = exported
    strict = VerifySettings(F16=Thresholds(min_top1=1.0, max_abs_diff=1e-6, greedy_equal=True))
    with pytest.raises(ExportVerificationError, match=r"max \|logit diff\| .* > max_abs_diff 1e-06"):
        verify_exports([paths[0]], model_dir, tmp_path / "v.json", strict, threads=2)
    saved = json.loads((tmp_path / "v.json").read_text())
    assert saved["passed"] is False and saved["files"]["F16"]["passed"] is False
    # A type without thresholds fails too, rather than passing unchecked.
    q8_report = exported[2]["files"]["Q8_0"]
    defaults = VerifySettings()
    assert check_report(q8_report, defaults, type_thresholds(defaults)) == []
    without_q8 = {name: own for name, own in type_thresholds(defaults).items() if name != "Q8_0"}
    assert check_report(q8_report, defaults, without_q8) == [
        "model-Q8_0.gguf: no thresholds for type Q8_0 in export.verify"
    ]
    # A type the config gives replaces the schema's thresholds for it whole; the other types keep the schema's.
    own = {"min_top1": 0.5, "max_abs_diff": 1e-6, "greedy_equal": False}
    configured = ExportSettings.model_validate(resolved_section("export", {"verify": {"Q8_0": own}})).verify
    assert configured.Q8_0 == Thresholds(**own) and configured.F16 == defaults.F16
    assert "max |logit diff|" in check_report(q8_report, configured, type_thresholds(configured))[0]


def test_cli_verify(model_dir, exported, capsys):
    from abacus_repro.cli import main

    _, paths, _ = exported
    assert main(["export", "verify", str(paths[0]), "--model", str(model_dir), "--prompt", "def add(a, b):"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["files"]["F16"]["tokenization_equal"]


def test_cli_verify_takes_the_thresholds_of_the_resolved_config(model_dir, exported, tmp_path, capsys):
    """--configfile: the file plus the schema's defaults, as the workflow runs it; its export.verify decides."""
    import yaml

    from abacus_repro.cli import main
    from abacus_repro.config import DEFAULT_CONFIGFILE, read_config_file

    _, paths, _ = exported
    config = read_config_file(DEFAULT_CONFIGFILE)
    config.setdefault("export", {}).setdefault("verify", {})["F16"] = {
        "min_top1": 1.0,
        "max_abs_diff": 1e-6,
        "greedy_equal": True,
    }
    strict = tmp_path / "strict.yaml"
    strict.write_text(yaml.safe_dump(config))
    command = ["export", "verify", str(paths[0]), "--model", str(model_dir), "--prompt", "def add(a, b):"]
    assert main([*command, "--configfile", str(strict)]) == 1
    assert "max_abs_diff 1e-06" in capsys.readouterr().out


def test_non_byte_level_tokenizer_is_refused(model_dir, tmp_path):
    import shutil

    copy = tmp_path / "model"
    shutil.copytree(model_dir, copy)
    data = json.loads((copy / "tokenizer.json").read_text())
    data["pre_tokenizer"] = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": True}
    (copy / "tokenizer.json").write_text(json.dumps(data))
    with pytest.raises(InputError, match="byte-level BPE"):
        write_gguf(copy, tmp_path / "x.gguf", "F16")
    with pytest.raises(InputError, match="allowed types"):
        write_gguf(model_dir, tmp_path / "x.gguf", "Q2_K")


def test_near_ties_are_named_and_decisive_disagreements_fail():
    from abacus_repro.export.verify import compare_greedy, compare_logits

    ours = np.array([[3.0, 1.0, 0.0], [2.0, 1.99, 0.0], [0.0, 5.0, 1.0], [1.0, 0.0, 0.5]], dtype=np.float32)
    theirs = ours.copy()
    theirs[1] = [1.99, 2.0, 0.0]  # a near tie ranked the other way: our margin 0.01
    result = compare_logits(ours, theirs, tie_margin=0.03)
    assert result["top1_agreement"] == 0.75 and result["top1_agreement_beyond_ties"] == 1.0
    assert result["top1_disagreements"] == [
        {"position": 1, "ours": 0, "llama_cpp": 1, "margin": pytest.approx(0.01, abs=1e-6)}
    ]
    theirs[3] = [0.0, 2.0, 0.5]  # a decisive flip: our margin 1.0
    result = compare_logits(ours, theirs, tie_margin=0.03)
    assert result["top1_agreement"] == 0.5 and result["top1_agreement_beyond_ties"] == 0.75
    assert compare_logits(ours, theirs, 0.0)["top1_agreement_beyond_ties"] == 0.5  # no margin: every one counts

    step_logits = np.array([[0.0, 4.0, 1.0], [2.0, 1.995, 0.0], [0.0, 0.0, 9.0]], dtype=np.float32)
    assert compare_greedy([1, 0, 2], step_logits, [1, 0, 2], 0.03)["equal"]
    at_tie = compare_greedy([1, 0, 2], step_logits, [1, 1, 0], 0.03)
    assert at_tie["diverged_at"] == 1 and at_tie["near_tie"] and at_tie["margin"] == pytest.approx(0.005, abs=1e-6)
    decisive = compare_greedy([1, 0, 2], step_logits, [2, 0, 2], 0.03)
    assert decisive["diverged_at"] == 0 and not decisive["near_tie"] and decisive["margin"] == pytest.approx(3.0)
    assert not compare_greedy([1, 0], step_logits, [1, 0, 2], 0.03)["near_tie"]  # one side stopped early


def test_check_report_holds_f16_to_agreement_beyond_ties(exported):
    report = json.loads(json.dumps(exported[2]["files"]["F16"]))
    settings = VerifySettings()
    thresholds = type_thresholds(settings)
    near_tie = {"equal": False, "diverged_at": 3, "ours": 5, "llama_cpp": 6, "margin": 0.01, "near_tie": True}
    report["prompts"][0].update(greedy_equal=False, greedy_divergence=near_tie)
    report.update(greedy_equal=False, greedy_equal_up_to_ties=True)
    report["vs_hf"].update(top1_agreement=0.99, top1_agreement_beyond_ties=1.0)
    assert check_report(report, settings, thresholds) == []
    report["vs_hf"]["top1_agreement_beyond_ties"] = 0.99
    report["prompts"][0]["greedy_divergence"] = {**near_tie, "margin": 0.5, "near_tie": False}
    report["greedy_equal_up_to_ties"] = False
    failures = check_report(report, settings, thresholds)
    assert failures[0].startswith("model-F16.gguf: top-1 agreement beyond near ties (our margin <= 0.03) 0.9900")
    assert "greedy generation differs from the model's beyond near ties on 1 prompt(s)" in failures[1]
