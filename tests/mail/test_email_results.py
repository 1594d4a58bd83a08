"""OrderedResult (mail/email_results.py): a page is what reading it id by id gives."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from maildir_jmap.mail.email_results import OrderedResult

keys = st.lists(st.tuples(st.integers(0, 50), st.text("Mab", min_size=1, max_size=3)), unique=True)
bounds = st.none() | st.integers(-12, 12)


@given(keys, st.booleans(), bounds, bounds, st.none() | st.sampled_from([1, 2, -1, -3]))
def test_a_slice_is_the_items_one_by_one(
    found: list[tuple[int, str]], descending: bool, start: int | None, stop: int | None,
    step: int | None,
) -> None:  # fmt: skip
    result = OrderedResult(sorted(found), descending, collapse=False)
    one_by_one = [result[i] for i in range(len(result))]
    assert one_by_one == [k[1] for k in sorted(found, reverse=descending)]
    assert list(result[start:stop:step]) == one_by_one[start:stop:step]
