"""E-mail addresses, IP addresses and secrets in kept code, replaced by typed placeholders (issue 17, item 3).

As BigCode did for StarCoder's data: regular expressions find e-mail and IP addresses, detect-secrets' own
plugins find keys. Only the secret's characters are replaced (``<EMAIL>``, ``<IP_ADDRESS>``, ``<KEY>``), so a
secret inside a string literal leaves a string literal and the file still parses.

What is left alone, and why:

* e-mail addresses in the domains reserved for examples (example.com/.net/.org, ``*.example``, ``*.test``,
  ``*.invalid``, ``*.localhost``: RFC 2606/6761) and ``git@host:`` SSH remotes: nobody's address. In Python
  source an address must sit in a string or a comment (``x@self.weight`` is a matrix product);
* IP addresses that are not globally routable (private 10/8, 172.16/12, 192.168/16, loopback, link-local,
  unspecified 0.0.0.0, the documentation ranges, multicast, reserved: ``ipaddress``' own tables), and the
  well-known public DNS resolvers (8.8.8.8, 1.1.1.1, 9.9.9.9, ...): no person behind them;
* dotted quads that are version or section numbers: the first three parts single digits (``1.2.3.4``,
  ``7.1.4.34``) unless the line speaks of a host, server, IP or URL, any quad on a line that says "version",
  and a quad inside a longer dotted run (``1.2.3.4.5``);
* IPv6 needs three colons or more, so slices such as ``x[10::20]`` never count;
* keys: detect-secrets' pattern plugins only. Its entropy plugins are left out (without BigCode's gibberish
  model they flag every hash and test vector, which are not secrets) and so is its keyword plugin (BigCode
  left it out too: ``password = get_password()`` noise); its public-IP plugin is replaced by the rules above.
"""

from __future__ import annotations

import io
import ipaddress
import re
import tokenize
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache

PLACEHOLDERS = {"email": "<EMAIL>", "ip_address": "<IP_ADDRESS>", "key": "<KEY>"}

# An address is found from its @ (a literal search, two orders of magnitude faster than a pattern that may
# start anywhere): the domain is matched forwards, the local part backwards (at most 64 characters, RFC 5321).
EMAIL_DOMAIN = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![\w-])")
EMAIL_LOCAL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}\Z")
EMAIL_LOCAL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._%+-")
RESERVED_EMAIL_DOMAINS = ("example.com", "example.net", "example.org")
RESERVED_EMAIL_SUFFIXES = (
    ".example",
    ".test",
    ".invalid",
    ".localhost",
    *(f".{domain}" for domain in RESERVED_EMAIL_DOMAINS),
)
# Octets without leading zeros are left to ipaddress; the borders refuse longer dotted runs and words. Each
# pattern runs only where its cheap gate (no look-behind, so the scan is fast) finds something.
IPV4_GATE = re.compile(r"\d\.\d{1,3}\.\d{1,3}\.\d")
IPV6_GATE = re.compile(r"::|[0-9A-Fa-f]:[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{0,4}:")
IPV4 = re.compile(r"(?<![\w.])(\d{1,3}(?:\.\d{1,3}){3})(?![\w.]|\.\d)")
IPV6 = re.compile(r"(?<![\w:.])((?:[0-9A-Fa-f]{0,4}:){3,7}[0-9A-Fa-f]{0,4}(?:%\w+)?)(?![\w:])")
PUBLIC_DNS_RESOLVERS = frozenset(
    {
        "8.8.8.8",
        "8.8.4.4",
        "1.1.1.1",
        "1.0.0.1",
        "9.9.9.9",
        "149.112.112.112",
        "208.67.222.222",
        "208.67.220.220",
        "2001:4860:4860::8888",
        "2001:4860:4860::8844",
        "2606:4700:4700::1111",
        "2606:4700:4700::1001",
    }
)
NETWORK_WORDS = re.compile(r"host|server|dns|addr|\bip\b|connect|socket|url", re.IGNORECASE)
VERSION_WORD = re.compile(r"version", re.IGNORECASE)
# A private key block's body: base64 runs (an escaped \n between them is not part of one).
KEY_BODY_RUN = re.compile(r"\\[A-Za-z]|([A-Za-z0-9+/=]{16,})")
KEY_BLOCK_END = re.compile(r"-----END|Private-MAC")
KEY_BLOCK_MAX_LINES = 200
KEY_BODY_MIN_LINE = 40
BASE64_SIGN = re.compile(r"[0-9+/]").search
PRIVATE_KEY_TYPE = "Private Key"
# The sieve before detect-secrets' patterns: a secret its pattern plugins find is a run of 11 token
# characters or more holding a digit, or of 20 or more in mixed case (a random 20-character token lacks a digit
# 3% of the time; snake_case and UPPER_CASE names are neither), or carries one of these markers (a URL's
# password, key blocks, Slack, npm and JWT tokens, SendGrid, Stripe and Square keys, whose runs '.' or '_'
# may cut short). Left out by the sieve: a Cloudant password of 24 lower-case letters and nothing else.
KEY_GATE = re.compile(r"[A-Za-z0-9_+/=-]{11,}")
HAS_DIGIT = re.compile(r"\d").search
KEY_MARKERS = ("://", "PRIVATE KEY", "PuTTY", "xox", "_authToken", "eyJ", "SG.", "k_live_", "sq0csp")
SECRET_DELIMITERS = " \t\"'=:"
# detect-secrets' plugins that are not used (see the module docstring).
UNUSED_PLUGINS = frozenset({"Base64HighEntropyString", "HexHighEntropyString", "KeywordDetector", "IPPublicDetector"})
# detect-secrets' heuristic filters that apply to a line of code (its file-name filters do not).
SECRET_FILTERS = (
    "detect_secrets.filters.heuristic.is_sequential_string",
    "detect_secrets.filters.heuristic.is_potential_uuid",
    "detect_secrets.filters.heuristic.is_likely_id_string",
    "detect_secrets.filters.heuristic.is_templated_secret",
    "detect_secrets.filters.heuristic.is_prefixed_with_dollar_sign",
    "detect_secrets.filters.heuristic.is_indirect_reference",
    "detect_secrets.filters.heuristic.is_not_alphanumeric_string",
)


@dataclass(frozen=True)
class Finding:
    """One span to redact: [start, end) in the text, 1-based line of its start, and what it is."""

    kind: str
    start: int
    end: int
    line: int
    masked: str
    # False for the second and later base64 runs of one private key block: one key, counted and shown once.
    counted: bool = True

    def to_dict(self) -> dict:
        return {"kind": self.kind, "line": self.line, "masked": self.masked}


def redact(text: str, kinds: Iterable[str]) -> tuple[str, Counter[str]]:
    """``text`` with every finding of the given kinds replaced by its placeholder; the count per kind."""
    findings = find_redactions(text, kinds)
    return apply_redactions(text, findings), counted_kinds(findings)


def counted_kinds(findings: Iterable[Finding]) -> Counter[str]:
    """How many of each kind the findings replace (a key block's inner lines are not counted again)."""
    return Counter(finding.kind for finding in findings if finding.counted)


def apply_redactions(text: str, findings: list[Finding]) -> str:
    parts: list[str] = []
    position = 0
    for finding in findings:  # sorted, never overlapping
        parts.append(text[position : finding.start])
        parts.append(PLACEHOLDERS[finding.kind])
        position = finding.end
    parts.append(text[position:])
    return "".join(parts)


def find_redactions(text: str, kinds: Iterable[str]) -> list[Finding]:
    """Every span to redact, sorted by position. A key wins over an e-mail or IP address it overlaps (the
    password of ``https://user:pw@host`` is a key, not the start of an e-mail address)."""
    kinds = set(kinds)
    lines = _LineIndex(text)
    keys = list(_keys(text, lines)) if "key" in kinds else []
    others: list[Finding] = []
    if "email" in kinds:
        others.extend(_emails(text, lines))
    if "ip_address" in kinds:
        others.extend(_ip_addresses(text, lines))
    keys = _without_overlaps(sorted(keys, key=lambda f: (f.start, -f.end)))
    key_starts = [f.start for f in keys]
    chosen = list(keys)
    last_end = -1
    for finding in sorted(others, key=lambda f: (f.start, -f.end)):
        if finding.start < last_end or _overlaps_key(finding, keys, key_starts):
            continue
        chosen.append(finding)
        last_end = finding.end
    return sorted(chosen, key=lambda f: f.start)


def _without_overlaps(findings: list[Finding]) -> list[Finding]:
    kept: list[Finding] = []
    for finding in findings:
        if not kept or finding.start >= kept[-1].end:
            kept.append(finding)
    return kept


def _overlaps_key(finding: Finding, keys: list[Finding], key_starts: list[int]) -> bool:
    """Whether ``finding`` overlaps a key (keys never overlap each other: the one before it is the only
    one that can reach into it, besides any that starts inside it)."""
    index = bisect_right(key_starts, finding.start) - 1
    if index >= 0 and keys[index].end > finding.start:
        return True
    return index + 1 < len(keys) and keys[index + 1].start < finding.end


class _LineIndex:
    """Offsets of line starts, for 1-based line numbers and the text of a line."""

    def __init__(self, text: str):
        self.text = text
        self.starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def number(self, offset: int) -> int:
        return bisect_right(self.starts, offset)

    def line(self, number: int) -> str:
        start = self.starts[number - 1]
        end = self.starts[number] - 1 if number < len(self.starts) else len(self.text)
        return self.text[start:end]


# ------------------------------------------------------------------------------------------------ e-mails


def _emails(text: str, lines: _LineIndex) -> Iterator[Finding]:
    candidates = [found for found in _email_candidates(text) if not _reserved_email(text, *found)]
    # Tokenizing costs 30 times the rest: only when some address is not plainly in a comment or a string.
    unsure = [found for found in candidates if not _plainly_literal(text, lines, found[0], found[2])]
    literal_spans = _string_and_comment_spans(text) if unsure else None
    for start, at, end in candidates:
        if literal_spans is not None and not _inside(literal_spans, start, end):
            continue
        yield Finding("email", start, end, lines.number(start), f"{text[start]}…@{text[at + 1 : end]}")


def _plainly_literal(text: str, lines: _LineIndex, start: int, end: int) -> bool:
    """An address on a comment line, after a quote on its line, or in angle brackets ("Name <a@b.org>")."""
    before = text[lines.starts[lines.number(start) - 1] : start]
    if before.lstrip().startswith("#") or "'" in before or '"' in before:
        return True
    return before.endswith("<") and text[end : end + 1] == ">"


def _email_candidates(text: str) -> Iterator[tuple[int, int, int]]:
    """(start, position of @, end) of each e-mail-shaped run."""
    at = text.find("@")
    while at >= 0:
        domain = EMAIL_DOMAIN.match(text, at + 1)
        local = EMAIL_LOCAL.search(text, max(0, at - 64), at) if domain else None
        # The local part must be the whole run of local-part characters before the @, not its tail.
        if local and not (local.start() > 0 and text[local.start() - 1] in EMAIL_LOCAL_CHARS):
            yield local.start(), at, domain.end()
        at = text.find("@", at + 1)


def _reserved_email(text: str, start: int, at: int, end: int) -> bool:
    domain = text[at + 1 : end].lower()
    if domain in RESERVED_EMAIL_DOMAINS or domain.endswith(RESERVED_EMAIL_SUFFIXES):
        return True
    return text[start:at] == "git" and text[end : end + 1] == ":"


def _string_and_comment_spans(text: str) -> list[tuple[int, int]] | None:
    """[start, end) offsets of the string and comment tokens, when ``text`` tokenizes as Python; else None
    (then every candidate counts: not Python, or not tokenizable, so no code to protect)."""
    lines = _LineIndex(text)
    spans = []
    try:
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            if token.type in (tokenize.STRING, tokenize.COMMENT):
                start = lines.starts[token.start[0] - 1] + token.start[1]
                end = lines.starts[token.end[0] - 1] + token.end[1]
                spans.append((start, end))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return None
    return spans


def _inside(spans: list[tuple[int, int]], start: int, end: int) -> bool:
    index = bisect_right(spans, (start, float("inf"))) - 1
    return index >= 0 and spans[index][0] <= start and end <= spans[index][1]


# ------------------------------------------------------------------------------------------- IP addresses


def _ip_addresses(text: str, lines: _LineIndex) -> Iterator[Finding]:
    for gate, pattern, version in ((IPV4_GATE, IPV4, 4), (IPV6_GATE, IPV6, 6)):
        gated = {lines.number(match.start()) for match in gate.finditer(text)}
        for number, match, shift in _matches_on_lines(text, lines, gated, [pattern]):
            value = match.group(1)
            if not _public_address(value) or (version == 4 and _looks_like_version(value, lines.line(number))):
                continue
            start = match.start(1) + shift
            separator = "." if version == 4 else ":"
            yield Finding("ip_address", start, start + len(value), number, value.split(separator)[0] + separator + "…")


def _public_address(value: str) -> bool:
    try:
        address = ipaddress.ip_address(value.split("%")[0])
    except ValueError:  # 999.1.1.1, leading zeros, not an address
        return False
    if not address.is_global or address.is_multicast:
        return False
    return str(address) not in PUBLIC_DNS_RESOLVERS


def _looks_like_version(value: str, line: str) -> bool:
    """A version or section number (1.2.3.4, 7.1.4.34, "8.2.4.44 Bogus comment state") rather than an address:
    the line says "version", or the first three parts are single digits and the line speaks of no host."""
    if VERSION_WORD.search(line):
        return True
    return all(len(part) == 1 for part in value.split(".")[:3]) and not NETWORK_WORDS.search(line)


# ----------------------------------------------------------------------------------------------------- keys


@lru_cache(maxsize=1)
def _secret_plugins() -> tuple[list[str], dict[str, list[re.Pattern]]]:
    """(plugin names, each secret type's patterns): detect-secrets' pattern plugins, less the unused ones."""
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
    from detect_secrets.plugins.base import RegexBasedDetector

    classes = sorted(get_mapping_from_secret_type_to_class().values(), key=lambda c: c.__name__)
    used = [c for c in classes if issubclass(c, RegexBasedDetector) and c.__name__ not in UNUSED_PLUGINS]
    return [c.__name__ for c in used], {c.secret_type: list(c.denylist) for c in used}


def _candidate_lines(text: str, lines: _LineIndex) -> list[int]:
    """Lines on which a plugin's own pattern matches. Two sieves keep this cheap: detect-secrets' per-line
    scan (its filters, its argument injection) costs far more than a regex pass, and its 37 patterns cost
    more than one, so only lines that hold a long token or a plugin's short marker are searched with the
    patterns, and only lines a pattern matches are scanned."""
    gated = {lines.number(match.start()) for match in KEY_GATE.finditer(text) if _token_may_be_secret(match.group())}
    for marker in KEY_MARKERS:
        at = text.find(marker)
        while at >= 0:
            gated.add(lines.number(at))
            at = text.find(marker, at + 1)
    return sorted({number for number, _match, _shift in _matches_on_lines(text, lines, gated, _all_patterns())})


def _token_may_be_secret(token: str) -> bool:
    if HAS_DIGIT(token):
        return True
    return len(token) >= 20 and not token.islower() and not token.isupper()


def _all_patterns() -> list[re.Pattern]:
    return [pattern for group in _secret_plugins()[1].values() for pattern in group]


def _matches_on_lines(
    text: str, lines: _LineIndex, numbers: Iterable[int], patterns: list[re.Pattern]
) -> Iterator[tuple[int, re.Match, int]]:
    """(line number, match, shift) of each pattern on the given lines only, where match offset + shift is the
    offset in ``text``. The lines are joined into one string, so each pattern is one scan however many lines
    there are (a match never spans two lines: these patterns do not cross a newline)."""
    numbers = sorted(numbers)
    if not numbers:
        return
    starts, parts, position = [], [], 0
    for number in numbers:
        line = lines.line(number)
        starts.append(position)
        parts.append(line)
        position += len(line) + 1
    joined = "\n".join(parts)
    for pattern in patterns:
        for match in pattern.finditer(joined):
            index = bisect_right(starts, match.start()) - 1
            yield numbers[index], match, lines.starts[numbers[index] - 1] - starts[index]


def _keys(text: str, lines: _LineIndex) -> Iterator[Finding]:
    """detect-secrets decides what is a secret (its plugins' checks and heuristic filters, line by line); the
    plugin's pattern then gives the span to replace."""
    candidates = _candidate_lines(text, lines)
    if not candidates:
        return
    from detect_secrets.core.scan import scan_line
    from detect_secrets.settings import transient_settings

    names, patterns = _secret_plugins()
    config = {"plugins_used": [{"name": name} for name in names], "filters_used": [{"path": p} for p in SECRET_FILTERS]}
    block_end = 0
    with transient_settings(config):
        for number in candidates:
            line = lines.line(number)
            offset = lines.starts[number - 1]
            spans: set[tuple[int, int]] = set()
            for secret in scan_line(line):
                if secret.type == PRIVATE_KEY_TYPE:
                    if offset >= block_end:
                        found, block_end = _private_key_block(text, lines, number)
                        yield from found
                    continue
                spans.update(_secret_spans(line, secret.secret_value or "", patterns.get(secret.type, [])))
            for start, end in _outermost(spans):
                value = line[start:end]
                masked = f"{value[: max(1, min(4, len(value) // 5))]}…({len(value)} chars)"
                yield Finding("key", offset + start, offset + end, number, masked)


def _secret_spans(line: str, value: str, patterns: list[re.Pattern]) -> Iterator[tuple[int, int]]:
    """Where ``value`` (as detect-secrets reports it) sits in ``line``. A pattern's group that ends the match
    (up to a closing quote or @) is the secret itself: a URL's password, a quoted AWS secret key. A group that
    opens the match names the token's type (``ghp`` of a GitHub token): then the whole match is the secret,
    less the delimiters some patterns include (quotes, =, :, blanks), so the string literal stays one."""
    for pattern in patterns:
        for match in pattern.finditer(line):
            if value not in (match.group(0), *match.groups()):
                continue
            for index in range(1, (pattern.groups or 0) + 1):
                if match.group(index) and match.end() - match.end(index) <= 1 and match.start(index) > match.start():
                    yield match.span(index)
                    break
            else:
                whole = match.group(0)
                left = len(whole) - len(whole.lstrip(SECRET_DELIMITERS))
                right = len(whole.rstrip(SECRET_DELIMITERS))
                if right > left:
                    yield match.start() + left, match.start() + right


def _outermost(spans: set[tuple[int, int]]) -> list[tuple[int, int]]:
    """The spans not inside another one (two plugins may report the same token, one a part of the other)."""
    kept: list[tuple[int, int]] = []
    for start, end in sorted(spans, key=lambda s: (s[0], -s[1])):
        if kept and start < kept[-1][1]:
            kept[-1] = (kept[-1][0], max(end, kept[-1][1]))
        else:
            kept.append((start, end))
    return kept


def _private_key_block(text: str, lines: _LineIndex, begin_line: int) -> tuple[list[Finding], int]:
    """The base64 runs of the key block whose BEGIN marker is on ``begin_line``, as findings (the first carries
    the mask, the rest continue it: one key), and the offset where the block ends. The block runs to its END
    marker when one follows within KEY_BLOCK_MAX_LINES lines, else to the first line without a base64 run."""
    begin = lines.line(begin_line)
    marker = begin.find("PRIVATE KEY")
    closing = begin.find("-----", marker) if marker >= 0 else -1
    start = lines.starts[begin_line - 1] + (closing + 5 if closing >= 0 else len(begin))
    last_line = min(len(lines.starts), begin_line + KEY_BLOCK_MAX_LINES)
    limit = lines.starts[last_line] - 1 if last_line < len(lines.starts) else len(text)
    end_match = KEY_BLOCK_END.search(text, start, limit)
    end = end_match.start() if end_match else _end_of_base64_lines(text, lines, begin_line, limit)
    # Base64 lines hold digits, '+' or '/'; long names in code do not (a parser that names the marker is code,
    # not a key: without a line of 40 base64 characters there is no key body to redact).
    runs = [m for m in KEY_BODY_RUN.finditer(text, start, end) if m.group(1) and BASE64_SIGN(m.group(1))]
    if not any(len(run.group(1)) >= KEY_BODY_MIN_LINE for run in runs):
        return [], end
    total = sum(len(run.group(1)) for run in runs)
    findings = [
        Finding(
            "key",
            run.start(1),
            run.end(1),
            lines.number(run.start(1)),
            f"private key block ({total} base64 chars)",
            counted=index == 0,
        )
        for index, run in enumerate(runs)
    ]
    return findings, end


def _end_of_base64_lines(text: str, lines: _LineIndex, begin_line: int, limit: int) -> int:
    """Where a block without an END marker stops: the start of the first line after BEGIN with no base64 run."""
    number = begin_line + 1
    while number <= len(lines.starts) and lines.starts[number - 1] < limit:
        if not any(m.group(1) for m in KEY_BODY_RUN.finditer(lines.line(number))):
            return lines.starts[number - 1]
        number += 1
    return limit
