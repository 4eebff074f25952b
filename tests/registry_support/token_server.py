"""A small token server for the registry tests (Docker's token auth).

usage: token_server.py PORT CERT KEY USERS_JSON
USERS_JSON maps user -> [password, "pull" | "pull,push" | "expired"]. Anonymous users
get nothing; a wrong password is 401. Tokens are RS256 JWTs whose x5c
header holds the signing certificate (the registry's rootcertbundle).
"""
import base64, json, sys, time, uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse, parse_qs

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization

port, cert_path, key_path, users_path = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
cert = x509.load_pem_x509_certificate(open(cert_path, "rb").read())
x5c = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
key = open(key_path, "rb").read()
users = json.load(open(users_path))


class H(BaseHTTPRequestHandler):
    def log_message(self, fmt, *args):
        sys.stderr.write("%s\n" % (fmt % args))

    def do_GET(self):
        u = urlparse(self.path)
        if u.path == "/v2/":
            # Readiness probe.
            self.send_response(200)
            self.end_headers()
            return
        q = parse_qs(u.query)
        user, granted = None, []
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            name, _, pw = base64.b64decode(auth[6:]).decode().partition(":")
            if name not in users or users[name][0] != pw:
                self.send_response(401)
                self.end_headers()
                return
            user, granted = name, users[name][1].split(",")
        access = []
        for scope in q.get("scope", []):
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            allowed = [a for a in actions.split(",") if a in granted or "expired" in granted]
            access.append({"type": kind, "name": name, "actions": allowed})
        now = int(time.time())
        # A user whose actions are "expired" gets tokens that expired already.
        exp = now - 120 if "expired" in granted else now + 300
        claims = {"iss": "test-issuer", "aud": q.get("service", [""])[0], "sub": user or "",
                  "exp": exp, "nbf": now - 600, "iat": now - 600, "jti": str(uuid.uuid4()), "access": access}
        token = jwt.encode(claims, key, algorithm="RS256", headers={"x5c": [x5c]})
        body = json.dumps({"token": token, "expires_in": 300}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
