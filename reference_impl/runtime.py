"""Asyncio drivers: the sans-IO server and client over real WebSockets (``websockets``).

The codec is negotiated as a WebSocket subprotocol: ``msgsim.json`` (text
messages) or ``msgsim.protobuf`` (binary messages); JSON when none is offered.
Wall-clock time (``time.time()``, seconds since the epoch) is passed to the
state machines, which is also what JWT expiry is measured against.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator

from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import Server as WsServer
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from reference_impl.client import Client, Effect, Output
from reference_impl.codec import CodecKind, make_codec
from reference_impl.server import Server

SUBPROTOCOLS = {"msgsim.json": CodecKind.JSON, "msgsim.protobuf": CodecKind.PROTOBUF}


def _subprotocol(kind: CodecKind) -> str:
    return next(name for name, k in SUBPROTOCOLS.items() if k is kind)


class ServerRuntime:
    """Serves one :class:`Server` on a WebSocket endpoint and runs its timers."""

    def __init__(self, server: Server, tick_interval_s: float = 0.05) -> None:
        self.server = server
        self.tick_interval_s = tick_interval_s
        self._sockets: dict[str, ServerConnection] = {}
        self._ids = itertools.count(1)

    async def _send(self, outgoing: list[tuple[str, bytes]]) -> None:
        for conn_id, data in outgoing:
            ws = self._sockets.get(conn_id)
            if ws is None:
                continue
            text = ws.subprotocol in (None, "msgsim.json")
            with contextlib.suppress(ConnectionClosed):
                await ws.send(data.decode("utf-8") if text else data)

    async def _handle(self, ws: ServerConnection) -> None:
        conn_id = f"ws-{next(self._ids)}"
        kind = SUBPROTOCOLS.get(ws.subprotocol or "", CodecKind.JSON)
        self._sockets[conn_id] = ws
        self.server.connect(conn_id, kind)
        try:
            async for message in ws:
                data = message.encode("utf-8") if isinstance(message, str) else message
                await self._send(self.server.receive_bytes(conn_id, data, time.time()))
        except ConnectionClosed:
            pass
        finally:
            self.server.disconnect(conn_id)
            del self._sockets[conn_id]

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(self.tick_interval_s)
            await self._send(self.server.encode(self.server.tick(time.time())))

    @contextlib.asynccontextmanager
    async def running(self, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[WsServer]:
        """Serve until the context exits; ``port=0`` picks a free port."""
        ticker = asyncio.create_task(self._ticker())
        try:
            async with serve(
                self._handle,
                host,
                port,
                subprotocols=[Subprotocol(p) for p in SUBPROTOCOLS],
                max_size=2**20,
            ) as ws_server:
                yield ws_server
        finally:
            ticker.cancel()


class ClientRuntime:
    """Connects one :class:`Client` to a server and exposes its effects as a queue."""

    def __init__(self, client: Client, uri: str, codec: CodecKind = CodecKind.JSON) -> None:
        self.client = client
        self.uri = uri
        self.codec = make_codec(codec, max_frame_bytes=2**20)
        self.effects: asyncio.Queue[Effect] = asyncio.Queue()
        self._ws: ClientConnection | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def _emit(self, out: Output) -> None:
        for effect in out.effects:
            self.effects.put_nowait(effect)
        if self._ws is None:
            return
        for frame in out.frames:
            data = self.codec.encode(frame)
            text = self.codec.kind is CodecKind.JSON
            with contextlib.suppress(ConnectionClosed):
                await self._ws.send(data.decode("utf-8") if text else data)

    async def _reader(self) -> None:
        assert self._ws is not None
        try:
            async for message in self._ws:
                data = message.encode("utf-8") if isinstance(message, str) else message
                await self._emit(self.client.receive(self.codec.decode(data), time.time()))
        except ConnectionClosed:
            pass
        self.client.disconnected(time.time())

    async def _ticker(self, interval_s: float = 0.05) -> None:
        while True:
            await asyncio.sleep(interval_s)
            await self._emit(self.client.tick(time.time()))

    async def start(self) -> None:
        """Open the WebSocket and authenticate."""
        self._ws = await connect(
            self.uri, subprotocols=[Subprotocol(_subprotocol(self.codec.kind))]
        )
        await self._emit(self.client.connect(time.time()))
        self._tasks = [asyncio.create_task(self._reader()), asyncio.create_task(self._ticker())]

    async def send(self, conv_id: str, plaintext: bytes) -> str:
        """Send a message; returns its msg_id."""
        msg_id, out = self.client.send(conv_id, plaintext, time.time())
        await self._emit(out)
        return msg_id

    async def close(self) -> None:
        """Close the connection and stop the background tasks."""
        for task in self._tasks:
            task.cancel()
        if self._ws is not None:
            await self._ws.close()
