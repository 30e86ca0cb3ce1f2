"""How precise is recipe step 2? Every data-dense and repetitive rule is run on its own over labelled files: Python
files of maintained projects that must be kept (read in place from the installed site-packages) and files that
really are data or trivially repetitive, which must be dropped (installed generated tables plus cases built here).

The labels file (tests/data/step2_labels.yaml) names, relative to site-packages (or ``stdlib:`` + a path relative
to the standard library):
``must_keep``: packages or files, all of whose .py files count as maintained code, less those listed below;
``must_drop``: {path, reason} files the step must drop; ``known_miss: true`` marks data that no rule measures
(reported in the recall, not required);
``not_scored``: {path, reason} borderline files left out of both sets.
"""

from __future__ import annotations

import base64
import random
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..errors import InputError
from ..settings import CodeSettings
from .content import DATA_DENSE_RULES, REPETITIVE_RULES, counted_lines
from .settings import REPETITIVE_MIN_LINES
from .syntax import ParsedFile, analyse_tree, parse_python

RULES = tuple(name for name, _ in DATA_DENSE_RULES + REPETITIVE_RULES)


def rule_verdicts(text: str, parsed: ParsedFile, settings: CodeSettings) -> dict[str, str | None]:
    """Each step-2 rule's own verdict on a file (the detail of why it drops it, or None), whether or not an
    earlier rule would already have dropped it."""
    lengths = list(map(len, text.splitlines())) or [0]
    verdicts = {name: rule(text, lengths, parsed, settings) for name, rule in DATA_DENSE_RULES}
    counted = counted_lines(text)
    for name, rule in REPETITIVE_RULES:
        verdicts[name] = rule(counted, settings) if len(counted) >= REPETITIVE_MIN_LINES else None
    return verdicts


@dataclass
class RuleCounts:
    """Files of one labelled set, and how many each rule (and step 2 as a whole) drops, with examples."""

    files: int = 0
    unparsed: int = 0
    dropped: dict[str, int] = field(default_factory=lambda: dict.fromkeys((*RULES, "step2"), 0))
    examples: dict[str, list[str]] = field(default_factory=dict)

    def add(self, name: str, text: str, settings: CodeSettings) -> None:
        tree, _ = parse_python(text)
        if tree is None:  # step 1 drops it; step 2 never sees it
            self.unparsed += 1
            return
        self.files += 1
        verdicts = rule_verdicts(text, analyse_tree(tree), settings)
        for rule, detail in verdicts.items():
            if detail is not None:
                self.dropped[rule] += 1
                self.examples.setdefault(rule, []).append(f"{name}: {detail}")
        self.dropped["step2"] += any(detail is not None for detail in verdicts.values())

    def rate(self, rule: str) -> float:
        return self.dropped[rule] / self.files if self.files else 0.0


def synthetic_must_drop() -> dict[str, str]:
    """Data and copy-paste code of the kinds step 2 is for, built here (seeded, so always the same text)."""
    rng = random.Random(17)
    image = base64.b64encode(bytes(rng.randrange(256) for _ in range(3000))).decode()
    wrapped_image = "\n".join(image[i : i + 76] for i in range(0, len(image), 76))
    hex_table = ",\n".join("    " + ", ".join(f"0x{rng.randrange(2**32):08X}" for _ in range(8)) for _ in range(64))
    paste = "".join(
        f"    result = process(data, mode={i})\n    log.info('processed %s', result)\n"
        f"    results.append(result)\n    counter += 1\n"
        for i in range(30)
    )
    handlers = "".join(
        f"def handler_{i}(request):\n    data = request.get_json()\n    if not data:\n"
        f"        return error_response(400)\n    result = process(data, mode={i})\n    return ok_response(result)\n\n\n"
        for i in range(30)
    )
    digits = "".join(str(rng.randrange(10)) for _ in range(4000))
    words = "\n".join(f"keyword_{rng.randrange(10**6)}" for _ in range(400))
    numbers = ", ".join(f"{rng.random():.6f}" for _ in range(2000))
    return {
        "base64 PNG on one line": f'"""Icons."""\n\nICON = "{image}"\n',
        "base64 PNG wrapped in a triple-quoted string": f'ICON = """\n{wrapped_image}\n"""\n',
        "hex table (8 x 64 words)": f"TABLE = [\n{hex_table},\n]\n",
        "block pasted 30 times, one literal changed": f"def run(data):\n    results = []\n{paste}    return results\n",
        "function pasted 30 times, name and literal changed": handlers,
        "200 identical assignments": "value = compute_value(1)\n" * 200,
        "4000 digits in a string": f'DIGITS = "{digits}"\n',
        "word list in a string": f'KEYWORDS = """\n{words}\n"""\n',
        "2000 numbers on one line": f"WEIGHTS = [{numbers}]\n",
    }


def load_labels(path: str | Path) -> dict:
    """The labels file, checked for the three lists it may hold."""
    try:
        labels = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise InputError(path, f"cannot read the step-2 labels: {err}") from err
    if not isinstance(labels, dict) or not isinstance(labels.get("must_keep"), list):
        raise InputError(path, "expected a mapping with a list `must_keep` (and optional must_drop, not_scored)")
    return labels


def resolve(label: str) -> Path:
    """A label's path on disk: relative to site-packages, or to the standard library after ``stdlib:``."""
    if label.startswith("stdlib:"):
        return Path(sysconfig.get_paths()["stdlib"]) / label.removeprefix("stdlib:")
    return Path(sysconfig.get_paths()["purelib"]) / label


def labelled_paths(labels: dict, labels_path: str | Path) -> tuple[list[Path], list[tuple[Path, dict]]]:
    """(must-keep files, [(must-drop file, its entry)]): every listed path must exist, so a missing package is an
    error rather than a smaller set."""
    set_aside = {resolve(entry["path"]) for entry in labels.get("must_drop", []) + labels.get("not_scored", [])}
    keep: list[Path] = []
    for label in labels["must_keep"]:
        root = resolve(label)
        if not root.exists():
            raise InputError(labels_path, f"must_keep: {label}: not installed at {root}")
        files = [root] if root.is_file() else sorted(root.rglob("*.py"))
        keep.extend(path for path in files if path not in set_aside)
    drop = [(resolve(entry["path"]), entry) for entry in labels.get("must_drop", [])]
    for path, entry in drop:
        if not path.is_file():
            raise InputError(labels_path, f"must_drop: {entry['path']}: not installed at {path}")
    return keep, drop


def measure(labels_path: str | Path, settings: CodeSettings) -> dict[str, RuleCounts]:
    """RuleCounts for the must-keep set, the must-drop set (installed files and synthetic cases) and the known
    misses."""
    keep_paths, drop_entries = labelled_paths(load_labels(labels_path), labels_path)
    sets = {"must_keep": RuleCounts(), "must_drop": RuleCounts(), "known_miss": RuleCounts()}
    for path in keep_paths:
        sets["must_keep"].add(str(path), path.read_text(encoding="utf-8", errors="replace"), settings)
    for path, entry in drop_entries:
        target = sets["known_miss" if entry.get("known_miss") else "must_drop"]
        target.add(entry["path"], path.read_text(encoding="utf-8", errors="replace"), settings)
    for name, text in synthetic_must_drop().items():
        sets["must_drop"].add(f"synthetic: {name}", text, settings)
    return sets


def format_report(sets: dict[str, RuleCounts]) -> str:
    """A table: per rule, the false-drop rate on the must-keep set and the recall on the must-drop set."""
    keep, drop, missed = sets["must_keep"], sets["must_drop"], sets["known_miss"]
    lines = [
        (
            f"must-keep files: {keep.files} (+{keep.unparsed} that do not parse); must-drop files: {drop.files}; "
            f"known misses: {missed.files}"
        ),
        f"{'rule':30} {'false drops':>14} {'rate':>7} {'drop recall':>12}",
    ]
    for rule in (*RULES, "step2"):
        lines.append(
            f"{rule:30} {keep.dropped[rule]:>6}/{keep.files:<7} {keep.rate(rule):>7.2%} "
            f"{drop.dropped[rule]:>4}/{drop.files:<3} {drop.rate(rule):>5.0%}"
        )
    total = drop.files + missed.files
    caught = drop.dropped["step2"] + missed.dropped["step2"]
    lines.append(f"recall with the known misses: {caught}/{total}")
    return "\n".join(lines)
