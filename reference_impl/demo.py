"""Two clients chat end-to-end encrypted through a real WebSocket server on loopback.

Run ``python -m reference_impl.demo``. It starts a server in-process on an
ephemeral port of 127.0.0.1 (or uses ``--uri`` and ``--jwt-secret`` of a server
started with ``python -m reference_impl.serve``), connects Alice and Bob, and
prints what each displays. The server only ever relays ciphertext.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import secrets
import time
from collections.abc import AsyncIterator

from reference_impl.auth import JwtAlgorithm, JwtAuthenticator, JwtIssuer, JwtKeys
from reference_impl.client import Client, Displayed
from reference_impl.codec import CodecKind
from reference_impl.e2e import E2ESession
from reference_impl.runtime import ClientRuntime, ServerRuntime
from reference_impl.server import Server

CONVERSATION = "demo"


def make_client(user: str, issuer: JwtIssuer) -> Client:
    """A client with a fresh identity key and a one-hour token."""
    rng = random.SystemRandom()
    return Client(user, issuer.issue(user, time.time()), rng, E2ESession(user, rng))


@contextlib.asynccontextmanager
async def local_server(keys: JwtKeys) -> AsyncIterator[str]:
    """Run a server on an ephemeral loopback port; yields its URI."""
    server = Server(JwtAuthenticator(keys))
    server.create_conversation(CONVERSATION, ["alice", "bob"])
    async with ServerRuntime(server).running("127.0.0.1", 0) as ws_server:
        port = next(iter(ws_server.sockets)).getsockname()[1]
        yield f"ws://127.0.0.1:{port}"


async def wait_for(runtime: ClientRuntime, kind: type, timeout_s: float) -> object:
    """The next effect of type ``kind`` (others are skipped)."""
    deadline_s = time.monotonic() + timeout_s
    while True:
        effect = await asyncio.wait_for(runtime.effects.get(), deadline_s - time.monotonic())
        if isinstance(effect, kind):
            return effect


async def knows_peer_key(runtime: ClientRuntime, peer: str, timeout_s: float) -> None:
    """Wait until the client has ``peer``'s public key (announced when the peer connects)."""
    deadline_s = time.monotonic() + timeout_s
    while runtime.client.e2e is not None and peer not in runtime.client.e2e.known_keys:
        if time.monotonic() > deadline_s:
            raise TimeoutError(f"{runtime.client.user} never learned {peer}'s key")
        await asyncio.sleep(0.01)


async def chat(
    uri: str, issuer: JwtIssuer, codec: CodecKind, lines: list[tuple[str, str]]
) -> list[Displayed]:
    """Connect Alice and Bob to ``uri`` and exchange ``lines`` of (sender, text)."""
    runtimes = {u: ClientRuntime(make_client(u, issuer), uri, codec) for u in ("alice", "bob")}
    shown: list[Displayed] = []
    try:
        for runtime in runtimes.values():
            await runtime.start()
        await knows_peer_key(runtimes["alice"], "bob", 5.0)
        await knows_peer_key(runtimes["bob"], "alice", 5.0)
        for sender, text in lines:
            receiver = "bob" if sender == "alice" else "alice"
            await runtimes[sender].send(CONVERSATION, text.encode())
            displayed = await wait_for(runtimes[receiver], Displayed, 5.0)
            assert isinstance(displayed, Displayed)
            shown.append(displayed)
    finally:
        for runtime in runtimes.values():
            await runtime.close()
    return shown


async def main_async(args: argparse.Namespace) -> None:
    """Run the demo conversation and print it."""
    secret = bytes.fromhex(args.jwt_secret) if args.jwt_secret else secrets.token_bytes(32)
    keys = JwtKeys(JwtAlgorithm.HS256, secret, secret)
    lines = [("alice", "Hi Bob, is the bike still for sale?"), ("bob", "Yes! 120 EUR.")]
    codec = CodecKind(args.codec)
    async with contextlib.AsyncExitStack() as stack:
        uri = args.uri or await stack.enter_async_context(local_server(keys))
        for d in await chat(uri, JwtIssuer(keys), codec, lines):
            print(f"[{d.conv_id} #{d.seq}] {d.sender}: {d.plaintext.decode()} ({d.status})")


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uri", help="server to use, e.g. ws://127.0.0.1:8765")
    parser.add_argument("--jwt-secret", help="hex HS256 secret the server was started with")
    parser.add_argument("--codec", choices=[k.value for k in CodecKind], default="json")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
