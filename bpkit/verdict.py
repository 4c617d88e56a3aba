"""Verdicts computed from the numbers, never typed as sentences.

Every sentence of a study or report that compares a measurement with a published figure,
ranks one method above another, or names a cause comes from a rule here: the rule reads the
measurement with its interval and says what the data support, and the same rule says the
opposite when the data do.

* :func:`against` a published value: "agrees" where the published value lies inside the
  measured interval (widened by a stated tolerance), "disagrees" where the interval excludes
  it, "cannot tell" where the interval is too wide to say either (open, or wider than
  ``wide`` times).
* :func:`at_least` a one-sided claim ("at least 10x"): "holds" where the whole interval
  clears the bound, "fails" where the whole interval falls short, "cannot tell" where it
  straddles it.
* :func:`rates` of two methods: "ahead" (or "behind") where the first's successes are separated
  from the second's (McNemar's exact test where the runs share starts, else non-overlapping
  Wilson intervals), "not separated" otherwise.
* :func:`cost_ratio` of two methods: "cheaper" or "dearer" where the ratio's interval excludes 1.
* :func:`higher`: one mean measure (a test accuracy) against another's, "higher" or "lower" where their
  95% intervals do not overlap, "not separated" where they do.
* :func:`order` against a published ranking ("a costs less than b"): "agrees" or "disagrees"
  where the two measured intervals do not overlap, "cannot tell" where they do.
* :func:`matches` a published categorical outcome ("eta = 2.5 diverges"): "agrees" or "disagrees".
* :func:`cause`: a cause is stated only beside the measurement that tests it, and only when
  that test supports it.
* :func:`tally`: one claim tested on many problems, its verdicts counted by word.
* :func:`halves`: the reviewer's check, every stated verdict again on each half of the held-out seeds:
  "fails" where a half turns one to the opposite word.

:func:`unproduced` finds the sentences of a text that compare with a published figure or name
a cause (by the words such sentences use, :data:`CLAIM`) and that no stored verdict produced:
a study's section passes when it returns nothing.

Each :class:`Verdict` keeps the rule, its inputs and its sentence, so a study can store its
verdicts as data and a test can recompute every one (:func:`recompute`).

Example:
    >>> against("SCG epochs", (250.0, 180.0, 400.0), 300.0).word
    'agrees'
    >>> at_least("speed-up", (4.0, 2.5, 6.0), 10.0, "x").word
    'fails'
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from bpkit import stats

AGREES, DISAGREES, CANNOT_TELL = "agrees", "disagrees", "cannot tell"
HOLDS, FAILS = "holds", "fails"
AHEAD, BEHIND, NOT_SEPARATED = "ahead", "behind", "not separated"
CHEAPER, DEARER = "cheaper", "dearer"
HIGHER, LOWER = "higher", "lower"
SUPPORTED, UNSUPPORTED = "supported", "not supported"


class Verdict(NamedTuple):
    """What a rule concluded from its inputs, and the sentence that says it."""

    rule: str
    inputs: dict[str, Any]
    word: str
    text: str


def _num(v: float, unit: str = "") -> str:
    if not math.isfinite(v):
        return "unbounded" if v > 0 else "-"
    return (f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}") + unit


def _interval(e: Sequence[float], unit: str = "") -> str:
    value, lo, hi = e
    return f"{_num(value, unit)} [{_num(lo, unit)}, {_num(hi, unit)}]"


def against(what: str, measured: Sequence[float], published: float, *, tolerance: float = 0.0,
            wide: float = 10.0, unit: str = "", source: str = "") -> Verdict:
    """A measurement ``(value, lo, hi)`` (a 95% interval) against a published value.

    "agrees": ``lo (1 - tolerance) <= published <= hi (1 + tolerance)`` and the interval is informative;
    "cannot tell": it holds the value but is open or spans more than ``wide`` times (``hi / lo``), so it
    would hold almost anything; "disagrees": the interval excludes the value, saying on which side.
    """
    value, lo, hi = (float(v) for v in measured)
    inputs = {"what": what, "measured": [value, lo, hi], "published": published, "tolerance": tolerance,
              "wide": wide, "unit": unit, "source": source}
    told = f"{what}: measured {_interval((value, lo, hi), unit)}, published {_num(published, unit)}{source}"
    inside = lo * (1 - tolerance) <= published <= hi * (1 + tolerance)
    if inside and (not math.isfinite(hi) or lo <= 0 or hi / lo > wide):
        word, text = CANNOT_TELL, f"{told}: cannot tell (the interval is too wide to test it)"
    elif inside:
        word, text = AGREES, f"{told}: agrees (the published value lies in the interval"
        text += f" widened by {100 * tolerance:.0f}%)" if tolerance else ")"
    else:
        side = "above" if lo > published else "below"
        word, text = DISAGREES, f"{told}: disagrees (the whole interval lies {side} it)"
    return Verdict("against", inputs, word, text)


def at_least(what: str, measured: Sequence[float], bound: float, unit: str = "", source: str = "") -> Verdict:
    """A one-sided claim, "``what`` is at least ``bound``": holds where ``lo >= bound``, fails where
    ``hi < bound``, cannot tell otherwise."""
    value, lo, hi = (float(v) for v in measured)
    inputs = {"what": what, "measured": [value, lo, hi], "bound": bound, "unit": unit, "source": source}
    told = f"{what} {_interval((value, lo, hi), unit)} against at least {_num(bound, unit)}{source}"
    if lo >= bound:
        return Verdict("at_least", inputs, HOLDS, f"{told}: holds (the whole interval clears it)")
    if hi < bound:
        return Verdict("at_least", inputs, FAILS, f"{told}: fails (the whole interval falls short)")
    return Verdict("at_least", inputs, CANNOT_TELL, f"{told}: cannot tell (the interval straddles it)")


def rates(a: str, ka: int, na: int, b: str, kb: int, nb: int, paired: stats.McNemar | None = None,
          event: str = "solves") -> Verdict:
    """Whether ``a`` (``ka`` of ``na`` runs solved, or had ``event``) does so more often than ``b``: by McNemar's
    exact test at 5% where their runs share starts (``paired``), else by non-overlapping Wilson intervals."""
    inputs = {"a": a, "ka": ka, "na": na, "b": b, "kb": kb, "nb": nb,
              "paired": None if paired is None else list(paired), "event": event}
    if paired is not None:
        separated, how = paired.p < 0.05, f"McNemar p = {paired.p:.2g}, {paired.only_a} vs {paired.only_b} discordant"
    else:
        separated, how = stats.separated(ka, na, kb, nb), "Wilson 95% intervals"
    told = f"{a} {ka}/{na} against {b} {kb}/{nb} ({how})"
    if separated and ka / na != kb / nb:
        word, first, second = (AHEAD, a, b) if ka / na > kb / nb else (BEHIND, b, a)
        return Verdict("rates", inputs, word, f"{told}: {first} {event} more often than {second}")
    return Verdict("rates", inputs, NOT_SEPARATED, f"{told}: not separated")


def cost_ratio(a: str, b: str, ratio: Sequence[float]) -> Verdict:
    """Method ``a``'s expected cost over ``b``'s, ``(value, lo, hi)``: cheaper where ``hi < 1``, dearer
    where ``lo > 1``, not separated otherwise."""
    value, lo, hi = (float(v) for v in ratio)
    inputs = {"a": a, "b": b, "ratio": [value, lo, hi]}
    told = f"{a}'s cost over {b}'s, {_interval((value, lo, hi), 'x')}"
    if hi < 1:
        return Verdict("cost_ratio", inputs, CHEAPER, f"{told}: {a} is cheaper")
    if lo > 1:
        return Verdict("cost_ratio", inputs, DEARER, f"{told}: {a} is dearer")
    return Verdict("cost_ratio", inputs, NOT_SEPARATED, f"{told}: not separated")


def higher(a: str, a_value: Sequence[float], b: str, b_value: Sequence[float], quantity: str,
           unit: str = "") -> Verdict:
    """Whether ``a``'s ``quantity``, ``(value, lo, hi)`` with a 95% interval, is above ``b``'s: "higher" where
    ``a``'s interval lies wholly above ``b``'s, "lower" where wholly below, "not separated" where they overlap."""
    a_value, b_value = [float(v) for v in a_value], [float(v) for v in b_value]
    inputs = {"a": a, "a_value": a_value, "b": b, "b_value": b_value, "quantity": quantity, "unit": unit}
    told = f"{quantity}, {a} {_interval(a_value, unit)} against {b} {_interval(b_value, unit)}"
    if a_value[1] > b_value[2]:
        return Verdict("higher", inputs, HIGHER, f"{told}: {a} higher")
    if a_value[2] < b_value[1]:
        return Verdict("higher", inputs, LOWER, f"{told}: {a} lower")
    return Verdict("higher", inputs, NOT_SEPARATED, f"{told}: not separated (the intervals overlap)")


def order(a: str, a_cost: Sequence[float], b: str, b_cost: Sequence[float], source: str = "") -> Verdict:
    """A published ranking, "``a`` costs less than ``b``", against measured costs ``(value, lo, hi)`` (95%
    intervals, independent runs): agrees where ``a``'s interval lies wholly below ``b``'s, disagrees where it
    lies wholly above, cannot tell where they overlap."""
    a_cost, b_cost = [float(v) for v in a_cost], [float(v) for v in b_cost]
    inputs = {"a": a, "a_cost": a_cost, "b": b, "b_cost": b_cost, "source": source}
    told = (f"published{source}: {a} costs less than {b}; measured {a} {_interval(a_cost)}, "
            f"{b} {_interval(b_cost)}")
    if a_cost[2] < b_cost[1]:
        return Verdict("order", inputs, AGREES, f"{told}: agrees (the intervals do not overlap)")
    if b_cost[2] < a_cost[1]:
        return Verdict("order", inputs, DISAGREES, f"{told}: disagrees ({b} is the cheaper, the intervals apart)")
    return Verdict("order", inputs, CANNOT_TELL, f"{told}: cannot tell (the intervals overlap)")


def matches(what: str, measured: str, published: str, source: str = "") -> Verdict:
    """A categorical outcome (``"converges"``, ``"diverges"``) against the published one."""
    inputs = {"what": what, "measured": measured, "published": published, "source": source}
    told = f"{what}: measured {measured}, published {published}{source}"
    word = AGREES if measured == published else DISAGREES
    return Verdict("matches", inputs, word, f"{told}: {word}")


def cause(claim: str, test: Verdict, supports: Sequence[str]) -> Verdict:
    """A cause, stated only beside the measurement that tests it: "``claim`` (``test``)" where the test's
    word is one of ``supports``, else that the data do not support the claim."""
    inputs = {"claim": claim, "test": test._asdict(), "supports": list(supports)}
    if test.word in supports:
        return Verdict("cause", inputs, SUPPORTED, f"{claim}, as measured: {test.text}")
    return Verdict("cause", inputs, UNSUPPORTED, f"the data do not support that {claim}: {test.text}")


def tally(what: str, members: Sequence[Verdict | dict[str, Any]]) -> Verdict:
    """Many verdicts on one claim (a claim tested on each problem), counted by their words: "``what``: holds 1,
    fails 6, cannot tell 1".  Its word is the members' one word where they all agree on it, else "mixed"."""
    made = [m if isinstance(m, Verdict) else recompute(m) for m in members]
    inputs = {"what": what, "members": [m._asdict() for m in made]}
    counts: dict[str, int] = {}
    for m in made:
        counts[m.word] = counts.get(m.word, 0) + 1
    word = next(iter(counts)) if len(counts) == 1 else "mixed"
    rule = made[0].rule if made else "no rule"
    text = f"{what}, by the {rule} rule in {len(made)} cases: " + ", ".join(f"{w} {k}" for w, k in counts.items())
    return Verdict("tally", inputs, word, text)


# Each definite word and the one that says the opposite; the rest ("cannot tell", "not separated") decide nothing.
OPPOSITE = {AGREES: DISAGREES, DISAGREES: AGREES, HOLDS: FAILS, FAILS: HOLDS, AHEAD: BEHIND, BEHIND: AHEAD,
            CHEAPER: DEARER, DEARER: CHEAPER, HIGHER: LOWER, LOWER: HIGHER}


def leaves(v: Verdict | dict[str, Any]) -> list[Verdict]:
    """The verdicts ``v`` rests on, each a measurement against its rule: a tally's members and a cause's test,
    each in turn down to its own; ``v`` itself otherwise."""
    v = v if isinstance(v, Verdict) else recompute(v)
    if v.rule == "tally":
        return [leaf for m in v.inputs["members"] for leaf in leaves(m)]
    if v.rule == "cause":
        return leaves(v.inputs["test"])
    return [v]


def _name(v: Verdict) -> str:
    i = v.inputs
    return i["what"] if "what" in i else f"{i['a']} against {i['b']}"


def halves(what: str, stated: Sequence[Verdict | dict[str, Any]],
           on_halves: Sequence[Sequence[Verdict | dict[str, Any] | None]]) -> Verdict:
    """The reviewer's check: every verdict of ``stated`` again on each half of the held-out seeds apart
    (``on_halves[h][i]``: verdict ``i`` recomputed from half ``h``'s runs alone, None where that half
    gives it no measurement), compared leaf by leaf (:func:`leaves`).  "holds" where no half turns a
    definite word into its opposite (:data:`OPPOSITE`), "fails" where one does.  A half that decides
    nothing ("cannot tell", "not separated": half the runs, wider intervals) weakens a verdict, and is
    counted so, but does not turn it.

    Example:
        >>> ahead, level = rates("a", 40, 50, "b", 10, 50), rates("a", 12, 25, "b", 8, 25)
        >>> halves("a against b", [ahead], [[level], [ahead]]).word
        'holds'
    """
    told = [leaves(v) for v in stated]
    halves_ = [[None if v is None else leaves(v) for v in h] for h in on_halves]
    inputs = {"what": what, "stated": [v if isinstance(v, dict) else v._asdict() for v in stated],
              "on_halves": [[v if v is None or isinstance(v, dict) else v._asdict() for v in h] for h in on_halves]}
    kept = undecided = decided = 0
    turned: list[str] = []
    for i, mine in enumerate(told):
        for j, leaf in enumerate(mine):
            words = [None if (got := h[i]) is None or j >= len(got) else got[j].word for h in halves_]
            if leaf.word in OPPOSITE and OPPOSITE[leaf.word] in words:
                turned.append(f"{_name(leaf)} ({leaf.word}; on a half {OPPOSITE[leaf.word]})")
            elif all(w == leaf.word for w in words):
                kept += 1
            elif leaf.word in OPPOSITE:
                undecided += 1
            else:
                decided += 1
    n = sum(map(len, told))
    text = (f"{what}: of {n} verdicts, each again on {len(on_halves)} halves of the held-out seeds apart, {kept} "
            f"keep their word on every half, {undecided} are left undecided on a half (half the runs), {decided} "
            f"undecided on all seeds are decided on a half, {len(turned)} turn to the opposite word on a half")
    if turned:
        return Verdict("halves", inputs, FAILS, f"{text} ({'; '.join(turned)}): fails")
    return Verdict("halves", inputs, HOLDS, f"{text}: holds")


RULES: dict[str, Callable[..., Verdict]] = {"against": against, "at_least": at_least, "rates": rates,
                                            "cost_ratio": cost_ratio, "higher": higher, "order": order,
                                            "matches": matches, "cause": cause, "tally": tally, "halves": halves}


def recompute(v: Verdict | dict[str, Any]) -> Verdict:
    """The verdict its rule gives on its stored inputs now (a stored verdict: a dict of its fields, as
    JSON keeps it).  A study's text is trusted when every stored verdict recomputes to its own text."""
    d = v._asdict() if isinstance(v, Verdict) else dict(v)
    inputs = dict(d["inputs"])
    if d["rule"] == "cause":
        inputs["test"] = recompute(inputs["test"])
    if d["rule"] == "rates" and inputs["paired"] is not None:
        inputs["paired"] = stats.McNemar(*inputs["paired"])
    return RULES[d["rule"]](**inputs)


# The words of a sentence that compares a measurement with a published figure or states a cause.
CLAIM = re.compile(
    r"\b(agree[sd]?|disagree[sd]?|cannot tell|holds|fails to|orders? of magnitude|same order|because|caus(e|es|ed)"
    r"|explain(s|ed)?|due to|not decided|confirm(s|ed)?|contradict(s|ed)?|consistent with|in line with"
    r"|\(as published\)|not as published|as .{1,40} says|(is|are) their width|not the (optimizer|method)"
    r"|supported|not supported)\b", re.IGNORECASE)


def _quoted(text: str) -> str:
    """``text`` without what quotes the literature: paragraphs that begin with "Published" and the cells of
    a Markdown table's "published" column."""
    paragraphs = [p for p in re.split(r"\n\s*\n", text) if not p.lstrip("*_ ").startswith("Published")]
    out, column = [], None
    for line in "\n\n".join(paragraphs).splitlines():
        cells = line.split("|")
        if line.startswith("|") and column is None and "published" in [c.strip() for c in cells]:
            column = [c.strip() for c in cells].index("published")
        elif not line.startswith("|"):
            column = None
        if line.startswith("|") and column is not None and column < len(cells):
            cells[column] = ""
        out.append("|".join(cells))
    return "\n".join(out)


def unproduced(text: str, verdicts: Sequence[Verdict | dict[str, Any]], width: int = 60) -> list[str]:
    """The claims in ``text`` (``width`` characters either side of each :data:`CLAIM` word) that are not part
    of a stored verdict's sentence, a table cell holding only a verdict's word, or a quotation of the literature
    (:func:`_quoted`).  Empty where every comparison and cause in the text was produced by a rule."""
    made = [v if isinstance(v, Verdict) else Verdict(**v) for v in verdicts]
    rest = _quoted(text)
    for v in sorted(made, key=lambda v: -len(v.text)):
        rest = rest.replace(v.text, " ")
    words = {v.word for v in made}
    rest = "\n".join("|".join(" " if c.strip() in words else c for c in line.split("|")) if line.startswith("|")
                     else line for line in rest.splitlines())
    return [rest[max(m.start() - width, 0): m.end() + width].replace("\n", " ") for m in CLAIM.finditer(rest)]
