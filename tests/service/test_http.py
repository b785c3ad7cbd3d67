from hypothesis import given
from hypothesis import strategies as st
from starlette.datastructures import Headers
from starlette.requests import Request

from service.http import content_headers

names = st.sampled_from(
    [b"content-type", b"content-length", b"host", b"accept", b"content-typex", b"x-content-type"]
)
values = st.binary(max_size=12).map(lambda raw: raw.replace(b"\r", b"").replace(b"\n", b""))


@given(st.lists(st.tuples(names, values), max_size=8))
def test_content_headers_are_what_starlettes_headers_give(raw: list[tuple[bytes, bytes]]) -> None:
    """Same answer as two look-ups through ``request.headers``, duplicates and absent headers included."""
    request = Request({"type": "http", "method": "POST", "path": "/", "headers": raw})
    headers = Headers(scope=request.scope)
    assert content_headers(request) == (headers.get("content-type", ""), headers.get("content-length"))
