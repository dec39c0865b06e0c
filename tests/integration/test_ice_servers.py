#!/usr/bin/python3
"""GET /v1/ice-servers on a live ferry: API keys, rate limit, and a credential that really allocates.

ferry runs with one API key (only its SHA-256 in the config) and a shared secret. The endpoint
must refuse a missing or wrong key (401), hand the right key {"iceServers":[...]} with the
server's turn: URLs and a TURN REST credential, and answer 429 once the key's rate is spent.
The credential it returns is then used by coturn's turnutils_uclient (-u/-w) for a real
allocation relaying data to turnutils_peer. A second server without a shared secret answers 503.

Usage: /usr/bin/python3 test_ice_servers.py [--bin PATH] [--uclient PATH] [--peer PATH]
"""

import hashlib
import json
import re
import secrets
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402

NAME = "ice_servers_api"
TOTALS_RE = re.compile(r"start_mclient: tot_send_msgs=(\d+), tot_recv_msgs=(\d+)\s*$", re.M)


def ice_config(args, key: str, rate: int, **kw):
    digest = hashlib.sha256(key.encode()).hexdigest()
    return harness.config_from_args(args, http_port=harness.pick_free_port(udp=False, ipv6=False),
                                    http_extra=[f"api_keys: [{{name: itkey, sha256: {digest}}}]",
                                                f"api_requests_per_second: {rate}", "max_credential_ttl: 7200"],
                                    **kw)


def main() -> int:
    ap = harness.common_arguments(__doc__.splitlines()[0])
    ap.add_argument("--uclient", default="turnutils_uclient")
    ap.add_argument("--peer", default="turnutils_peer")
    args = ap.parse_args()
    if args.server != "ferry":
        return harness.report(NAME, [], f"nothing to check against {args.server}")
    problems = harness.CHECKS.problems

    def check(cond: bool, what: str) -> None:
        if not cond:
            problems.append(what)

    key = secrets.token_urlsafe(32)

    def body():
        uclient = harness.require_tool(args.uclient)
        peer_tool = harness.require_tool(args.peer)
        cfg = ice_config(args, key, rate=2)
        peer_port = harness.pick_free_port(tcp=False, ipv6=False)
        with harness.BackgroundProcess([peer_tool, "-L", "127.0.0.1", "-p", str(peer_port)], "turnutils_peer"), \
                harness.server_from_args(args, cfg) as server:
            if not harness.udp_echo_ready("127.0.0.1", peer_port, timeout=5.0):
                raise RuntimeError("turnutils_peer does not echo")
            harness.wait_http(cfg.http_port)
            port = cfg.http_port

            status, headers, _ = harness.http_get(port, "/v1/ice-servers")
            check(status == 401, f"no key: {status}, want 401")
            check("bearer" in headers.get("www-authenticate", "").lower(), "no WWW-Authenticate: Bearer")
            status, _, _ = harness.http_get(port, "/v1/ice-servers", {"Authorization": "Bearer " + key + "x"})
            check(status == 401, f"wrong key: {status}, want 401")
            status, _, _ = harness.http_get(port, "/v1/ice-servers", {"Authorization": "Basic " + key})
            check(status == 401, f"not a bearer token: {status}, want 401")

            status, headers, body = harness.http_get(port, "/v1/ice-servers?ttl=3600",
                                                     {"Authorization": "Bearer " + key})
            check(status == 200, f"right key: {status} {body.strip()}")
            doc = json.loads(body) if status == 200 else {}
            server_entry = (doc.get("iceServers") or [{}])[0]
            urls = server_entry.get("urls", [])
            username = server_entry.get("username", "")
            credential = server_entry.get("credential", "")
            check(f"turn:127.0.0.1:{cfg.port}?transport=udp" in urls, f"urls {urls}")
            check(f"stun:127.0.0.1:{cfg.port}" in urls, f"urls {urls}")
            check(username.endswith(":itkey"), f"username {username!r}")
            check(doc.get("ttl") == 3600, f"ttl {doc.get('ttl')}")
            check(headers.get("cache-control") == "no-store", "no Cache-Control: no-store")

            # The credential allocates: uclient with -u/-w, as a browser would use it.
            r = harness.run_client([uclient, "-u", username, "-w", credential, "-p", str(cfg.port), "-e",
                                    "127.0.0.1", "-r", str(peer_port), "-n", "10", "-l", "100", "-m", "1",
                                    "127.0.0.1"], timeout=60)
            totals = TOTALS_RE.findall(r.output)
            recv = int(totals[-1][1]) if totals else 0
            check(r.returncode == 0 and recv > 0,
                  f"uclient with the returned credential: status {r.returncode}, received {recv}: {r.output[-1500:]}")

            # Rate limit: 2 per second per key (one token was spent above).
            codes = [harness.http_get(port, "/v1/ice-servers", {"Authorization": "Bearer " + key})[0]
                     for _ in range(6)]
            check(429 in codes, f"no 429 in a burst of 6 at 2/s: {codes}")
            check(set(codes) <= {200, 429}, f"unexpected statuses {codes}")
            time.sleep(1.1)
            status, _, _ = harness.http_get(port, "/v1/ice-servers", {"Authorization": "Bearer " + key})
            check(status == 200, f"after a second the key works again: {status}")
            if problems:
                server.dump_log("server log")

        # Without a shared secret there is nothing to mint: 503 (after the key check).
        with harness.server_from_args(args, ice_config(args, key, rate=0, shared_secrets=[])) as bare:
            harness.wait_http(bare.config.http_port)
            status, _, body = harness.http_get(bare.config.http_port, "/v1/ice-servers",
                                               {"Authorization": "Bearer " + key})
            check(status == 503, f"no shared secret: {status} {body.strip()}, want 503")
        return ("401 without/with a wrong key, a credential that allocates, 429 over the rate, 503 "
                "without a secret")

    return harness.run_test(NAME, body)


if __name__ == "__main__":
    sys.exit(main())
