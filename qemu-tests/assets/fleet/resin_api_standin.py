#!/usr/bin/env python3
"""The resin API stand-in of the fleet test: HTTPS on loopback (QEMU guests reach it at
10.0.2.2), a certificate from the test's own CA. It keeps what it was told in memory and in
STATE_FILE (JSON) for the test to read:

  POST  /device/register                 Bearer <provisioning key>; {user, application,
        device_type, uuid, api_key} -> 201 {id, uuid, api_key}   (as balena-register-device)
  PATCH /v6/device?$filter=uuid eq '<u>' Bearer <that device's api_key>; {is_online,
        os_version}: the resinOS stand-in's check-in on boot -> 200 OK
  GET   /v6/device?$filter=uuid eq '<u>' Bearer <provisioning key> -> {"d": [device]}

Usage: resin_api_standin.py PORT CERT KEY PROVISIONING_KEY STATE_FILE
"""

import http.server
import json
import re
import ssl
import sys
import threading
import urllib.parse

PORT, CERT, KEY, PROVISIONING_KEY, STATE_FILE = sys.argv[1:6]
LOCK = threading.Lock()
STATE = {"devices": {}, "requests": []}


def save():
    with open(STATE_FILE + ".tmp", "w") as f:
        json.dump(STATE, f, indent=1)
    import os

    os.replace(STATE_FILE + ".tmp", STATE_FILE)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def bearer(self):
        value = self.headers.get("Authorization", "")
        return value[7:] if value.startswith("Bearer ") else ""

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(n) or b"{}")

    def answer(self, code, payload):
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def uuid_filter(self):
        query = urllib.parse.urlparse(self.path).query
        flt = urllib.parse.parse_qs(query).get("$filter", [""])[0]
        m = re.fullmatch(r"uuid eq '([0-9a-f]+)'", flt)
        return m.group(1) if m else None

    def note(self, what, **fields):
        STATE["requests"].append(dict(method=self.command, path=urllib.parse.urlparse(self.path).path, what=what, **fields))
        save()

    def do_POST(self):
        with LOCK:
            if urllib.parse.urlparse(self.path).path != "/device/register":
                return self.answer(404, {"error": "not found"})
            if self.bearer() != PROVISIONING_KEY:
                self.note("register refused: bad provisioning key")
                return self.answer(401, {"error": "Unauthorized"})
            b = self.body()
            uuid = str(b.get("uuid", ""))
            if not re.fullmatch(r"[0-9a-f]{32}", uuid) or not b.get("api_key"):
                return self.answer(400, {"error": "uuid and api_key required"})
            if uuid in STATE["devices"]:
                return self.answer(409, {"error": "uuid already registered"})
            dev_id = len(STATE["devices"]) + 1
            STATE["devices"][uuid] = {
                "id": dev_id, "uuid": uuid, "api_key": b["api_key"], "application": b.get("application"),
                "user": b.get("user"), "device_type": b.get("device_type"), "is_online": False, "os_version": None,
            }
            self.note("register", uuid=uuid)
            return self.answer(201, {"id": dev_id, "uuid": uuid, "api_key": b["api_key"]})

    def do_PATCH(self):
        with LOCK:
            uuid = self.uuid_filter()
            dev = STATE["devices"].get(uuid or "")
            if dev is None:
                return self.answer(404, {"error": "no such device"})
            if self.bearer() != dev["api_key"]:
                self.note("check-in refused: wrong device key", uuid=uuid)
                return self.answer(401, {"error": "Unauthorized"})
            b = self.body()
            for field in ("is_online", "os_version", "os_variant"):
                if field in b:
                    dev[field] = b[field]
            self.note("check-in", uuid=uuid, os_version=b.get("os_version"))
            return self.answer(200, b"OK")

    def do_GET(self):
        with LOCK:
            if self.bearer() != PROVISIONING_KEY:
                return self.answer(401, {"error": "Unauthorized"})
            uuid = self.uuid_filter()
            dev = STATE["devices"].get(uuid or "")
            rows = [] if dev is None else [{k: v for k, v in dev.items() if k != "api_key"}]
            return self.answer(200, {"d": rows})

    def log_message(self, fmt, *args):
        sys.stderr.write("resin-api-standin: " + (fmt % args) + "\n")


server = http.server.ThreadingHTTPServer(("127.0.0.1", int(PORT)), Handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(CERT, KEY)
server.socket = context.wrap_socket(server.socket, server_side=True)
save()
print(f"resin-api-standin listening on https://127.0.0.1:{PORT}", flush=True)
server.serve_forever()
