//! A small OpenID Connect provider for tests, run as its own process on loopback: Python's
//! http.server plus the `cryptography` package (python3-cryptography) for RS256 keys made
//! fresh each run. It speaks the documented protocol over real HTTP — discovery, JWKS, the
//! authorization endpoint (code flow, PKCE S256 required), the token endpoint (client secret
//! by HTTP Basic or form, one use per code, verifier checked) and an end-session endpoint.
//!
//! The authorization endpoint signs in whoever the test last set with [`Idp::next_user`]
//! (no login form), and the test can ask for a flawed ID token ([`Idp::flaw`]) or rotate the
//! signing key ([`Idp::rotate`]) or serve an oversized JWKS ([`Idp::oversized_jwks`]).
//! Killed by PID when dropped.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};

pub const CLIENT_ID: &str = "daygle-test";
pub const CLIENT_SECRET: &str = "idp client secret";

const SERVER: &str = r#"
import base64, hashlib, json, os, secrets, sys, threading, time, urllib.parse
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler
from cryptography.hazmat.primitives.asymmetric import rsa, padding
from cryptography.hazmat.primitives import hashes

CLIENT_ID, CLIENT_SECRET = sys.argv[1], sys.argv[2]
lock = threading.Lock()

def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

def new_key():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return {"kid": "k-" + secrets.token_hex(4), "key": key}

def jwk(k):
    pub = k["key"].public_key().public_numbers()
    n = pub.n.to_bytes((pub.n.bit_length() + 7) // 8, "big")
    e = pub.e.to_bytes((pub.e.bit_length() + 7) // 8, "big")
    return {"kty": "RSA", "use": "sig", "alg": "RS256", "kid": k["kid"], "n": b64(n), "e": b64(e)}

state = {"key": new_key(), "user": None, "flaw": "", "codes": {}, "log": [], "big_jwks": False}

def sign(header, claims, key):
    signing_input = b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode())
    if header["alg"] == "none":
        return signing_input + "."
    sig = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return signing_input + "." + b64(sig)

class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def issuer(self):
        return "http://127.0.0.1:%d" % self.server.server_address[1]

    def send(self, code, body=None, headers=()):
        self.send_response(code)
        data = b""
        if body is not None:
            data = json.dumps(body).encode()
            self.send_header("Content-Type", "application/json")
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        q = dict(urllib.parse.parse_qsl(url.query))
        iss = self.issuer()
        with lock:
            state["log"].append({"method": "GET", "path": url.path, "query": q})
        if url.path == "/.well-known/openid-configuration":
            return self.send(200, {
                "issuer": iss,
                "authorization_endpoint": iss + "/authorize",
                "token_endpoint": iss + "/token",
                "jwks_uri": iss + "/jwks",
                "end_session_endpoint": iss + "/logout",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "scopes_supported": ["openid", "email", "profile", "groups"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
                "code_challenge_methods_supported": ["S256"],
            })
        if url.path == "/jwks":
            with lock:
                keys, big = {"keys": [jwk(state["key"])]}, state["big_jwks"]
            if big:
                # 2 MiB, streamed without a Content-Length (read until the connection closes).
                keys["padding"] = "x" * (2 * 1024 * 1024)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(json.dumps(keys).encode())
                return
            return self.send(200, keys)
        if url.path == "/authorize":
            if q.get("client_id") != CLIENT_ID or q.get("response_type") != "code":
                return self.send(400, {"error": "invalid_request"})
            if q.get("code_challenge_method") != "S256" or not q.get("code_challenge"):
                return self.send(400, {"error": "invalid_request", "error_description": "PKCE S256 required"})
            if "openid" not in q.get("scope", "").split():
                return self.send(400, {"error": "invalid_scope"})
            with lock:
                user = state["user"]
                code = secrets.token_urlsafe(24)
                state["codes"][code] = {"user": user, "nonce": q.get("nonce"), "redirect_uri": q["redirect_uri"],
                                        "challenge": q["code_challenge"], "flaw": state["flaw"]}
            sep = "&" if "?" in q["redirect_uri"] else "?"
            target = q["redirect_uri"] + sep + urllib.parse.urlencode({"code": code, "state": q.get("state", "")})
            return self.send(302, None, [("Location", target)])
        if url.path == "/logout":
            target = q.get("post_logout_redirect_uri", "")
            return self.send(302 if target else 200, None, [("Location", target)] if target else [])
        if url.path == "/control/log":
            with lock:
                return self.send(200, state["log"])
        return self.send(404, {"error": "not found"})

    def do_POST(self):
        url = urllib.parse.urlparse(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        if url.path == "/control":
            order = json.loads(body)
            with lock:
                if "user" in order:
                    state["user"] = order["user"]
                if "flaw" in order:
                    state["flaw"] = order["flaw"]
                if "big_jwks" in order:
                    state["big_jwks"] = order["big_jwks"]
                if order.get("rotate"):
                    state["key"] = new_key()
                kid = state["key"]["kid"]
            return self.send(200, {"kid": kid})
        if url.path != "/token":
            return self.send(404, {"error": "not found"})
        form = dict(urllib.parse.parse_qsl(body))
        with lock:
            state["log"].append({"method": "POST", "path": "/token", "form": {k: v for k, v in form.items() if k != "client_secret"}})
        auth = self.headers.get("Authorization", "")
        cid, secret = form.get("client_id"), form.get("client_secret")
        if auth.startswith("Basic "):
            raw = base64.b64decode(auth[6:]).decode()
            cid, secret = [urllib.parse.unquote_plus(p) for p in raw.split(":", 1)]
        if cid != CLIENT_ID or secret != CLIENT_SECRET:
            return self.send(401, {"error": "invalid_client"})
        if form.get("grant_type") != "authorization_code":
            return self.send(400, {"error": "unsupported_grant_type"})
        with lock:
            grant = state["codes"].pop(form.get("code", ""), None)
            key = state["key"]
        if grant is None or grant["redirect_uri"] != form.get("redirect_uri"):
            return self.send(400, {"error": "invalid_grant"})
        verifier = form.get("code_verifier", "")
        if b64(hashlib.sha256(verifier.encode()).digest()) != grant["challenge"]:
            return self.send(400, {"error": "invalid_grant", "error_description": "PKCE verifier"})
        user, flaw, now = grant["user"] or {}, grant["flaw"], int(time.time())
        claims = {"iss": self.issuer(), "sub": user.get("sub", "nobody"), "aud": CLIENT_ID,
                  "iat": now, "exp": now + 300, "nonce": grant["nonce"]}
        for k in ("preferred_username", "email", "email_verified", "groups", "name"):
            if k in user:
                claims[k] = user[k]
        header = {"alg": "RS256", "typ": "JWT", "kid": key["kid"]}
        signer = key["key"]
        if flaw == "bad_signature":
            signer = new_key()["key"]
        elif flaw == "alg_none":
            header = {"alg": "none", "typ": "JWT"}
        elif flaw == "wrong_issuer":
            claims["iss"] = "http://127.0.0.1:1/not-the-issuer"
        elif flaw == "wrong_audience":
            claims["aud"] = "another-client"
        elif flaw == "expired":
            claims["iat"], claims["exp"] = now - 7200, now - 3600
        elif flaw == "wrong_nonce":
            claims["nonce"] = "not-the-nonce-we-were-sent"
        elif flaw == "extra_audience":
            claims["aud"] = [CLIENT_ID, "another-client"]
        elif flaw == "other_azp":
            claims["azp"] = "another-client"
        return self.send(200, {"access_token": secrets.token_urlsafe(24), "token_type": "Bearer",
                               "expires_in": 300, "id_token": sign(header, claims, signer)},
                         [("Cache-Control", "no-store")])

server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print("ready %d" % server.server_address[1], flush=True)
server.serve_forever()
"#;

/// The running provider.
pub struct Idp {
    child: Child,
    pub issuer: String,
    http: reqwest::Client,
}

impl Idp {
    pub fn start() -> Self {
        super::install_tls_provider();
        // Debian's interpreter (with python3-cryptography), not a version-manager shim that
        // would outlive a kill of its PID.
        let mut child = Command::new("/usr/bin/python3")
            .args(["-c", SERVER, CLIENT_ID, CLIENT_SECRET])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the test identity provider (python3 with python3-cryptography)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read the provider's port");
        let port: u16 = line
            .trim()
            .strip_prefix("ready ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("the test identity provider did not start: {line:?}"));
        Self {
            child,
            issuer: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
        }
    }

    async fn control(&self, order: Value) -> Value {
        self.http
            .post(format!("{}/control", self.issuer))
            .body(order.to_string())
            .send()
            .await
            .expect("control the provider")
            .json()
            .await
            .expect("control answer")
    }

    /// Who the authorization endpoint signs in from now on.
    pub async fn next_user(
        &self,
        sub: &str,
        username: &str,
        email: &str,
        verified: bool,
        groups: &[&str],
    ) {
        self.control(json!({ "user": {
            "sub": sub, "preferred_username": username, "email": email,
            "email_verified": verified, "groups": groups,
        }}))
        .await;
    }

    /// A flaw for the ID tokens of the next authorizations ("" for none).
    pub async fn flaw(&self, flaw: &str) {
        self.control(json!({ "flaw": flaw })).await;
    }

    /// Whether the JWKS answers with 2 MiB (more than any real key set) from now on.
    pub async fn oversized_jwks(&self, on: bool) {
        self.control(json!({ "big_jwks": on })).await;
    }

    /// A new signing key (and key id); the JWKS serves only the new one. Returns the new kid.
    pub async fn rotate(&self) -> String {
        self.control(json!({ "rotate": true }))
            .await
            .get("kid")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    }

    /// Every request the provider saw (client secrets left out).
    pub async fn log(&self) -> Vec<Value> {
        self.http
            .get(format!("{}/control/log", self.issuer))
            .send()
            .await
            .expect("provider log")
            .json()
            .await
            .expect("log JSON")
    }

    /// Settings pointing `[oidc]` at this provider.
    pub fn configure(&self, settings: &mut daygle::config::Settings) {
        let o = &mut settings.oidc;
        o.enabled = true;
        o.issuer_url = self.issuer.clone();
        o.client_id = CLIENT_ID.into();
        o.client_secret = daygle::config::Secret::new(CLIENT_SECRET);
        o.display_name = "Test IdP".into();
        o.scopes = "openid email profile groups".into();
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
