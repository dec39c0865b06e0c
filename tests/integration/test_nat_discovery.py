#!/usr/bin/python3
"""RFC 5780 NAT behaviour discovery: CHANGE-REQUEST, RESPONSE-ORIGIN, OTHER-ADDRESS on loopback.

ferry runs with udp 127.0.0.1:P1 and nat_discovery {other_address: 127.0.0.2, other_port: P2}
(two workers, so the alternate listeners must exist in each), and then:
  (a) a Python Binding client on an unconnected socket sends to each of the four addresses
      (A1:P1, A2:P1, A1:P2, A2:P2) with every CHANGE-REQUEST combination and checks that the answer
      comes from the address RFC 5780 §6.1 Table 1 names (recvfrom), that RESPONSE-ORIGIN is that
      address, OTHER-ADDRESS the one differing in both IP and port, and (XOR-)MAPPED-ADDRESS our
      socket; RESPONSE-PORT sends the answer to another port of ours; PADDING fills the answer to
      a 1500-byte datagram; CHANGE-REQUEST over TCP gets 400;
  (b) turnutils_natdiscovery -m -f (and with -P, padding) classifies loopback as endpoint-
      independent mapping and filtering, without timeouts or errors;
  (c) a second ferry without nat_discovery answers CHANGE-REQUEST with 420 and UNKNOWN-ATTRIBUTES.

Usage: /usr/bin/python3 test_nat_discovery.py [--bin PATH] [--natdiscovery PATH]
Exit status 0 and a final "PASS" line on success, 1 and "FAIL" otherwise.
"""

import secrets
import socket
import struct
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402

NAME = "nat_discovery_rfc5780"
A1, A2 = "127.0.0.1", "127.0.0.2"
MAGIC = 0x2112A442
BINDING_REQUEST, BINDING_SUCCESS, BINDING_ERROR = 0x0001, 0x0101, 0x0111
ATTR_MAPPED, ATTR_XOR_MAPPED, ATTR_ERROR_CODE, ATTR_UNKNOWN = 0x0001, 0x0020, 0x0009, 0x000A
ATTR_CHANGE_REQUEST, ATTR_PADDING, ATTR_RESPONSE_PORT = 0x0003, 0x0026, 0x0027
ATTR_RESPONSE_ORIGIN, ATTR_OTHER_ADDRESS = 0x802B, 0x802C


def attribute(atype, value):
    return struct.pack("!HH", atype, len(value)) + value + b"\0" * ((4 - len(value) % 4) % 4)


def request(*attrs):
    txid = secrets.token_bytes(12)
    body = b"".join(attribute(t, v) for t, v in attrs)
    return struct.pack("!HHI", BINDING_REQUEST, len(body), MAGIC) + txid + body, txid


def change_request(ip, port):
    return (ATTR_CHANGE_REQUEST, struct.pack("!I", (4 if ip else 0) | (2 if port else 0)))


def parse(data, txid):
    """(message type, {attribute type: decoded value}) of an answer to `txid`; raises ValueError."""
    if len(data) < 20:
        raise ValueError("short message")
    mtype, mlen, cookie = struct.unpack("!HHI", data[:8])
    if cookie != MAGIC or data[8:20] != txid:
        raise ValueError("not an answer to our request")
    attrs, body, off = {}, data[20:20 + mlen], 0
    while off + 4 <= len(body):
        atype, alen = struct.unpack("!HH", body[off:off + 4])
        value = body[off + 4:off + 4 + alen]
        if atype in (ATTR_MAPPED, ATTR_RESPONSE_ORIGIN, ATTR_OTHER_ADDRESS):
            attrs[atype] = harness._parse_address(value, False, txid)
        elif atype == ATTR_XOR_MAPPED:
            attrs[atype] = harness._parse_address(value, True, txid)
        elif atype == ATTR_ERROR_CODE:
            attrs[atype] = (value[2] & 7) * 100 + value[3]
        elif atype == ATTR_UNKNOWN:
            attrs[atype] = [struct.unpack("!H", value[i:i + 2])[0] for i in range(0, len(value) - 1, 2)]
        else:
            attrs[atype] = value
        off += 4 + alen + ((4 - alen % 4) % 4)
    return mtype, attrs


def exchange(sock, dest, message, txid, receiver=None, timeout=2.0, tries=3):
    """Sends `message` to `dest` from `sock` (retrying, UDP) and returns (answer, source, size)."""
    receiver = receiver or sock
    for _ in range(tries):
        sock.sendto(message, dest)
        deadline = time.monotonic() + timeout / tries
        while (left := deadline - time.monotonic()) > 0:
            receiver.settimeout(left)
            try:
                data, source = receiver.recvfrom(4096)
            except socket.timeout:
                break
            try:
                return parse(data, txid), source[:2], len(data)
            except ValueError:
                continue  # a late answer to an earlier try
    raise TimeoutError(f"no answer from {dest[0]}:{dest[1]}")


def udp_socket():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((A1, 0))
    return s


def check_change_requests(p1, p2, problems):
    """(a): every destination x every CHANGE-REQUEST combination (RFC 5780 §6.1 Table 1)."""
    other_ip = {A1: A2, A2: A1}
    other_port = {p1: p2, p2: p1}
    checked = 0
    with udp_socket() as s:
        mine = s.getsockname()[:2]
        for dest in ((A1, p1), (A2, p1), (A1, p2), (A2, p2)):
            for change_ip, change_port in ((False, False), (True, False), (False, True), (True, True)):
                label = f"{dest[0]}:{dest[1]} change ip={int(change_ip)} port={int(change_port)}"
                msg, txid = request(change_request(change_ip, change_port))
                try:
                    (mtype, attrs), source, _ = exchange(s, dest, msg, txid)
                except Exception as exc:  # noqa: BLE001
                    problems.append(f"{label}: {exc}")
                    continue
                want_source = (other_ip[dest[0]] if change_ip else dest[0], other_port[dest[1]] if change_port else dest[1])
                want_other = (other_ip[dest[0]], other_port[dest[1]])
                found = []
                if mtype != BINDING_SUCCESS:
                    found.append(f"type 0x{mtype:04x} error {attrs.get(ATTR_ERROR_CODE)}")
                if source != want_source:
                    found.append(f"answered from {source}, want {want_source}")
                if attrs.get(ATTR_RESPONSE_ORIGIN) != want_source:
                    found.append(f"RESPONSE-ORIGIN {attrs.get(ATTR_RESPONSE_ORIGIN)}, want {want_source}")
                if attrs.get(ATTR_OTHER_ADDRESS) != want_other:
                    found.append(f"OTHER-ADDRESS {attrs.get(ATTR_OTHER_ADDRESS)}, want {want_other}")
                if attrs.get(ATTR_XOR_MAPPED) != mine or attrs.get(ATTR_MAPPED) != mine:
                    found.append(f"mapped {attrs.get(ATTR_XOR_MAPPED)} / {attrs.get(ATTR_MAPPED)}, want {mine}")
                problems.extend(f"{label}: {f}" for f in found)
                checked += 1
    print(f"  ok   {checked}/16 CHANGE-REQUEST answers received" if checked == 16 else
          f"  FAIL {16 - checked} CHANGE-REQUEST answers missing")


def check_response_port_and_padding(p1, problems):
    with udp_socket() as s, udp_socket() as other:
        target = other.getsockname()[1]
        msg, txid = request((ATTR_RESPONSE_PORT, struct.pack("!HH", target, 0)))
        try:
            (mtype, attrs), source, _ = exchange(s, (A1, p1), msg, txid, receiver=other)
            if mtype != BINDING_SUCCESS or source != (A1, p1) or attrs.get(ATTR_XOR_MAPPED) != s.getsockname()[:2]:
                problems.append(f"RESPONSE-PORT: type 0x{mtype:04x} from {source} mapped {attrs.get(ATTR_XOR_MAPPED)}")
            else:
                print(f"  ok   RESPONSE-PORT {target}: the answer reached that port")
        except Exception as exc:  # noqa: BLE001
            problems.append(f"RESPONSE-PORT: {exc}")
        msg, txid = request((ATTR_PADDING, b""))
        try:
            (mtype, attrs), _, size = exchange(s, (A1, p1), msg, txid)
            # RFC 5780 §6.1: as large as a 1500-byte MTU allows (IPv4 + UDP headers: 28 bytes).
            if mtype != BINDING_SUCCESS or ATTR_PADDING not in attrs or not 1400 < size <= 1472:
                problems.append(f"PADDING: type 0x{mtype:04x}, {size} bytes")
            else:
                print(f"  ok   PADDING: a {size}-byte answer")
        except Exception as exc:  # noqa: BLE001
            problems.append(f"PADDING: {exc}")


def check_tcp_gets_400(p1, problems):
    msg, txid = request(change_request(True, False))
    try:
        with socket.create_connection((A1, p1), timeout=3.0) as s:
            s.sendall(msg)
            data = harness.read_stun_message(s, time.monotonic() + 3.0)
        mtype, attrs = parse(data, txid)
        if mtype != BINDING_ERROR or attrs.get(ATTR_ERROR_CODE) != 400:
            problems.append(f"CHANGE-REQUEST over TCP: type 0x{mtype:04x} error {attrs.get(ATTR_ERROR_CODE)}, want 400")
        else:
            print("  ok   CHANGE-REQUEST over TCP: 400")
    except Exception as exc:  # noqa: BLE001
        problems.append(f"CHANGE-REQUEST over TCP: {exc}")


def check_natdiscovery(tool, p1, padding, problems):
    """(b): coturn's client classifies loopback (no NAT) as endpoint-independent both ways."""
    cmd = [tool, "-m", "-f"] + (["-P"] if padding else []) + ["-p", str(p1), A1]
    label = " ".join(["turnutils_natdiscovery"] + cmd[1:])
    r = harness.run_client(cmd, timeout=30)
    found = []
    if r.timed_out:
        found.append("timed out")
    elif r.returncode != 0:
        found.append(f"exit status {r.returncode}")
    for want in ("NAT with Endpoint Independent Mapping!", "NAT with Endpoint Independent Filtering!"):
        if want not in r.output:
            found.append(f"no {want!r}")
    lowered = r.output.lower()
    for bad in ("timeout", "error", "not supported", "unknown attribute"):
        if bad in lowered:
            found.append(f"output mentions {bad!r}")
    if found:
        problems.extend(f"{label}: {f}" for f in found)
        print("    output:\n" + "\n".join("      " + l for l in r.output.strip().splitlines()[-40:]))
    else:
        print(f"  ok   {label}: endpoint-independent mapping and filtering")


def check_single_address_gets_420(args, problems):
    """(c): without nat_discovery, CHANGE-REQUEST is not understood (RFC 5780 §6.1)."""
    cfg = harness.config_from_args(args, ipv6=False, tcp=False)
    with harness.server_from_args(args, cfg):
        with udp_socket() as s:
            msg, txid = request(change_request(True, True))
            try:
                (mtype, attrs), source, _ = exchange(s, (A1, cfg.port), msg, txid)
                if mtype != BINDING_ERROR or attrs.get(ATTR_ERROR_CODE) != 420 or \
                        attrs.get(ATTR_UNKNOWN) != [ATTR_CHANGE_REQUEST] or source != (A1, cfg.port):
                    problems.append(f"single address: type 0x{mtype:04x} error {attrs.get(ATTR_ERROR_CODE)} "
                                    f"unknown {attrs.get(ATTR_UNKNOWN)} from {source}")
                else:
                    print("  ok   single address: CHANGE-REQUEST gets 420 with UNKNOWN-ATTRIBUTES CHANGE-REQUEST")
            except Exception as exc:  # noqa: BLE001
                problems.append(f"single address: {exc}")


def main():
    ap = harness.common_arguments(__doc__.splitlines()[0])
    ap.add_argument("--natdiscovery", default="turnutils_natdiscovery")
    args = ap.parse_args()
    if args.server != "ferry":
        return harness.report(NAME, ["ferry only (the harness runs coturn with --no-rfc5780)"], "")
    problems = harness.CHECKS.problems

    def body():
        tool = harness.require_tool(args.natdiscovery)
        p1 = args.port or harness.pick_free_port()
        p2 = p1
        for _ in range(50):
            p2 = harness.pick_free_port()
            if p2 != p1:
                break
        cfg = harness.config_from_args(args, port=p1, ipv6=False, workers=2,
                                       extra_yaml=f"nat_discovery: {{other_address: {A2}, other_port: {p2}}}")
        with harness.server_from_args(args, cfg) as server:
            print(f"  ferry on {A1}:{p1} with nat_discovery {A2}:{p2}, 2 workers")
            check_change_requests(p1, p2, problems)
            check_response_port_and_padding(p1, problems)
            check_tcp_gets_400(p1, problems)
            check_natdiscovery(tool, p1, False, problems)
            check_natdiscovery(tool, p1, True, problems)
            if not server.alive():
                problems.append("ferry exited during the test")
            if problems or args.show_server_log:
                server.dump_log("server log")
        check_single_address_gets_420(args, problems)
        return ("RFC 5780 answers from the right address; turnutils_natdiscovery "
                "sees endpoint-independent mapping and filtering; 420 without it")

    return harness.run_test(NAME, body)


if __name__ == "__main__":
    sys.exit(main())
