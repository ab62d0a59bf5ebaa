#!/usr/bin/env python3
"""Rate-limiting reverse proxy for registry pull tests (loopback only).

usage: throttleproxy.py UPSTREAM_HOST:PORT BYTES_PER_SEC PORTFILE LOGFILE

Forwards GET, HEAD, POST, PUT and PATCH to the upstream registry. Blob
bodies (/v2/.../blobs/sha256:...) are streamed at most BYTES_PER_SEC per
request, and so are request bodies (blob uploads) read from the client, so a
test can interrupt a download or an upload half-way; everything else passes
at full speed. Location headers naming the upstream are rewritten to the
proxy, so an upload session stays behind it. Each request is logged as "METHOD PATH STATUS BYTES" in LOGFILE once
it ends (a blob cut short by the client logs the bytes actually sent).
"""
import http.client
import http.server
import sys
import threading
import time

upstream, rate, portfile, logfile = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
lock = threading.Lock()
CHUNK = 16384


def log(line):
    with lock, open(logfile, "a") as f:
        f.write(line + "\n")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = bytearray()
        t0 = time.monotonic()
        while len(body) < n:
            data = self.rfile.read(min(CHUNK, n - len(body)))
            if not data:
                raise ConnectionResetError("client went away")
            body += data
            if rate > 0:
                ahead = len(body) / rate - (time.monotonic() - t0)
                if ahead > 0:
                    time.sleep(ahead)
        return bytes(body)

    def handle_one(self, head):
        body_in = None
        if self.command in ("POST", "PUT", "PATCH"):
            try:
                body_in = self.read_body()
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True
                log("%s %s cut" % (self.command, self.path))
                return
        conn = http.client.HTTPConnection(upstream, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
        conn.request(self.command, self.path, body=body_in, headers=headers)
        resp = conn.getresponse()
        self.send_response(resp.status)
        me = "http://127.0.0.1:%d" % self.server.server_address[1]
        for k, v in resp.getheaders():
            if k.lower() == "location" and v.startswith("http://" + upstream):
                v = me + v[len("http://" + upstream):]
            if k.lower() not in ("connection", "transfer-encoding"):
                self.send_header(k, v)
        length = resp.getheader("Content-Length")
        if length is None and not head:
            body = resp.read()
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        sent = 0
        blob = "/blobs/sha256:" in self.path
        try:
            if head:
                pass
            elif length is None:
                self.wfile.write(body)
                sent = len(body)
            else:
                t0 = time.monotonic()
                while True:
                    data = resp.read(CHUNK)
                    if not data:
                        break
                    self.wfile.write(data)
                    sent += len(data)
                    if blob and rate > 0:
                        ahead = sent / rate - (time.monotonic() - t0)
                        if ahead > 0:
                            time.sleep(ahead)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            conn.close()
            log("%s %s %d %d" % (self.command, self.path, resp.status, sent))

    def do_GET(self):
        self.handle_one(False)

    def do_HEAD(self):
        self.handle_one(True)

    def do_POST(self):
        self.handle_one(False)

    def do_PUT(self):
        self.handle_one(False)

    def do_PATCH(self):
        self.handle_one(False)


srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
srv.daemon_threads = True
with open(portfile + ".tmp", "w") as f:
    f.write(str(srv.server_address[1]))
import os
os.rename(portfile + ".tmp", portfile)
srv.serve_forever()
