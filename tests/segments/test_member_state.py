"""What the per-event evaluator remembers on a member's state (segments.predicate.MemberState): the tags' names and
each event window's sum are computed once per state, shared by every segment asking, and forgotten with it."""
from __future__ import annotations

from datetime import date
from zoneinfo import ZoneInfo

from segments.clock import EvalContext
from segments.language import parse
from segments.predicate import MemberState, compile_predicate

CTX = EvalContext(today=date(2026, 3, 1), tz=ZoneInfo("Asia/Shanghai"))


def _compiled(definition: dict):
    return compile_predicate(parse(definition), CTX, {})


def test_segments_asking_the_same_tag_name_and_window_share_them_and_a_changed_state_forgotten_is_read_again():
    vip_any_group = _compiled({"tag": "VIP"})
    vip_level = _compiled({"tag": "VIP", "group": "level"})
    twice_in_30 = _compiled({"event": "booking.completed", "within_days": 30, "count": {"gte": 2}})
    once_in_30 = _compiled({"event": "booking.completed", "within_days": 30, "count": {"eq": 1}})
    state = MemberState(member_id=1, tags={("", "VIP")},
                        counts={("booking.completed", ""): {date(2026, 2, 20): 1, date(2025, 1, 1): 5}})
    # given a state checked by segments asking the same tag (in any group) and the same window
    assert [p(state) for p in (vip_any_group, vip_level, twice_in_30, once_in_30)] == [True, False, False, True]
    # then the window was summed once, for both (the old day outside it left out), and the names built once
    assert list(state._sums.values()) == [1] and state._names == {"VIP"}
    # when the state changes in place and is forgotten
    state.tags = {("level", "金卡")}
    state.counts[("booking.completed", "")][date(2026, 2, 28)] = 1
    state.forget()
    # then every segment reads the new state
    assert [p(state) for p in (vip_any_group, vip_level, twice_in_30, once_in_30)] == [False, False, True, False]
    assert list(state._sums.values()) == [2] and state._names == {"金卡"}


def test_a_member_without_tags_builds_an_empty_set_of_names_once():
    no_tags = MemberState(member_id=2)
    assert _compiled({"tag": "VIP"})(no_tags) is False and no_tags._names == set()
    assert _compiled({"not": {"tag": "新客"}})(no_tags) is True


def test_what_a_state_remembers_for_the_evaluator_is_not_part_of_its_equality():
    asked, fresh = MemberState(member_id=3, tags={("", "VIP")}), MemberState(member_id=3, tags={("", "VIP")})
    assert _compiled({"tag": "VIP"})(asked) is True and asked._names == {"VIP"}
    assert asked == fresh
