"""Rule text_classifier_train: embeddings + logistic regression on the judge's labels -> JSON classifier."""

from abacus_repro.io import read_docs, write_json
from abacus_repro.logging_setup import setup_logging
from abacus_repro.text.classifier import train_classifier

smk = snakemake  # noqa: F821  (injected by Snakemake's script directive)
log = setup_logging(smk.log[0])
try:
    settings = dict(smk.params.classifier)
    classifier, metrics = train_classifier(
        read_docs(smk.input.labels),
        encoder_name=settings["embedding_model"],
        good_score=int(smk.params.good_score),
        validation_fraction=float(settings["validation_fraction"]),
        threshold=float(settings["threshold"]),
        seed=int(smk.params.seed),
        C=float(settings["C"]),
        batch_size=int(settings["batch_size"]),
        max_chars=int(settings["max_chars"]),
        threads=smk.threads,
        device=settings["device"],
        labels_path=smk.input.labels,
        min_per_class=int(settings["min_per_class"]),
        on_uninformative=settings["on_uninformative"],
    )
    write_json(smk.output.classifier, classifier)
    write_json(smk.output.metrics, metrics)
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
