"""Document shaping that lm-eval task files call through ``process_docs: !function ...``.

Kept free of lm-eval imports: lm-eval hands over a ``datasets.Dataset`` and takes one back.
"""

from __future__ import annotations

import re

HELLASWAG_LINES_PER_ITEM = 6  # context, gold index, four endings


def _clean_hellaswag(text: str) -> str:
    # The same clean-up as lm-eval's hellaswag task: WikiHow "[title]" markers and other bracketed tags go.
    text = text.strip().replace(" [title]", ". ")
    text = re.sub(r"\[.*?\]", "", text)
    return text.replace("  ", " ")


def hellaswag_from_lines(dataset):
    """Six text lines per item -> {"query", "choices", "gold"} rows."""
    import datasets

    lines = [row["text"] for row in dataset]
    if len(lines) % HELLASWAG_LINES_PER_ITEM:
        raise ValueError(f"HellaSwag text has {len(lines)} lines, not a multiple of {HELLASWAG_LINES_PER_ITEM}")
    items = []
    for start in range(0, len(lines), HELLASWAG_LINES_PER_ITEM):
        context, gold, *endings = lines[start : start + HELLASWAG_LINES_PER_ITEM]
        if not gold.strip().isdigit() or not 0 <= int(gold) < len(endings):
            raise ValueError(f"HellaSwag item at line {start + 1}: gold label {gold!r} is not 0-3")
        items.append(
            {"query": _clean_hellaswag(context), "choices": [_clean_hellaswag(e) for e in endings], "gold": int(gold)}
        )
    return datasets.Dataset.from_list(items)


def _from_rows(dataset, shape) -> object:
    import datasets

    return datasets.Dataset.from_list([shape(dict(row)) for row in dataset])


def _arc_doc(row: dict) -> dict:
    if "query" in row:  # llm-foundry's rendering: already {"query": "Question: ...", "choices", "gold"}
        return {"query": row["query"], "choices": list(row["choices"]), "gold": int(row["gold"])}
    # AI2's layout: {"id", "question": {"stem", "choices": [{"text", "label"}, ...]}, "answerKey"}
    question = row["question"]
    choices = question["choices"]
    texts = choices["text"] if isinstance(choices, dict) else [choice["text"] for choice in choices]
    labels = choices["label"] if isinstance(choices, dict) else [choice["label"] for choice in choices]
    if row["answerKey"] not in labels:
        raise ValueError(f"ARC item {row.get('id')}: answerKey {row['answerKey']!r} is not one of {labels}")
    return {"query": f"Question: {question['stem']}", "choices": list(texts), "gold": labels.index(row["answerKey"])}


def arc_docs(dataset):
    """ARC rows in AI2's own layout (or llm-foundry's rendering) -> {"query", "choices", "gold"} as lm-eval's
    arc_easy asks: "Question: <stem>", the answer texts, the index of the answer key."""
    return _from_rows(dataset, _arc_doc)


def _hellaswag_doc(row: dict) -> dict:
    if "query" in row:  # llm-foundry's rendering
        return {"query": row["query"], "choices": list(row["choices"]), "gold": int(row["gold"])}
    # rowanz/hellaswag's layout: activity_label, ctx_a, ctx_b, endings, label (as lm-eval's hellaswag task)
    context = row["ctx_a"] + " " + row["ctx_b"].capitalize()
    return {
        "query": _clean_hellaswag(row["activity_label"] + ": " + context),
        "choices": [_clean_hellaswag(ending) for ending in row["endings"]],
        "gold": int(row["label"]),
    }


def hellaswag_docs(dataset):
    """HellaSwag rows in rowanz's hellaswag_val.jsonl layout (or llm-foundry's) -> {"query", "choices", "gold"}."""
    return _from_rows(dataset, _hellaswag_doc)


LETTERS = ("A", "B", "C", "D")


def _mmlu_doc(row: dict) -> dict:
    if "choice0" in row:  # the header layout of HF's cais/mmlu exports: choice0..3, answer = 0-3
        choices = [str(row[f"choice{i}"]) for i in range(4)]
        answer = int(row["answer"])
    else:  # hendrycks' original: no header, columns question, A, B, C, D, answer letter
        choices = [str(row[letter]) for letter in LETTERS]
        answer = LETTERS.index(str(row["answer"]).strip())
    return {"question": str(row["question"]), "choices": choices, "answer": answer}


def mmlu_docs(dataset):
    """MMLU rows in hendrycks' headerless A-D layout or the header layout -> {"question", "choices", "answer"}."""
    return _from_rows(dataset, _mmlu_doc)
