"""`abacus-repro text ...`: look at one docs page's decision, or at what a StackExchange dump turns into."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from ..errors import InputError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("text", help="text data: docs pages, StackExchange dumps")
    commands = parser.add_subparsers(dest="text_command", required=True)

    docs = commands.add_parser("docs-check", help="why a Markdown/reST page is kept or dropped by the docs filter")
    docs.add_argument("paths", nargs="+", type=Path, help="page files (.md, .rst)")
    docs.add_argument("--languages", nargs="+", help="languages kept (default: text.docs.languages)")
    docs.add_argument("--min-chars", type=int, help="shortest page kept (default: text.docs.min_chars)")
    docs.set_defaults(func=_docs_check)

    dump = commands.add_parser("se-check", help="the funnel of a StackExchange dump and its first threads")
    dump.add_argument("dump", type=Path, help="a Posts.xml or a site's .7z archive (read as a stream)")
    dump.add_argument("--answers-per-question", type=int, help="default: text.stackexchange.answers_per_question")
    dump.add_argument("--show", type=int, default=1, help="print this many threads")
    dump.set_defaults(func=_se_check)


def _docs_check(args: argparse.Namespace) -> int:
    from ..ingest.docs import format_of
    from ..settings import DocsSettings
    from .docs_filter import check_page

    given = {"languages": args.languages, "min_chars": args.min_chars}
    settings = DocsSettings(**{key: value for key, value in given.items() if value is not None})
    for path in args.paths:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise InputError(path, f"cannot read page ({err})") from err
        decision = check_page(text, format_of(path) or "md", settings)
        print(json.dumps({"path": str(path)} | decision.to_dict(), ensure_ascii=False))
    return 0


def _se_check(args: argparse.Namespace) -> int:
    from ..ingest.stackexchange import ingest_stackexchange
    from ..logging_setup import setup_logging
    from ..settings import StackExchangeSettings

    setup_logging(level=logging.WARNING)  # a dump with no rows is a warning on stderr, as in the rule's log

    given = {"dumps": [str(args.dump)], "answers_per_question": args.answers_per_question}
    settings = StackExchangeSettings(**{key: value for key, value in given.items() if value is not None})
    docs, _dropped, stats = ingest_stackexchange(settings)
    print(json.dumps(stats, indent=2, ensure_ascii=False))
    for doc in docs[: args.show]:
        print("-" * 80)
        print(doc["text"])
    return 0
