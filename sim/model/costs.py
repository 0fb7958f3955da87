"""CPU costs, network delays and frame sizes of one architecture, as fast samplers.

Everything a request costs is derived here from the scenario and the
calibration (codec, JWT, TLS), so the message path in ``sim.model.server.assembly``
only calls zero-argument samplers. A tier whose ``service_time_s`` (or
``push_time_s``) is a constant 0 is *instantaneous*: the path then skips its
station entirely, which is how one queue is isolated for validation.
"""

from __future__ import annotations

from sim.core.distributions import Constant, Sampler, _Dist, lognormal
from sim.core.kernel import Streams
from sim.model.transport import ClientTransport
from sim.scenario.architecture import Style
from sim.scenario.calibration import Calibration
from sim.scenario.schema import Scenario
from sim.scenario.security import AuthKind, EncryptionKind, GroupScheme
from sim.scenario.tier import Tier


def _zero_after(value: float) -> Sampler:
    return lambda: value


def _plus(sampler: Sampler, constant: float) -> Sampler:
    if constant == 0.0:
        return sampler
    return lambda: sampler() + constant


def _is_zero(dist: _Dist | None) -> bool:
    return dist is not None and dist.is_zero


class Costs:
    """Samplers for every cost on the message path of one scenario."""

    def __init__(
        self, scenario: Scenario, streams: Streams, cal: Calibration, transport: ClientTransport
    ) -> None:
        arch = scenario.architecture
        self.monolith = arch.style is Style.MONOLITH
        #: each request is an HTTP request carrying its headers and token (not a WebSocket)
        self.http = transport.http
        codec = cal.codecs[arch.codec.value]
        self.codec = codec
        e2e = arch.encryption.kind is EncryptionKind.E2E
        self.tls = arch.encryption.kind is not EncryptionKind.NONE
        jwt_s = (
            cal.jwt_verify_s[arch.auth.algorithm.value] if arch.auth.kind is AuthKind.JWT else 0.0
        )
        # every HTTP request carries its bearer token; a WebSocket is verified once, at the upgrade
        per_request_auth_s = jwt_s if self.http else 0.0
        #: a TLS record is sealed or opened (AES-GCM) for every frame through a gateway
        tls_record_s = cal.aead_s if self.tls else 0.0

        gw, svc = arch.gateway, arch.service
        default_request = lognormal(cal.server_frame_s, 1.0)
        gw_base = (gw.request_s or default_request).sampler(streams.generator("gateway.cost"))
        svc_sampler = self._tier_sampler(svc, streams, "service", default_request)
        self.service_instant = not self.monolith and _is_zero(svc.service_time_s)

        if gw.service_time_s is not None:
            inbound = gw.service_time_s.sampler(streams.generator("gateway.service_time"))
            self.gateway_instant = gw.service_time_s.is_zero
            control = inbound
            self.control_instant = self.gateway_instant
        if gw.push_time_s is not None:
            # delivery acks are small control frames, costed like outbound frames
            control = gw.push_time_s.sampler(streams.generator("gateway.control_time"))
            self.control_instant = gw.push_time_s.is_zero
        else:
            inbound = _plus(gw_base, codec.decode_s + per_request_auth_s + tls_record_s)
            control = _plus(gw_base, codec.decode_s + tls_record_s)
            self.gateway_instant = False
            self.control_instant = False
        if self.monolith:
            # one process does the gateway's and the message service's work
            inbound = _join(inbound, svc_sampler)
            self.gateway_instant = self.gateway_instant and _is_zero(svc.service_time_s)
        #: a send frame or an HTTP request (poll, sync, send) at the gateway
        self.inbound = inbound
        #: a WebSocket delivery ack from a client
        self.control = control
        if gw.push_time_s is not None:
            self.outbound = gw.push_time_s.sampler(streams.generator("gateway.push_time"))
            self.push_instant = gw.push_time_s.is_zero
        else:
            self.outbound = _plus(gw_base, codec.encode_s + tls_record_s)
            self.push_instant = False
        connect_s = (cal.tls_handshake_s if self.tls else 0.0) + (0.0 if self.http else jwt_s)
        self.connect = _plus(gw_base, connect_s)
        self.service = svc_sampler

        store = arch.store
        self.store_write_instant = store.write_s.is_zero
        self.store_read_instant = store.read_s.is_zero

        net = arch.network
        self.client_rtt = net.client_rtt_s.sampler(streams.generator("network.client"))
        internal = net.internal_rtt_s.sampler(streams.generator("network.internal"))
        self.internal_zero = net.internal_rtt_s.is_zero
        self.internal_oneway: Sampler = lambda: internal() * 0.5
        #: the one-way internal delay when it is a constant (no sampling needed)
        self.internal_oneway_s: float | None = (
            net.internal_rtt_s.value * 0.5 if isinstance(net.internal_rtt_s, Constant) else None
        )
        self.client_zero = net.client_rtt_s.is_zero

        # sizes on the client link
        self.control_bytes = round(cal.control_frame_bytes.get(arch.codec.value, 40.0))
        self.e2e = e2e
        #: pairwise end-to-end encryption uploads one ciphertext per recipient
        self.pairwise = e2e and arch.encryption.group_scheme is GroupScheme.PAIRWISE
        self.aead_overhead = cal.aead_overhead_bytes if e2e else 0
        #: client CPU to seal one end-to-end ciphertext (one per recipient when pairwise)
        self.e2e_seal_s = cal.aead_s if e2e else 0.0
        self.payload_factor = codec.payload_factor if e2e else 1.0
        self.connect_rtts = transport.connect_rtts

    @staticmethod
    def _tier_sampler(tier: Tier, streams: Streams, name: str, default: _Dist) -> Sampler:
        if tier.service_time_s is not None:
            if isinstance(tier.service_time_s, Constant):
                return _zero_after(tier.service_time_s.value)
            return tier.service_time_s.sampler(streams.generator(f"{name}.service_time"))
        return (tier.request_s or default).sampler(streams.generator(f"{name}.cost"))

    def frame_bytes(self, payload_bytes: int) -> int:
        """Encoded size of a message frame carrying ``payload_bytes`` of user content."""
        body = (payload_bytes + self.aead_overhead) * self.payload_factor
        return int(self.codec.envelope_bytes + body)


def _join(first: Sampler, second: Sampler) -> Sampler:
    return lambda: first() + second()
