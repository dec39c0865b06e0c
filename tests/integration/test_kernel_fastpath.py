#!/usr/bin/python3
"""The kernel fast path (data_path: kernel, server/fastpath/) against the real binary, in network
namespaces with veth pairs this test makes (netns.py): client ns -- ferry ns -- peer ns.

The same scenario runs twice, with data_path user and then kernel, and must give the same results:
  * a UDP client allocates, binds channel 0x4000 to the peer, and 120 ChannelData datagrams of
    sizes 1..1200 (odd ones too: the UDP checksums the kernel path rewrites are verified by the
    receivers, whose veths send full checksums) reach the peer intact from the relayed address;
    the peer's 120 answers come back as ChannelData 0x4000 intact;
  * kernel: ferry_fastpath_relayed_packets_total counts all 240 and the user-space share of
    ferry_relayed_packets_total stays 0; the BPF maps hold exactly that one channel;
  * SSRF policy unchanged: ChannelBind to a peer peers.allow does not list, and to ferry's own
    relay address, get 403 and never reach the maps;
  * expiry: an allocation with the 4 s default lifetime relays until it expires and nothing
    passes later than 1 s after that; Refresh 0 stops relaying at once (the entries go before the
    answer is sent);
  * kernel: ferry removes its TC filters when it stops.
Then, as root with every capability dropped but CAP_NET_BIND_SERVICE (setpriv): data_path kernel
refuses to start and says why; data_path auto logs that it relays in user space and does.
Skips (exit 77) with the reason when not root, or when this ferry cannot load the BPF program.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import struct
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
import netns  # noqa: E402
from turn_udp_client import XOR_PEER_ADDRESS, TurnError, TurnUdpClient, _xor_address  # noqa: E402

check = harness.check
CHANNEL_BIND, CHANNEL_NUMBER = 0x009, 0x000C
USER, PASSWORD = "alice", "alice-fastpath-pw"
PORT, HTTP_PORT = 3478, 9641
SIZES = [1, 2, 3, 5, 17, 100, 333, 1001, 1200, 64, 7, 512]
N = 120
C2P_FAST = 'ferry_fastpath_relayed_packets_total{direction="client_to_peer"}'


def channel_bind(c: TurnUdpClient, channel: int, peer: tuple[str, int]) -> None:
    c.request(CHANNEL_BIND, [(CHANNEL_NUMBER, struct.pack("!HH", channel, 0)),
                             (XOR_PEER_ADDRESS, _xor_address(peer[0], peer[1], b"\0" * 12))])


def bind_error(c: TurnUdpClient, channel: int, peer: tuple[str, int]) -> int:
    try:
        channel_bind(c, channel, peer)
        return 0
    except TurnError as e:
        return e.code


def recv(sock: socket.socket, timeout: float) -> tuple[bytes, tuple[str, int]] | None:
    sock.settimeout(timeout)
    try:
        return sock.recvfrom(65536)
    except (TimeoutError, socket.timeout):
        return None


def ferry_yaml(topo: netns.Topology, mode: str) -> str:
    ip = topo.ip
    return "\n".join([
        'realm: "ferry.test"',
        f"data_path: {mode}",
        "workers: 1",
        f'listeners: [{{address: "{ip["ferry_c"]}", port: {PORT}, transport: udp}}]',
        f'relay: {{addresses: [{{address: "{ip["ferry_p"]}"}}], port_min: 40000, port_max: 40999}}',
        f'auth: {{users: [{{name: "{USER}", password: "{PASSWORD}"}}]}}',
        f'peers: {{allow: ["{ip["peer"]}/32"]}}',
        "limits: {default_lifetime: 4, max_lifetime: 3600}",
        f'http: {{address: "127.0.0.1:{HTTP_PORT}"}}',
        "log: {level: info}",
    ]) + "\n"


def metrics(topo: netns.Topology) -> dict[str, float]:
    with topo.inside("ferry"):
        _status, _headers, body = harness.http_get(HTTP_PORT, "/metrics")
    out = {}
    for m in re.finditer(r"^(ferry_\S+?) (\S+)$", body, re.M):
        out[m.group(1)] = float(m.group(2))
    return out


def map_entries(topo: netns.Topology, name: str) -> int | None:
    if shutil.which("bpftool") is None:
        return None
    r = topo.run("ferry", ["bpftool", "-j", "map", "dump", "name", name])
    if r.returncode != 0:
        return None
    try:
        return len(json.loads(r.stdout))
    except ValueError:
        return None


def start_ferry(topo: netns.Topology, binary: str, mode: str, workdir: str) -> harness.BackgroundProcess:
    path = os.path.join(workdir, f"ferry-{mode}.yaml")
    with open(path, "w") as f:
        f.write(ferry_yaml(topo, mode))
    proc = harness.BackgroundProcess(topo.exec_prefix("ferry") + [binary, "--config", path], f"ferry-{mode}")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if not proc.alive():
            break
        if "running with" in proc.log_text():
            return proc
        time.sleep(0.1)
    text = proc.log_text()
    proc.stop()
    if mode == "kernel" and "data_path kernel:" in text:
        raise harness.Skip("this ferry cannot load its BPF program here: " +
                           text.split("data_path kernel:", 1)[1].splitlines()[0].strip())
    raise RuntimeError(f"ferry ({mode}) did not start:\n{text}")


# Root with every capability dropped but the one for port 3478: no CAP_BPF, no CAP_NET_ADMIN, as in
# a container that was not given them.
NO_BPF_CAPS = ["setpriv", "--bounding-set=-all,+net_bind_service", "--inh-caps=-all", "--"]


def without_bpf_caps(topo: netns.Topology, binary: str, workdir: str) -> dict:
    """data_path kernel and auto where the BPF program cannot load: kernel must refuse to start and
    say why; auto must say it falls back, then relay in user space (a Binding and an Allocate)."""
    out: dict = {}
    for mode in ("kernel", "auto"):
        path = os.path.join(workdir, f"ferry-nocaps-{mode}.yaml")
        with open(path, "w") as f:
            f.write(ferry_yaml(topo, mode))
        proc = harness.BackgroundProcess(topo.exec_prefix("ferry") + NO_BPF_CAPS + [binary, "--config", path],
                                         f"ferry-nocaps-{mode}")
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and proc.alive() and "running with" not in proc.log_text():
                time.sleep(0.1)
            row = {"alive": proc.alive(), "exit": proc.proc.poll()}
            if mode == "auto" and row["alive"]:
                with topo.inside("client"):
                    client = TurnUdpClient((topo.ip["ferry_c"], PORT), USER, PASSWORD, local=topo.ip["client"])
                try:
                    row["allocated"] = client.allocate(lifetime=60) is not None
                except Exception as exc:  # noqa: BLE001 - reported by the check
                    row["allocated"] = f"{exc}"
                finally:
                    client.close()
            row["log"] = proc.log_text()
        finally:
            proc.stop()
        out[mode] = row
    return out


def exchange(client: TurnUdpClient, peer: socket.socket, channel: int) -> dict:
    """N ChannelData to the peer and N answers back, one at a time; what arrived, in order."""
    got = {"to_peer": [], "peer_sources": set(), "to_client": [], "bad_frames": 0}
    for i in range(N):
        size = SIZES[i % len(SIZES)]
        payload = (struct.pack("!I", i) + os.urandom(size))[:size] if size >= 4 else os.urandom(size)
        client.sock.sendto(struct.pack("!HH", channel, len(payload)) + payload, client.server)
        r = recv(peer, 1.0)
        if r is None:
            got["to_peer"].append(None)
            continue
        got["to_peer"].append(r[0] == payload)
        got["peer_sources"].add(r[1])
        answer = b"A" + payload
        peer.sendto(answer, client.relayed)
        back = recv(client.sock, 1.0)
        if back is None:
            got["to_client"].append(None)
            continue
        data = back[0]
        ch, length = struct.unpack("!HH", data[:4]) if len(data) >= 4 else (0, 0)
        if ch != channel or len(data) != 4 + length:  # over UDP: no padding (RFC 8656 §12.5)
            got["bad_frames"] += 1
        got["to_client"].append(data[4:4 + length] == answer)
    got["peer_sources"] = sorted(got["peer_sources"])
    return got


def scenario(topo: netns.Topology, binary: str, mode: str, workdir: str) -> dict:
    ip = topo.ip
    proc = start_ferry(topo, binary, mode, workdir)
    result: dict = {}
    try:
        server = (ip["ferry_c"], PORT)
        with topo.inside("client"):
            a = TurnUdpClient(server, USER, PASSWORD, local=ip["client"])
            b = TurnUdpClient(server, USER, PASSWORD, local=ip["client"])
        with topo.inside("peer"):
            peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            peer.bind((ip["peer"], 5000))
            peer_b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            peer_b.bind((ip["peer"], 5001))
        try:
            a.allocate(lifetime=600)
            channel_bind(a, 0x4000, (ip["peer"], 5000))
            before = metrics(topo)
            result["exchange"] = exchange(a, peer, 0x4000)
            result["relayed_address"] = a.relayed
            time.sleep(1.3)  # the worker reads the kernel's counters back once a second
            after = metrics(topo)

            def delta(name: str) -> float:
                return after.get(name, 0) - before.get(name, 0)

            for d in ("client_to_peer", "peer_to_client"):
                total = delta(f'ferry_relayed_packets_total{{direction="{d}"}}')
                fast = delta(f'ferry_fastpath_relayed_packets_total{{direction="{d}"}}')
                result[f"relayed_{d}"] = total
                result[f"fast_{d}"] = fast
            result["fast_channels"] = after.get("ferry_fastpath_channels", -1)

            # A local sender with TX checksum offload (CHECKSUM_PARTIAL): relayed all the same, by
            # user space (the kernel path cannot move such a packet's headers, see the program).
            if shutil.which("ethtool"):
                topo.client_tx_offload(True)
                fast_before = metrics(topo)
                ok = 0
                for i in range(10):
                    payload = b"partial-%d" % i
                    a.sock.sendto(struct.pack("!HH", 0x4000, len(payload)) + payload, a.server)
                    r = recv(peer, 1.0)
                    ok += r is not None and r[0] == payload
                topo.client_tx_offload(False)
                time.sleep(1.2)
                result["partial_ok"] = ok
                result["partial_fast"] = metrics(topo).get(C2P_FAST, 0) - fast_before.get(C2P_FAST, 0)

            # SSRF policy: neither a peer outside peers.allow nor ferry's own relay address.
            result["bind_denied_peer"] = bind_error(a, 0x4001, (ip["peer2"], 5000))
            result["bind_own_address"] = bind_error(a, 0x4002, (ip["ferry_p"], 40000))
            result["fast_channels_after_denied"] = metrics(topo).get("ferry_fastpath_channels", -1)
            if mode == "kernel":
                result["map_c2p"] = map_entries(topo, "ferry_c2p")
                result["map_p2c"] = map_entries(topo, "ferry_p2c")

            # Expiry: b's allocation has the 4 s default lifetime.
            b.allocate()
            t0 = time.monotonic()
            channel_bind(b, 0x4000, (ip["peer"], 5001))
            arrivals = []
            peer_b.setblocking(False)
            while time.monotonic() - t0 < 6.5:
                b.sock.sendto(struct.pack("!HH", 0x4000, 4) + b"tick", b.server)
                time.sleep(0.05)
                while True:
                    try:
                        peer_b.recvfrom(65536)
                        arrivals.append(time.monotonic() - t0)
                    except BlockingIOError:
                        break
            result["expiry_arrivals"] = (len(arrivals), max(arrivals) if arrivals else None)

            # Refresh 0: relaying stops with the answer.
            a.refresh(0)
            sent_after = 0
            for _ in range(10):
                a.sock.sendto(struct.pack("!HH", 0x4000, 4) + b"gone", a.server)
                sent_after += 1
            result["after_refresh0"] = recv(peer, 1.0)
            result["fast_channels_end"] = metrics(topo).get("ferry_fastpath_channels", -1)
        finally:
            for s in (a, b):
                s.close()
            peer.close()
            peer_b.close()
    finally:
        result["log"] = proc.log_text()
        proc.stop()
    if mode == "kernel":
        r = topo.run("ferry", ["tc", "filter", "show", "dev", topo.veth["ferry_c"], "ingress"])
        result["tc_after_stop"] = r.stdout.strip()
    return result


def run(args) -> str:
    why = netns.why_not_available()
    if why:
        raise harness.Skip(why)
    binary = args.bin or harness.find_ferry_binary()
    workdir = tempfile.mkdtemp(prefix="ferry-it-fastpath-")
    results = {}
    try:
        with netns.Topology() as topo:
            topo.up()
            for mode in ("user", "kernel"):
                harness.log(f"data_path {mode}")
                results[mode] = r = scenario(topo, binary, mode, workdir)
                ex = r["exchange"]
                check(f"{mode}: {N} ChannelData reach the peer intact",
                      ex["to_peer"].count(True) == N, f"{ex['to_peer'].count(True)} of {N}")
                check(f"{mode}: ... from the relayed address", ex["peer_sources"] == [r["relayed_address"]],
                      f"{ex['peer_sources']} vs {r['relayed_address']}")
                check(f"{mode}: {N} answers come back as ChannelData intact",
                      ex["to_client"].count(True) == N and ex["bad_frames"] == 0,
                      f"{ex['to_client'].count(True)} of {N}, {ex['bad_frames']} bad frames")
                for d in ("client_to_peer", "peer_to_client"):
                    check(f"{mode}: ferry_relayed_packets_total {d} counts the {N}",
                          r[f"relayed_{d}"] == N, f"{r[f'relayed_{d}']}")
                check(f"{mode}: ChannelBind to a peer outside peers.allow is 403",
                      r["bind_denied_peer"] == 403, str(r["bind_denied_peer"]))
                check(f"{mode}: ChannelBind to ferry's own relay address is 403",
                      r["bind_own_address"] == 403, str(r["bind_own_address"]))
                n, last = r["expiry_arrivals"]
                check(f"{mode}: a 4 s allocation relays until it expires",
                      last is not None and last >= 3.0, f"{n} arrived, last at {last}")
                # t0 is taken after the Allocate's answer and arrivals are seen by a 50 ms poll.
                check(f"{mode}: nothing passes later than 1 s after its expiry",
                      last is not None and last <= 4.0 + 1.0 + 0.1, f"last arrival at {last:.2f} s" if last else "none")
                harness.log(f"{mode}: last arrival {last:.3f} s after Allocate (lifetime 4 s)" if last else "none")
                check(f"{mode}: nothing passes after Refresh 0", r["after_refresh0"] is None,
                      repr(r["after_refresh0"]))
            k, u = results["kernel"], results["user"]
            check("same relay results in user and kernel mode",
                  k["exchange"]["to_peer"] == u["exchange"]["to_peer"] and
                  k["exchange"]["to_client"] == u["exchange"]["to_client"])
            for d in ("client_to_peer", "peer_to_client"):
                check(f"kernel: the {N} {d} packets took the fast path", k[f"fast_{d}"] == N, str(k[f"fast_{d}"]))
                check(f"kernel: user space relayed none of them ({d})", k[f"relayed_{d}"] - k[f"fast_{d}"] == 0,
                      str(k[f"relayed_{d}"] - k[f"fast_{d}"]))
                check(f"user: the fast path relayed nothing ({d})", u[f"fast_{d}"] == 0, str(u[f"fast_{d}"]))
            if "partial_ok" in k:
                check("CHECKSUM_PARTIAL datagrams are relayed intact (user and kernel mode)",
                      k["partial_ok"] == 10 and u["partial_ok"] == 10, f"{u['partial_ok']} / {k['partial_ok']} of 10")
                check("kernel: ... by user space, not the fast path", k["partial_fast"] == 0, str(k["partial_fast"]))
            check("kernel: one channel installed", k["fast_channels"] == 1, str(k["fast_channels"]))
            check("kernel: the denied peers were never installed", k["fast_channels_after_denied"] == 1,
                  str(k["fast_channels_after_denied"]))
            if k.get("map_c2p") is not None:
                check("kernel: the BPF maps hold exactly that channel", k["map_c2p"] == 1 and k["map_p2c"] == 1,
                      f"c2p {k['map_c2p']}, p2c {k['map_p2c']}")
            check("kernel: no channel left installed at the end", k["fast_channels_end"] == 0,
                  str(k["fast_channels_end"]))
            check("kernel: ferry said where the fast path is attached", "kernel fast path at TC ingress" in k["log"])
            check("kernel: the TC filter is gone after ferry stops", "ferry_channel_relay" not in k["tc_after_stop"],
                  k["tc_after_stop"])
            harness.log("without CAP_BPF and CAP_NET_ADMIN")
            nc = without_bpf_caps(topo, binary, workdir)
            check("no BPF capabilities: data_path kernel refuses to start, saying why",
                  not nc["kernel"]["alive"] and nc["kernel"]["exit"] not in (None, 0)
                  and "data_path kernel: cannot load the BPF program" in nc["kernel"]["log"], nc["kernel"]["log"][-800:])
            check("no BPF capabilities: data_path auto starts and logs that it relays in user space",
                  nc["auto"]["alive"] and "data_path auto: relaying in user space" in nc["auto"]["log"],
                  nc["auto"]["log"][-800:])
            check("no BPF capabilities: data_path auto answers an Allocate", nc["auto"].get("allocated") is True,
                  str(nc["auto"].get("allocated")))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return (f"{harness.CHECKS.passed} checks passed (user and kernel data paths in network namespaces, "
            "and kernel/auto without BPF capabilities)")


if __name__ == "__main__":
    ap = harness.common_arguments(__doc__.splitlines()[0])
    ns = ap.parse_args()
    sys.exit(harness.run_test("kernel_fastpath", lambda: run(ns)))
