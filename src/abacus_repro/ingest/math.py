"""Math data for the pretraining mixture: grade-school word problems with worked solutions (GSM8K style).

``math.source: generated`` (the tiny default) makes ``n_problems`` problems from a seeded generator: a dozen
templates (shopping, savings, travel, rates, percentages, ages, geometry, ...) with varied names, items and
numbers. Solutions are written the GSM8K way, each step with a ``<<expression=result>>`` calculator note, and end
with ``#### <answer>``. Every note is re-evaluated by :func:`verify_solution` (a small arithmetic evaluator, no
``eval``) before a problem is kept, so a wrong sum can never reach the training data.

``math.source: jsonl`` reads GSM8K-layout JSON lines (``question``, ``answer``) from ``math.path`` instead.

``math.source: corpus`` is the paper-scale source: documents streamed from the corpora ``math.corpus`` lists
(OpenWebMath's Parquet shards, proof-pile-2's algebraic-stack ``.jsonl.zst`` shards, ...; see :mod:`.corpus`).
"""

from __future__ import annotations

import ast
import logging
import operator
import random
import re
from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path

from ..errors import InputError
from ..io import Funnel, content_id, make_doc, path_list, read_jsonl, write_docs, write_json
from ..rules import RulePaths
from ..settings import MathSettings, Settings
from .corpus import CorpusReader, corpus_specs, ingest_corpora

log = logging.getLogger(__name__)

SOURCE = "math"
_NOTE = re.compile(r"<<([^<>=]+)=([^<>]+)>>")
_FINAL = re.compile(r"^####\s*(-?[\d,]+(?:\.\d+)?)\s*$", re.MULTILINE)
_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}

NAMES = [
    "Ava",
    "Liam",
    "Mei",
    "Noah",
    "Sofia",
    "Wei",
    "Aisha",
    "Mateo",
    "Yuki",
    "Omar",
    "Priya",
    "Lucas",
    "Zara",
    "Chen",
    "Elena",
    "Kofi",
    "Hannah",
    "Ravi",
    "Ines",
    "Tomas",
    "Lin",
    "Grace",
    "Diego",
    "Fatima",
]
SNACKS = [
    ("apples", "apple"),
    ("muffins", "muffin"),
    ("notebooks", "notebook"),
    ("pencils", "pencil"),
    ("oranges", "orange"),
    ("stickers", "sticker"),
    ("cupcakes", "cupcake"),
    ("markers", "marker"),
]


# -- arithmetic check ------------------------------------------------------------------------------------------
def evaluate_expression(expression: str) -> Fraction:
    """Exact value of + - * / ( ) over integer and decimal literals; anything else is refused."""

    def walk(node: ast.AST) -> Fraction:
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            return Fraction(str(node.value))
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](walk(node.left), walk(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -walk(node.operand)
        raise ValueError(f"not plain arithmetic: {expression!r}")

    return walk(ast.parse(expression.replace(",", ""), mode="eval"))


def verify_solution(solution: str) -> Fraction:
    """Check every ``<<expr=result>>`` note and that ``#### answer`` is the last note's result; returns it."""
    notes = _NOTE.findall(solution)
    if not notes:
        raise ValueError("solution has no <<expression=result>> notes")
    for expression, stated in notes:
        if evaluate_expression(expression) != Fraction(stated.replace(",", "")):
            raise ValueError(f"wrong arithmetic: {expression} = {evaluate_expression(expression)}, not {stated}")
    finals = _FINAL.findall(solution)
    if len(finals) != 1:
        raise ValueError("solution must end with exactly one '#### <answer>' line")
    answer = Fraction(finals[0].replace(",", ""))
    if answer != Fraction(notes[-1][1].replace(",", "")):
        raise ValueError(f"final answer {answer} is not the last computed value {notes[-1][1]}")
    return answer


class _Steps:
    """Builds a solution: each ``calc`` computes exactly and writes the GSM8K calculator note."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    @staticmethod
    def calc(expression: str) -> tuple[int, str]:
        value = evaluate_expression(expression)
        if value.denominator != 1:
            raise ArithmeticError(f"{expression} is not a whole number")  # templates only make whole answers
        return int(value), f"<<{expression}={int(value)}>>{int(value)}"

    def say(self, line: str) -> None:
        self.lines.append(line)

    def finish(self, answer: int) -> str:
        return "\n".join(self.lines + [f"#### {answer}"])


# -- templates: each returns (question, solution, answer) ------------------------------------------------------
def _shopping(rng: random.Random):
    name, (items, _item) = rng.choice(NAMES), rng.choice(SNACKS)
    n1, p1, n2, p2 = rng.randint(2, 9), rng.randint(1, 6), rng.randint(2, 6), rng.randint(3, 12)
    other = rng.choice(["juice boxes", "sandwiches", "comic books", "bags of rice"])
    cost1, note1 = _Steps.calc(f"{n1}*{p1}")
    cost2, note2 = _Steps.calc(f"{n2}*{p2}")
    total, note3 = _Steps.calc(f"{cost1}+{cost2}")
    bill = next(b for b in (20, 50, 100, 200) if b >= total)
    change, note4 = _Steps.calc(f"{bill}-{total}")
    q = (
        f"{name} buys {n1} {items} for ${p1} each and {n2} {other} for ${p2} each. {name} pays with a ${bill} "
        f"bill. How much change does {name} get back?"
    )
    s = _Steps()
    s.say(f"The {items} cost {n1} * ${p1} = ${note1}.")
    s.say(f"The {other} cost {n2} * ${p2} = ${note2}.")
    s.say(f"Altogether {name} spends ${cost1} + ${cost2} = ${note3}.")
    s.say(f"The change is ${bill} - ${total} = ${note4}.")
    return q, s.finish(change), change


def _savings(rng: random.Random):
    name = rng.choice(NAMES)
    weekly, weeks = rng.randint(3, 25), rng.randint(4, 16)
    saved, note1 = _Steps.calc(f"{weekly}*{weeks}")
    spend = rng.randint(1, saved - 1)
    gift = rng.choice(["a bike helmet", "a board game", "a pair of shoes", "a birthday present"])
    left, note2 = _Steps.calc(f"{saved}-{spend}")
    q = (
        f"{name} saves ${weekly} every week for {weeks} weeks. Then {name} spends ${spend} on {gift}. "
        f"How many dollars does {name} have left?"
    )
    s = _Steps()
    s.say(f"{name} saves {weekly} * {weeks} = ${note1}.")
    s.say(f"After buying {gift}, {name} has {saved} - {spend} = ${note2} left.")
    return q, s.finish(left), left


def _travel(rng: random.Random):
    name = rng.choice(NAMES)
    v1, h1, v2, h2 = rng.randint(30, 70), rng.randint(1, 4), rng.randint(20, 60), rng.randint(1, 3)
    d1, note1 = _Steps.calc(f"{v1}*{h1}")
    d2, note2 = _Steps.calc(f"{v2}*{h2}")
    total, note3 = _Steps.calc(f"{d1}+{d2}")
    q = (
        f"{name} drives at {v1} miles per hour for {h1} hours, then at {v2} miles per hour for {h2} more hours. "
        f"How many miles does {name} drive in total?"
    )
    s = _Steps()
    s.say(f"In the first part {name} drives {v1} * {h1} = {note1} miles.")
    s.say(f"In the second part {name} drives {v2} * {h2} = {note2} miles.")
    s.say(f"The total distance is {d1} + {d2} = {note3} miles.")
    return q, s.finish(total), total


def _bakery(rng: random.Random):
    name = rng.choice(NAMES)
    trays, per_tray, k = rng.randint(3, 9), rng.choice([12, 16, 20, 24, 30]), rng.choice([2, 3, 4])
    made, note1 = _Steps.calc(f"{trays}*{per_tray}")
    while made % k:
        k -= 1
    given = {2: "half", 3: "a third", 4: "a quarter"}.get(k, "none")
    gone, note2 = _Steps.calc(f"{made}/{k}")
    eaten = rng.randint(1, 9)
    left_after, note3 = _Steps.calc(f"{made}-{gone}")
    final, note4 = _Steps.calc(f"{left_after}-{eaten}")
    q = (
        f"{name} bakes {trays} trays of cookies with {per_tray} cookies on each tray. {name} gives {given} of the "
        f"cookies to the neighbours and the family eats {eaten} more. How many cookies are left?"
    )
    s = _Steps()
    s.say(f"{name} bakes {trays} * {per_tray} = {note1} cookies.")
    s.say(f"{name} gives away {made} / {k} = {note2} cookies.")
    s.say(f"That leaves {made} - {gone} = {note3} cookies.")
    s.say(f"After the family eats {eaten}, there are {left_after} - {eaten} = {note4} cookies left.")
    return q, s.finish(final), final


def _discount(rng: random.Random):
    name = rng.choice(NAMES)
    price, pct, count = rng.choice([20, 40, 60, 80, 120, 200]), rng.choice([10, 20, 25, 50]), rng.randint(2, 5)
    item = rng.choice(["jacket", "lamp", "backpack", "chair", "kettle"])
    off, note1 = _Steps.calc(f"{price}*{pct}/100")
    sale, note2 = _Steps.calc(f"{price}-{off}")
    total, note3 = _Steps.calc(f"{sale}*{count}")
    q = (
        f"A {item} normally costs ${price}. This week every {item} is {pct}% off. {name} buys {count} of them. "
        f"How much does {name} pay?"
    )
    s = _Steps()
    s.say(f"The discount is {pct}% of ${price}, which is ${note1}.")
    s.say(f"So one {item} costs ${price} - ${off} = ${note2}.")
    s.say(f"{count} of them cost {count} * ${sale} = ${note3}.")
    return q, s.finish(total), total


def _ages(rng: random.Random):
    a, b = rng.sample(NAMES, 2)
    age_b, gap, years = rng.randint(4, 30), rng.randint(2, 25), rng.randint(2, 10)
    age_a, note1 = _Steps.calc(f"{age_b}+{gap}")
    later_a, note2 = _Steps.calc(f"{age_a}+{years}")
    later_b, note3 = _Steps.calc(f"{age_b}+{years}")
    total, note4 = _Steps.calc(f"{later_a}+{later_b}")
    q = (
        f"{a} is {gap} years older than {b}. {b} is {age_b} years old. What will the sum of their ages be in "
        f"{years} years?"
    )
    s = _Steps()
    s.say(f"{a} is {age_b} + {gap} = {note1} years old now.")
    s.say(f"In {years} years {a} will be {age_a} + {years} = {note2} and {b} will be {age_b} + {years} = {note3}.")
    s.say(f"The sum of their ages will be {later_a} + {later_b} = {note4}.")
    return q, s.finish(total), total


def _reading(rng: random.Random):
    name = rng.choice(NAMES)
    pages_per_hour, hours, days = rng.randint(8, 40), rng.randint(1, 3), rng.randint(3, 14)
    per_day, note1 = _Steps.calc(f"{pages_per_hour}*{hours}")
    total, note2 = _Steps.calc(f"{per_day}*{days}")
    q = (
        f"{name} reads {pages_per_hour} pages an hour and reads for {hours} hours every day. How many pages does "
        f"{name} read in {days} days?"
    )
    s = _Steps()
    s.say(f"Each day {name} reads {pages_per_hour} * {hours} = {note1} pages.")
    s.say(f"In {days} days that is {per_day} * {days} = {note2} pages.")
    return q, s.finish(total), total


def _sharing(rng: random.Random):
    name = rng.choice(NAMES)
    friends, share, spent = rng.randint(2, 8), rng.randint(6, 40), rng.randint(1, 5)
    total = friends * share  # the prize is built from the share, so the division below is exact
    each, note1 = _Steps.calc(f"{total}/{friends}")
    left, note2 = _Steps.calc(f"{each}-{spent}")
    q = (
        f"{name} and friends win ${total} in a quiz, and the {friends} of them share it equally. {name} spends "
        f"${spent} of the share on lunch. How much of the share does {name} have left?"
    )
    s = _Steps()
    s.say(f"Each person gets ${total} / {friends} = ${note1}.")
    s.say(f"After lunch {name} has ${each} - ${spent} = ${note2}.")
    return q, s.finish(left), left


def _garden(rng: random.Random):
    name = rng.choice(NAMES)
    rows, per_row, dead, fruit = rng.randint(3, 12), rng.randint(4, 15), rng.randint(1, 6), rng.randint(3, 20)
    plants, note1 = _Steps.calc(f"{rows}*{per_row}")
    alive, note2 = _Steps.calc(f"{plants}-{dead}")
    harvest, note3 = _Steps.calc(f"{alive}*{fruit}")
    crop = rng.choice(["tomatoes", "peppers", "strawberries", "beans"])
    q = (
        f"{name} plants {rows} rows of {crop} with {per_row} plants in each row. {dead} plants do not survive. "
        f"Each remaining plant gives {fruit} {crop}. How many {crop} does {name} harvest?"
    )
    s = _Steps()
    s.say(f"{name} plants {rows} * {per_row} = {note1} plants.")
    s.say(f"{plants} - {dead} = {note2} plants survive.")
    s.say(f"They give {alive} * {fruit} = {note3} {crop}.")
    return q, s.finish(harvest), harvest


def _wages(rng: random.Random):
    name = rng.choice(NAMES)
    rate, base_hours, extra = rng.choice([10, 12, 14, 16, 18, 20, 22]), 40, rng.randint(2, 12)
    regular, note1 = _Steps.calc(f"{rate}*{base_hours}")
    overtime_rate, note2 = _Steps.calc(f"{rate}*3/2")
    overtime, note3 = _Steps.calc(f"{overtime_rate}*{extra}")
    total, note4 = _Steps.calc(f"{regular}+{overtime}")
    q = (
        f"{name} earns ${rate} an hour for the first {base_hours} hours of a week and time and a half for every "
        f"hour after that. Last week {name} worked {base_hours + extra} hours. How much did {name} earn?"
    )
    s = _Steps()
    s.say(f"For the first {base_hours} hours {name} earns {rate} * {base_hours} = ${note1}.")
    s.say(f"The overtime rate is {rate} * 3/2 = ${note2} an hour.")
    s.say(f"{name} worked {extra} overtime hours, earning {overtime_rate} * {extra} = ${note3}.")
    s.say(f"In total {name} earned ${regular} + ${overtime} = ${note4}.")
    return q, s.finish(total), total


def _fence(rng: random.Random):
    name = rng.choice(NAMES)
    length, width, cost = rng.randint(5, 40), rng.randint(3, 25), rng.randint(2, 15)
    sides, note1 = _Steps.calc(f"{length}+{width}")
    perimeter, note2 = _Steps.calc(f"2*{sides}")
    total, note3 = _Steps.calc(f"{perimeter}*{cost}")
    q = (
        f"{name}'s rectangular garden is {length} meters long and {width} meters wide. Fencing costs ${cost} per "
        f"meter. How much does it cost to put a fence all the way around the garden?"
    )
    s = _Steps()
    s.say(f"One length and one width add up to {length} + {width} = {note1} meters.")
    s.say(f"The perimeter is 2 * {sides} = {note2} meters.")
    s.say(f"The fence costs {perimeter} * ${cost} = ${note3}.")
    return q, s.finish(total), total


def _classroom(rng: random.Random):
    students = rng.choice([20, 24, 25, 28, 30, 32, 35, 36, 40])
    denominator = next(d for d in rng.sample([2, 4, 5], 3) if students % d == 0)
    girls, note1 = _Steps.calc(f"{students}/{denominator}")
    boys, note2 = _Steps.calc(f"{students}-{girls}")
    club = rng.randint(1, boys)
    not_club, note3 = _Steps.calc(f"{boys}-{club}")
    fraction = {2: "half", 4: "one quarter", 5: "one fifth"}[denominator]
    activity = rng.choice(["chess club", "football team", "choir", "robotics club"])
    q = (
        f"A class has {students} students and {fraction} of them are girls. {club} of the boys are in the "
        f"{activity}. How many boys are not in the {activity}?"
    )
    s = _Steps()
    s.say(f"There are {students} / {denominator} = {note1} girls.")
    s.say(f"So there are {students} - {girls} = {note2} boys.")
    s.say(f"{boys} - {club} = {note3} boys are not in the {activity}.")
    return q, s.finish(not_club), not_club


def _screen_time(rng: random.Random):
    name = rng.choice(NAMES)
    movie, episodes = rng.choice([90, 100, 110, 120, 130]), rng.randint(2, 6)
    episode_len = rng.choice([20, 25, 30, 40, 45])
    shows, note1 = _Steps.calc(f"{episodes}*{episode_len}")
    minutes, note2 = _Steps.calc(f"{movie}+{shows}")
    total, note3 = _Steps.calc(f"{minutes}*7")
    q = (
        f"Every day {name} watches a {movie}-minute film and {episodes} episodes of a series that are "
        f"{episode_len} minutes each. How many minutes of screen time is that in a week?"
    )
    s = _Steps()
    s.say(f"The episodes take {episodes} * {episode_len} = {note1} minutes.")
    s.say(f"Each day that is {movie} + {shows} = {note2} minutes.")
    s.say(f"In a week that is {minutes} * 7 = {note3} minutes.")
    return q, s.finish(total), total


TEMPLATES: dict[str, Callable[[random.Random], tuple[str, str, int]]] = {
    "shopping": _shopping,
    "savings": _savings,
    "travel": _travel,
    "bakery": _bakery,
    "discount": _discount,
    "ages": _ages,
    "reading": _reading,
    "sharing": _sharing,
    "garden": _garden,
    "wages": _wages,
    "fence": _fence,
    "classroom": _classroom,
    "screen_time": _screen_time,
}


def format_problem(question: str, solution: str) -> str:
    return f"Question: {question}\nAnswer: {solution}"


def generate_problems(n_problems: int, seed: int) -> tuple[list[dict], dict]:
    """``n_problems`` distinct, verified problems from a seeded generator; returns (documents, stats)."""
    rng = random.Random(seed)
    funnel = Funnel("ingest_math")
    names = sorted(TEMPLATES)
    seen: set[str] = set()
    docs: list[dict] = []
    attempts = 0
    while len(docs) < n_problems and attempts < 50 * max(1, n_problems):
        attempts += 1
        template = names[rng.randrange(len(names))]
        question, solution, answer = TEMPLATES[template](rng)
        if verify_solution(solution) != answer:  # a template bug, never data: fail loudly
            raise AssertionError(f"template {template} produced a solution that does not check out:\n{solution}")
        if question in seen:
            funnel.drop("duplicate")
            continue
        seen.add(question)
        funnel.keep()
        meta = {
            "template": template,
            "answer": answer,
            "question": question,
            "solution": solution,
            "origin": "generated",
        }
        docs.append(make_doc(format_problem(question, solution), SOURCE, meta, id=content_id(SOURCE, question)))
    funnel.extra.update(
        requested=n_problems,
        generated=len(docs),
        source="generated",
        seed=seed,
        templates={name: sum(1 for d in docs if f'"template": "{name}"' in d["meta"]) for name in names},
    )
    if len(docs) < n_problems:
        log.warning("only %d distinct problems after %d attempts (asked for %d)", len(docs), attempts, n_problems)
    return docs, funnel.to_dict()


def read_gsm8k_jsonl(path: str | Path, limit: int | None = None) -> tuple[list[dict], dict]:
    """GSM8K-layout JSON lines (question, answer ending in ``#### n``)."""
    funnel = Funnel("ingest_math")
    docs = []
    for i, row in enumerate(read_jsonl(path)):
        if limit is not None and len(docs) >= limit:
            break
        question, solution = row.get("question"), row.get("answer")
        if not isinstance(question, str) or not isinstance(solution, str):
            raise InputError(path, f"line {i + 1} lacks question/answer strings")
        if not _FINAL.search(solution):
            funnel.drop("no_final_answer")
            continue
        funnel.keep()
        meta = {
            "origin": str(path),
            "question": question,
            "solution": solution,
            "answer": _FINAL.search(solution).group(1),
        }
        docs.append(make_doc(format_problem(question, solution), SOURCE, meta, id=content_id(SOURCE, question)))
    funnel.extra.update(source="jsonl", path=str(path))
    return docs, funnel.to_dict()


def ingest_math(settings: MathSettings, seed: int) -> tuple[list[dict], dict]:
    """The ``math:`` config section -> (documents, stats), all in memory (a corpus too: see :func:`write_math`)."""
    if settings.source == "generated":
        return generate_problems(settings.n_problems, seed)
    if settings.source == "jsonl":
        return read_gsm8k_jsonl(settings.path, settings.n_problems)
    reader = CorpusReader(corpus_specs(settings.corpus, "math.corpus"), SOURCE)
    docs = list(reader.documents())
    return docs, reader.stats()


def write_math(
    settings: MathSettings, seed: int, docs_path: str | Path, corpus_files: Sequence[Sequence[str]] | None = None
) -> dict:
    """Write the math documents to ``docs_path`` and return the statistics.

    A corpus is streamed to the file (never all in memory); ``corpus_files`` are each corpus's files as the
    rule's inputs list them (None: expand each corpus path here).
    """
    if settings.source == "corpus":
        return ingest_corpora(corpus_specs(settings.corpus, "math.corpus"), docs_path, SOURCE, corpus_files)
    docs, stats = ingest_math(settings, seed)
    write_docs(docs_path, docs)
    return stats


class IngestMathJob(Settings):
    """What rule ingest_math reads: the seed and the ``math:`` section."""

    seed: int
    math: MathSettings


def run_ingest_math(settings: IngestMathJob, paths: RulePaths) -> dict:
    """Rule ingest_math: math documents, generated (GSM8K-style, verified), GSM8K JSON lines, or document corpora."""
    math = settings.math
    # Each corpus's files as the rule's inputs list them (get_math_corpus_files: corpus_0, corpus_1, ...), so the
    # job reads exactly the files Snakemake tracked.
    corpus_files = None
    if math.source == "corpus":
        corpus_files = [path_list(paths.input[f"corpus_{i}"]) for i in range(len(math.corpus))]
    stats = write_math(math, settings.seed, paths.output["docs"], corpus_files)
    write_json(paths.output["stats"], stats)
    log.info("%d math documents (%s)", stats["kept"], math.source)
    return stats
