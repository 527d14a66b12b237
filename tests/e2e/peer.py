"""A WebSocket test peer standing in for a model container, run as a real process.

    python tests/e2e/peer.py PORT MUTE_PORT SILENT_PORT

Routes (the path the local endpoint asks for decides the behaviour):
  /invocations-bidirectional-stream, /echo   echo every message, type kept, as whole frames;
               after echoing {"type":"CloseStream"} close with 1000
  /fragments   answer each message with its payload split into 3 fragments (FIN=0, FIN=0, FIN=1),
               and report how the request itself arrived: a text frame {"frames": [[opcode, fin, len]...]}
  /query       answer the first message with a text frame holding the request's path and query
  /close       close with the code and reason given in the query (?code=4000&reason=...) on the first message
  /cross       echo; answer the endpoint's close with a close of the query's code and reason instead of
               echoing its code, as when the container's own close crosses the endpoint's on the wire
  /garble      answer every message with the wrong data type (text as binary and the reverse)
  /greet       send "hello-on-open" as soon as the WebSocket is open (before any message), then echo
  /reject      refuse the upgrade with HTTP 400 and a body
On MUTE_PORT, any path: complete the handshake, then never read again (no pongs, nothing).
On SILENT_PORT: accept TCP, never answer the upgrade, and print "silent: closed N" once the N-th such
connection is closed by the other side.
It prints "ready" once all listen. GET /ping answers 200.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection, serve
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.server import ServerProtocol


async def handler(connection: ServerConnection) -> None:
    url = urlsplit(connection.request.path if connection.request else "/")
    route = url.path
    query = parse_qs(url.query)
    if route == "/fragments":
        await fragments(connection)
        return
    if route == "/greet":
        await connection.send("hello-on-open")
    async for message in connection:
        if route == "/query":
            await connection.send(json.dumps({"path": url.path, "query": url.query}))
        elif route == "/garble":
            await connection.send(
                message.encode() if isinstance(message, str) else message.decode(errors="replace")
            )
        elif route == "/close":
            await connection.close(int(query.get("code", ["4000"])[0]), query.get("reason", ["bye"])[0])
            return
        else:
            await connection.send(message)
            if message == '{"type":"CloseStream"}':
                await connection.close()  # as a Deepgram-style model does once it has flushed


async def fragments(connection: ServerConnection) -> None:
    # Echo each message split into 3 fragments, and say how the request's frames arrived. The
    # asyncio API reassembles incoming fragments, so inspect frames through the protocol's hook.
    async for message in connection:
        frames = connection.frames_seen  # type: ignore[attr-defined]
        await connection.send(json.dumps({"frames": frames}))
        connection.frames_seen = []  # type: ignore[attr-defined]
        data = message.encode() if isinstance(message, str) else message
        third = max(1, len(data) // 3)
        pieces = [data[:third], data[third : 2 * third], data[2 * third :]]
        if isinstance(message, str):
            await connection.send(piece.decode() for piece in pieces)
        else:
            await connection.send(iter(pieces))


def process_request(connection: ServerConnection, request: Request) -> Response | None:
    path = urlsplit(request.path).path
    if path == "/ping":
        return connection.respond(HTTPStatus.OK, "ok\n")
    if path == "/reject":
        return connection.respond(HTTPStatus.BAD_REQUEST, "unknown model parameter: colour\n")
    connection.frames_seen = []  # type: ignore[attr-defined]
    original = connection.protocol.recv_frame

    def record(frame: Frame) -> None:
        if frame.opcode in (Opcode.TEXT, Opcode.BINARY, Opcode.CONT):
            connection.frames_seen.append([int(frame.opcode), frame.fin, len(frame.data)])  # type: ignore[attr-defined]
        original(frame)

    connection.protocol.recv_frame = record  # type: ignore[method-assign]
    if path == "/cross":
        query = parse_qs(urlsplit(request.path).query)
        code, reason = int(query.get("code", ["4000"])[0]), query.get("reason", ["crossed"])[0]

        def cross(frame: Frame) -> None:
            if frame.opcode is Opcode.CLOSE and connection.protocol.state is State.OPEN:
                connection.protocol.send_close(code, reason)  # ours goes first: theirs is not echoed
            record(frame)

        connection.protocol.recv_frame = cross  # type: ignore[method-assign]
    return None


async def mute_server(port_holder: list[int]) -> asyncio.Server:
    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        protocol = ServerProtocol()
        while True:
            data = await reader.read(65536)
            if not data:
                writer.close()
                return
            protocol.receive_data(data)
            requests = [event for event in protocol.events_received() if isinstance(event, Request)]
            if requests:
                break
        protocol.send_response(protocol.accept(requests[0]))
        for data in protocol.data_to_send():
            writer.write(data)
        await writer.drain()
        await asyncio.Event().wait()  # never read: pings stay unanswered

    return await asyncio.start_server(on_connect, "127.0.0.1", port_holder[0])


async def silent_server(port: int) -> asyncio.Server:
    closed = 0

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal closed
        with contextlib.suppress(OSError):
            while await reader.read(65536):
                pass  # the upgrade request: read, never answered
        closed += 1
        print(f"silent: closed {closed}", flush=True)
        writer.close()

    return await asyncio.start_server(on_connect, "127.0.0.1", port)


async def main(port: int, mute_port: int | None, silent_port: int | None) -> None:
    async with serve(handler, "127.0.0.1", port, process_request=process_request, max_size=None):
        servers = [await mute_server([mute_port])] if mute_port else []
        servers += [await silent_server(silent_port)] if silent_port else []
        print("ready", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            for server in servers:
                server.close()


if __name__ == "__main__":
    optional = [int(argument) for argument in sys.argv[2:4]]
    optional += [None] * (2 - len(optional))
    asyncio.run(main(int(sys.argv[1]), optional[0], optional[1]))
