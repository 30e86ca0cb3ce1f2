"""Rule text_classifier_train: embeddings + logistic regression on the judge's labels -> JSON classifier."""

from abacus_repro.io import read_docs, write_json
from abacus_repro.logging_setup import setup_logging
from abacus_repro.text.classifier import DEFAULT_MODEL, train_classifier

sm = snakemake  # noqa: F821 - Snakemake injects `snakemake`
log = setup_logging(sm.log[0])
try:
    settings = dict(sm.params.classifier)
    classifier, metrics = train_classifier(
        read_docs(sm.input.labels),
        encoder_name=settings.get("embedding_model", DEFAULT_MODEL),
        good_score=int(sm.params.good_score),
        validation_fraction=float(settings.get("validation_fraction", 0.2)),
        threshold=float(settings.get("threshold", 0.5)),
        seed=int(sm.params.seed),
        C=float(settings.get("C", 1.0)),
        batch_size=int(settings.get("batch_size", 32)),
        max_chars=int(settings.get("max_chars", 2000)),
        threads=sm.threads,
        device=settings.get("device", "cpu"),
        labels_path=sm.input.labels,
        min_per_class=int(settings["min_per_class"]),
        on_uninformative=settings["on_uninformative"],
    )
    write_json(sm.output.classifier, classifier)
    write_json(sm.output.metrics, metrics)
except Exception:
    log.exception("text_classifier_train failed")
    raise
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
