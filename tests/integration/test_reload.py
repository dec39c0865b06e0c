#!/usr/bin/python3
"""SIGHUP reloads users and shared secrets without dropping allocations; a broken file is refused.

  * alice and bob hold allocations (a peer keeps sending to it) while the file changes: bob removed,
    carol added, the shared secret rotated, limits.max_lifetime lowered. After SIGHUP carol allocates, bob gets 401 and his
    allocation is closed, alice's allocation is still open and refreshes, for the new maximum;
  * a token of the old secret gets 401, one of the new secret allocates;
  * a broken file: SIGHUP logs the error naming the line, the running configuration stays
    (carol still allocates), nothing is dropped.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from test_db_server import PortWatcher, can_allocate, wait_for  # noqa: E402

check = harness.check
from turn_udp_client import TurnUdpClient  # noqa: E402


def token(secret: str, user: str, ttl: int = 300) -> tuple[str, str]:
    name = f"{int(time.time()) + ttl}:{user}"
    return name, base64.b64encode(hmac.new(secret.encode(), name.encode(), hashlib.sha1).digest()).decode()


def run(args) -> None:
    cfg = harness.config_from_args(args, users={"alice": "alice-pw", "bob": "bob-pw"},
                                   shared_secrets=["old-secret-value-1234"], ipv6=False, tcp=False)
    server = harness.server_from_args(args, cfg)
    with server:
        addr = ("127.0.0.1", cfg.port)
        path = server.workdir / "ferry.yaml"
        alice = TurnUdpClient(addr, "alice", "alice-pw")
        relayed = alice.allocate()
        alice.create_permission("127.0.0.1")
        watcher = PortWatcher(relayed).start()
        check("bob allocates before the reload", can_allocate(addr, "bob", "bob-pw") == 0)
        bob = TurnUdpClient(addr, "bob", "bob-pw")
        bob_watcher = PortWatcher(bob.allocate()).start()
        old_user, old_pw = token("old-secret-value-1234", "tok")
        check("old-secret token allocates before the reload", can_allocate(addr, old_user, old_pw) == 0)

        cfg.users = {"alice": "alice-pw", "carol": "carol-pw"}
        cfg.shared_secrets = ["new-secret-value-5678"]
        cfg.limits = {"max_lifetime": 120, "default_lifetime": 60}
        path.write_text(cfg.ferry_yaml())
        os.kill(server.proc.pid, signal.SIGHUP)
        check("carol allocates after the reload", wait_for(lambda: can_allocate(addr, "carol", "carol-pw") == 0, 5))
        check("bob is refused after the reload", can_allocate(addr, "bob", "bob-pw") == 401)
        check("old-secret token refused after the reload", can_allocate(addr, old_user, old_pw) == 401)
        new_user, new_pw = token("new-secret-value-5678", "tok")
        check("new-secret token allocates after the reload", can_allocate(addr, new_user, new_pw) == 0)
        time.sleep(0.3)
        check("alice's allocation survived the reload", watcher.closed_at is None)
        check("bob's allocation was closed by the reload", wait_for(lambda: bob_watcher.closed_at is not None, 2))
        bob_watcher.stop()
        bob.close()
        try:
            granted = alice.refresh(600)
        except Exception as e:  # noqa: BLE001
            granted = -1
            print(f"  refresh: {e!r}")
        check("alice's allocation refreshes after the reload", granted > 0)
        check("reloaded limits apply: a 600 s refresh is granted the new maximum 120 s", granted == 120,
              f"granted {granted}")

        path.write_text(cfg.ferry_yaml() + "workers: many\n")
        os.kill(server.proc.pid, signal.SIGHUP)
        check("a broken file is reported with its line",
              wait_for(lambda: "reload failed" in server.log_text() and "workers" in server.log_text(), 5),
              server.log_text()[-2000:])
        check("the running configuration stays after a broken reload",
              can_allocate(addr, "carol", "carol-pw") == 0)
        check("alice's allocation survived the broken reload", watcher.closed_at is None and server.alive())
        log = server.log_text(200000)
        check("no password or secret in the log",
              all(s not in log for s in ("alice-pw", "bob-pw", "carol-pw", "old-secret-value", "new-secret-value")))
        watcher.stop()
        alice.close()

def main() -> int:
    args = harness.common_arguments(__doc__.splitlines()[0]).parse_args()
    return harness.run_test("sighup_reload", lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
