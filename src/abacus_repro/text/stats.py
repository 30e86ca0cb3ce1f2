"""results/text/stats.json: the StackExchange funnel, the judge, the classifier's quality and the docs funnel."""

from __future__ import annotations

import logging
from typing import Any

from ..io import read_json, write_json
from ..rules import RulePaths
from ..settings import Settings

log = logging.getLogger(__name__)


def labels_informative(classifier: dict) -> bool:
    """Whether the judge's labels trained a filter (metrics from before this flag existed: a trained one)."""
    return bool(classifier.get("labels_informative", True))


def combine_text_stats(
    ingest: dict, judge: dict | None, classifier: dict | None, stackexchange: dict, docs: dict
) -> dict[str, Any]:
    """One summary; the question funnel runs ingest -> classifier, each step's counts adding up.

    ``labels_informative`` (top level, and in ``classifier``) is false when the judge's labels were nearly all
    one class and the classifier therefore kept every thread (text/classifier.py); ``class_counts`` and
    ``uninformative_reason`` say why. With the quality filter off (``text.classifier.enabled`` false) there is no
    judge and no classifier (``judge`` and ``classifier`` None): ``quality_filter: off``, and ``judge``,
    ``classifier`` and ``labels_informative`` are null.
    """
    ingest_dropped = sum(ingest.get("dropped", {}).values())
    if stackexchange["read"] != ingest["kept"]:
        raise AssertionError(
            f"classifier read {stackexchange['read']} threads but ingest kept {ingest['kept']}: stale inputs?"
        )
    summary = {
        "stackexchange": {
            "funnel": {
                "questions_read": ingest["read"],
                "dropped_at_ingest": ingest.get("dropped", {}),
                "threads": ingest["kept"],
                "dropped_by_classifier": stackexchange.get("dropped", {}),
                "kept": stackexchange["kept"],
                "kept_share_of_questions": round(stackexchange["kept"] / ingest["read"], 4) if ingest["read"] else None,
            },
            "dropped_total": ingest_dropped + sum(stackexchange.get("dropped", {}).values()),
            "ingest": ingest,
            "classifier_filter": stackexchange,
        },
        "docs": docs,
    }
    if judge is None or classifier is None:  # the key only then: the recipe's stats are as they always were
        return {**summary, "quality_filter": "off", "judge": None, "classifier": None, "labels_informative": None}
    return {**summary, **_filter_summary(judge, classifier)}


def _filter_summary(judge: dict, classifier: dict) -> dict[str, Any]:
    """The judge's labels and the classifier's quality, for a run whose quality filter is on."""
    return {
        "labels_informative": labels_informative(classifier),
        "judge": {
            key: judge.get(key)
            for key in (
                "judge",
                "available",
                "sample_size",
                "sampled",
                "labelled",
                "rejected",
                "rejected_by_reason",
                "reply_format",
                "constraint",
                "score_histogram",
                "good_score",
                "good",
                "bad",
                "good_share",
            )
        },
        "classifier": {
            key: classifier.get(key)
            for key in (
                "mode",
                "class_counts",
                "min_per_class",
                "uninformative_reason",
                "embedding_model",
                "threshold",
                "good_score",
                "labels",
                "precision",
                "recall",
                "f1",
                "roc_auc",
                "train",
                "validation",
            )
        }
        | {"labels_informative": labels_informative(classifier)},
    }


class TextStatsJob(Settings):
    """Rule text_stats reads no settings: only the funnels and metrics of the text stage's other rules."""


def text_stats_rule(settings: TextStatsJob, paths: RulePaths) -> dict:
    """Rule text_stats: results/text/stats.json from the text stage's funnels and the classifier's metrics."""
    inputs = paths.input
    # No judge or classifier input when the quality filter is off (workflow/rules/common.smk, get_text_stats_inputs).
    stats = combine_text_stats(
        read_json(inputs["ingest"]),
        read_json(inputs["judge"]) if "judge" in inputs else None,
        read_json(inputs["classifier"]) if "classifier" in inputs else None,
        read_json(inputs["stackexchange"]),
        read_json(inputs["docs"]),
    )
    write_json(paths.output["stats"], stats)
    log.info("stackexchange funnel: %s", stats["stackexchange"]["funnel"])
    return stats
