"""Recipe step 2: data-dense and repetitive files (thresholds from settings)."""

import base64
import random

from abacus_repro.code.content import judge_data_dense, judge_repetitive, longest_blob
from abacus_repro.code.syntax import analyse_tree, parse_python
from abacus_repro.settings import CodeSettings

SETTINGS = CodeSettings()

NORMAL_CODE = '''"""A small, ordinary module."""

import os


def join_all(parts, sep=os.sep):
    """Join path parts with the separator."""
    result = []
    for part in parts:
        if part:
            result.append(part.strip(sep))
    return sep.join(result)


class Counter:
    def __init__(self):
        self.count = 0

    def bump(self, by=1):
        self.count += by
        return self.count
'''


def dense(text, settings=SETTINGS):
    return judge_data_dense(text, analyse_tree(parse_python(text)[0]), settings)


def concatenated(value, width=80):
    """The source of a string literal written as implicitly concatenated pieces, so no source line is long."""
    return "(\n" + "".join(f'    "{value[i : i + width]}"\n' for i in range(0, len(value), width)) + ")"


def random_bytes(n, seed=0):
    rng = random.Random(seed)
    return bytes(rng.randrange(256) for _ in range(n))


def test_ordinary_code_is_neither_dense_nor_repetitive():
    assert dense(NORMAL_CODE) is None
    assert judge_repetitive(NORMAL_CODE, SETTINGS) is None


def test_base64_blob_is_data_dense():
    blob = base64.b64encode(random_bytes(450)).decode()  # 600 characters
    one_run = NORMAL_CODE + f'ICON = "{blob}"\n'
    assert "base64/hex blob of 600 chars at line 22" in dense(one_run)


def test_wrapped_base64_blob_is_data_dense():
    blob = base64.b64encode(random_bytes(450)).decode()
    lines = [blob[i : i + 76] for i in range(0, len(blob), 76)]
    # Implicit concatenation: no 600-character run in the source, but one in the string's value.
    concatenated = NORMAL_CODE + "ICON = (\n" + "".join(f'    "{line}"\n' for line in lines) + ")\n"
    assert "base64/hex blob of 600 chars" in dense(concatenated)
    triple_quoted = NORMAL_CODE + 'ICON = """\n' + "\n".join(lines) + '\n"""\n'
    assert "base64/hex blob of 600 chars" in dense(triple_quoted)


def test_prose_in_strings_is_not_a_blob():
    prose = " ".join(f"word{i} and more text about version {i}" for i in range(40))
    assert dense(NORMAL_CODE + f'HELP = """{prose[:900]}"""\n') is None


def test_hex_escapes_are_a_blob():
    escaped = "".join(f"\\x{b:02x}" for b in random_bytes(100))
    detail = dense(NORMAL_CODE + f'PNG = b"{escaped}"\n')
    assert detail is not None and "blob" in detail


def test_long_identifier_or_rule_line_is_not_a_blob():
    assert longest_blob("x" * 300) == (0, 0)
    assert longest_blob("# " + "=" * 300) == (0, 0)
    assert longest_blob("y = 1\n" + "a1" * 150)[1] == 2


def test_long_data_string_is_data_dense_but_long_text_is_not():
    words = " ".join(["lorem ipsum dolor sit amet"] * 80)
    prose = f'"""\n{words[:900]}\n{words[:900]}\n"""'
    # A word list, a digit table and one long regex alternation hold data.
    word_list = '"""\n' + "\n".join(f"keyword_{i}" for i in range(200)) + '\n"""'
    digits = concatenated("".join(str(i % 10) for i in range(1500)))
    alternation = concatenated("(" + "|".join(f"KEYWORD{i}" for i in range(200)) + ")")
    for data in (word_list, digits, alternation):
        detail = dense(NORMAL_CODE + f"TABLE = {data}\n")
        assert detail is not None and "data string literal of" in detail
    # Prose and code templates are text, whether a docstring, an assigned string or an attribute docstring.
    assert dense(prose + "\n" + NORMAL_CODE) is None
    assert dense(NORMAL_CODE + f"TEMPLATE = {prose}\n") is None
    sql = '"""\n' + "\n".join(f"SELECT name_{i}, value FROM table_{i} WHERE id = :id" for i in range(40)) + '\n"""'
    assert dense(NORMAL_CODE + f"QUERY = {sql}\n") is None


def test_a_file_of_a_few_lines_is_not_judged_on_its_mean_line_length():
    one_import = "from .module import (" + ", ".join(f"name_{i}" for i in range(12)) + ")\n"
    assert len(one_import) > 100
    assert dense(one_import) is None


def test_long_line_and_mean_line_length():
    long_line = NORMAL_CODE + "TABLE = [" + ", ".join(str(i) for i in range(400)) + "]\n"
    assert "max_line_length" in dense(long_line)
    wide = "\n".join(f"value_{i} = '{'w' * 90}{i}'" for i in range(30)) + "\n"
    assert "mean line length" in dense(wide)


def test_symbol_soup_fails_alnum_fraction():
    soup = "x = [\n" + "".join("    ((), [], {}, (), [], {}),\n" for _ in range(50)) + "]\n"
    assert "alphanumeric fraction" in dense(soup)


def test_thresholds_come_from_settings():
    text = NORMAL_CODE + f'NOTE = "{"0" * 800}"\n'
    assert dense(text) is None
    assert "string literal" in dense(text, CodeSettings(max_string_literal_chars=500))


def test_repetitive_file():
    repeated = "def f(x):\n" + "".join("    x = x + compute_value(1)\n" for _ in range(40)) + "    return x\n"
    detail = judge_repetitive(repeated, SETTINGS)
    assert detail is not None and "0.97 of 40 lines repeat the line 1 lines above" in detail
    # Short lines ("else:", "return None") do not count, and short files are not judged.
    short_lines = "".join("if a:\n    pass\nelse:\n    pass\n" for _ in range(30))
    assert judge_repetitive(short_lines, SETTINGS) is None
    lenient = CodeSettings(max_duplicate_line_fraction=0.99, max_periodic_line_fraction=0.99)
    assert judge_repetitive(repeated, lenient) is None
    # Shuffled copies have no period; the duplicate-line rule still sees them.
    shuffled = "".join(f"value_{i % 3} = compute_value({i % 3})\n" for i in range(100))
    rng = random.Random(0)
    lines = shuffled.splitlines(keepends=True)
    rng.shuffle(lines)
    detail = judge_repetitive("".join(lines), CodeSettings(max_periodic_line_fraction=1.0))
    assert detail is not None and "97 of 100 lines repeat an earlier line" in detail


def test_pasted_block_is_repetitive_but_shared_keyword_lists_are_not():
    """A block pasted 30 times with one literal changed repeats each line one block later. An HTTP client whose
    get/post/put/patch share one keyword list repeats lines too, but at distances that vary with each method."""
    pasted = "def run(data):\n    results = []\n" + "".join(
        f"    result = process(data, mode={i})\n    log.info('done %s', result)\n    results.append(result)\n"
        for i in range(30)
    )
    detail = judge_repetitive(pasted, SETTINGS)
    assert detail is not None and "repeat the line 3 lines above" in detail
    shared = "    headers: dict | None = None,\n    params: dict | None = None,\n    timeout: float | None = None,\n"
    client = "class Client:\n" + "".join(
        f"    def {verb}(\n        self,\n        url: str,\n"
        + "".join(f"        {name}_{verb}: str | None = None,\n" for name in extra)
        + shared.replace("    ", "        ")
        + f"    ) -> Response:\n        return self.request({verb.upper()!r}, url, headers=headers)\n\n"
        for verb, extra in (
            ("get", ["follow"]),
            ("post", ["json", "data", "files"]),
            ("put", ["json", "data"]),
            ("patch", ["json", "data", "files", "content"]),
            ("delete", []),
        )
    )
    assert judge_repetitive(client, SETTINGS) is None
