#!/usr/bin/python3
"""RFC 8016 mobility (turn.mobility) against the real binary, with the raw Python client.

  * workers: 1. Allocate with an empty MOBILITY-TICKET gets a ticket; CreatePermission and
    ChannelBind for a peer; the client then switches to a new socket (new source port), refreshes
    with the ticket and keeps its allocation: the Refresh's answer carries a new ticket, the
    relayed address is the same, and data relays both ways (Send/Data indication and ChannelData)
    through it to and from the new socket; the old socket gets nothing more and its Refresh is 437.
  * another user (bob) presenting alice's current ticket is refused 441 and moves nothing; a forged
    ticket gets 400; a move to another source address (127.0.0.2) works too with one worker.
  * workers: 2. ferry steers UDP clients to worker loops by source IP (SO_ATTACH_REUSEPORT_CBPF,
    server/net/socket_fd.cpp), so a new source port on the same IP lands on the same worker and the
    move works; a new source IP may land on a worker that does not hold the allocation, which
    answers 437 (never a wrong success): every IP change is checked to be success or 437.
  * turn.mobility off (the default): MOBILITY-TICKET in Allocate gets 405.
"""

from __future__ import annotations

import os
import re
import socket
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from turn_udp_client import ALLOCATE, LIFETIME, REFRESH, REQUESTED_TRANSPORT, XOR_PEER_ADDRESS, \
    XOR_RELAYED_ADDRESS, TurnError, TurnUdpClient, _parse_xor_address, _xor_address  # noqa: E402

check = harness.check
MOBILITY_TICKET = 0x8030
CHANNEL_BIND, CHANNEL_NUMBER = 0x009, 0x000C


def allocate_with_ticket(c: TurnUdpClient) -> bytes:
    a = c.request(ALLOCATE, [(REQUESTED_TRANSPORT, bytes([17, 0, 0, 0])), (MOBILITY_TICKET, b"")])
    c.relayed = _parse_xor_address(a[XOR_RELAYED_ADDRESS], b"\0" * 12)
    return a.get(MOBILITY_TICKET, b"")


def refresh_with_ticket(c: TurnUdpClient, ticket: bytes) -> tuple[int, bytes]:
    a = c.request(REFRESH, [(LIFETIME, struct.pack("!I", 600)), (MOBILITY_TICKET, ticket)])
    return struct.unpack("!I", a[LIFETIME])[0], a.get(MOBILITY_TICKET, b"")


def error_of(fn) -> int:
    try:
        fn()
    except TurnError as e:
        return e.code
    return 0


def move(c: TurnUdpClient, local: str = "127.0.0.1") -> socket.socket:
    """Gives the client a new socket (new source port, or address); returns the old one, open."""
    old = c.sock
    c.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    c.sock.bind((local, 0))
    return old


def channel_bind(c: TurnUdpClient, channel: int, peer: tuple[str, int]) -> None:
    c.request(CHANNEL_BIND, [(CHANNEL_NUMBER, struct.pack("!HH", channel, 0)),
                             (XOR_PEER_ADDRESS, _xor_address(peer[0], peer[1], b"\0" * 12))])


def recv(sock: socket.socket, timeout: float = 2.0) -> bytes | None:
    sock.settimeout(timeout)
    try:
        data, _ = sock.recvfrom(65536)
        return data
    except (TimeoutError, socket.timeout):
        return None


def metric(port: int, name: str) -> float:
    _status, _headers, body = harness.http_get(port, "/metrics")
    m = re.search(rf"^{name} (\S+)$", body, re.M)
    return float(m.group(1)) if m else -1


def relays_both_ways(c: TurnUdpClient, peer: socket.socket, label: str) -> None:
    peer_addr = peer.getsockname()
    # Send indication -> the peer, from the same relayed address.
    c.send(peer_addr, b"send-" + label.encode())
    got = peer.recvfrom(65536) if recv_ready(peer) else None
    check(f"{label}: Send indication reaches the peer from the relayed address",
          got is not None and got[0] == b"send-" + label.encode() and got[1] == c.relayed, repr(got))
    # ChannelData 0x4000 -> the peer.
    c.sock.sendto(struct.pack("!HH", 0x4000, 5) + b"chan!", c.server)
    got = peer.recvfrom(65536) if recv_ready(peer) else None
    check(f"{label}: ChannelData reaches the peer", got is not None and got[0] == b"chan!", repr(got))
    # The peer answers: ChannelData on the client's (new) socket.
    peer.sendto(b"back-" + label.encode(), c.relayed)
    data = recv(c.sock)
    ok = data is not None and len(data) >= 4 and struct.unpack("!H", data[:2])[0] == 0x4000 and \
        data[4:4 + struct.unpack("!H", data[2:4])[0]] == b"back-" + label.encode()
    check(f"{label}: the peer's answer comes back as ChannelData to the client's socket", ok, repr(data))


def recv_ready(sock: socket.socket, timeout: float = 2.0) -> bool:
    import select
    r, _, _ = select.select([sock], [], [], timeout)
    return bool(r)


def run(args) -> None:
    if args.server != "ferry":
        raise harness.Skip("turn.mobility is ferry's (coturn has its own --mobility)")
    users = {harness.DEFAULT_USER: harness.DEFAULT_PASSWORD, "bob": "bob-pw"}
    env = {"FERRY_TURN_MOBILITY": "true"}

    # ---- one worker ----
    cfg = harness.config_from_args(args, ipv6=False, tcp=False, users=users, workers=1,
                                   http_port=harness.pick_free_port(udp=False))
    with harness.Server("ferry", cfg, binary=args.bin, keep_workdir=args.keep_logs, env=env):
        harness.wait_http(cfg.http_port)
        server = ("127.0.0.1", cfg.port)
        peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        peer.bind(("127.0.0.1", 0))
        c = TurnUdpClient(server, harness.DEFAULT_USER, harness.DEFAULT_PASSWORD)
        ticket = allocate_with_ticket(c)
        check("Allocate with an empty MOBILITY-TICKET gets a ticket", len(ticket) == 36, f"{len(ticket)} bytes")
        relayed = c.relayed
        c.create_permission("127.0.0.1")
        channel_bind(c, 0x4000, peer.getsockname())
        relays_both_ways(c, peer, "before the move")

        old = move(c)
        check("the new socket has another source port", old.getsockname() != c.sock.getsockname())
        lifetime, ticket2 = refresh_with_ticket(c, ticket)
        check("Refresh with the ticket from the new port succeeds", lifetime == 600, f"lifetime {lifetime}")
        check("and carries a new ticket", len(ticket2) == 36 and ticket2 != ticket)
        check("the allocation was moved, not remade", metric(cfg.http_port, "ferry_allocations_moved_total") == 1 and
              metric(cfg.http_port, "ferry_allocations_created_total") == 1)
        relays_both_ways(c, peer, "after the port change")
        check("the relayed address is the same", c.relayed == relayed)
        peer.sendto(b"to-old", relayed)
        stale = recv(old, 0.5)
        check("the old socket gets nothing any more", stale is None, repr(stale))
        _ = recv(c.sock, 1.0)  # the copy for the new socket
        old_client = TurnUdpClient(server, harness.DEFAULT_USER, harness.DEFAULT_PASSWORD)
        old_client.sock.close()
        old_client.sock = old
        check("a Refresh from the old 5-tuple is 437", error_of(lambda: old_client.refresh(600)) == 437)
        old.close()

        bob = TurnUdpClient(server, "bob", "bob-pw")
        code = error_of(lambda: refresh_with_ticket(bob, ticket2))
        check("bob presenting alice's ticket is refused 441", code == 441, f"got {code}")
        forged = bytearray(ticket2)
        forged[-1] ^= 1
        code = error_of(lambda: refresh_with_ticket(bob, bytes(forged)))
        check("a forged ticket gets 400", code == 400, f"got {code}")
        bob.close()
        relays_both_ways(c, peer, "after the refused attempts")

        move(c, "127.0.0.2").close()
        lifetime, ticket3 = refresh_with_ticket(c, ticket2)
        check("a move to another source address (127.0.0.2) works with one worker", lifetime == 600)
        relays_both_ways(c, peer, "after the address change")
        c.close()
        peer.close()

    # ---- two workers ----
    cfg = harness.config_from_args(args, ipv6=False, tcp=False, users=users, workers=2)
    with harness.Server("ferry", cfg, binary=args.bin, keep_workdir=args.keep_logs, env=env):
        server = ("127.0.0.1", cfg.port)
        peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        peer.bind(("127.0.0.1", 0))
        moved_ports = 0
        ip_moves = {"ok": 0, "437": 0, "other": 0}
        for i in range(8):
            c = TurnUdpClient(server, harness.DEFAULT_USER, harness.DEFAULT_PASSWORD)
            ticket = allocate_with_ticket(c)
            c.create_permission("127.0.0.1")
            channel_bind(c, 0x4000, peer.getsockname())
            move(c).close()
            _lifetime, ticket = refresh_with_ticket(c, ticket)
            moved_ports += 1
            relays_both_ways(c, peer, f"2 workers, client {i}, new port")
            move(c, f"127.0.0.{3 + i}").close()
            try:
                refresh_with_ticket(c, ticket)
                ip_moves["ok"] += 1
            except TurnError as e:
                ip_moves["437" if e.code == 437 else "other"] += 1
            c.close()
        check("2 workers: every port change kept its allocation", moved_ports == 8)
        check("2 workers: an IP change is moved or answered 437, nothing else", ip_moves["other"] == 0,
              repr(ip_moves))
        print(f"2 workers, source IP changes: {ip_moves}")
        peer.close()

    # ---- mobility off (the default) ----
    cfg = harness.config_from_args(args, ipv6=False, tcp=False, workers=1)
    with harness.Server("ferry", cfg, binary=args.bin, keep_workdir=args.keep_logs):
        c = TurnUdpClient(("127.0.0.1", cfg.port), harness.DEFAULT_USER, harness.DEFAULT_PASSWORD)
        code = error_of(lambda: allocate_with_ticket(c))
        check("mobility off: MOBILITY-TICKET in Allocate gets 405", code == 405, f"got {code}")
        c.close()


if __name__ == "__main__":
    ap = harness.common_arguments(__doc__)
    sys.exit(harness.run_test("mobility", lambda: run(ap.parse_args())))
