"""Run the reference server on a WebSocket port: ``python -m reference_impl.serve --port N``.

Users authenticate with HS256 JWTs (issuer ``msgsim-idp``, audience
``msgsim-chat``) signed with ``--jwt-secret`` (hex); conversations are given as
``--conversation ID:USER,USER,...`` (default ``demo:alice,bob``). The protocol is
specified in ``docs/protocol.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys

from reference_impl.auth import JwtAlgorithm, JwtAuthenticator, JwtKeys
from reference_impl.runtime import ServerRuntime
from reference_impl.server import Server


async def serve_forever(host: str, port: int, secret: bytes, conversations: list[str]) -> None:
    """Serve until cancelled."""
    server = Server(JwtAuthenticator(JwtKeys(JwtAlgorithm.HS256, secret, secret)))
    for spec in conversations:
        conv_id, _, members = spec.partition(":")
        server.create_conversation(conv_id, [m for m in members.split(",") if m])
    async with ServerRuntime(server).running(host, port) as ws_server:
        bound = next(iter(ws_server.sockets)).getsockname()
        print(f"msgsim reference server on ws://{bound[0]}:{bound[1]}", file=sys.stderr)
        await asyncio.Future()


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--jwt-secret", help="hex HS256 secret (random and printed if omitted)")
    parser.add_argument("--conversation", action="append", default=None)
    args = parser.parse_args()
    secret_hex = args.jwt_secret or secrets.token_hex(32)
    if not args.jwt_secret:
        print(f"jwt secret: {secret_hex}", file=sys.stderr)
    convs = args.conversation or ["demo:alice,bob"]
    asyncio.run(serve_forever(args.host, args.port, bytes.fromhex(secret_hex), convs))


if __name__ == "__main__":
    main()
