#!/usr/bin/python3
"""examples/browser in headless chromium: ICE servers from /v1/ice-servers, a data channel relayed by ferry.

Starts ferry with the http endpoint, one API key (only its SHA-256 in the config) and a shared
secret; serves examples/browser from python's http.server on 127.0.0.1; loads
index.html?api=http://127.0.0.1:HTTP&key=KEY in chromium with tests/browser/example_page.mjs, which
waits for the page's "connected via relay" and checks that both selected candidate pairs are
relay/relay.

Needs: node, `npm ci` done in tests/browser, Debian chromium at /usr/bin/chromium.

Usage: /usr/bin/python3 test_example_browser.py [--bin PATH] [--node PATH] [--chromium PATH]
"""

import functools
import hashlib
import http.server
import os
import secrets
import shutil
import sys
import threading
import urllib.parse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402

NAME = "example_browser"
BROWSER_DIR = harness.REPO_ROOT / "tests" / "browser"
PAGE_DIR = harness.REPO_ROOT / "examples" / "browser"


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *_args):
        pass


def main() -> int:
    ap = harness.common_arguments(__doc__.splitlines()[0])
    ap.add_argument("--node", default=os.environ.get("NODE", "node"))
    ap.add_argument("--chromium", default=os.environ.get("CHROMIUM_BIN", "/usr/bin/chromium"))
    ap.add_argument("--timeout", type=float, default=40.0, help="seconds the page may take (default 40)")
    args = ap.parse_args()

    def body():
        node = shutil.which(args.node) if os.sep not in args.node else args.node
        if not node or not (BROWSER_DIR / "node_modules" / "playwright-core").is_dir() \
                or not os.access(args.chromium, os.X_OK):
            return [f"setup: needs node, chromium at {args.chromium} and (cd {BROWSER_DIR} && npm ci --no-audit --no-fund)"]
        key = secrets.token_urlsafe(32)
        digest = hashlib.sha256(key.encode()).hexdigest()
        web = None
        tmp = harness.TempDir(prefix="ferry-it-example-browser-")
        try:
            cfg = harness.config_from_args(args, http_port=harness.pick_free_port(udp=False, ipv6=False),
                                           http_extra=[f"api_keys: [{{name: example, sha256: {digest}}}]"])
            web_port = harness.pick_free_port(udp=False, ipv6=False)
            handler = functools.partial(QuietHandler, directory=str(PAGE_DIR))
            web = http.server.ThreadingHTTPServer(("127.0.0.1", web_port), handler)
            threading.Thread(target=web.serve_forever, daemon=True).start()
            with harness.server_from_args(args, cfg) as server:
                harness.wait_http(cfg.http_port)
                query = urllib.parse.urlencode({"api": f"http://127.0.0.1:{cfg.http_port}", "key": key})
                url = f"http://127.0.0.1:{web_port}/index.html?{query}"
                env = dict(os.environ, TMPDIR=str(tmp.path))
                r = harness.run_client([node, str(BROWSER_DIR / "example_page.mjs"), "--url", url,
                                        "--chromium", args.chromium, "--timeout", str(int(args.timeout))],
                                       timeout=args.timeout + 40, env=env, cwd=str(BROWSER_DIR), line_buffered=False)
                # The key is the test's own throw-away one; still, keep it out of the log.
                print(r.output.rstrip().replace(key, "<key>"))
                ok = not r.timed_out and r.returncode == 0 and "\nPASS " in "\n" + r.output
                harness.check("the example page connects via the relay", ok,
                              "timed out" if r.timed_out else f"node exit status {r.returncode}")
                if not ok:
                    server.dump_log("server log")
        finally:
            if web:
                web.shutdown()
                web.server_close()
            tmp.stop()
        return "the example page connected via relay with ICE servers from /v1/ice-servers"

    return harness.run_test(NAME, body)


if __name__ == "__main__":
    sys.exit(main())
