"""The SFT dataset: verified code pairs mixed with natural-language pairs (sft.nl_path) at 1:ratio.

Semantic near-duplicates were removed before (rule sft_semdedup, semdedup.py, over code and NL together);
exact duplicates (same instruction text) that remain are removed here. NL pairs are then sampled (seeded) down
to ``code : nl = 1 : code_nl_ratio``. When there are fewer NL pairs than that, ``nl_shortfall`` decides:
``repeat`` draws the missing NL pairs again by seeded sampling (the way the mixture repeats short sources),
``trim_code`` samples the code pairs down instead (dropped as ``ratio_excess``), ``keep`` keeps both as they
are and only reports the ratio achieved. Both sides are spread evenly through the output, the code side in its
curriculum order.
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Iterable

from ..io import Funnel, content_id, doc_meta, make_doc, read_docs, write_docs, write_json
from ..rules import RulePaths
from ..settings import Settings, SftSettings
from ..tokenization.chat import render_chat

log = logging.getLogger(__name__)

SOURCE = "sft"
_ANSWER_HEADING = re.compile(r"^## (?:Accepted answer|Answer)[ \t]*$", re.MULTILINE)


def nl_pair(doc: dict) -> tuple[str, str] | None:
    """(instruction, response) from an NL document; None when it has no question or no answer.

    Uses meta "instruction"/"response" (instruction sets, see nl_data.py), else meta "question"/"answer" (and
    "title") when the text stage provides them, else the StackExchange document layout
    "# {title}\\n\\n{question}\\n\\n## Accepted answer|## Answer\\n\\n{answer}..." (first answer = accepted or best).
    """
    meta = doc_meta(doc)
    instruction, response = meta.get("instruction"), meta.get("response")
    if isinstance(instruction, str) and isinstance(response, str):
        instruction, response = instruction.strip(), response.strip()
        return (instruction, response) if instruction and response else None
    question, answer, title = meta.get("question"), meta.get("answer"), meta.get("title")
    if not (isinstance(question, str) and isinstance(answer, str)):
        parsed = split_qa_text(doc.get("text") or "")
        if parsed is None:
            return None
        title, question, answer = parsed
    title = (title or "").strip()
    question, answer = question.strip(), answer.strip()
    if not answer or not (title or question):
        return None
    instruction = (
        f"{title}\n\n{question}" if title and question and not question.startswith(title) else (question or title)
    )
    return instruction, answer


def split_qa_text(text: str) -> tuple[str, str, str] | None:
    headings = list(_ANSWER_HEADING.finditer(text))
    if not headings:
        return None
    head = text[: headings[0].start()].strip()
    end = headings[1].start() if len(headings) > 1 else len(text)
    answer = text[headings[0].end() : end].strip()
    title, question = "", head
    if head.startswith("# "):
        first_line, _, rest = head.partition("\n")
        title, question = first_line[2:].strip(), rest.strip()
    return title, question, answer


def build_dataset(code_docs: Iterable[dict], nl_docs: Iterable[dict], settings: SftSettings, seed: int):
    """Returns (dataset documents, stats): code and NL pairs mixed 1:``settings.code_nl_ratio``, a shortfall of NL
    pairs handled as ``settings.nl_shortfall`` says. Every code and NL record read is kept or dropped with a
    reason; NL pairs drawn again to reach the ratio are counted apart (``nl_repeated``), not as records read."""
    code_nl_ratio, nl_shortfall = settings.code_nl_ratio, settings.nl_shortfall
    funnel = Funnel("sft_dataset")
    seen: set[str] = set()
    code_pairs: list[dict] = []
    for doc in code_docs:
        meta = doc_meta(doc)
        instruction, response = meta.get("instruction"), meta.get("response")
        if not instruction or not response:
            funnel.drop("missing_pair")
            continue
        if _seen_before(instruction, seen):
            funnel.drop("duplicate_instruction")
            continue
        code_pairs.append(_pair_doc(instruction, response, "code", meta))

    nl_pairs: list[dict] = []
    for doc in sorted(nl_docs, key=lambda d: d["id"]):
        pair = nl_pair(doc)
        if pair is None:
            funnel.drop("not_a_qa_pair")
            continue
        if _seen_before(pair[0], seen):
            funnel.drop("duplicate_instruction")
            continue
        nl_pairs.append(_pair_doc(*pair, "nl", _nl_origin(doc)))

    code_pairs, nl_pairs, trimmed = _balance(code_pairs, nl_pairs, code_nl_ratio, seed, nl_shortfall)
    if trimmed:
        funnel.drop("ratio_excess", trimmed)
    nl_unique = sum(1 for doc in nl_pairs if "copy_of" not in doc_meta(doc))
    dataset = _interleave(code_pairs, nl_pairs)
    funnel.keep(len(code_pairs) + nl_unique)
    funnel.extra.update(
        code=len(code_pairs),
        nl=len(nl_pairs),
        nl_unique=nl_unique,
        nl_repeated=len(nl_pairs) - nl_unique,
        nl_shortfall=nl_shortfall,
        rows=len(dataset),
        code_nl_ratio=code_nl_ratio,
        achieved_nl_per_code=round(len(nl_pairs) / len(code_pairs), 4) if code_pairs else None,
        ratio_met=bool(code_pairs) and len(nl_pairs) == round(len(code_pairs) * code_nl_ratio),
        dedup="semantic (sft_semdedup, before) + exact instruction text",
    )
    return dataset, funnel.to_dict()


def _seen_before(instruction: str, seen: set[str]) -> bool:
    key = instruction.strip()
    if key in seen:
        return True
    seen.add(key)
    return False


def _nl_origin(doc: dict) -> dict:
    meta = doc_meta(doc)
    origin = {key: meta[key] for key in ("site", "question_id") if key in meta}
    origin["origin"] = meta.get("origin") or f"{doc.get('source') or 'nl'}:{doc['id']}"
    return origin


def _pair_doc(instruction: str, response: str, kind: str, meta: dict) -> dict:
    out = {"instruction": instruction, "response": response, "kind": kind}
    for key in ("origin", "tests_passed", "site", "question_id"):
        if key in meta:
            out[key] = meta[key]
    return make_doc(render_chat(instruction, response), SOURCE, out)


def _balance(code: list[dict], nl: list[dict], ratio: float, seed: int, shortfall: str) -> tuple[list, list, int]:
    """(code, nl, records dropped) at ``code : nl = 1 : ratio``. NL pairs beyond the ratio are dropped by a
    seeded sample; a shortfall of NL pairs is handled as ``shortfall`` says (module docstring)."""
    if not code:
        if nl:
            log.warning("no code pairs: the SFT set is natural language only")
        return code, nl, 0
    rng = random.Random(seed)
    want_nl = round(len(code) * ratio)
    if len(nl) >= want_nl:
        keep = sorted(rng.sample(range(len(nl)), want_nl))
        return code, [nl[i] for i in keep], len(nl) - want_nl
    log.warning("only %d NL pairs for %d code pairs (wanted 1:%s = %d); nl_shortfall=%s", len(nl), len(code),
                ratio, want_nl, shortfall)  # fmt: skip
    if shortfall == "keep" or not nl:
        return code, nl, 0
    if shortfall == "trim_code":
        want_code = max(1, round(len(nl) / ratio)) if ratio else len(code)
        keep = sorted(rng.sample(range(len(code)), min(want_code, len(code))))  # curriculum order kept
        return [code[i] for i in keep], nl, len(code) - len(keep)
    # repeat: whole rounds of the NL pairs, then the remainder drawn without replacement; a copy gets an id of
    # its own (round k) so every row of the dataset stays addressable.
    rounds, rest = divmod(want_nl, len(nl))
    repeated = [_copy(doc, k) for k in range(1, rounds) for doc in nl]
    repeated += [_copy(nl[i], rounds) for i in sorted(rng.sample(range(len(nl)), rest))]
    return code, nl + repeated, 0


def _copy(doc: dict, round_: int) -> dict:
    meta = {**doc_meta(doc), "copy_of": doc["id"], "repeat": round_}
    return make_doc(doc["text"], doc["source"], meta, id=content_id(doc["id"], f"repeat-{round_}"))


def _interleave(code: list[dict], nl: list[dict]) -> list[dict]:
    """Both lists spread evenly over the output, each in its own order."""
    keyed = [((i + 0.5) / len(code), 0, i, doc) for i, doc in enumerate(code)]
    keyed += [((j + 0.5) / len(nl), 1, j, doc) for j, doc in enumerate(nl)]
    return [doc for *_, doc in sorted(keyed, key=lambda item: item[:3])]


class SftDatasetJob(Settings):
    """What rule sft_dataset reads: the seed and the ``sft:`` section (code_nl_ratio, nl_shortfall)."""

    seed: int
    sft: SftSettings


def run_sft_dataset(settings: SftDatasetJob, paths: RulePaths) -> dict:
    """Rule sft_dataset: verified code pairs mixed 1:code_nl_ratio with the NL pairs, exact dedup."""
    dataset, stats = build_dataset(
        read_docs(paths.input["code"]), read_docs(paths.input["nl"]), settings.sft, settings.seed
    )
    log.info("sft dataset: %d code + %d nl pairs (%d repeated)", stats["code"], stats["nl"], stats["nl_repeated"])
    write_docs(paths.output["dataset"], dataset)
    write_json(paths.output["stats"], stats)
    return stats
