"""bpkit.verdict: each rule on synthetic numbers, flipping when the numbers do; stored verdicts recompute."""

import json

from bpkit import stats, verdict


def test_a_published_value_inside_the_interval_agrees_outside_disagrees_and_a_wide_one_cannot_tell():
    assert verdict.against("epochs", (250, 180, 400), 300).word == verdict.AGREES
    assert verdict.against("epochs", (250, 180, 290), 300).word == verdict.DISAGREES
    assert "below" in verdict.against("epochs", (250, 180, 290), 300).text
    assert "above" in verdict.against("epochs", (350, 310, 400), 300).text
    assert verdict.against("epochs", (250, 180, 290), 300, tolerance=0.05).word == verdict.AGREES  # 290 * 1.05
    assert verdict.against("epochs", (250, 180, 290), 300, tolerance=0.01).word == verdict.DISAGREES
    assert verdict.against("epochs", (250, 20, float("inf")), 300).word == verdict.CANNOT_TELL  # open
    assert verdict.against("epochs", (250, 20, 3000), 300).word == verdict.CANNOT_TELL  # 150 times wide
    assert verdict.against("epochs", (250, 20, 3000), 300, wide=200).word == verdict.AGREES
    assert verdict.against("epochs", (250, 20, 3000), 30_000).word == verdict.DISAGREES  # excluded, however wide


def test_a_one_sided_claim_holds_fails_or_cannot_tell():
    assert verdict.at_least("speed-up", (12, 10.5, 14), 10).word == verdict.HOLDS
    assert verdict.at_least("speed-up", (4, 2.5, 6), 10).word == verdict.FAILS
    assert verdict.at_least("speed-up", (9, 6, 13), 10).word == verdict.CANNOT_TELL
    assert verdict.at_least("speed-up", (9, 10, 13), 10).word == verdict.HOLDS  # the bound itself clears


def test_two_rates_are_ranked_only_when_separated_and_pairing_decides_where_runs_share_starts():
    assert verdict.rates("A", 19, 20, "B", 4, 20).word == verdict.AHEAD
    assert verdict.rates("A", 4, 20, "B", 19, 20).word == verdict.BEHIND
    assert verdict.rates("A", 12, 20, "B", 9, 20).word == verdict.NOT_SEPARATED  # intervals overlap
    # 20 pairs: A solves 14 that B misses, B none that A misses; their Wilson intervals overlap, McNemar does not.
    a, b = [True] * 16 + [False] * 4, [True] * 2 + [False] * 18
    assert verdict.rates("A", 16, 20, "B", 2, 20).word == verdict.AHEAD
    close_a, close_b = [True] * 12 + [False] * 8, [True] * 5 + [False] * 15
    assert verdict.rates("A", 12, 20, "B", 5, 20).word == verdict.NOT_SEPARATED
    assert verdict.rates("A", 12, 20, "B", 5, 20, stats.mcnemar(close_a, close_b)).word == verdict.AHEAD
    assert verdict.rates("A", 16, 20, "B", 2, 20, stats.mcnemar(a, b)).word == verdict.AHEAD
    mixed = [True] * 6 + [False] * 6 + [True] * 6 + [False] * 2  # 6 each way: no evidence either way
    assert verdict.rates("A", 12, 20, "B", 12, 20, stats.mcnemar(mixed, mixed[6:] + mixed[:6])).word == \
        verdict.NOT_SEPARATED


def test_a_cost_ratio_names_the_cheaper_method_only_when_its_interval_excludes_one():
    assert verdict.cost_ratio("SCG", "BP", (0.5, 0.3, 0.9)).word == verdict.CHEAPER
    assert verdict.cost_ratio("SCG", "BP", (2.0, 1.2, 3.1)).word == verdict.DEARER
    assert verdict.cost_ratio("SCG", "BP", (0.8, 0.4, 1.6)).word == verdict.NOT_SEPARATED


def test_a_cause_is_stated_only_when_its_test_supports_it():
    dead = verdict.rates("leaky ReLU", 19, 20, "ReLU", 4, 20)
    said = verdict.cause("dead units hold ReLU back", dead, [verdict.AHEAD])
    assert said.word == verdict.SUPPORTED and said.text.startswith("dead units hold ReLU back, as measured")
    not_dead = verdict.rates("leaky ReLU", 4, 20, "ReLU", 5, 20)
    refused = verdict.cause("dead units hold ReLU back", not_dead, [verdict.AHEAD])
    assert refused.word == verdict.UNSUPPORTED and refused.text.startswith("the data do not support")


def test_every_verdict_recomputes_from_its_stored_inputs():
    made = [verdict.against("x", (1.0, 0.5, 2.0), 1.5, tolerance=0.1, unit=" cu"),
            verdict.at_least("r", (3.0, 2.0, 4.0), 2.0, "x"),
            verdict.rates("A", 3, 10, "B", 9, 10, stats.mcnemar([True] * 3 + [False] * 7, [True] * 9 + [False])),
            verdict.cost_ratio("A", "B", (1.5, 1.1, 2.0))]
    made.append(verdict.cause("A wastes its budget", made[-1], [verdict.DEARER]))
    for v in made:
        stored = json.loads(json.dumps(v._asdict()))  # as a study keeps it
        again = verdict.recompute(stored)
        assert (again.word, again.text) == (v.word, v.text)
    tampered = json.loads(json.dumps(made[0]._asdict()))
    tampered["inputs"]["published"] = 9.0  # the text no longer follows from the numbers
    assert verdict.recompute(tampered).text != tampered["text"]


def test_a_published_ranking_agrees_only_when_the_intervals_are_apart_and_flips_with_them():
    assert verdict.order("Rprop", (100, 80, 120), "BP", (300, 200, 400)).word == verdict.AGREES
    assert verdict.order("Rprop", (300, 200, 400), "BP", (100, 80, 120)).word == verdict.DISAGREES
    assert verdict.order("Rprop", (100, 80, 250), "BP", (300, 200, 400)).word == verdict.CANNOT_TELL
    assert verdict.order("Rprop", (100, 80, float("inf")), "BP", (300, 200, 400)).word == verdict.CANNOT_TELL


def test_a_categorical_outcome_matches_or_not():
    assert verdict.matches("eta 2.5", "diverges", "diverges").word == verdict.AGREES
    assert verdict.matches("eta 2.5", "converges", "diverges").word == verdict.DISAGREES


def test_a_tally_counts_its_members_words_and_recomputes_them():
    members = [verdict.at_least("a", (12, 11, 13), 10), verdict.at_least("b", (2, 1, 3), 10),
               verdict.at_least("c", (3, 2, 4), 10)]
    t = verdict.tally("at least 10x", members)
    assert t.word == "mixed" and t.text.endswith("holds 1, fails 2")
    assert verdict.tally("at least 10x", members[1:]).word == verdict.FAILS
    stored = json.loads(json.dumps(t._asdict()))
    assert verdict.recompute(stored) == t
    stored["inputs"]["members"][0]["inputs"]["measured"] = [2, 1, 3]  # the first problem's numbers change
    assert verdict.recompute(stored).text.endswith("fails 3")


def test_claims_outside_stored_verdicts_and_quotations_are_found():
    v = verdict.against("epochs", (250, 180, 400), 300)
    text = (f"Published (Someone 1990): A is an order of magnitude faster.\nIt agrees, he says.\n\n"
            f"Measured: {v.text}.\n\n| problem | verdict | published |\n|---|---|---|\n| xor | agrees | holds |")
    assert verdict.unproduced(text, [v]) == []  # quoted paragraph, verdict sentence, verdict word, quoted column
    for typed in ("The cause is the budget.", "Two spirals: the same order of magnitude.", "It holds.",
                  "This is consistent with Fahlman.", "ReLU's deficit is their width.",
                  "Online wins, exactly as LeCun's argument says."):
        assert verdict.unproduced(text + "\n\n" + typed, [v]), typed
    assert verdict.unproduced(text.replace("| xor | agrees |", "| xor | agrees, mostly |"), [v])


def test_higher_reads_two_intervals():
    from bpkit import verdict

    apart = verdict.higher("f'(0)", (97.0, 96.5, 98.0), "no hidden layer", (95.3, 94.7, 95.8), "test accuracy", "%")
    assert apart.word == verdict.HIGHER and apart.text.endswith("f'(0) higher")
    assert verdict.higher("b", (95.3, 94.7, 95.8), "a", (97.0, 96.5, 98.0), "acc").word == verdict.LOWER
    touching = verdict.higher("a", (96.6, 95.3, 98.3), "b", (95.3, 94.7, 95.8), "test accuracy", "%")
    assert touching.word == verdict.NOT_SEPARATED  # 95.3 lies inside both intervals
    assert verdict.recompute(apart._asdict()) == apart


def test_the_reviewers_check_fails_only_where_a_half_turns_a_verdict_to_its_opposite():
    ahead = verdict.rates("A", 40, 50, "B", 10, 50)
    level = verdict.rates("A", 12, 25, "B", 8, 25)  # half the runs: not separated
    behind = verdict.rates("A", 3, 25, "B", 20, 25)
    open_ = verdict.at_least("speed-up", (9, 6, 13), 10)  # cannot tell on all seeds ...
    holds = verdict.at_least("speed-up", (12, 11, 13), 10)  # ... decided on a half
    kept = verdict.cost_ratio("A", "B", (0.5, 0.3, 0.9))
    check = verdict.halves("the study", [ahead, open_, kept], [[level, holds, kept], [ahead, open_, kept]])
    assert check.word == verdict.HOLDS
    assert "of 3 verdicts" in check.text and "1 keep" in check.text and "1 are left undecided" in check.text
    assert "1 undecided on all seeds are decided" in check.text and "0 turn" in check.text
    turned = verdict.halves("the study", [ahead, kept], [[behind, kept], [ahead, None]])  # None: not measured
    assert turned.word == verdict.FAILS and "A against B (ahead; on a half behind)" in turned.text
    assert "1 turn" in turned.text and "0 keep" in turned.text  # kept lacks a measurement on the second half
    # A cause and a tally are checked leaf by leaf: their tests and members.
    cause = verdict.cause("dead units hold A back", ahead, [verdict.AHEAD])
    tally = verdict.tally("at least 10x", [holds, verdict.at_least("x", (2, 1, 3), 10)])
    flipped = verdict.tally("at least 10x", [verdict.at_least("s", (4, 2, 6), 10),
                                             verdict.at_least("x", (2, 1, 3), 10)])
    nested = verdict.halves("nested", [cause, tally], [[verdict.cause("dead units hold A back", behind,
                                                                      [verdict.AHEAD]), flipped]])
    assert nested.word == verdict.FAILS and "of 3 verdicts" in nested.text and "2 turn" in nested.text
    for v in (check, turned, nested):
        stored = json.loads(json.dumps(v._asdict()))
        assert verdict.recompute(stored) == verdict.recompute(v) and verdict.recompute(stored).text == v.text
