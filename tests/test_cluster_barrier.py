"""The cluster's swap barrier and membership table without sockets: :class:`Barrier` driven by calls that carry
the time, as the primary's service thread drives it (see ``tests/net/test_cluster.py`` for the same rules over
real ZeroMQ)."""

from __future__ import annotations

from stagectl.sync.cluster.barrier import Answer, Barrier

MS = 1_000_000
TIMEOUT = 40 * MS


def cluster(*nodes: str, member: str | None = "primary", **kw) -> Barrier:
    b = Barrier(TIMEOUT, member=member, **kw)
    for n in nodes:
        assert b.hear(n, n.encode(), 0) is not None
    return b


def report(b: Barrier, name: str, frame: int, now: int) -> list[Answer]:
    """Node ``name`` reports ``frame`` (the primary itself on no connection), then the service's release."""
    rid = None if name == b.member else name.encode()
    if rid is not None:
        b.hear(name, rid, now)
    return b.arrive(name, frame, now, rid) + b.release(now)


def everyone_in(b: Barrier, frame: int, now: int) -> None:
    for n in b.peers:
        report(b, n, frame, now)
    assert set(b.member_names()) == set(b.peers)


def test_a_round_releases_when_every_member_reported_and_not_before() -> None:
    b = cluster("n0", "n1")
    everyone_in(b, 1, 0)
    assert report(b, "n0", 2, 10 * MS) == []
    assert report(b, "primary", 2, 11 * MS) == []
    assert b.deadline == 10 * MS + TIMEOUT  # the round opened with its first report
    answers = report(b, "n1", 2, 12 * MS)
    assert [(a.name, a.frame, a.released, a.in_barrier) for a in answers] == [
        ("n0", 2, True, True), ("n1", 2, True, True), ("primary", 2, True, True)]  # the primary's own last
    assert {a.hold for a in answers} == {2 * MS}
    assert answers[0].members == ("n0", "n1", "primary")
    assert b.deadline is None and b.timed_out == 0
    assert b.rounds == 2  # frame 1 (each joined alone) counted once, then frame 2
    # a report for a frame already released is answered at once (the node is behind)
    late = b.arrive("n0", 2, 13 * MS, b"n0")
    assert [(a.frame, a.released, a.hold) for a in late] == [(2, True, 0)]


def test_a_member_that_misses_the_timeout_is_dropped_and_rejoins_by_itself() -> None:
    b = cluster("n0", "slow")
    everyone_in(b, 1, 0)
    report(b, "primary", 2, 10 * MS)
    assert report(b, "n0", 2, 10 * MS) == []
    assert b.release(10 * MS + TIMEOUT - 1) == []  # one ns before the deadline: still waiting for "slow"
    answers = b.release(10 * MS + TIMEOUT)
    assert sorted(a.name for a in answers) == ["n0", "primary"]
    assert all(a.members == ("n0", "primary") for a in answers)
    slow = b.peers["slow"]
    assert slow.state == "dropped" and slow.drops == 1 and "not ready for frame 2" in slow.last_drop
    assert b.timed_out == 1
    # reporting the frame just released within that round's deadline: it would have made it, so it is back in
    back = report(b, "slow", 2, 10 * MS + TIMEOUT)
    assert [(a.released, a.in_barrier) for a in back] == [(True, True)]
    assert slow.state == "member" and slow.rejoins == 1
    # the next round waits for it again
    report(b, "primary", 3, 60 * MS)
    assert report(b, "n0", 3, 60 * MS) == []
    assert len(report(b, "slow", 3, 61 * MS)) == 3


def test_a_node_slower_than_the_timeout_stays_out_until_it_reports_a_frame_not_yet_released() -> None:
    b = cluster("n0", "slow")
    everyone_in(b, 1, 0)
    report(b, "primary", 2, 10 * MS)
    report(b, "n0", 2, 10 * MS)
    b.release(10 * MS + TIMEOUT)
    too_late = report(b, "slow", 2, 10 * MS + TIMEOUT + 1)  # after that round's deadline
    assert [(a.released, a.in_barrier) for a in too_late] == [(True, False)]
    assert b.peers["slow"].state == "dropped"
    report(b, "slow", 3, 55 * MS)  # ahead of the others: in again
    assert b.peers["slow"].state == "member" and b.peers["slow"].rejoins == 1


def test_a_silent_member_is_dropped_at_the_liveness_time_forgotten_later_and_rejoins_when_it_speaks() -> None:
    b = cluster("n0", "quiet", liveness_ns=1000 * MS, forget_ns=5000 * MS)
    everyone_in(b, 1, 0)
    b.hear("n0", b"n0", 900 * MS)
    b.sweep(1000 * MS)
    assert b.peers["quiet"].alive and b.peers["quiet"].state == "member"
    b.sweep(1000 * MS + 1)
    quiet = b.peers["quiet"]
    assert not quiet.alive and quiet.state == "dropped" and "silent" in quiet.last_drop
    assert b.member_names() == ("n0", "primary")
    # it speaks again: alive, and in the barrier with its next report
    report(b, "quiet", 5, 1200 * MS)
    assert quiet.alive and quiet.state == "member" and quiet.rejoins == 1
    # silent for the forget time: gone from the table (the primary itself never is)
    b.hear("n0", b"n0", 6000 * MS)
    b.sweep(1200 * MS + 5000 * MS + 1)
    assert set(b.peers) == {"n0", "primary"}


def test_an_invalid_or_unknown_name_does_not_count() -> None:
    b = cluster("n0")
    everyone_in(b, 1, 0)
    # the primary's own name, control characters, bad UTF-8 and empty names are not node names
    for raw in (b"primary", b"n0\nprimary", b"\xff\xfe", b"", b" n0", b"x" * 65):
        assert b.peer_name(raw) is None, raw
    assert b.peer_name(b"n1") == "n1"
    # a report from a name the table does not hold neither answers nor completes the round
    report(b, "primary", 2, 10 * MS)
    assert b.arrive("ghost", 2, 10 * MS, b"ghost") == []
    assert "ghost" not in b.waiters and b.release(10 * MS) == []
    assert len(report(b, "n0", 2, 11 * MS)) == 2


def test_a_goodbye_from_another_connection_is_ignored_and_a_full_table_refuses_live_newcomers() -> None:
    b = cluster("n0")
    b.bye("n0", b"someone else")
    assert "n0" in b.peers
    b.bye("n0", b"n0")
    assert "n0" not in b.peers
    full = cluster("a", "b", max_peers=3)
    assert full.hear("c", b"c", 0) is None and full.refused_peers == 1
    full.peers["a"].alive = False  # silent and out of the barrier: makes room
    assert full.hear("c", b"c", 1) is not None and "a" not in full.peers
