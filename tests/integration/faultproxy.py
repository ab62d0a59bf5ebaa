#!/usr/bin/env python3
"""Fault-injecting reverse proxy for registry tests (loopback only).

usage: faultproxy.py UPSTREAM_HOST:PORT MODE COUNT PORTFILE LOGFILE

Forwards GET/HEAD to the upstream registry. For blob GETs (/v2/.../blobs/...)
the first COUNT requests are disturbed according to MODE:
  500      answer 500
  429      answer 429 with Retry-After: 1
  cut      send the headers and half of the body, then close the connection
  corrupt  flip one byte in the middle of the body (every request)
  endless  stream zeros forever (every request; no Content-Length)
  no-monolithic  answer 413 to every blob-upload PUT that carries a body
POST, PUT and PATCH are forwarded with their bodies (Location headers are
rewritten to point at the proxy).
Each request is logged as "METHOD PATH RANGE -> ACTION" in LOGFILE.
"""
import http.client
import http.server
import sys
import threading

upstream, mode, count, portfile, logfile = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
lock = threading.Lock()
state = {"hits": 0}


def log(line):
    with lock, open(logfile, "a") as f:
        f.write(line + "\n")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def forward(self, head, body=None):
        conn = http.client.HTTPConnection(upstream, timeout=30)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
        conn.request(self.command, self.path, body=body, headers=headers)
        resp = conn.getresponse()
        body = resp.read()
        conn.close()
        return resp, body

    def handle_one(self):
        is_blob = "/blobs/sha256:" in self.path and self.command == "GET"
        action = "pass"
        if is_blob:
            with lock:
                state["hits"] += 1
                n = state["hits"]
            if mode in ("corrupt", "endless") or n <= count:
                action = mode
        log("%s %s %s -> %s" % (self.command, self.path, self.headers.get("Range", "-"), action))
        if action in ("500", "429"):
            msg = b'{"errors":[{"code":"UNAVAILABLE","message":"injected fault"}]}'
            self.send_response(int(action))
            if action == "429":
                self.send_header("Retry-After", "1")
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(msg)))
            self.end_headers()
            self.wfile.write(msg)
            return
        if action == "endless":
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            try:
                while True:
                    self.wfile.write(b"\0" * 65536)
            except (BrokenPipeError, ConnectionResetError):
                return
        resp, body = self.forward(self.command == "HEAD")
        if action == "corrupt" and resp.status in (200, 206) and body:
            b = bytearray(body)
            b[len(b) // 2] ^= 0xFF
            body = bytes(b)
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in ("connection", "transfer-encoding", "content-length"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)) if self.command != "HEAD" else resp.getheader("Content-Length", "0"))
        if action == "cut":
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command == "HEAD":
            return
        if action == "cut" and len(body) > 1:
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)

    def do_GET(self):
        self.handle_one()

    def do_write(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n)
        refuse = mode == "no-monolithic" and self.command == "PUT" and "/blobs/uploads/" in self.path and n > 0
        log("%s %s %d -> %s" % (self.command, self.path.split("?")[0], n, "413" if refuse else "pass"))
        if refuse:
            self.send_response(413)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        resp, rbody = self.forward(False, body)
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() in ("connection", "transfer-encoding", "content-length"):
                continue
            if k.lower() == "location":
                v = v.replace("http://" + upstream, "http://" + self.headers.get("Host", ""))
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(rbody)))
        self.end_headers()
        self.wfile.write(rbody)

    do_POST = do_write
    do_PUT = do_write
    do_PATCH = do_write

    def do_HEAD(self):
        self.handle_one()


srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
srv.daemon_threads = True
with open(portfile + ".tmp", "w") as f:
    f.write(str(srv.server_address[1]))
import os

os.rename(portfile + ".tmp", portfile)
srv.serve_forever()
