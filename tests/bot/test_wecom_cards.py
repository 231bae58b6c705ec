"""The sandbox's template cards keep WeCom's rules: task_id unique per app, at most 128 bytes of `[0-9A-Za-z_-@]`
(42014 otherwise); 1 to 6 buttons with keys; each response_code used once, within 72 hours; a card whose
buttons read 已完成 takes no clicks."""
from __future__ import annotations

import pytest

from bot.clients import wecom_client
from bot.errors import PermanentAPIError, WeChatAPIError
from bot.sandbox import wecom_cards


def _card(task_id: str, buttons=None, **extra) -> dict:
    card = {"card_type": "button_interaction", "main_title": {"title": "回访"}, "task_id": task_id,
            "button_list": buttons if buttons is not None else [{"text": "完成", "key": "done"},
                                                                   {"text": "稍后", "key": "later"}], **extra}
    return {"touser": "a", "msgtype": "template_card", "template_card": card}


def _errcode(fn) -> int:
    with pytest.raises(WeChatAPIError) as exc:
        fn()
    return exc.value.errcode


def test_task_ids_are_unique_per_app_and_within_wecoms_alphabet_and_length(sandbox):
    sandbox.add_staff("a")
    client = wecom_client()
    assert client.send_message(_card("t_1-x@y"))["response_code"]
    assert _errcode(lambda: client.send_message(_card("t_1-x@y"))) == 42014  # the same task_id again
    assert _errcode(lambda: client.send_message(_card("t" * 129))) == 42014  # over 128 bytes
    assert _errcode(lambda: client.send_message(_card("任务1"))) == 42014  # outside digits, letters and _-@
    assert _errcode(lambda: client.send_message(_card(""))) == 42014
    assert client.send_message(_card("t" * 128))["response_code"]  # 128 bytes is allowed


def test_a_button_card_needs_one_to_six_buttons_with_unique_keys_and_a_title(sandbox):
    sandbox.add_staff("a")
    client = wecom_client()
    seven = [{"text": f"b{i}", "key": f"k{i}"} for i in range(7)]
    twice = [{"text": "x", "key": "k"}, {"text": "y", "key": "k"}]
    for bad in (_card("t1", []), _card("t2", seven), _card("t3", twice), _card("t4", [{"text": "x"}]),
                _card("t5", [{"text": "x", "key": "k" * 1025}]), _card("t6", [{"text": "go", "type": 1}])):
        assert _errcode(lambda bad=bad: client.send_message(bad)) == 40058
    untitled = _card("t7")
    del untitled["template_card"]["main_title"]
    assert _errcode(lambda: client.send_message(untitled)) == 40058
    assert client.send_message(_card("t8", [{"text": "go", "type": 1, "url": "https://example.invalid/"}]))


def test_each_response_code_updates_once_within_72_hours_and_clicks_stop_after_done(sandbox):
    sandbox.add_staff("a")
    client = wecom_client()
    sent = client.send_message(_card("t1"))["response_code"]
    click = wecom_cards.click(sandbox, "a", "t1", "later")  # a click brings its own code
    assert click != sent
    sandbox.advance(72 * 3600 + 1)
    with pytest.raises(PermanentAPIError):  # older than 72 hours
        client.update_template_card({"userids": ["a"], "response_code": sent, "button": {"replace_name": "已完成"}})
    fresh = wecom_cards.click(sandbox, "a", "t1", "done")
    client.update_template_card({"userids": ["a"], "response_code": fresh, "button": {"replace_name": "已完成"}})
    with pytest.raises(PermanentAPIError):  # used once already
        client.update_template_card({"userids": ["a"], "response_code": fresh, "button": {"replace_name": "again"}})
    assert sandbox.task_cards["t1"]["replaced"] == "已完成"
    with pytest.raises(ValueError):
        wecom_cards.click(sandbox, "a", "t1", "done")
    with pytest.raises(ValueError):  # someone the card never reached cannot click it
        sandbox.add_staff("b")
        client.send_message(_card("t2"))
        wecom_cards.click(sandbox, "b", "t2", "done")
