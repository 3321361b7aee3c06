"""Single-flight groups: a map's misses lead their keys as one group; whoever joins one of
those keys meanwhile gets a flight of its own, which the leader ends with that key."""

from __future__ import annotations

import threading

from opero.cache.singleflight import Flight, GroupFlight, SingleFlight


def test_unique_fresh_keys_lead_one_group_and_release_in_bulk() -> None:
    sf = SingleFlight()
    flights, followers = sf.join_many([("a",), ("b",), ("c",)])
    assert followers == []
    assert len({id(f) for f in flights}) == 1 and type(flights[0]) is GroupFlight
    assert len(sf) == 3
    sf.succeed_many([("a",), ("b",), ("c",)], flights, [1, 2, 3])
    assert len(sf) == 0


def test_repeated_or_missing_keys_take_the_per_key_path() -> None:
    sf = SingleFlight()
    flights, followers = sf.join_many([("a",), ("a",), None])
    assert followers == [1] and flights[2] is None
    assert type(flights[0]) is Flight and flights[0] is flights[1]


def test_a_caller_joining_a_group_key_gets_the_leaders_value() -> None:
    sf = SingleFlight()
    keys = [("a",), ("b",)]
    group, _ = sf.join_many(keys)
    flight, leader = sf.join(("b",))
    assert not leader and type(flight) is Flight
    assert sf.join(("b",))[0] is flight  # one member per key
    got: list[object] = []
    waiter = threading.Thread(target=lambda: (sf.wait(flight), got.append(flight.outcome())))
    waiter.start()
    sf.succeed_many(keys, group, ["A", "B"])
    waiter.join(5)
    assert got == ["B"] and len(sf) == 0


def test_a_group_key_failed_alone_fails_its_follower_and_frees_the_rest() -> None:
    sf = SingleFlight()
    keys = [("a",), ("b",)]
    group, _ = sf.join_many(keys)
    member, _ = sf.join(("a",))
    error = ValueError("a failed")
    sf.fail(("a",), group[0], error)
    sf.wait(member)
    assert member.error is error and len(sf) == 1
    sf.succeed(("b",), group[1], "B")  # nobody joined b: simply released
    assert len(sf) == 0


def test_an_abandoned_group_key_lets_its_follower_take_over() -> None:
    sf = SingleFlight()
    group, _ = sf.join_many([("a",)])
    member, _ = sf.join(("a",))
    sf.fail(("a",), group[0], KeyboardInterrupt())
    assert member.abandoned and member.done
    flight, leader = sf.join(("a",))
    assert leader and flight is not member


def test_join_many_follows_group_keys_led_elsewhere() -> None:
    sf = SingleFlight()
    first, _ = sf.join_many([("a",), ("b",)])
    flights, followers = sf.join_many([("b",), ("c",)])
    assert followers == [0]
    member = flights[0]
    assert type(member) is Flight and type(flights[1]) is Flight
    sf.succeed_many([("a",), ("b",)], first, [1, 2])
    assert member.done and member.value == 2
    sf.succeed(("c",), flights[1], 3)
    assert len(sf) == 0
