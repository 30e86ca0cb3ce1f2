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


def test_long_string_literal_is_data_dense_but_a_long_docstring_is_not():
    words = " ".join(["lorem ipsum dolor sit amet"] * 80)
    literal = NORMAL_CODE + f'TEMPLATE = """\n{words[:900]}\n{words[:900]}\n"""\n'
    detail = dense(literal)
    assert detail is not None and "string literal of" in detail
    docstring = f'"""\n{words[:900]}\n{words[:900]}\n"""\n' + NORMAL_CODE
    assert dense(docstring) is None


def test_long_line_and_mean_line_length():
    long_line = NORMAL_CODE + "TABLE = [" + ", ".join(str(i) for i in range(400)) + "]\n"
    assert "max_line_length" in dense(long_line)
    wide = "\n".join(f"value_{i} = '{'w' * 90}{i}'" for i in range(30)) + "\n"
    assert "mean line length" in dense(wide)


def test_symbol_soup_fails_alnum_fraction():
    soup = "x = [\n" + "".join("    ((), [], {}, (), [], {}),\n" for _ in range(50)) + "]\n"
    assert "alphanumeric fraction" in dense(soup)


def test_thresholds_come_from_settings():
    text = NORMAL_CODE + f'NOTE = "{"n " * 400}"\n'
    assert dense(text) is None
    assert "string literal" in dense(text, CodeSettings(max_string_literal_chars=500))


def test_repetitive_file():
    repeated = "def f(x):\n" + "".join("    x = x + compute_value(1)\n" for _ in range(40)) + "    return x\n"
    detail = judge_repetitive(repeated, SETTINGS)
    assert detail is not None and "39 of 40 lines repeat" in detail
    # Short lines ("else:", "return None") do not count, and short files are not judged.
    short_lines = "".join("if a:\n    pass\nelse:\n    pass\n" for _ in range(30))
    assert judge_repetitive(short_lines, SETTINGS) is None
    assert judge_repetitive(repeated, CodeSettings(max_duplicate_line_fraction=0.99)) is None
