#!/usr/bin/env python3
"""Minimal Docker registry token server for tests (loopback only).

usage: tokenserver.py KEY.pem CERT.pem ISSUER SERVICE USER:PASS PORTFILE LOGFILE

GET /token?service=S&scope=repository:NAME:ACTIONS[&scope=...] with HTTP Basic
USER:PASS gets an RS256 JWT (x5c header with CERT, signed with the openssl CLI)
granting the requested actions; anonymous requests get pull only; a wrong
password gets 401. POST /token with an OAuth2 refresh-token grant
(refresh_token=kiln-refresh-token) answers {"access_token": ...} for USER.
Each request's scopes are appended to LOGFILE.
"""
import base64
import http.server
import json
import os
import subprocess
import sys
import time
import urllib.parse

key, cert, issuer, service, userpass, portfile, logfile = sys.argv[1:8]


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


with open(cert) as f:
    pem = f.read()
der_b64 = "".join(l for l in pem.splitlines() if l and not l.startswith("-----"))


def sign(data):
    return subprocess.run(["openssl", "dgst", "-sha256", "-sign", key], input=data, capture_output=True,
                          check=True).stdout


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        q = urllib.parse.parse_qs(self.rfile.read(n).decode())
        if q.get("grant_type") != ["refresh_token"] or q.get("refresh_token") != ["kiln-refresh-token"]:
            self.send_response(401)
            self.send_header("Content-Length", "0")
            self.end_headers()
            with open(logfile, "a") as f:
                f.write("DENIED-REFRESH %s\n" % " ".join(q.get("scope", [])))
            return
        self.issue(q, userpass.split(":")[0], "refresh", "access_token")

    def do_GET(self):
        u = urllib.parse.urlparse(self.path)
        q = urllib.parse.parse_qs(u.query)
        auth = self.headers.get("Authorization", "")
        user = None
        if auth.startswith("Basic "):
            if base64.b64decode(auth[6:]).decode() != userpass:
                self.send_response(401)
                self.send_header("Content-Length", "0")
                self.end_headers()
                with open(logfile, "a") as f:
                    f.write("DENIED %s\n" % " ".join(q.get("scope", [])))
                return
            user = userpass.split(":")[0]
        self.issue(q, user, user or "anonymous", "token")

    def issue(self, q, user, who, field):
        access = []
        for s in q.get("scope", []):
            typ, name, actions = s.split(":", 2) if s.count(":") >= 2 else (s, "", "")
            acts = actions.split(",") if user else [a for a in actions.split(",") if a == "pull"]
            access.append({"type": typ, "name": name, "actions": acts})
        with open(logfile, "a") as f:
            f.write("%s %s\n" % (who, " ".join(q.get("scope", []))))
        now = int(time.time())
        header = {"alg": "RS256", "typ": "JWT", "x5c": [der_b64]}
        claims = {"iss": issuer, "sub": user or "", "aud": service, "exp": now + 300, "nbf": now - 10,
                  "iat": now, "jti": os.urandom(8).hex(), "access": access}
        si = (b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())).encode()
        tok = si.decode() + "." + b64url(sign(si))
        body = json.dumps({field: tok, "expires_in": 300}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(portfile + ".tmp", "w") as f:
    f.write(str(srv.server_address[1]))
os.rename(portfile + ".tmp", portfile)
srv.serve_forever()
