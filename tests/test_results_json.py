"""results.json's text: the same data back, ASCII only, indented only near the top."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ci_gate.report.results import dumps

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=40,
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.dictionaries(st.text(), json_values, max_size=6))
def test_reads_back_the_same(results: dict[str, Any]) -> None:
    text = dumps(results)
    assert text.endswith("\n") and text.isascii()
    assert json.loads(text) == results


def test_a_path_named_with_surrogates_and_newlines_stays_one_ascii_line() -> None:
    name = "/dst/a\nb\udcff\u00e9"
    res = {"details": {"scenario": {"per_path": {name: {"calls": {"statx": 2}}}}}}
    text = dumps(res)
    assert json.loads(text) == res
    # one entry per line below the expanded levels
    entry = '"/dst/a\\nb\\udcff\\u00e9": {"calls": {"statx": 2}}'
    assert f'      "per_path": {{\n        {entry}\n' in text
