"""The API documentation works offline (every asset from Siyu itself), and the schema says what clients need."""
from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

ASSET_TYPES = {".js": ("text/javascript", "application/javascript"), ".css": ("text/css",), ".png": ("image/png",)}
ERRORS = {"401", "403", "404", "409", "422", "502"}


@pytest.fixture
def client(settings):
    from siyu.app import create_app

    with TestClient(create_app()) as c:
        yield c


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_a_docs_page_loads_every_asset_from_siyu_itself(client, page):
    # when the page is fetched
    r = client.get(page)
    assert r.status_code == 200
    html = r.text
    # then it names no other host at all (no CDN, no fonts, no validator badge)
    assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", html, re.I), html
    # and every script, stylesheet and icon it loads is on the server, and answers with the right type
    urls = re.findall(r"""<(?:script|link|img)\b[^>]*?\b(?:src|href)=["']([^"']+)["']""", html)
    assert len(urls) >= 2, html  # a script and an icon at least
    for url in urls:
        assert url.startswith("/") and not url.startswith("//"), url
        asset = client.get(url)
        suffix = url[url.rfind("."):]
        assert asset.status_code == 200, url
        assert asset.headers["content-type"].split(";")[0] in ASSET_TYPES[suffix], (url, asset.headers)
        assert len(asset.content) > 500
    # and the schema the page reads is served too
    assert client.get("/openapi.json").status_code == 200


def _operations(schema: dict, prefix: str = "/api/v1"):
    for path, item in schema["paths"].items():
        for method, op in item.items():
            if path.startswith(prefix):
                yield f"{method.upper()} {path}", op


def test_every_admin_route_declares_the_bearer_scheme_and_the_one_error_model(client):
    schema = client.get("/openapi.json").json()
    # then the bearer scheme is declared, for Swagger UI's Authorize button
    bearer = schema["components"]["securitySchemes"]["bearer"]
    assert (bearer["type"], bearer["scheme"]) == ("http", "bearer") and "siyu token create" in bearer["description"]
    error = {"$ref": "#/components/schemas/ErrorOut"}
    assert schema["components"]["schemas"]["ErrorOut"]["required"] == ["detail"]
    operations = dict(_operations(schema))
    assert len(operations) > 30
    for name, op in operations.items():
        # and every operation of /api/v1 requires it, and documents 401/403/404/409/422/502 as {"detail": …}
        assert op.get("security") == [{"bearer": []}], name
        assert ERRORS <= set(op["responses"]), name
        for status in ERRORS:
            assert op["responses"][status]["content"]["application/json"]["schema"] == error, (name, status)
    # while Tencent's webhooks (their own protocols) and the operations endpoints need no token
    assert "security" not in schema["paths"]["/webhooks/wecom"]["post"]
    assert "security" not in schema["paths"]["/healthz"]["get"]


def test_list_endpoints_exist_for_every_kind_of_thing_the_api_creates(client):
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/api/v1/channel-codes", "/api/v1/oa-qrcodes", "/api/v1/auto-replies", "/api/v1/tag-rules"):
        assert {"get", "post"} <= set(paths[path]), path
    for path in ("/api/v1/channel-codes", "/api/v1/oa-qrcodes", "/api/v1/auto-replies"):
        params = {p["name"] for p in paths[path]["get"]["parameters"]}
        assert {"cursor", "limit"} <= params, path


def _resolve(schema: dict, node: dict) -> dict:
    while "$ref" in node:
        node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
    return node


def test_segment_definitions_are_typed_in_the_schema_as_the_node_union(client):
    schema = client.get("/openapi.json").json()
    comps = schema["components"]["schemas"]
    for model in ("SegmentIn", "PreviewIn", "SegmentPatch", "SegmentOut"):
        definition = comps[model]["properties"]["definition"]
        # then a definition is one of the nodes of CONTRACT §4, not any JSON
        kinds = {_resolve(schema, alt)["title"] for alt in definition["anyOf"] if "$ref" in alt}
        assert {"All", "AnyOf", "Not", "TagLeaf", "TraitLeaf", "EventLeaf", "StoreLeaf", "StaffLeaf", "ChannelLeaf",
                "SegmentLeaf"} <= kinds, (model, definition)
    # and composites nest nodes, leaves carry their fields (and not the parser's derived ones)
    all_node = _resolve(schema, {"$ref": "#/components/schemas/All-Input"})
    assert all_node["required"] == ["all"] and all_node["properties"]["all"]["minItems"] == 1
    assert _resolve(schema, {"$ref": "#/components/schemas/Not-Input"})["required"] == ["not"]
    trait = comps["TraitLeaf"]
    assert set(trait["properties"]) == {"trait", "op", "value"}
    assert "within_last_days" in trait["properties"]["op"]["enum"]
    channels = comps["ChannelLeaf"]["properties"]["channel"]["enum"]
    assert channels == ["wecom", "official_account", "miniprogram", "phone"]


def test_an_invalid_definition_is_still_refused_with_the_path_of_the_offending_node(client):
    from tests.conftest import ADMIN_TOKEN

    body = {"definition": {"all": [{"tag": "VIP"}, {"any": [{"trait": "city", "op": "nearby", "value": 1}]}]}}
    r = client.post("/api/v1/segments/preview", json=body, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert r.status_code == 422
    assert r.json()["detail"].startswith("$.all[1].any[0].op: trait leaf:"), r.json()
