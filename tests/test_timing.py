"""bpkit.timing.interleaved: every call compiled once untimed, then samples in alternation, counted."""

import pytest

from bpkit import timing


def _log():
    made: list[str] = []
    return made, {k: (lambda k=k: made.append(k)) for k in ("a", "b", "c")}


def test_samples_alternate_after_one_untimed_call_each():
    made, calls = _log()
    t = timing.interleaved(calls, rounds=3, inner=2)
    assert made == list("abc") + list("aabbcc") * 3
    assert {k: len(v) for k, v in t.items()} == {"a": 3, "b": 3, "c": 3}
    assert all(s >= 0 for v in t.values() for s in v)


def test_settle_makes_one_untimed_call_before_each_sample():
    made, calls = _log()
    timing.interleaved(calls, rounds=2, inner=1, settle=True)
    assert made == list("abc") + list("aabbcc") * 2


@pytest.mark.parametrize("rounds, inner", [(0, 1), (1, 0)])
def test_no_sample_is_an_error(rounds, inner):
    with pytest.raises(ValueError, match="at least 1"):
        timing.interleaved({"a": lambda: None}, rounds, inner)
