#!/usr/bin/python3
"""examples/sync_fallback: ferry-sync-example sends a 200 KB random file between two processes through TURN.

Starts ferry (peers.allow 127.0.0.0/8, the harness default), then
    ferry-sync-example receive --server 127.0.0.1:PORT --user alice --out OUT   (prints "relayed A")
    ferry-sync-example send    --server 127.0.0.1:PORT --user alice --in IN --peer A   (prints "relayed B")
and writes B to the receiver's stdin, as the example's README describes; the password is in
FERRY_PASSWORD, never in argv. The received file must equal the one sent.

Usage: /usr/bin/python3 test_example_sync.py --example PATH [--bin PATH]
"""

import os
import queue
import secrets
import subprocess
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402

NAME = "example_sync_fallback"
SIZE = 200 * 1024
TIMEOUT = 30  # the examples' own --timeout; the test waits a little longer


class Example:
    """One ferry-sync-example process with its stdin and stdout on pipes, stopped with the test."""

    def __init__(self, cmd: list[str], env: dict):
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     env=env, text=True, start_new_session=True, close_fds=True)
        self.lines: queue.Queue = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        harness._live.append(self)

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.output.append(line.rstrip("\n"))
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def relayed(self, timeout: float = 10.0) -> str:
        while True:
            line = self.lines.get(timeout=timeout)
            if line is None:
                raise RuntimeError(f"exited before printing its relayed address: {self.output}")
            if line.startswith("relayed "):
                return line.split(" ", 1)[1]

    def tell(self, line: str) -> None:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def wait(self, timeout: float) -> int | None:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> None:
        if self in harness._live:
            harness._live.remove(self)
        harness._kill_group(self.proc, term_timeout=2)


def main() -> int:
    ap = harness.common_arguments(__doc__.splitlines()[0])
    ap.add_argument("--example", required=True, help="the ferry-sync-example binary")
    args = ap.parse_args()

    def body():
        example = harness.require_tool(args.example)
        with harness.TempDir(prefix="ferry-it-sync-") as tmp, \
                harness.server_from_args(args, harness.config_from_args(args, tcp=False)) as server:
            src, dst = tmp / "in.bin", tmp / "out.bin"
            src.write_bytes(secrets.token_bytes(SIZE))
            env = dict(os.environ, FERRY_PASSWORD=harness.DEFAULT_PASSWORD)
            common = ["--server", f"127.0.0.1:{server.config.port}", "--user", harness.DEFAULT_USER,
                      "--timeout", str(TIMEOUT)]
            receiver = Example([example, "receive", *common, "--out", str(dst)], env)
            receiver_relayed = receiver.relayed()
            sender = Example([example, "send", *common, "--in", str(src), "--peer", receiver_relayed], env)
            sender_relayed = sender.relayed()
            receiver.tell(sender_relayed)
            print(f"  receiver relayed {receiver_relayed}, sender relayed {sender_relayed}")
            sent, received = sender.wait(TIMEOUT + 10), receiver.wait(TIMEOUT + 10)
            for who, ex in (("sender", sender), ("receiver", receiver)):
                print("\n".join(f"  {who}: {l}" for l in ex.output))
                ex.stop()
            harness.check("sender exits 0", sent == 0, f"exit status {sent}")
            harness.check("receiver exits 0", received == 0, f"exit status {received}")
            harness.check("the received file equals the one sent", dst.exists() and dst.read_bytes() == src.read_bytes(),
                          f"{dst.stat().st_size if dst.exists() else 'no'} bytes")
            if harness.CHECKS.problems:
                server.dump_log("server log")
        return f"{SIZE} random bytes arrived intact through two TURN allocations"

    return harness.run_test(NAME, body)


if __name__ == "__main__":
    sys.exit(main())
