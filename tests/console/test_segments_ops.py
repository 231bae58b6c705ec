"""Segments and operations through the console: the API's messages by their fields, and nothing half-saved."""
from __future__ import annotations

import json

from sqlalchemy import func, select

from config.database import session_scope
from membership.models import ApiToken
from segments.models import Segment, TagRule
from tests.console.conftest import csrf_of, sign_in


def test_a_segment_with_a_bad_node_is_not_saved_and_the_message_points_at_it(client, shop):
    sign_in(client)
    csrf = csrf_of(client.get("/console/segments/new").text)
    bad = {"all": [{"tag": "VIP"}, {"trait": "city", "op": "gt", "value": "上海"}]}
    preview = client.post("/console/segments/preview", data={"csrf": csrf, "definition": json.dumps(bad)})
    assert preview.status_code == 422 and 'data-error-path="$.all[1]' in preview.text
    saved = client.post("/console/segments", data={"csrf": csrf, "name": "坏人群", "definition": json.dumps(bad)},
                        headers={"HX-Request": "true"})
    assert saved.status_code == 422 and "$.all[1]" in saved.text and 'id="definition-error"' in saved.text
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Segment)) == 0
    good = client.post("/console/segments/preview", data={"csrf": csrf, "definition": json.dumps({"tag": "VIP"})})
    assert good.status_code == 200 and '<strong id="preview-count">1</strong>' in good.text


def test_a_segment_in_use_is_not_deleted_and_says_by_whom(client, shop):
    sign_in(client)
    csrf = csrf_of(client.get("/console/segments/new").text)
    r = client.post("/console/segments", data={"csrf": csrf, "name": "VIP", "definition": '{"tag":"VIP"}'},
                    follow_redirects=False)
    assert r.status_code == 303
    with session_scope() as s:
        sid = s.scalar(select(Segment.id))
    made = client.post("/console/ops/tag-rules", data={"csrf": csrf, "name": "VIP 标记", "tag": "重点",
                                                       "segment_id": str(sid)}, follow_redirects=False)
    assert made.status_code == 303
    gone = client.post(f"/console/segments/{sid}/delete", data={"csrf": csrf}, headers={"HX-Request": "true"})
    assert gone.status_code == 409 and "in use" in gone.text
    renamed = client.post(f"/console/segments/{sid}", data={"csrf": csrf, "name": "VIP 会员",
                                                             "definition": '{"tag":"VIP"}'}, follow_redirects=False)
    assert renamed.status_code == 303
    with session_scope() as s:
        assert s.get(Segment, sid).name == "VIP 会员" and s.scalar(select(func.count()).select_from(TagRule)) == 1


def test_a_token_form_with_a_bad_field_saves_nothing_and_a_good_one_shows_the_secret_once(client, shop):
    sign_in(client)
    csrf = csrf_of(client.get("/console/ops/tokens").text)
    with session_scope() as s:
        before = s.scalar(select(func.count()).select_from(ApiToken))
    bad = client.post("/console/ops/tokens", data={"csrf": csrf, "name": "店长", "role": "store_manager"})
    assert bad.status_code == 422 and 'id="store-error"' in bad.text
    good = client.post("/console/ops/tokens", data={"csrf": csrf, "name": "店长2", "role": "store_manager",
                                                    "store": "S1"})
    assert good.status_code == 200 and 'id="created-token"' in good.text and "sy_" in good.text
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(ApiToken)) == before + 1
    assert "sy_" not in client.get("/console/ops/tokens").text  # listed, never again shown
