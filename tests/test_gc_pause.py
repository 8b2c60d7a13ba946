"""The cyclic collector's pause is the whole process's: pauses in several threads (the
daemon parses on its fetch threads while its store thread merges) must leave it on once
the last one ends, in whatever order they begin and end."""

from __future__ import annotations

import gc
import itertools
import threading

import pytest

from aggregator.dedupe import collector_paused


def _overlapping(order: tuple[str, ...]) -> bool:
    """Two threads pause; `order` says who begins and ends when (a1 b1 a2 b2 ...):
    whether the collector was off all along the overlap, and on at the end."""
    steps = {name: threading.Event() for name in order}
    done = {name: threading.Event() for name in order}
    off_inside: list[bool] = []

    def thread(who: str) -> None:
        steps[f"{who}-begin"].wait(5)
        with collector_paused():
            off_inside.append(not gc.isenabled())
            done[f"{who}-begin"].set()
            steps[f"{who}-end"].wait(5)
            off_inside.append(not gc.isenabled())
        done[f"{who}-end"].set()

    threads = [threading.Thread(target=thread, args=(who,)) for who in "ab"]
    for t in threads:
        t.start()
    for name in order:
        steps[name].set()
        assert done[name].wait(5)
    for t in threads:
        t.join(5)
    return all(off_inside) and len(off_inside) == 4


@pytest.mark.parametrize(
    "order",
    [
        order
        for order in itertools.permutations(("a-begin", "a-end", "b-begin", "b-end"))
        if order.index("a-begin") < order.index("a-end")
        and order.index("b-begin") < order.index("b-end")
    ],
)
def test_the_collector_is_on_once_every_pause_has_ended(order: tuple[str, ...]) -> None:
    assert gc.isenabled()
    assert _overlapping(order)
    assert gc.isenabled(), order


def test_a_pause_inside_another_keeps_it_off_until_the_outer_one_ends() -> None:
    with collector_paused():
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()


def test_a_pause_never_turns_on_a_collector_that_was_off() -> None:
    gc.disable()
    try:
        with collector_paused(freeze=True):
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_a_freezing_pause_freezes_what_was_made_meanwhile() -> None:
    gc.unfreeze()
    try:
        with collector_paused(freeze=True):
            made = [[i] for i in range(1_000)]
        assert gc.get_freeze_count() >= len(made)
    finally:
        gc.unfreeze()
    assert gc.isenabled()
