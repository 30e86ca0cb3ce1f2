"""Recipe step 3 with the real ruff, in batches: undefined names, star imports, layout fixes."""

from abacus_repro.code.ruff_batch import check_and_fix, may_need_layout_fix, syntax_errors, temp_name
from abacus_repro.code.settings import FIX_SELECT
from abacus_repro.settings import CodeSettings

CLEAN = "import os\n\n\ndef f():\n    return os.sep\n"
UNDEFINED = "def f():\n    return missing_name + 1\n"
MESSY = "import os   \n\n\n\n\ndef f():\n    x = os.sep  \n    \n    return x\n\n\n\n"


def test_undefined_names_found_in_batches_by_real_ruff():
    texts = [CLEAN, UNDEFINED, CLEAN, "x = y\n", CLEAN]
    settings = CodeSettings(ruff_batch_size=2)  # three ruff processes for five files
    result = check_and_fix(texts, [f"m{i}.py" for i in range(5)], [True] * 5, settings)
    assert [bool(f) for f in result.findings] == [False, True, False, True, False]
    assert result.findings[1] == ["line 2: Undefined name `missing_name`"]
    assert result.findings[3] == ["line 1: Undefined name `y`"]
    # Files with findings are dropped, so they are not fixed.
    assert result.fixed[1] is None and result.fixed[0] == CLEAN


def test_files_not_judged_are_only_fixed():
    result = check_and_fix([UNDEFINED], ["m.py"], [False], CodeSettings())
    assert result.findings == [[]]
    assert result.fixed == [UNDEFINED]


def test_package_init_keeps_its_name_for_ruff():
    # __path__ exists in a package's __init__.py only; ruff knows it from the file name.
    text = "__path__ = __import__('pkgutil').extend_path(__path__, __name__)\n"
    result = check_and_fix([text, text], ["pkg/__init__.py", "pkg/mod.py"], [True, True], CodeSettings())
    assert result.findings[0] == []
    assert result.findings[1] and "__path__" in result.findings[1][0]
    assert temp_name(3, "a/b/__init__.py") == "0000003/__init__.py"
    assert temp_name(3, "a/b/c.py") == "f0000003.py"


def test_whitespace_fixes_are_applied():
    result = check_and_fix([MESSY, CLEAN], ["messy.py", "clean.py"], [True, True], CodeSettings())
    fixed = result.fixed[0]
    assert fixed != MESSY
    assert "   \n" not in fixed and "  \n" not in fixed  # W291/W293
    assert not fixed.endswith("\n\n")  # W391
    assert "\n\n\n\n" not in fixed  # E303
    assert result.fixed[1] == CLEAN


def test_crlf_line_endings_survive():
    text = "x = 1\r\ny = 2\r\n"
    assert check_and_fix([text], ["m.py"], [True], CodeSettings()).fixed == [text]


def test_ruff_parser_judges_files_this_interpreter_cannot_parse():
    texts = [
        "type Alias = list[int]\n\n\ndef first[T](xs: list[T]) -> T:\n    return xs[0]\n",  # Python 3.12
        'print "python 2"\n',
        "try:\n    pass\nexcept ValueError, err:\n    pass\n",  # Python 3.14 only (PEP 758)
    ]
    errors = syntax_errors(texts, ["a.py", "b.py", "c.py"], CodeSettings(ruff_batch_size=2))
    assert errors[0] is None
    assert errors[1].startswith("line 1:")
    assert errors[2].startswith("line 3:")


LAYOUT_CASES = [
    CLEAN,
    MESSY,
    "x = 1",  # no final newline (W292)
    "x = 1\n\n",  # blank line at the end (W391)
    "def f():\n    x = 1\n\n\n    return x\n",  # two blank lines inside a block (E303)
    "def f():\n    x = 1\n\n\n# note\n    return x\n",
    "import os\n\n\n\ndef f():\n    return os\n",  # three at the top level (E303)
    "import os\n\n\ndef f():\n    return os\n",  # two at the top level: fine
    "x = 1\r\ny = 2\r\n\r\n",
    "s = '''a  \n\n\n\nb'''\n",  # whitespace inside a string: never touched
    "x = 1\n\f\ny = 2\n",
]


def test_files_skipped_by_the_layout_prefilter_need_no_fix():
    settings = CodeSettings()
    unfiltered = (*FIX_SELECT, FIX_SELECT[0])  # the same fixes, but not the recipe's list: no prefilter
    names = [f"m{i}.py" for i in range(len(LAYOUT_CASES))]
    judge = [False] * len(LAYOUT_CASES)
    filtered_fixed = check_and_fix(LAYOUT_CASES, names, judge, settings).fixed
    assert filtered_fixed == check_and_fix(LAYOUT_CASES, names, judge, settings, fix_select=unfiltered).fixed
    for text, fixed in zip(LAYOUT_CASES, filtered_fixed):
        assert may_need_layout_fix(text) or fixed == text
    assert not may_need_layout_fix(CLEAN) and may_need_layout_fix(MESSY)
