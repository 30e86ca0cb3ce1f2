"""Precision of recipe step 2 on labelled files (tests/data/step2_labels.yaml): no single data-dense or repetitive
rule drops more than 1% of the Python files of maintained projects (read in place from site-packages), and every
must-drop file (installed generated tables, synthetic blobs and copy-paste code) is dropped."""

from pathlib import Path

import pytest

from abacus_repro.code.precision import RULES, format_report, measure, synthetic_must_drop
from abacus_repro.errors import InputError
from abacus_repro.settings import CodeSettings

LABELS = Path(__file__).parents[1] / "data" / "step2_labels.yaml"
MAX_FALSE_DROP_RATE = 0.01


@pytest.fixture(scope="module")
def measured():
    return measure(LABELS, CodeSettings())


def test_no_rule_drops_more_than_one_percent_of_maintained_code(measured):
    keep = measured["must_keep"]
    assert keep.files > 1500, "the must-keep set shrank: is a labelled package missing?"
    too_many = {rule: keep.rate(rule) for rule in RULES if keep.rate(rule) > MAX_FALSE_DROP_RATE}
    assert not too_many, (
        format_report(measured) + "\n" + "\n".join(example for rule in too_many for example in keep.examples[rule][:10])
    )
    assert keep.rate("step2") <= MAX_FALSE_DROP_RATE, format_report(measured)


def test_every_must_drop_file_is_dropped(measured):
    drop = measured["must_drop"]
    assert drop.files == len(synthetic_must_drop()) + 18
    assert drop.dropped["step2"] == drop.files, format_report(measured)
    # Each rule catches something no cheaper rule needs to (none is dead weight).
    assert all(drop.dropped[rule] > 0 for rule in RULES), format_report(measured)


def test_the_http_clients_shared_keyword_lists_are_kept(measured):
    """The case that started this: httpx's and openai's request methods share one keyword list."""
    dropped = [example for examples in measured["must_keep"].examples.values() for example in examples]
    assert not [example for example in dropped if "/httpx2/" in example or "/openai/" in example]


def test_a_missing_labelled_package_is_an_error(tmp_path):
    labels = tmp_path / "labels.yaml"
    labels.write_text("must_keep: [no_such_package_here]\n")
    with pytest.raises(InputError, match="no_such_package_here: not installed"):
        measure(labels, CodeSettings())
