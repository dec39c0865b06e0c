"""Three network namespaces joined by veth pairs, for the kernel fast path's test and benchmark
(loopback carries no TC/XDP redirect between hosts, so the relay needs real links):

    client ns  <-veth->  ferry ns  <-veth->  peer ns
    10.N.1.2             10.N.1.1  10.N.2.1  10.N.2.2

Names are unique per process (ferry-<pid>-c/f/p, veths fy<pid>c0...), everything is deleted by
close() (deleting a namespace deletes its veth ends), and sockets are opened *inside* a namespace
with setns(2) on the calling thread (`with topo.inside("client"): socket.socket(...)`): the socket
stays in that namespace after the thread switches back. Needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import subprocess

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _run(cmd: list[str]) -> None:
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {r.stderr.strip() or r.stdout.strip()}")


def why_not_available() -> str | None:
    """None when this process can make namespaces and veths, else why not."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, veth pairs, BPF)"
    if shutil.which("ip") is None:
        return "needs ip (iproute2)"
    return None


class Topology:
    def __init__(self, subnet: int | None = None):
        tag = f"{os.getpid() % 100000}"
        self.subnet = subnet if subnet is not None else 100 + os.getpid() % 100
        n = self.subnet
        self.ns = {"client": f"ferry-{tag}-c", "ferry": f"ferry-{tag}-f", "peer": f"ferry-{tag}-p"}
        self.veth = {"client": f"fy{tag}c0", "ferry_c": f"fy{tag}c1", "ferry_p": f"fy{tag}p1", "peer": f"fy{tag}p0"}
        self.ip = {"client": f"10.{n}.1.2", "ferry_c": f"10.{n}.1.1", "ferry_p": f"10.{n}.2.1",
                   "peer": f"10.{n}.2.2", "peer2": f"10.{n}.2.3"}
        self._made: list[str] = []
        self._home = os.open("/proc/self/ns/net", os.O_RDONLY)

    def up(self, checksum_offload: bool = False, merged: bool = False) -> "Topology":
        """Makes the namespaces and links. checksum_offload False turns TX checksumming off on the
        client's and peer's veths, so their datagrams carry full UDP checksums that the receiving
        side verifies (a relay that gets them wrong loses the packets). merged: the client and
        the peer addresses live in one namespace (the client's), each on its own veth to ferry's,
        for a load generator whose sender and sink are one process."""
        if merged:
            self.ns["peer"] = self.ns["client"]
        for ns in dict.fromkeys(self.ns.values()):
            _run(["ip", "netns", "add", ns])
            self._made.append(ns)
        c, f, p = self.ns["client"], self.ns["ferry"], self.ns["peer"]
        v = self.veth
        _run(["ip", "-n", c, "link", "add", v["client"], "type", "veth", "peer", "name", v["ferry_c"], "netns", f])
        _run(["ip", "-n", p, "link", "add", v["peer"], "type", "veth", "peer", "name", v["ferry_p"], "netns", f])
        for ns, dev, addr in ((c, v["client"], self.ip["client"]), (f, v["ferry_c"], self.ip["ferry_c"]),
                              (f, v["ferry_p"], self.ip["ferry_p"]), (p, v["peer"], self.ip["peer"])):
            _run(["ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", dev])
            _run(["ip", "-n", ns, "link", "set", dev, "up"])
        _run(["ip", "-n", p, "addr", "add", f"{self.ip['peer2']}/24", "dev", v["peer"]])
        for ns in dict.fromkeys(self.ns.values()):
            _run(["ip", "-n", ns, "link", "set", "lo", "up"])
        if not merged:  # merged: both subnets are directly connected in the one namespace
            _run(["ip", "-n", c, "route", "add", "default", "via", self.ip["ferry_c"]])
            _run(["ip", "-n", p, "route", "add", "default", "via", self.ip["ferry_p"]])
        if not checksum_offload and shutil.which("ethtool"):
            _run(["ip", "netns", "exec", c, "ethtool", "-K", v["client"], "tx", "off"])
            _run(["ip", "netns", "exec", p, "ethtool", "-K", v["peer"], "tx", "off"])
        return self

    def client_tx_offload(self, on: bool) -> None:
        """TX checksum offload of the client's veth: on, its datagrams reach ferry's namespace as
        CHECKSUM_PARTIAL (checksum to be finished later), as from a local container."""
        _run(["ip", "netns", "exec", self.ns["client"], "ethtool", "-K", self.veth["client"], "tx",
              "on" if on else "off"])

    def up_merged(self, checksum_offload: bool = False) -> "Topology":
        return self.up(checksum_offload=checksum_offload, merged=True)

    def exec_prefix(self, which: str) -> list[str]:
        return ["ip", "netns", "exec", self.ns[which]]

    def run(self, which: str, cmd: list[str], timeout: float = 20) -> subprocess.CompletedProcess:
        return subprocess.run(self.exec_prefix(which) + cmd, capture_output=True, text=True, timeout=timeout)

    @contextlib.contextmanager
    def inside(self, which: str):
        """Runs the block with this thread in namespace `which` (sockets made here stay there)."""
        fd = os.open(f"/run/netns/{self.ns[which]}", os.O_RDONLY)
        try:
            if _libc.setns(fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), f"setns {self.ns[which]}")
            yield
        finally:
            os.close(fd)
            if _libc.setns(self._home, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back home")

    def close(self) -> None:
        for ns in reversed(self._made):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=20)
        self._made.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
