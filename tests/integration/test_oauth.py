#!/usr/bin/python3
"""RFC 7635 third-party authorization against the real binary, with tokens sealed here, in
Python's `cryptography` (AES-256-GCM), independently of ferry's C++:

  * the 401 carries THIRD-PARTY-AUTHORIZATION (the server name) besides REALM and NONCE;
  * Allocate with ACCESS-TOKEN, USERNAME = kid and MESSAGE-INTEGRITY keyed with the token's
    mac_key succeeds, and the allocation relays both ways (CreatePermission signed the same way);
  * an expired token, an unknown kid, a tampered token and a token sealed for another server
    name each get 401; integrity keyed with a wrong mac key gets 401;
  * --check-config masks the AS-RS key.
"""

from __future__ import annotations

import base64
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from turn_udp_client import TurnError, TurnUdpClient  # noqa: E402

check = harness.check
KID = "as-key-1"
SERVER_NAME = "turn.ferry.test"


def make_token(as_rs_key: bytes, server_name: str, mac_key: bytes, issued: float, lifetime: int) -> bytes:
    """RFC 7635 §6.2: nonce_length | nonce | AES-256-GCM(key_length | mac_key | timestamp | lifetime) | tag,
    the server name being the associated data; timestamp = 48 bits of seconds, 16 of 1/64000 s."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    seconds = int(issued)
    fraction = int((issued - seconds) * 64000)
    block = struct.pack("!H", len(mac_key)) + mac_key + struct.pack("!QI", seconds << 16 | fraction, lifetime)
    nonce = os.urandom(12)
    sealed = AESGCM(as_rs_key).encrypt(nonce, block, server_name.encode())  # ciphertext || 16-byte tag
    return struct.pack("!H", len(nonce)) + nonce + sealed


def refused(addr, kid: str, token: bytes, mac_key: bytes) -> bool:
    c = TurnUdpClient(addr, kid, "", access_token=token, mac_key=mac_key)
    try:
        c.allocate()
        return False
    except TurnError as e:
        return e.code == 401
    finally:
        c.close()


def run(args) -> None:
    if args.server != "ferry":
        raise harness.Skip("the ACCESS-TOKEN setup here is ferry's configuration")
    try:
        import cryptography  # noqa: F401
    except ImportError:
        raise harness.Skip("python3-cryptography is not installed (scripts/install-deps.sh test group)")
    as_rs = os.urandom(32)
    cfg = harness.config_from_args(args, ipv6=False, tcp=False)
    env = {"FERRY_AUTH_OAUTH_KEYS": f"{KID}:{base64.b64encode(as_rs).decode()}",
           "FERRY_AUTH_OAUTH_SERVER_NAME": SERVER_NAME}
    server = harness.Server("ferry", cfg, binary=args.bin, keep_workdir=args.keep_logs, env=env)
    with server:
        addr = ("127.0.0.1", cfg.port)
        mac_key = os.urandom(32)
        now = time.time()

        c = TurnUdpClient(addr, KID, "", access_token=make_token(as_rs, SERVER_NAME, mac_key, now, 600),
                          mac_key=mac_key)
        relayed = c.allocate()
        check("the 401 offers THIRD-PARTY-AUTHORIZATION with the server name",
              c.third_party == SERVER_NAME.encode(), repr(c.third_party))
        check("Allocate with ACCESS-TOKEN succeeds", relayed[1] > 0, str(relayed))
        c.create_permission("127.0.0.1")
        peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        peer.bind(("127.0.0.1", 0))
        peer.settimeout(2.0)
        c.send(peer.getsockname(), b"to-the-peer")
        data, src = peer.recvfrom(2048)
        check("client -> peer through the token allocation", data == b"to-the-peer" and src == relayed, str(src))
        peer.sendto(b"to-the-client", relayed)
        got = c.receive_data(2.0)
        check("peer -> client through the token allocation", got is not None and got[1] == b"to-the-client",
              repr(got))
        granted = c.refresh(300)
        check("Refresh signed with the mac key works", granted >= 300, f"granted {granted}")
        peer.close()
        c.close()

        check("an expired token gets 401",
              refused(addr, KID, make_token(as_rs, SERVER_NAME, mac_key, now - 700, 600), mac_key))
        check("an unknown kid gets 401",
              refused(addr, "nobody", make_token(as_rs, SERVER_NAME, mac_key, now, 600), mac_key))
        bad = bytearray(make_token(as_rs, SERVER_NAME, mac_key, now, 600))
        bad[20] ^= 0x01
        check("a tampered token gets 401", refused(addr, KID, bytes(bad), mac_key))
        check("a token sealed for another server name gets 401",
              refused(addr, KID, make_token(as_rs, "other.example", mac_key, now, 600), mac_key))
        check("a token sealed with another AS-RS key gets 401",
              refused(addr, KID, make_token(os.urandom(32), SERVER_NAME, mac_key, now, 600), mac_key))
        check("integrity with a wrong mac key gets 401",
              refused(addr, KID, make_token(as_rs, SERVER_NAME, mac_key, now, 600), os.urandom(32)))

    with tempfile.TemporaryDirectory(prefix="ferry-it-oauth-") as d:
        path = os.path.join(d, "ferry.yaml")
        with open(path, "w") as f:
            f.write("realm: ferry\n")
        dump = subprocess.run([args.bin, "--check-config", path], env={**os.environ, **env}, capture_output=True,
                              text=True, timeout=30)
    key_b64 = base64.b64encode(as_rs).decode()
    check("--check-config shows the kid", KID in dump.stdout, dump.stdout[-500:] + dump.stderr[-500:])
    check("--check-config masks the AS-RS key", key_b64 not in dump.stdout and key_b64 not in dump.stderr)


if __name__ == "__main__":
    ap = harness.common_arguments(__doc__)
    sys.exit(harness.run_test("oauth", lambda: run(ap.parse_args())))
