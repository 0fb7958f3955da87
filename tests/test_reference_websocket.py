"""Real sockets: two WebSocket clients on loopback exchange encrypted messages."""

from __future__ import annotations

import asyncio
import secrets
import subprocess
import sys

import pytest

from reference_impl.auth import JwtAlgorithm, JwtIssuer, JwtKeys
from reference_impl.codec import CodecKind
from reference_impl.demo import chat, local_server
from reference_impl.e2e import DecryptStatus

LINES = [("alice", "hello bob"), ("bob", "hello alice"), ("alice", "bye")]


@pytest.mark.parametrize("codec", list(CodecKind))
def test_two_clients_chat_encrypted_through_an_in_process_server(codec: CodecKind) -> None:
    """Each line is displayed decrypted to the other user, in order, within seconds."""
    secret = secrets.token_bytes(32)
    keys = JwtKeys(JwtAlgorithm.HS256, secret, secret)

    async def run() -> list[tuple[str, str, int, DecryptStatus]]:
        async with local_server(keys) as uri:
            shown = await chat(uri, JwtIssuer(keys), codec, LINES)
        return [(d.sender, d.plaintext.decode(), d.seq, d.status) for d in shown]

    result = asyncio.run(asyncio.wait_for(run(), timeout=20))
    assert result == [(s, t, i + 1, DecryptStatus.OK) for i, (s, t) in enumerate(LINES)]


def test_two_clients_chat_through_the_serve_command() -> None:
    """``python -m reference_impl.serve`` relays encrypted chat between two real clients."""
    secret = secrets.token_bytes(32)
    proc = subprocess.Popen(
        [sys.executable, "-m", "reference_impl.serve", "--port", "0", "--jwt-secret", secret.hex()],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()  # "msgsim reference server on ws://127.0.0.1:PORT"
        uri = line.strip().rsplit(" ", 1)[-1]
        assert uri.startswith("ws://127.0.0.1:")
        keys = JwtKeys(JwtAlgorithm.HS256, secret, secret)
        shown = asyncio.run(
            asyncio.wait_for(chat(uri, JwtIssuer(keys), CodecKind.JSON, LINES), timeout=20)
        )
        assert [d.plaintext.decode() for d in shown] == [t for _s, t in LINES]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
