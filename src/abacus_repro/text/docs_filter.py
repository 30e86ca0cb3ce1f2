"""Technical docs filter: keep Markdown/reST pages written in Chinese, English or both that contain Python code.

The recipe: "from the data, Markdown and reStructuredText files (usually a project's README or technical docs)
were selected, then those in Chinese or English containing Python code blocks were kept."

Decision for one page, in this order (the first failing check is the drop reason):

1. ``duplicate``: the same text was already seen (first one wins, in id order).
2. ``too_short``: fewer than ``min_chars`` characters once stripped.
3. ``language``: computed on the prose only (code blocks, inline code, URLs and markup removed, so code does
   not make every page look English). Han characters are counted against Latin words: a page with at least
   ``min_cjk_chars`` Han characters is ``zh`` when Han characters are at least ``zh_share`` of the units, else
   ``mixed`` (when its Latin part is English); Japanese kana or Korean hangul make it ``ja``/``ko``. Otherwise
   the language identifier py3langid decides (``en`` when it says English). The page is kept when its language
   is in ``languages``.
4. ``no_python_code``: no Python block. Python is a fenced block tagged python/py/python3/py3/pycon/ipython; a
   ``.. code-block:: python`` / ``.. code:: python`` / ``.. sourcecode:: python`` (or ``ipython``,
   ``testcode``, ``doctest``, ``jupyter-execute``) directive; a reST ``::`` literal block, an untagged fence or
   an untagged directive whose text parses as Python with at least one real statement (not just a name or a
   literal, which shell one-liners and JSON would also be); or a ``>>>`` doctest.

The blocks and the prose are found by markdown-it-py, docutils and the standard library's doctest parser
(:mod:`abacus_repro.text.page_blocks`).
"""

from __future__ import annotations

import ast
import logging
import re
import textwrap
from collections import Counter
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import PurePosixPath
from typing import Any

from tqdm import tqdm

from ..io import Funnel, doc_meta, make_doc, read_docs, write_docs, write_json
from ..rules import RulePaths
from ..settings import DocsSettings
from .doctests import doctest_source
from .page_blocks import CodeBlock, code_blocks, markdown_blocks, rst_blocks

log = logging.getLogger(__name__)

PYTHON_LANGS = {"python", "py", "python3", "py3", "pycon", "ipython", "ipython3", "python-repl", "pyrepl"}
UNNAMED = {"", "none", "text", "default", "guess", "literal"}
_STATEMENTS = (
    ast.Import,
    ast.ImportFrom,
    ast.FunctionDef,
    ast.AsyncFunctionDef,
    ast.ClassDef,
    ast.Assign,
    ast.AugAssign,
    ast.For,
    ast.AsyncFor,
    ast.While,
    ast.With,
    ast.AsyncWith,
    ast.If,
    ast.Try,
    ast.Return,
    ast.Raise,
    ast.Assert,
    ast.Delete,
    ast.Call,
    ast.Lambda,
    ast.ListComp,
    ast.DictComp,
)

_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_KANA = re.compile(r"[\u3040-\u30ff]")
_HANGUL = re.compile(r"[\uac00-\ud7af]")
_CJK_ANY = re.compile(r"[\u3000-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef]")
_LATIN_WORD = re.compile(r"[A-Za-z\u00c0-\u024f]{2,}")
_INLINE_CODE = re.compile(r"``[^`]+``|`[^`\n]+`")
_URL = re.compile(r"\(?https?://\S+|www\.\S+")
_MARKUP = re.compile(r"<[^>\n]+>|:[\w-]+:|\[[^\]]*\]\([^)]*\)|[#*_=~^|>\-]{2,}")
# Fewer Latin words than this (and little Chinese) is too little prose to identify a language: ``und``.
MIN_WORDS = 10


@dataclass
class Decision:
    keep: bool
    reason: str = ""
    detail: str = ""
    language: str = ""
    cjk_chars: int = 0
    cjk_share: float = 0.0
    langid: str = ""
    langid_prob: float = 0.0
    python_blocks: dict[str, int] = field(default_factory=dict)
    code_languages: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parses_as_python(code: str) -> bool:
    """Parses, and holds at least one real statement (a bare word or a literal is not evidence of Python)."""
    try:
        tree = ast.parse(textwrap.dedent(code))
    except (SyntaxError, ValueError):
        return False
    for node in ast.walk(tree):
        if isinstance(node, _STATEMENTS):
            return True
        if isinstance(node, ast.AnnAssign) and node.value is not None:  # `key: value` alone is YAML
            return True
    return False


def is_python_block(block: CodeBlock) -> bool:
    source = doctest_source(block.text)  # a doctest, in any block: its examples' Python
    if source.strip() and _parses(source):
        return True
    if block.language in PYTHON_LANGS:
        return bool(block.text.strip())
    if block.language in UNNAMED:
        return parses_as_python(block.text)
    return False


def _parses(source: str) -> bool:
    try:
        ast.parse(source)
        return True
    except (SyntaxError, ValueError):
        return False


__all__ = ["CodeBlock", "check_page", "code_blocks", "filter_docs", "markdown_blocks", "rst_blocks"]


# -- language ---------------------------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def _identifier():
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def identify(text: str) -> tuple[str, float]:
    """py3langid's language code and probability for ``text``."""
    if not text.strip():
        return "und", 0.0
    language, probability = _identifier().classify(text)
    return language, round(float(probability), 4)


def clean_prose(prose: str) -> str:
    """Prose without inline code, URLs and markup, for language identification."""
    prose = _INLINE_CODE.sub(" ", prose)
    prose = _URL.sub(" ", prose)
    return _MARKUP.sub(" ", prose)


def detect_language(prose: str, settings: DocsSettings) -> dict[str, Any]:
    """zh / en / mixed, another language code, or ``und`` (too little prose); with the numbers behind it.

    ``settings``: ``min_cjk_chars`` and ``zh_share`` (module docstring, step 3).
    """
    min_cjk_chars, zh_share = settings.min_cjk_chars, settings.zh_share
    prose = clean_prose(prose)
    han, kana, hangul = len(_HAN.findall(prose)), len(_KANA.findall(prose)), len(_HANGUL.findall(prose))
    latin_words = len(_LATIN_WORD.findall(prose))
    share = han / (han + latin_words) if han + latin_words else 0.0
    latin_only = _CJK_ANY.sub(" ", prose)  # Han, kana and CJK punctuation out: langid then sees the Latin text
    result = {"cjk_chars": han, "cjk_share": round(share, 4), "latin_words": latin_words}
    if kana >= 10 and kana >= 0.1 * han:
        return result | _with_langid("ja", prose)
    if hangul >= 10 and hangul > han:
        return result | _with_langid("ko", prose)
    if han >= 5 and share >= zh_share:
        return result | _with_langid("zh", latin_only)
    if han >= min_cjk_chars:
        # Substantial Chinese next to more Latin text: bilingual when that Latin text is English.
        found = _with_langid("", latin_only)
        return result | found | {"language": "mixed" if found["langid"] == "en" else found["langid"]}
    if latin_words < MIN_WORDS:
        return result | {"language": "und", "langid": "und", "langid_prob": 0.0}
    found = _with_langid("", latin_only)
    return result | found | {"language": found["langid"]}


def _with_langid(language: str, text: str) -> dict[str, Any]:
    found, probability = identify(text[:20000]) if _LATIN_WORD.search(text) else ("und", 0.0)
    return {"language": language, "langid": found, "langid_prob": probability}


# -- the filter -------------------------------------------------------------------------------------------------
def page_format(meta: dict, text: str = "") -> str:
    """md or rst, from the metadata's format or the path's suffix; plain text pages (READMEs without a suffix,
    .txt under docs/) are read as Markdown when they hold a fence and as reST (Sphinx's old .txt habit) otherwise."""
    fmt = str(meta.get("format") or "").lower()
    if fmt in ("md", "markdown", "myst"):
        return "md"
    if fmt in ("rst", "rest", "restructuredtext"):
        return "rst"
    suffix = PurePosixPath(str(meta.get("path") or "")).suffix.lower()
    if suffix in (".md", ".markdown"):
        return "md"
    if suffix in (".rst", ".rest"):
        return "rst"
    return "md" if re.search(r"^ {0,3}(```|~~~)", text, flags=re.MULTILINE) else "rst"


def check_page(text: str, fmt: str, settings: DocsSettings) -> Decision:
    """The keep/drop decision for one page (duplicates are the caller's business); ``settings``: the languages
    kept, ``min_chars`` and the language thresholds."""
    languages, min_chars = settings.languages, settings.min_chars
    length = len(text.strip())
    blocks, prose = code_blocks(text, fmt)
    python = Counter(b.kind for b in blocks if is_python_block(b))
    other = Counter(b.language or "untagged" for b in blocks if not is_python_block(b))
    language = detect_language(prose, settings)
    decision = Decision(
        keep=False,
        language=language["language"],
        cjk_chars=language["cjk_chars"],
        cjk_share=language["cjk_share"],
        langid=language["langid"],
        langid_prob=language["langid_prob"],
        python_blocks=dict(sorted(python.items())),
        code_languages=dict(sorted(other.items())),
    )
    if length < min_chars:
        decision.reason, decision.detail = "too_short", f"{length} chars < min_chars {min_chars}"
    elif language["language"] not in languages:
        decision.reason = "language"
        decision.detail = (
            f"language {language['language']} not in {list(languages)} (langid "
            f"{language['langid']} p={language['langid_prob']}, cjk_share={language['cjk_share']})"
        )
    elif not python:
        decision.reason = "no_python_code"
        others = ", ".join(f"{lang}={n}" for lang, n in sorted(other.items()))
        decision.detail = f"no Python block; other code blocks: {others}" if others else "no code blocks"
    else:
        decision.keep = True
    return decision


def filter_docs(docs: list[dict], settings: DocsSettings) -> tuple[list[dict], list[dict], dict]:
    """Every page kept or dropped with a reason; returns (kept, dropped, stats)."""
    funnel = Funnel("docs_filter")
    kept: list[dict] = []
    dropped: list[dict] = []
    first_seen: dict[str, str] = {}
    by_language: Counter[str] = Counter()
    for doc in tqdm(sorted(docs, key=lambda d: d["id"]), desc="docs filter", unit="page", mininterval=10):
        meta = doc_meta(doc)
        fingerprint = re.sub(r"\s+", " ", doc["text"]).strip()
        if fingerprint in first_seen:
            funnel.drop("duplicate")
            dropped.append(dict(doc, reason="duplicate", detail=f"same text as {first_seen[fingerprint]}"))
            continue
        first_seen[fingerprint] = doc["id"]
        decision = check_page(doc["text"], page_format(meta, doc["text"]), settings)
        meta.update(language=decision.language, cjk_share=decision.cjk_share, python_blocks=decision.python_blocks)
        record = make_doc(doc["text"], doc.get("source") or "docs", meta, id=doc["id"])
        if decision.keep:
            funnel.keep()
            by_language[decision.language] += 1
            kept.append(record)
        else:
            funnel.drop(decision.reason)
            dropped.append(dict(record, reason=decision.reason, detail=decision.detail))
    funnel.extra.update(
        kept_by_language=dict(sorted(by_language.items())),
        languages=list(settings.languages),
        min_chars=settings.min_chars,
    )
    return kept, dropped, funnel.to_dict()


def docs_filter_rule(settings: DocsSettings, paths: RulePaths) -> dict:
    """Rule docs_filter: keep Chinese/English/bilingual docs pages that contain Python code."""
    kept, dropped, stats = filter_docs(read_docs(paths.input["docs"]), settings)
    write_docs(paths.output["kept"], kept)
    write_docs(paths.output["dropped"], dropped, dropped=True)
    write_json(paths.output["stats"], stats)
    log.info("docs: kept %d of %d, dropped %s", stats["kept"], stats["read"], stats["dropped"])
    return stats
