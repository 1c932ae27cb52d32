"""A limit on how deeply a JSON document may nest, checked before anything parses it.

Python's ``json`` parser recurses once per level: a body of ten thousand ``[`` raises
RecursionError deep inside the framework, which answered 500. :class:`JsonDepthLimit` is an
ASGI middleware that reads each JSON request body first and answers a clear 400 when it
nests deeper than :data:`MAX_JSON_DEPTH`; :func:`check_depth` does the same for JSON that
arrives as an uploaded file (analysis settings).
"""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: The deepest nesting accepted (Oasis analysis settings nest four or five levels).
MAX_JSON_DEPTH = 64


def json_depth(raw: bytes) -> int:
    """How deeply ``raw`` nests arrays and objects (strings and escapes skipped)."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return deepest


def too_deep_message(depth: int) -> str:
    return f"JSON nested {depth} levels deep: at most {MAX_JSON_DEPTH} are accepted"


def check_depth(raw: bytes) -> str | None:
    """The refusal message for JSON nested past :data:`MAX_JSON_DEPTH`, else None."""
    depth = json_depth(raw)
    return too_deep_message(depth) if depth > MAX_JSON_DEPTH else None


class JsonDepthLimit:
    """Answers 400 to a JSON request body nested past :data:`MAX_JSON_DEPTH`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _is_json(scope):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                await self.app(scope, _replay([message], receive), send)
                return
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        refusal = check_depth(body)
        if refusal is not None:
            await _answer_400(send, {"detail": f"JSON parse error - {refusal}"})
            return
        await self.app(scope, _replay([{"type": "http.request", "body": body}], receive), send)


def _is_json(scope: Scope) -> bool:
    for name, value in scope.get("headers", []):
        if name == b"content-type":
            return b"json" in value.lower()
    return False


def _replay(messages: list[Message], then: Receive) -> Receive:
    """The messages already read, then the connection's own (which waits for the client to
    go away: answering a disconnect at once would cut a streamed response short)."""
    pending = list(messages)

    async def receive() -> Message:
        if pending:
            return pending.pop(0)
        return await then()

    return receive


async def _answer_400(send: Send, body: Any) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 400,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
