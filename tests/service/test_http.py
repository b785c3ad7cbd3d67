import asyncio
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.datastructures import Headers
from starlette.requests import Request

from service.http import ClientError, content_headers, read_json

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


def _streamed(chunks: list[bytes]) -> Request:
    """A POST whose body arrives in ``chunks`` with no Content-Length, as a chunked request does."""
    messages = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
        for i, chunk in enumerate(chunks)
    ]

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/",
        "headers": [(b"content-type", b"application/json")],
    }
    return Request(scope, receive)


@given(st.lists(st.binary(max_size=6), max_size=6))
def test_a_body_in_any_chunks_is_parsed_whole(cuts: list[bytes]) -> None:
    body = b'{"key": [1, "two", {"three": 3}]}'
    pieces, rest = [], body
    for cut in cuts:  # split the body at the lengths drawn, empty chunks included
        pieces.append(rest[: len(cut)])
        rest = rest[len(cut) :]
    assert asyncio.run(read_json(_streamed([*pieces, rest]))) == {"key": [1, "two", {"three": 3}]}


@pytest.mark.parametrize("chunks", [[b"[1," * 5 + b"1]"], [b"[1,", b"1,1,", b"1,1,", b"1]"]])
def test_a_streamed_body_over_the_limit_is_refused_without_a_declared_length(chunks: list[bytes]) -> None:
    with pytest.raises(ClientError) as refused:
        asyncio.run(read_json(_streamed(chunks), max_bytes=8))
    assert refused.value.status == 413
    assert asyncio.run(read_json(_streamed([b"[1,", b"1,1", b"]"]), max_bytes=8)) == [1, 1, 1]
