"""Fuzzing the HTTP API (hypothesis) on a real loopback server: whatever the body, path parameter or
query value, the answer is a JSON error or success — never a 500, never a traceback."""

from __future__ import annotations

import json
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oneedit.service.server import ServerThread
from tests.service_support import add_users, new_workspace

SETTINGS = settings(max_examples=40, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# JSON values of every shape, with the strings people and fuzzers send: control characters, huge
# numbers, unpaired surrogates escaped, bidi overrides, names that look like paths
_text = st.one_of(st.text(max_size=60), st.sampled_from([
    "", " ", "\u0000", "\u202e", "../../etc/passwd", "France", "capital", "The capital of France is Lyon",
    "What is the capital of France?", "9223372036854775808", "-1", "null", "\ud800", "%00", "<script>",
]))
_scalar = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
                    st.floats(allow_nan=False), _text)
_json = st.recursive(_scalar, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(_text, inner, max_size=4)), max_leaves=12)
_fields = st.fixed_dictionaries({}, optional={
    "text": _scalar, "triples": st.one_of(_json, st.lists(st.dictionaries(
        st.sampled_from(["op", "subject", "relation", "object", "subject_type", "object_type", "x"]), _scalar,
        max_size=6), max_size=3)),
    "method": _scalar, "dry_run": _scalar, "request_key": _scalar, "cascade": _scalar, "reason": _scalar,
    "subject": _scalar, "relation": _scalar, "object": _scalar, "remove": _scalar, "name": _scalar,
    "role": _scalar, "active": _scalar})
_body = st.one_of(_json, _fields)
def _quoted(s: str) -> str:
    """``s`` percent-encoded as a client would send it (lone surrogates as the bytes they escape)."""
    return quote(s.encode("utf-8", "surrogatepass"), safe="")


_segment = st.one_of(_text, st.integers(min_value=-(2**70), max_value=2**70).map(str)).map(lambda s: _quoted(s) or "x")

POSTS = ["/api/edits", "/api/ask", "/api/parse", "/api/protect", "/api/users", "/api/edits/1/rollback",
         "/api/review/1/approve", "/api/review/1/reject", "/api/me/token"]
PATHS = ["/api/edits/{}", "/api/edits/{}/events", "/api/kg/entities/{}", "/api/kg/entities/{}/neighbourhood",
         "/api/review/{}/approve", "/api/edits/{}/rollback", "/api/users/{}"]


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    root = new_workspace(tmp_path_factory.mktemp("fuzz") / "ws")
    tokens = add_users(root, {"fuzz-admin": "admin", "fuzz-ed": "editor", "fuzz-view": "viewer"})
    with ServerThread(root, load_model=False) as srv, httpx.Client(base_url=srv.url, timeout=60) as c:
        yield c, tokens


def _ok(r: httpx.Response) -> None:
    assert r.status_code < 500, (r.request.method, str(r.request.url), r.status_code, r.text[:500])
    assert "Traceback" not in r.text
    if r.request.method != "HEAD" and r.headers.get("content-type", "").startswith("application/json"):
        json.loads(r.text)


@SETTINGS
@given(path=st.sampled_from(POSTS), body=_body, who=st.sampled_from(["fuzz-admin", "fuzz-ed", "fuzz-view", None]))
def test_any_json_body_is_answered_without_a_server_error(api, path, body, who):
    c, tokens = api
    headers = {"Authorization": f"Bearer {tokens[who]}"} if who else {}
    # JSON with \u escapes: lone surrogates reach the server as a client may send them
    _ok(c.post(path, content=json.dumps(body), headers=headers | {"Content-Type": "application/json"}))


@SETTINGS
@given(path=st.sampled_from(POSTS), raw=st.binary(max_size=200))
def test_any_bytes_as_a_body_are_answered_without_a_server_error(api, path, raw):
    c, tokens = api
    _ok(c.post(path, content=raw, headers={"Authorization": f"Bearer {tokens['fuzz-admin']}",
                                          "Content-Type": "application/json"}))


@SETTINGS
@given(template=st.sampled_from(PATHS), segment=_segment, method=st.sampled_from(["GET", "POST", "PATCH"]))
def test_any_path_parameter_is_answered_without_a_server_error(api, template, segment, method):
    c, tokens = api
    url = template.format(segment)
    kwargs = {"content": b"{}", "headers": {"Content-Type": "application/json"}} if method != "GET" else {}
    if url.endswith("/events") and method == "GET":
        method = "HEAD"  # an open event stream would wait for events; its headers say enough
    headers = {"Authorization": f"Bearer {tokens['fuzz-admin']}"} | kwargs.pop("headers", {})
    _ok(c.request(method, url, headers=headers, **kwargs))


@SETTINGS
@given(params=st.dictionaries(st.sampled_from(["status", "author", "entity", "limit", "q", "type", "depth",
                                               "sample", "seed"]), _text, max_size=4),
       path=st.sampled_from(["/api/edits", "/api/kg/search", "/api/audit", "/api/kg/entities/France/neighbourhood"]))
def test_any_query_value_is_answered_without_a_server_error(api, params, path):
    c, tokens = api
    query = "&".join(f"{_quoted(k)}={_quoted(v)}" for k, v in params.items())
    _ok(c.get(f"{path}?{query}", headers={"Authorization": f"Bearer {tokens['fuzz-admin']}"}))
