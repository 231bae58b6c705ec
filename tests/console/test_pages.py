"""The console over HTTP: sign-in and sessions, CSRF, scope, pages and fragments, no N+1, nothing from elsewhere."""
from __future__ import annotations

import re
import threading
from datetime import timedelta

import pytest
from sqlalchemy import event, select

from config.database import engine_for, session_scope
from config.types import utcnow
from console.auth import static_files
from console.models import ConsoleSession
from membership import tokens
from membership.models import MemberTag, Role, Tag
from tests.console.conftest import csrf_of, sign_in
from tests.conftest import ADMIN_TOKEN


def test_a_page_without_a_session_redirects_to_sign_in(client):
    # when a browser with no session opens a page, then it is sent to sign in, with the page to come back to
    r = client.get("/console/members?name=x", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/console/login?next=/console/members%3Fname%3Dx"


def test_signing_in_sets_an_httponly_lax_cookie_and_stores_only_its_hash(client, settings):
    # when the admin signs in with a token
    r = sign_in(client)
    # then the answer sets an HttpOnly, SameSite=Lax session cookie and goes on to the overview
    assert r.status_code == 303 and r.headers["location"] == "/console/"
    cookie = next(h for h in r.headers.get_list("set-cookie") if h.startswith("siyu_console="))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/console" in cookie
    secret = cookie.split(";")[0].split("=", 1)[1]
    with session_scope() as s:
        row = s.scalar(select(ConsoleSession))
        assert row.secret_hash != secret and secret not in row.secret_hash and row.bootstrap_hash
    assert client.get("/console/").status_code == 200


def test_a_wrong_token_is_told_so_and_opens_no_session(client):
    r = sign_in(client, "sy_wrong")
    assert r.status_code == 401 and "令牌无效" in r.text
    with session_scope() as s:
        assert s.scalar(select(ConsoleSession)) is None


def test_a_post_without_its_csrf_token_is_403(client, shop):
    # given a signed-in admin
    sign_in(client)
    member = shop["ids"]["b"]
    # when a form is posted without the CSRF token, or the sign-in form without its own
    r = client.post(f"/console/members/{member}/tags", data={"name": "VIP"})
    login = client.post("/console/login", data={"token": ADMIN_TOKEN})
    # then both are 403 and nothing was tagged
    assert r.status_code == 403 and "CSRF" in r.text and login.status_code == 403
    with session_scope() as s:
        assert s.scalar(select(MemberTag).where(MemberTag.member_id == member)) is None


def test_sign_out_revokes_the_session_on_the_server(client):
    sign_in(client)
    page = client.get("/console/")
    cookie = client.cookies.get("siyu_console")
    r = client.post("/console/logout", data={"csrf": csrf_of(page.text)}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/console/login"
    # the old cookie, replayed, signs in nobody
    client.cookies.set("siyu_console", cookie, path="/console")
    assert client.get("/console/", follow_redirects=False).status_code == 303
    with session_scope() as s:
        assert s.scalar(select(ConsoleSession)).revoked_at is not None


def test_revoking_or_expiring_the_token_ends_its_sessions(client, shop):
    # given a marketer signed in with their token
    assert sign_in(client, shop["marketer"]).status_code == 303
    assert client.get("/console/segments").status_code == 200
    # when the token is revoked, then the next page asks to sign in again
    with session_scope() as s:
        token_id = next(t.id for t in tokens.list_tokens(s) if t.role == "marketer")
        tokens.revoke_token(s, token_id=token_id)
    assert client.get("/console/segments", follow_redirects=False).status_code == 303
    # and a token that has expired opens no session either
    with session_scope() as s:
        _, secret = tokens.create_token(s, name="短期", role=Role.marketer, expires_at=utcnow() + timedelta(seconds=1),
                                        now=utcnow() - timedelta(seconds=5))
        s.flush()
    with session_scope() as s:
        from sqlalchemy import update

        from membership.models import ApiToken
        s.execute(update(ApiToken).where(ApiToken.name == "短期").values(expires_at=utcnow() - timedelta(seconds=1)))
    assert sign_in(client, secret).status_code == 401


def test_htmx_without_a_session_is_told_where_to_sign_in(client):
    r = client.get("/console/members", headers={"HX-Request": "true"}, follow_redirects=False)
    assert r.status_code == 401 and r.headers["HX-Redirect"].startswith("/console/login")


def test_a_store_manager_sees_their_store_only_and_another_store_s_member_is_404(client, shop):
    # given the manager of S1 signed in
    sign_in(client, shop["manager"])
    # when they list members, then only S1's are there
    page = client.get("/console/members")
    assert "王小明" in page.text and "赵小红" in page.text and "钱多多" not in page.text
    # and S2's member's profile and its fragments are 404, as in the API
    other = shop["ids"]["c"]
    assert client.get(f"/console/members/{other}").status_code == 404
    assert client.get(f"/console/members/{other}/timeline").status_code == 404
    csrf = csrf_of(client.get(f"/console/members/{shop['ids']['a']}").text)
    assert client.post(f"/console/members/{other}/tags", data={"name": "VIP", "csrf": csrf}).status_code == 404
    # and pages of other roles are 403
    assert client.get("/console/segments").status_code == 403
    assert client.get("/console/ops/tokens").status_code == 403


def test_members_are_found_by_phone_name_tag_and_store(client, shop):
    sign_in(client)
    by_phone = client.get("/console/members", params={"phone": "13800138003"}).text
    assert "钱多多" in by_phone and "王小明" not in by_phone
    by_name = client.get("/console/members", params={"name": "小"}).text
    assert "王小明" in by_name and "赵小红" in by_name and "钱多多" not in by_name
    by_tag = client.get("/console/members", params={"tag": "VIP"}).text
    assert "王小明" in by_tag and "赵小红" not in by_tag
    by_store = client.get("/console/members", params={"store": "S2"}).text
    assert "钱多多" in by_store and "王小明" not in by_store
    # a bad phone number and an unknown store get the API's message next to their field
    bad = client.get("/console/members", params={"phone": "abc"})
    assert 'id="phone-error"' in bad.text
    assert 'id="store-error"' in client.get("/console/members", params={"store": "NOPE"}).text


def test_a_store_manager_cannot_create_a_tag_and_nothing_is_saved(client, shop):
    # given the S1 manager on a member's profile
    sign_in(client, shop["manager"])
    member = shop["ids"]["b"]
    csrf = csrf_of(client.get(f"/console/members/{member}").text)
    # when they add a tag that is not in the catalogue
    r = client.post(f"/console/members/{member}/tags", data={"name": "新标签", "csrf": csrf},
                    headers={"HX-Request": "true"})
    # then the API's message is shown by the field and no tag exists
    assert r.status_code == 422 and 'id="tag-name-error"' in r.text and "catalogue" in r.text
    with session_scope() as s:
        assert s.scalar(select(Tag).where(Tag.name == "新标签")) is None
    # and a catalogue tag is added and removed
    ok = client.post(f"/console/members/{member}/tags", data={"name": "VIP", "csrf": csrf})
    assert ok.status_code == 200 and '<span class="tag">VIP</span>' in ok.text
    gone = client.post(f"/console/members/{member}/tags/remove", data={"name": "VIP", "csrf": csrf})
    assert gone.status_code == 200 and '<span class="tag">VIP</span>' not in gone.text


def test_the_timeline_is_newest_first_and_pages_by_cursor_without_losing_ties(client, shop):
    from membership.timeline import record_event

    member = shop["ids"]["a"]
    at = utcnow()
    with session_scope() as s:
        for i in range(45):  # many events at one instant: a time-only cursor would skip some
            record_event(s, member, "message.received", {"text": f"m{i:02d}"}, at=at)
    sign_in(client)
    seen, html = [], client.get(f"/console/members/{member}").text
    while True:
        seen += re.findall(r'&#34;text&#34;:&#34;(m\d\d)&#34;|"text":"(m\d\d)"', html)
        cursor = re.search(r'timeline\?cursor=([^"]+)"', html)
        if not cursor:
            break
        html = client.get(f"/console/members/{member}/timeline?cursor={cursor.group(1)}",
                          headers={"HX-Request": "true"}).text
    texts = [a or b for a, b in seen]
    assert sorted(texts) == [f"m{i:02d}" for i in range(45)] and len(set(texts)) == 45
    assert client.get(f"/console/members/{member}/timeline?cursor=bm9wZQ==").status_code == 422


def test_the_overview_counts_new_lost_and_net_customers_with_the_numbers_in_tables(client, shop):
    from membership import service
    from membership.models import Staff

    with session_scope() as s:
        zhang = s.scalar(select(Staff).where(Staff.userid == "zhangsan"))
        service.end_relation(s, staff=zhang, member_id=shop["ids"]["b"],
                             status=service.RelationStatus.lost)
    sign_in(client)
    page = client.get("/console/", params={"days": 7}).text
    assert "新增 3 · 流失 1 · 净增 2" in page
    assert 'data-chart="flow"' in page and 'id="flow-table"' in page and 'id="channel-table"' in page
    # the store filter narrows it; the S1 manager sees S1's figures only
    assert "新增 1 · 流失 0" in client.get("/console/", params={"store": "S2"}).text


def test_the_overview_of_a_store_manager_is_their_store(client, shop):
    sign_in(client, shop["manager"])
    page = client.get("/console/", params={"store": "S2"}).text  # the filter cannot widen their scope
    assert "新增 2 · 流失 0" in page and 'id="segment-table"' not in page


def _count_statements(engine, fn) -> int:
    # Only the statements of the request (TestClient runs the app in a portal thread; the jobs that tagging
    # enqueued run in threads of their own and are finished first).
    from config.queue import in_process_runner

    in_process_runner().drain(30)
    seen = []

    def count(*_):
        if not threading.current_thread().name.startswith(("siyu-job", "siyu-fast")):
            seen.append(1)

    event.listen(engine, "before_cursor_execute", count)
    try:
        fn()
    finally:
        event.remove(engine, "before_cursor_execute", count)
    return len(seen)


def test_a_page_of_members_costs_the_same_statements_for_3_members_as_for_20(client, shop, settings):
    # given a signed-in admin
    sign_in(client)
    engine = engine_for(settings.database_url)
    few = _count_statements(engine, lambda: client.get("/console/members"))
    few_workbench = _count_statements(engine, lambda: client.get("/console/workbench"))
    # when 17 more members with tags and relations exist
    from membership import service
    from membership.identity import IdentityIn, bind
    from membership.models import Staff
    from membership.tags import ensure_tag, tag_member

    with session_scope() as s:
        zhang = s.scalar(select(Staff).where(Staff.userid == "zhangsan"))
        for i in range(17):
            m = bind(s, [IdentityIn("phone", f"1390013{i:04d}", verified=True)], name=f"客户{i}").member
            service.add_relation(s, staff=zhang, member_id=m.id)
            tag_member(s, m.id, ensure_tag(s, f"T{i}"))
    many = _count_statements(engine, lambda: client.get("/console/members"))
    workbench = _count_statements(engine, lambda: client.get("/console/workbench"))
    # then a page of 20 takes exactly as many statements as a page of 3 (no query per member)
    assert many == few and workbench == few_workbench


@pytest.mark.parametrize("path", ["/console/login", "/console/", "/console/members", "/console/segments",
                                  "/console/segments/new", "/console/ops/inbox", "/console/ops/tokens",
                                  "/console/ops/channel-codes", "/console/workbench",
                                  "/console/campaigns", "/console/campaigns/new", "/console/groupbuy",
                                  "/console/groupbuy/new", "/console/bookings", "/console/bookings?view=week"])
def test_every_page_loads_its_scripts_and_styles_from_the_server_itself(client, shop, path):
    if path != "/console/login":
        sign_in(client)
    r = client.get(path)
    assert r.status_code == 200, r.text
    refs = [u for u in re.findall(r'<(?:script|link|img|iframe)[^>]*(?:src|href)="([^"]+)"', r.text) if u != "data:,"]
    assert refs and all(ref.startswith("/console/") for ref in refs), refs
    assert "default-src 'self'" in r.headers["content-security-policy"]
    for ref in refs:
        assert client.get(ref).status_code == 200, ref


# Strings in the vendored bundles that look like addresses but are XML namespaces and license texts, not fetches.
NOT_FETCHED = ("http://www.w3.org/", "http://www.apache.org/licenses/", "https://github.com/ecomfe/zrender/")


def test_no_asset_references_an_address_outside_the_server():
    for path in static_files():
        if path.suffix not in (".js", ".css"):
            continue
        text = path.read_text(errors="replace")
        urls = re.findall(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}[^\s\"')]*", text)
        outside = [u for u in urls if u.startswith(("http", "//")) and not u.startswith(NOT_FETCHED)]
        assert not [u for u in outside if not u.startswith("//")], (path.name, outside[:5])
        if path.parent.name not in ("htmx", "echarts"):
            assert "http" not in text and "url(" not in text, path.name


def test_an_asset_outside_the_static_folder_is_not_served(client):
    assert client.get("/console/static/../web.py").status_code == 404
    assert client.get("/console/static/vendor/htmx/LICENSE").status_code == 404
    assert client.get("/console/static/vendor/htmx/htmx.min.js").headers["content-type"].startswith("text/javascript")
