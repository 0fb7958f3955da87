"""End-to-end encryption: X25519 key agreement, HKDF-SHA256 and AES-256-GCM.

Each user holds an X25519 identity key; the server only relays public keys
(``Member.public_key``) and ciphertext envelopes.

* **1:1 conversations (pairwise).** Both sides derive the same key from
  X25519(own private, peer public) with HKDF bound to the conversation id.
* **Groups (sender keys).** Each sender draws a random sender key per
  conversation *membership version* and encrypts messages with a per-message key
  derived from it, so a message costs one encryption whatever the group size.
  The sender key travels wrapped (AES-GCM under the pairwise key) for each
  other member inside the sender's messages until one of them is acknowledged.
  Every membership change starts a new version and so a new sender key:
  a member who left never receives the keys of later messages (re-keying).

The associated data binds a ciphertext to its conversation, msg_id and sender,
so the server cannot replay it elsewhere; any modification fails the GCM tag.
Envelopes are compact JSON (see ``docs/protocol.md``).
"""

from __future__ import annotations

import base64
import json
import random
from dataclasses import dataclass, field
from enum import StrEnum

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from reference_impl.frames import ConvInfo

NONCE_BYTES = 12
KEY_BYTES = 32


class DecryptStatus(StrEnum):
    """What a recipient could make of an envelope."""

    OK = "ok"
    TAMPERED = "tampered"
    MISSING_KEY = "missing_key"
    MALFORMED = "malformed"


class DecryptError(Exception):
    """An envelope could not be opened; ``status`` says why."""

    def __init__(self, status: DecryptStatus) -> None:
        super().__init__(str(status))
        self.status = status


def hkdf(secret: bytes, info: bytes, length_bytes: int = KEY_BYTES) -> bytes:
    """HKDF-SHA256 with an empty salt; ``info`` separates every use of a secret."""
    return HKDF(algorithm=hashes.SHA256(), length=length_bytes, salt=None, info=info).derive(secret)


def agree(private: X25519PrivateKey, peer_public: bytes, conv_id: str, a: str, b: str) -> bytes:
    """The pairwise key of users ``a`` and ``b`` in ``conv_id`` (same on both sides)."""
    shared = private.exchange(X25519PublicKey.from_public_bytes(peer_public))
    low, high = sorted((a, b))
    return hkdf(shared, f"msgsim pairwise|{conv_id}|{low}|{high}".encode())


def seal(key: bytes, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """AES-256-GCM encrypt; the 16-byte tag is appended to the ciphertext."""
    return AESGCM(key).encrypt(nonce, plaintext, aad)


def open_sealed(key: bytes, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
    """AES-256-GCM decrypt or raise :class:`DecryptError` (``TAMPERED``)."""
    try:
        return AESGCM(key).decrypt(nonce, ciphertext, aad)
    except InvalidTag as exc:
        raise DecryptError(DecryptStatus.TAMPERED) from exc


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: object) -> bytes:
    if not isinstance(text, str):
        raise DecryptError(DecryptStatus.MALFORMED)
    try:
        return base64.b64decode(text, validate=True)
    except ValueError as exc:
        raise DecryptError(DecryptStatus.MALFORMED) from exc


@dataclass(slots=True)
class E2ESession:
    """One user's end-to-end state: identity key, own sender keys, received sender keys.

    ``rng`` supplies the identity key, sender keys and nonces; tests pass a
    seeded ``random.Random`` for reproducibility, real deployments
    ``random.SystemRandom()``.
    """

    user: str
    rng: random.Random
    identity: X25519PrivateKey = field(init=False)
    known_keys: dict[str, bytes] = field(default_factory=dict)
    _own_sender_keys: dict[tuple[str, int], bytes] = field(default_factory=dict)
    _distributed: set[tuple[str, int]] = field(default_factory=set)
    _wrapping_msgs: dict[str, tuple[str, int]] = field(default_factory=dict)
    _received: dict[tuple[str, str, int], bytes] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.identity = X25519PrivateKey.from_private_bytes(self.rng.randbytes(KEY_BYTES))

    @property
    def public_key(self) -> bytes:
        """The raw 32-byte X25519 public key to register with the server."""
        return self.identity.public_key().public_bytes_raw()

    def learn(self, conv: ConvInfo) -> None:
        """Remember the public keys announced in a membership frame."""
        for m in conv.members:
            if m.public_key:
                self.known_keys[m.user] = m.public_key

    def _pairwise(self, conv_id: str, peer: str) -> bytes:
        peer_key = self.known_keys.get(peer)
        if peer_key is None:
            raise DecryptError(DecryptStatus.MISSING_KEY)
        try:
            return agree(self.identity, peer_key, conv_id, self.user, peer)
        except ValueError as exc:  # an invalid public key announced by the server
            raise DecryptError(DecryptStatus.MISSING_KEY) from exc

    @staticmethod
    def _aad(conv_id: str, msg_id: str, sender: str) -> bytes:
        return json.dumps([conv_id, msg_id, sender]).encode()

    def encrypt(self, conv: ConvInfo, msg_id: str, plaintext: bytes) -> bytes:
        """Return the envelope for ``plaintext`` to the other members of ``conv``."""
        self.learn(conv)
        others = [m.user for m in conv.members if m.user != self.user]
        aad = self._aad(conv.conv_id, msg_id, self.user)
        nonce = self.rng.randbytes(NONCE_BYTES)
        if len(others) == 1:
            key = self._pairwise(conv.conv_id, others[0])
            sealed = seal(key, nonce, plaintext, aad)
            pairwise = {"s": "pw", "t": others[0], "n": _b64(nonce), "c": _b64(sealed)}
            return json.dumps(pairwise, separators=(",", ":")).encode()
        epoch = (conv.conv_id, conv.version)
        sender_key = self._own_sender_keys.get(epoch)
        if sender_key is None:
            sender_key = self.rng.randbytes(KEY_BYTES)
            self._own_sender_keys[epoch] = sender_key
        message_key = hkdf(sender_key, f"msgsim sender-key|{msg_id}".encode())
        wraps: dict[str, str] = {}
        if epoch not in self._distributed:
            self._wrapping_msgs[msg_id] = epoch
            for peer in others:
                try:
                    pair = self._pairwise(conv.conv_id, peer)
                except DecryptError:
                    continue  # no key registered: that member cannot read this epoch
                wrap_nonce = self.rng.randbytes(NONCE_BYTES)
                wrap_aad = json.dumps([conv.conv_id, conv.version, self.user, peer]).encode()
                wraps[peer] = _b64(wrap_nonce + seal(pair, wrap_nonce, sender_key, wrap_aad))
        body: dict[str, object] = {
            "s": "sk",
            "e": conv.version,
            "n": _b64(nonce),
            "c": _b64(seal(message_key, nonce, plaintext, aad)),
            "w": wraps,
        }
        return json.dumps(body, separators=(",", ":")).encode()

    def on_acked(self, msg_id: str) -> None:
        """A message was acknowledged: if it carried sender-key wraps, stop attaching them."""
        epoch = self._wrapping_msgs.pop(msg_id, None)
        if epoch is not None:
            self._distributed.add(epoch)

    def decrypt(self, conv_id: str, msg_id: str, sender: str, envelope: bytes) -> bytes:
        """Open an envelope or raise :class:`DecryptError`."""
        try:
            body = json.loads(envelope)
        except (ValueError, UnicodeDecodeError) as exc:
            raise DecryptError(DecryptStatus.MALFORMED) from exc
        if not isinstance(body, dict):
            raise DecryptError(DecryptStatus.MALFORMED)
        aad = self._aad(conv_id, msg_id, sender)
        nonce, ciphertext = _unb64(body.get("n")), _unb64(body.get("c"))
        if len(nonce) != NONCE_BYTES:
            raise DecryptError(DecryptStatus.MALFORMED)
        if body.get("s") == "pw":
            if body.get("t") != self.user:  # encrypted for the other member only
                raise DecryptError(DecryptStatus.MISSING_KEY)
            return open_sealed(self._pairwise(conv_id, sender), nonce, ciphertext, aad)
        epoch = body.get("e")
        wraps = body.get("w")
        if body.get("s") != "sk" or not isinstance(epoch, int) or not isinstance(wraps, dict):
            raise DecryptError(DecryptStatus.MALFORMED)
        slot = (conv_id, sender, epoch)
        if self.user in wraps and slot not in self._received:
            wrapped = _unb64(wraps[self.user])
            wrap_aad = json.dumps([conv_id, epoch, sender, self.user]).encode()
            pair = self._pairwise(conv_id, sender)
            self._received[slot] = open_sealed(
                pair, wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], wrap_aad
            )
        sender_key = self._received.get(slot)
        if sender_key is None:
            raise DecryptError(DecryptStatus.MISSING_KEY)
        message_key = hkdf(sender_key, f"msgsim sender-key|{msg_id}".encode())
        return open_sealed(message_key, nonce, ciphertext, aad)
