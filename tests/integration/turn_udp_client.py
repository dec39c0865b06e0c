#!/usr/bin/python3
"""A small TURN-over-UDP client for integration tests (standard library only).

Enough of RFC 8489/8656 to hold an allocation and watch it: Allocate with long-term credentials
(401 -> REALM/NONCE -> MESSAGE-INTEGRITY, 438 handled), Refresh, CreatePermission, Send
indications and Data indications. It is independent of ferry's own C++ client on purpose: a second
implementation checks the server against the RFC, not against our reading of it.

    c = TurnUdpClient(("127.0.0.1", 3478), "alice", "pw")
    relayed = c.allocate()          # ("127.0.0.1", 50123); raises TurnError(code, reason)
    c.create_permission("127.0.0.1")
    c.close()

RFC 7635 third-party authorization: pass `access_token` (the ACCESS-TOKEN value the AS issued)
and `mac_key` (its session key); USERNAME is then the kid, requests carry ACCESS-TOKEN and are
signed with mac_key as is, and the 401's THIRD-PARTY-AUTHORIZATION is kept in `third_party`.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import socket
import struct
import time

MAGIC = 0x2112A442

ALLOCATE, REFRESH, SEND, DATA, CREATE_PERMISSION = 0x003, 0x004, 0x006, 0x007, 0x008
REQUEST, INDICATION, SUCCESS, ERROR = 0x000, 0x010, 0x100, 0x110

USERNAME, MESSAGE_INTEGRITY, ERROR_CODE = 0x0006, 0x0008, 0x0009
LIFETIME, XOR_PEER_ADDRESS, DATA_ATTR, REALM, NONCE = 0x000D, 0x0012, 0x0013, 0x0014, 0x0015
XOR_RELAYED_ADDRESS, REQUESTED_TRANSPORT, XOR_MAPPED_ADDRESS = 0x0016, 0x0019, 0x0020
ALTERNATE_SERVER = 0x8023
ACCESS_TOKEN, THIRD_PARTY_AUTHORIZATION = 0x001B, 0x802E  # RFC 7635 §6


class TurnError(Exception):
    def __init__(self, code: int, reason: str = "", attrs: dict | None = None):
        super().__init__(f"{code} {reason}".strip())
        self.code = code
        self.reason = reason
        self.attrs = attrs or {}  # the error response's attributes

    def alternate_server(self) -> tuple[str, int] | None:
        """ALTERNATE-SERVER of a 300 Try Alternate (RFC 8489 §14.15: a plain, not XORed, address)."""
        v = self.attrs.get(ALTERNATE_SERVER)
        if v is None or len(v) < 8:
            return None
        fam, port = v[1], struct.unpack("!H", v[2:4])[0]
        n = 4 if fam == 1 else 16
        return socket.inet_ntop(socket.AF_INET if fam == 1 else socket.AF_INET6, v[4:4 + n]), port


def _pad(b: bytes) -> bytes:
    return b + b"\0" * (-len(b) % 4)


def _attr(t: int, v: bytes) -> bytes:
    return struct.pack("!HH", t, len(v)) + _pad(v)


def _xor_address(host: str, port: int, txid: bytes) -> bytes:
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    raw = socket.inet_pton(fam, host)
    key = struct.pack("!I", MAGIC) + txid
    x = bytes(a ^ b for a, b in zip(raw, key))
    return struct.pack("!BBH", 0, 1 if fam == socket.AF_INET else 2, port ^ (MAGIC >> 16)) + x


def _parse_xor_address(v: bytes, txid: bytes) -> tuple[str, int]:
    fam, port = v[1], struct.unpack("!H", v[2:4])[0] ^ (MAGIC >> 16)
    key = struct.pack("!I", MAGIC) + txid
    n = 4 if fam == 1 else 16
    raw = bytes(a ^ b for a, b in zip(v[4:4 + n], key))
    return socket.inet_ntop(socket.AF_INET if fam == 1 else socket.AF_INET6, raw), port


def parse(data: bytes):
    """(type, txid, {attr: value}) or None when not a STUN message."""
    if len(data) < 20 or data[0] & 0xC0:
        return None
    t, length, cookie = struct.unpack("!HHI", data[:8])
    if cookie != MAGIC or 20 + length > len(data):
        return None
    attrs, off = {}, 20
    while off + 4 <= 20 + length:
        at, al = struct.unpack("!HH", data[off:off + 4])
        attrs.setdefault(at, data[off + 4:off + 4 + al])
        off += 4 + al + (-al % 4)
    return t, data[8:20], attrs


class TurnUdpClient:
    def __init__(self, server: tuple[str, int], username: str, password: str, local: str | None = None,
                 timeout: float = 2.0, access_token: bytes | None = None, mac_key: bytes | None = None):
        self.server = server
        self.access_token = access_token
        self.mac_key = mac_key
        self.third_party: bytes | None = None
        self.username = username
        self.password = password
        fam = socket.AF_INET6 if ":" in server[0] else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_DGRAM)
        self.sock.bind((local or ("::1" if fam == socket.AF_INET6 else "127.0.0.1"), 0))
        self.timeout = timeout
        self.realm: str | None = None
        self.nonce: bytes | None = None
        self.key: bytes | None = None
        self.relayed: tuple[str, int] | None = None
        self.data: list[tuple[tuple[str, int], bytes]] = []  # Data indications received meanwhile

    def close(self):
        self.sock.close()

    # -- messages ----------------------------------------------------------------------------------
    def _build(self, method: int, cls: int, attrs: list[tuple[int, bytes]], txid: bytes, auth: bool) -> bytes:
        body = b"".join(_attr(t, v) for t, v in attrs)
        if auth:
            body += _attr(USERNAME, self.username.encode()) + _attr(REALM, self.realm.encode()) + \
                _attr(NONCE, self.nonce)
            if self.access_token is not None:
                body += _attr(ACCESS_TOKEN, self.access_token)
            # RFC 8489 §14.5: the length covers MESSAGE-INTEGRITY, which is computed over what precedes it.
            head = struct.pack("!HHI", method | cls, len(body) + 24, MAGIC) + txid
            mac = hmac.new(self.key, head + body, hashlib.sha1).digest()
            body += _attr(MESSAGE_INTEGRITY, mac)
        return struct.pack("!HHI", method | cls, len(body), MAGIC) + txid + body

    def _derive_key(self) -> bytes:
        # RFC 7635 §5: with a token the session key is the HMAC key itself.
        if self.mac_key is not None:
            return self.mac_key
        return hashlib.md5(f"{self.username}:{self.realm}:{self.password}".encode()).digest()

    def _recv_answer(self, txid: bytes, deadline: float):
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no answer from the TURN server")
            self.sock.settimeout(left)
            data, _ = self.sock.recvfrom(65536)
            m = parse(data)
            if m is None:
                continue
            t, rtxid, attrs = m
            if t == (DATA | INDICATION):
                if XOR_PEER_ADDRESS in attrs and DATA_ATTR in attrs:
                    self.data.append((_parse_xor_address(attrs[XOR_PEER_ADDRESS], rtxid), attrs[DATA_ATTR]))
                continue
            if rtxid == txid:
                return t, attrs

    def request(self, method: int, attrs: list[tuple[int, bytes]], auth: bool = True, retries: int = 3):
        """Sends a request (retransmitting over UDP); handles 401/438 once. Returns the success attrs."""
        for _round in range(3):
            txid = os.urandom(12)
            use_auth = auth and self.nonce is not None
            msg = self._build(method, REQUEST, attrs, txid, use_auth)
            answer = None
            for attempt in range(retries):
                self.sock.sendto(msg, self.server)
                try:
                    answer = self._recv_answer(txid, time.monotonic() + self.timeout / retries * (attempt + 1))
                    break
                except TimeoutError:
                    continue
            if answer is None:
                raise TimeoutError("no answer from the TURN server")
            t, a = answer
            if t == (method | SUCCESS):
                return a
            code = 0
            reason = ""
            if ERROR_CODE in a:
                v = a[ERROR_CODE]
                code = (v[2] & 7) * 100 + v[3]
                reason = v[4:].decode(errors="replace")
            if code in (401, 438) and auth and NONCE in a and REALM in a:
                fresh = self.nonce is None or code == 438
                self.nonce = a[NONCE]
                self.realm = a[REALM].decode()
                self.key = self._derive_key()
                self.third_party = a.get(THIRD_PARTY_AUTHORIZATION)
                if fresh:
                    continue  # answer the challenge
            raise TurnError(code, reason, a)
        raise TurnError(401, "challenge not accepted")

    def take_challenge(self) -> None:
        """Sends an unauthenticated Allocate and keeps the 401's REALM and NONCE, so the next
        request goes out authenticated at once (one round trip, e.g. to time it)."""
        txid = os.urandom(12)
        self.sock.sendto(self._build(ALLOCATE, REQUEST, [(REQUESTED_TRANSPORT, bytes([17, 0, 0, 0]))], txid, False),
                         self.server)
        _t, a = self._recv_answer(txid, time.monotonic() + self.timeout)
        if NONCE not in a or REALM not in a:
            raise TurnError(0, "no challenge")
        self.nonce = a[NONCE]
        self.realm = a[REALM].decode()
        self.key = self._derive_key()
        self.third_party = a.get(THIRD_PARTY_AUTHORIZATION)

    # -- TURN ----------------------------------------------------------------------------------------
    def allocate(self, lifetime: int | None = None) -> tuple[str, int]:
        attrs = [(REQUESTED_TRANSPORT, bytes([17, 0, 0, 0]))]
        if lifetime is not None:
            attrs.append((LIFETIME, struct.pack("!I", lifetime)))
        a = self.request(ALLOCATE, attrs)
        txid = b"\0" * 12  # XOR-RELAYED-ADDRESS of IPv4 does not use the transaction id
        self.relayed = _parse_xor_address(a[XOR_RELAYED_ADDRESS], txid)
        return self.relayed

    def refresh(self, lifetime: int = 600) -> int:
        """The lifetime the server granted."""
        a = self.request(REFRESH, [(LIFETIME, struct.pack("!I", lifetime))])
        return struct.unpack("!I", a[LIFETIME])[0] if LIFETIME in a else 0

    def create_permission(self, peer_ip: str) -> None:
        self.request(CREATE_PERMISSION, [(XOR_PEER_ADDRESS, _xor_address(peer_ip, 0, b"\0" * 12))])

    def send(self, peer: tuple[str, int], payload: bytes) -> None:
        txid = os.urandom(12)
        msg = self._build(SEND, INDICATION, [(XOR_PEER_ADDRESS, _xor_address(peer[0], peer[1], txid)),
                                             (DATA_ATTR, payload)], txid, auth=False)
        self.sock.sendto(msg, self.server)

    def receive_data(self, timeout: float) -> tuple[tuple[str, int], bytes] | None:
        """The next Data indication (or one queued while waiting for an answer)."""
        if self.data:
            return self.data.pop(0)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.001, deadline - time.monotonic()))
            try:
                data, _ = self.sock.recvfrom(65536)
            except (TimeoutError, socket.timeout):
                return None
            m = parse(data)
            if m and m[0] == (DATA | INDICATION) and XOR_PEER_ADDRESS in m[2] and DATA_ATTR in m[2]:
                return _parse_xor_address(m[2][XOR_PEER_ADDRESS], m[1]), m[2][DATA_ATTR]
        return None
