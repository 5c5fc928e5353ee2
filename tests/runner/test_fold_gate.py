"""The fold gate: which folds of a trial start against the time budget (explicit clocks)."""

from __future__ import annotations

from runner.search.fold_gate import FoldGate


def test_without_a_deadline_every_fold_starts() -> None:
    gate = FoldGate(5, 1, None)
    assert all(gate.admit(k, now=1e9) for k in range(5))


def test_the_first_fold_always_starts_and_no_fold_past_the_deadline_before_one_ended() -> None:
    gate = FoldGate(3, 2, deadline=10.0)
    assert gate.admit(0, now=11.0)  # the trial started within the budget
    assert not gate.admit(1, now=10.0)
    assert not gate.admit(2, now=0.0), "a refused fold closes the gate"


def test_a_trial_that_ends_within_one_fold_of_the_deadline_goes_on() -> None:
    # 5 folds of 2 s, one at a time, the budget ending at 9 s: fold 4 starts at 8 s and
    # ends at 10 s, one second past, within a fold.
    gate = FoldGate(5, 1, deadline=9.0)
    for k in range(5):
        assert gate.admit(k, now=2.0 * k)
        gate.ended(2.0)


def test_a_trial_that_cannot_end_in_time_stops_as_soon_as_that_is_known() -> None:
    # Folds of 3 s, the budget ending at 10 s: after fold 0 the other 4 would end at 15 s,
    # 5 s past, more than a fold; stopped at 3 s, before the deadline.
    gate = FoldGate(5, 1, deadline=10.0)
    assert gate.admit(0, now=0.0)
    gate.ended(3.0)
    assert not gate.admit(1, now=3.0)


def test_folds_side_by_side_count_in_rounds() -> None:
    # 5 folds, 2 at a time, 4 s each, the budget ending at 13 s. At 4 s folds 2, 3, 4
    # remain: 2 rounds, ending at 12 s: in. With the budget ending at 7 s: 12 > 7 + 4, out.
    for deadline, expected in ((13.0, True), (7.0, False)):
        gate = FoldGate(5, 2, deadline)
        assert gate.admit(0, now=0.0) and gate.admit(1, now=0.0)
        gate.ended(4.0)
        gate.ended(4.0)
        assert gate.admit(2, now=4.0) is expected
