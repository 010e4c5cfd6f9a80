#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets into fuzz/corpus/<target>/ (committed; run
again after changing a seed). Seeds are real protocol data: tunnel frames as the edge and the
connector write them, MCP messages of both eras as the test peers send them, event streams,
audit lines, policy and config files, JWKS documents and JWTs."""

import base64
import json
import os
import struct
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "corpus")
REPO = os.path.dirname(ROOT)


# ----- a minimal MessagePack writer (maps, strings, ints, arrays, nil) as rmp-serde writes --
def mp(v):
    if v is None:
        return b"\xc0"
    if v is True:
        return b"\xc3"
    if v is False:
        return b"\xc2"
    if isinstance(v, int):
        if 0 <= v < 128:
            return bytes([v])
        if 0 <= v < 256:
            return b"\xcc" + bytes([v])
        if 0 <= v < 65536:
            return b"\xcd" + struct.pack(">H", v)
        if 0 <= v < 2**32:
            return b"\xce" + struct.pack(">I", v)
        return b"\xcf" + struct.pack(">Q", v)
    if isinstance(v, str):
        b = v.encode()
        if len(b) < 32:
            return bytes([0xA0 | len(b)]) + b
        if len(b) < 256:
            return b"\xd9" + bytes([len(b)]) + b
        return b"\xda" + struct.pack(">H", len(b)) + b
    if isinstance(v, (bytes, bytearray)):  # Vec<u8>: an array of small ints
        return mp(list(v))
    if isinstance(v, (list, tuple)):
        n = len(v)
        head = bytes([0x90 | n]) if n < 16 else b"\xdc" + struct.pack(">H", n)
        return head + b"".join(mp(x) for x in v)
    if isinstance(v, dict):
        n = len(v)
        head = bytes([0x80 | n]) if n < 16 else b"\xde" + struct.pack(">H", n)
        return head + b"".join(mp(k) + mp(x) for k, x in v.items())
    raise TypeError(v)


def frame(v):
    body = mp(v)
    return struct.pack(">I", len(body)) + body


def put(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def js(v):
    return json.dumps(v, separators=(",", ":"))


# ----- real protocol data ------------------------------------------------------------------
REQUEST_HEAD = {
    "service": "everything",
    "method": "POST",
    "query": "",
    "headers": [
        ["content-type", b"application/json"],
        ["accept", b"application/json, text/event-stream"],
        ["mcp-protocol-version", b"2025-11-25"],
        ["mcp-session-id", b"0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"],
    ],
    "principal": "client:alice",
    "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
    "request_id": "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
    "assertion": "eyJhbGciOiJFUzI1NiIsImtpZCI6ImVkZ2UifQ.eyJzdWIiOiJjbGllbnQ6YWxpY2UifQ.c2ln",
}
RESPONSE_HEAD = {
    "status": 200,
    "headers": [["content-type", b"text/event-stream"], ["mcp-session-id", b"abc"]],
}
HELLO = {"Hello": {"protocol": 1, "connector": "c1", "services": ["everything", "docs"],
                   "build": "underpass-connector 0.1.0"}}
HELLO_CAPS = {"Hello": {"protocol": 1, "connector": "c1", "services": ["everything"],
                        "build": "0.1.0", "capabilities": ["Drain"]}}
HELLO_V2 = {"Hello": {"protocol": 2, "connector": "c1", "services": [], "build": "x"}}
WELCOME = {"Welcome": {"edge": "edge-1", "limits": {"max_request_body": 4194304,
                                                    "max_concurrent_exchanges": 256},
                       "heartbeat_ms": 5000}}
REFUSED = {"Refused": {"reason": "connector c1 is not granted service docs"}}
UNKNOWN = {"Drain": {"deadline_ms": 30000}}

INIT_LEGACY = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
    "protocolVersion": "2025-11-25", "capabilities": {"sampling": {}, "elicitation": {}},
    "clientInfo": {"name": "mcp-python-sdk", "version": "1.20.0"}}}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}
TOOLS_LIST = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
CALL_ECHO = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
    "name": "echo", "arguments": {"message": "hello"}, "_meta": {"progressToken": 7}}}
READ = {"jsonrpc": "2.0", "id": "r-1", "method": "resources/read",
        "params": {"uri": "test://static/resource/1"}}
MODERN_CALL = {"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {
    "name": "get-weather", "arguments": {"region": "eu-west", "priority": 3, "verbose": True},
    "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}}}
MODERN_HEADERS = ("MCP-Protocol-Version: 2026-07-28\nMcp-Method: tools/call\n"
                  "Mcp-Name: get-weather\nMcp-Param-Region: eu-west\nMcp-Param-Priority: 3\n"
                  "Mcp-Param-Verbose: true\n")
TOOL = {"name": "get-weather", "inputSchema": {"type": "object", "properties": {
    "region": {"type": "string", "x-mcp-header": "Region"},
    "priority": {"type": "integer", "x-mcp-header": "Priority"},
    "verbose": {"type": "boolean", "x-mcp-header": "Verbose"}}}}
RESULT = {"jsonrpc": "2.0", "id": 2, "result": {"content": [{"type": "text",
                                                             "text": "Echo: hello"}]}}
ERROR = {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "Invalid Request"}}
SUBSCRIBE = {"jsonrpc": "2.0", "id": 9, "method": "subscriptions/listen", "params": {
    "notifications": {"resourceSubscriptions": ["test://static/resource/1"]}}}
CANCELLED = {"jsonrpc": "2.0", "method": "notifications/cancelled",
             "params": {"requestId": 2, "reason": "user"}}


def frames():
    put("frame", "request-head", b"\x00" + frame(REQUEST_HEAD))
    put("frame", "request-head-in-pieces", b"\x03\x01\x07\x40" + frame(REQUEST_HEAD))
    put("frame", "response-head", b"\x40" + frame(RESPONSE_HEAD) + frame(RESPONSE_HEAD))
    put("frame", "control-frames", b"\x82\x05\x02" + frame(HELLO) + frame(WELCOME) + frame(UNKNOWN))
    put("frame", "too-large", b"\x00" + struct.pack(">I", 300 * 1024) + b"\x80")


def control():
    put("control", "edge-hello", b"\x00" + frame(HELLO))
    put("control", "edge-hello-pieces-end-accept", b"\x53\x01\x02\x05" + frame(HELLO_CAPS) + frame(UNKNOWN))
    put("control", "edge-hello-refuse", b"\x11" + b"\x03" + frame(HELLO) + frame(HELLO))
    put("control", "edge-old-protocol", b"\x00" + frame(HELLO_V2))
    put("control", "edge-welcome-first", b"\x00" + frame(WELCOME))
    put("control", "connector-welcome", b"\x22\x04\x09" + frame(WELCOME) + frame(UNKNOWN))
    put("control", "connector-refused", b"\x30" + frame(REFUSED))
    put("control", "connector-cut", b"\x30" + frame(WELCOME)[:-3])


def mcp():
    put("mcp_inspect", "initialize", js(INIT_LEGACY) + "\0MCP-Protocol-Version: 2025-11-25\n")
    put("mcp_inspect", "tools-call", js(CALL_ECHO) + "\0mcp-protocol-version: 2025-06-18\n")
    put("mcp_inspect", "batch", js([INITIALIZED, TOOLS_LIST, READ, RESULT]))
    put("mcp_inspect", "modern-call", js(MODERN_CALL) + "\0" + MODERN_HEADERS + "\0" + js(TOOL))
    put("mcp_inspect", "modern-base64", js(MODERN_CALL).replace("eu-west", "caf\u00e9")
        + "\0" + MODERN_HEADERS.replace("eu-west", "=?base64?Y2Fmw6k=?=") + "\0" + js(TOOL))
    put("mcp_inspect", "listen", js(SUBSCRIBE) + "\0MCP-Protocol-Version: 2026-07-28\nMcp-Method: subscriptions/listen\n")
    put("mcp_inspect", "error-response", js(ERROR))
    put("mcp_inspect", "duplicate-key", '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","n\\u0061me":"rm"}}')

    put("strict_json", "initialize", json.dumps(INIT_LEGACY, indent=2))
    put("strict_json", "batch", js([INITIALIZED, TOOLS_LIST, RESULT]))
    put("strict_json", "duplicate-escaped", '{"a":1,"\\u0061":2}')
    put("strict_json", "numbers", '[0,-0,1e400,-1.5e-7,18446744073709551615,-9223372036854775808,1.0]')
    put("strict_json", "deep", "[" * 101 + "]" * 101)
    put("strict_json", "strings", '{"s":"\\ud83d\\ude00 \\u0000 \\n","t":"\u00e9"}  ')


def sse():
    ev = lambda v, i: f"event: message\nid: {i}\ndata: {js(v)}\n\n"
    stream = ": keep-alive\n\n" + ev(RESULT, 1) + "retry: 3000\n\n" + ev(INITIALIZED, 2)
    put("sse", "mcp-stream", b"\x00" + stream.encode())
    put("sse", "mcp-stream-pieces", b"\x13\x01\x05\x02" + stream.encode())
    put("sse", "crlf-split", b"\x12\x06\x01" + b"data: a\r\ndata: b\r\n\r\n: c\r\r\n")
    put("sse", "bom-multiline", b"\x10" + "\ufeffdata: one\ndata: two\nid: x\x00y\nevent: e\n\n".encode())
    put("sse", "small-limit", b"\x01\x08" + b"data: 0123456789abcdef\n\n")


def lists():
    tools = {"jsonrpc": "2.0", "id": 1, "result": {"tools": [
        {"name": "pub-echo", "inputSchema": {"type": "object"}},
        {"name": "secret-admin", "inputSchema": {"type": "object"}},
        {"name": "pub-secret"}, {"name": 7}, {"title": "no name"}], "nextCursor": "x"}}
    resources = {"jsonrpc": "2.0", "id": 2, "result": {"resources": [
        {"uri": "pub://a", "name": "a"}, {"uri": "file:///etc/passwd", "name": "p"}]}}
    templates = {"jsonrpc": "2.0", "id": "3", "result": {"resourceTemplates": [
        {"uriTemplate": "pub://{x}"}, {"uriTemplate": "db://{table}"}]}}
    prompts = {"jsonrpc": "2.0", "id": 4, "result": {"prompts": [{"name": "pub-p"}, {"name": "q"}]}}
    updated = {"jsonrpc": "2.0", "method": "notifications/resources/updated",
               "params": {"uri": "file:///etc/shadow"}}
    ack = {"jsonrpc": "2.0", "method": "notifications/subscriptions/acknowledged",
           "params": {"notifications": {"resourceSubscriptions": ["pub://a", "secret://b", 3]}}}
    put("list_filter", "tools", b"\x00" + js(tools).encode())
    put("list_filter", "resources", b"\x01" + js(resources).encode())
    put("list_filter", "templates", b"\x02" + js(templates).encode())
    put("list_filter", "prompts", b"\x03" + js(prompts).encode())
    put("list_filter", "batch", b"\x00" + js([tools, updated, ack, prompts]).encode())
    put("list_filter", "updated", b"\x00" + js(updated).encode())
    put("list_filter", "ack", b"\x00" + js(ack).encode())


def audit():
    t = "2026-01-01T00:00:00.000Z"
    rec = lambda seq, extra: js({"seq": seq, "prev": "PREV", "time": t, **extra})
    call = {"principal": "client:alice", "service": "everything", "method": "POST",
            "status": 200, "outcome": "ok", "calls": [{"method": "tools/call", "target": "echo",
            "decision": "allow", "rule": "eng"}]}
    gap = {"trail": {"event": "gap", "lost": 3, "from": t, "to": t, "reasons": ["queue full"]}}
    retention = {"trail": {"event": "retention", "deleted": ["audit.jsonl.000001"],
                           "first_kept": {"seq": 0, "prev": "0" * 64}}}
    reopened = {"trail": {"event": "reopened", "reason": "removed", "last_seq_before": 1}}
    lines = "\n".join([rec(0, call), rec(1, gap), rec(2, reopened), rec(3, call)]) + "\n"
    put("audit", "sealed-chain", b"\x01" + lines.encode())
    put("audit", "sealed-rotated", b"\x05" + (rec(2, retention) + "\n").encode()
        + b"\n--8<--\n" + b"\n--8<--\n" + (rec(0, call) + "\n" + rec(1, call) + "\n").encode())
    raw = '{"hash":"' + "a" * 64 + '",' + rec(0, call)[1:].replace("PREV", "0" * 64) + "\n"
    put("audit", "raw-bad-hash", b"\x00" + raw.encode())
    cp = js({"seq": 0, "hash": "a" * 64, "file": "audit.jsonl", "time": t, "key": "AAAA", "sig": "AAAA"})
    put("audit", "raw-with-checkpoint", b"\x00" + raw.encode() + b"\n--8<--\n" + cp.encode() + b"\n")


def policy():
    with open(os.path.join(REPO, "deploy/examples/policy.toml"), "rb") as f:
        put("policy", "deploy-example", f.read())
    put("policy", "readme-example", """
[[allow]]
name = "eng-tools"
principals = ["client:alice", "group:eng", "apikey:ci-bot"]
services = ["everything"]
tools = ["echo", "get-*"]
resources = ["*"]
prompts = ["*"]
rate = "120/min"
arguments = [
  { pointer = "/path", path = "/srv/docs/**" },
  { pointer = "/mode", enum = ["r", "ro"] },
]

[[deny]]
name = "no-deletes"
principals = ["*"]
tools = ["*delete*"]
""" + "\0get-*-x*\0get-sum-xyz")
    put("policy", "glob-only", "\0a*b*c\0aXbYbc")
    put("policy", "pattern", '[[allow]]\nname = "p"\nprincipals = ["*"]\ntools = ["*"]\n'
        'arguments = [{ pointer = "/q", pattern = "^[a-z]+$" }, { pointer = "/n", max = 10 }]\n')


def config():
    for name in ["edge.toml", "connector.toml"]:
        with open(os.path.join(REPO, "deploy/examples", name), "rb") as f:
            put("config", name, (b"\x00" if name == "edge.toml" else b"\x01") + f.read())
    put("config", "edge-dev", b"\x00" + b"""
trust_domain = "underpass.local"
[clients]
listen = "127.0.0.1:8443"
insecure_plaintext = true
[tunnel]
listen = "127.0.0.1:4433"
cert = "edge.crt"
key = "edge.key"
ca = "ca.crt"
[auth]
anonymous = true
[policy]
allow_all = true
[[services]]
name = "everything"
connectors = ["c1"]
""")
    put("config", "connector-stdio", b"\x01" + b"""
name = "c1"
edges = ["127.0.0.1:4433"]
cert = "c1.crt"
key = "c1.key"
ca = "ca.crt"
[[services]]
name = "files"
kind = "stdio"
command = ["npx", "server-everything", "stdio"]
max_processes = 8
idle_timeout_secs = 60
[[services]]
name = "legacy"
url = "http://127.0.0.1:3001/sse"
transport = "sse"
""")


def jwks():
    n = base64.urlsafe_b64encode(b"\xc5" + bytes(range(255))).rstrip(b"=").decode()
    docs = {
        "rsa": {"keys": [{"kty": "RSA", "kid": "r1", "use": "sig", "alg": "RS256", "n": n, "e": "AQAB"}]},
        "ec": {"keys": [{"kty": "EC", "crv": "P-256", "kid": "ec",
                         "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
                         "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]},
        "okp": {"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "ed",
                          "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo", "key_ops": ["verify"]}]},
        "mixed": {"keys": [{"kty": "oct", "kid": "h", "k": "c2VjcmV0"},
                           {"kty": "EC", "crv": "P-384", "kid": "p3", "x": "AA", "y": "AA"},
                           {"kty": "RSA", "kid": "short", "n": "AQAB", "e": "AQAB"},
                           {"kty": "OKP", "crv": "Ed25519", "kid": "enc", "use": "enc",
                            "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]},
        "empty": {"keys": []},
    }
    for name, doc in docs.items():
        put("jwks", name, js(doc))


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def jwt():
    header = {"alg": "EdDSA", "kid": "ed", "typ": "JWT"}
    claims = {"iss": "https://issuer.example", "aud": "https://edge.example/mcp", "sub": "alice",
              "exp": 4102444800, "iat": 1700000000, "scope": "mcp tools",
              "realm": {"groups": ["eng", "ops"]}}
    put("jwt", "signed-good", b"\x01" + js(header).encode() + b"\0" + js(claims).encode())
    put("jwt", "signed-expired", b"\x01" + js(header).encode() + b"\0" + js({**claims, "exp": 1}).encode())
    put("jwt", "signed-crit", b"\x01" + js({**header, "crit": ["exp"]}).encode() + b"\0" + js(claims).encode())
    put("jwt", "signed-no-scope", b"\x01" + js(header).encode() + b"\0" + js({**claims, "scope": "x"}).encode())
    unsigned = b64u(js({"alg": "none"}).encode()) + "." + b64u(js(claims).encode()) + "."
    put("jwt", "alg-none", b"\x00Bearer " + unsigned.encode())
    hs = b64u(js({"alg": "HS256", "kid": "ed"}).encode()) + "." + b64u(js(claims).encode()) + ".c2ln"
    put("jwt", "alg-hs256", b"\x00Bearer " + hs.encode())
    es = b64u(js({"alg": "ES256", "kid": "ec"}).encode()) + "." + b64u(js(claims).encode()) + "." + b64u(bytes(64))
    put("jwt", "es256-bad-sig", b"\x00Bearer " + es.encode())
    put("jwt", "api-key", b"\x00Bearer test")
    put("jwt", "token-in-query", b"\x00\0access_token=abc&x=1")
    put("jwt", "basic", b"\x00Basic YWxpY2U6cHc=")


def bridge():
    script = "\n".join([
        "P1 " + js(INIT_LEGACY),
        "S " + js({"jsonrpc": "2.0", "id": 0, "result": {"protocolVersion": "2025-11-25"}}),
        "P2s " + js(CALL_ECHO),
        "S " + js({"jsonrpc": "2.0", "method": "notifications/progress",
                   "params": {"progressToken": 7, "progress": 1}}),
        "S " + js({"jsonrpc": "2.0", "id": "s1", "method": "sampling/createMessage", "params": {}}),
        "S " + js({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"}),
        "A1",
        "S " + js(RESULT),
        "P3 " + js([TOOLS_LIST, {"jsonrpc": "2.0", "id": "1", "method": "ping"}]),
        "P4 " + js(CANCELLED),
        "S " + js([{"jsonrpc": "2.0", "id": 1, "result": {"tools": []}},
                   {"jsonrpc": "2.0", "id": "1", "result": {}}]),
        "D3", "X1", "C",
    ])
    put("bridge", "session", script)
    put("bridge", "reuse-id", "P1 " + js(TOOLS_LIST) + "\nP2 " + js(TOOLS_LIST) + "\nD1\nP2 "
        + js(TOOLS_LIST) + "\nS " + js({"jsonrpc": "2.0", "id": 1, "result": {}}))


def hkdf_sha256(salt, ikm, info, length):
    import hashlib
    import hmac
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    out, t, i = b"", b"", 1
    while len(out) < length:
        t = hmac.new(prk, t + info + bytes([i]), hashlib.sha256).digest()
        out += t
        i += 1
    return out[:length]


def sealed_id(secret, service, principal, connector, backend_id, nonce):
    """A sealed session id exactly as the edge writes it (edge/src/sessions/seal.rs)."""
    import hashlib
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
    salt = b"underpass/sessions/v1"
    key_id = hkdf_sha256(salt, secret, b"key id", 4)
    key = hkdf_sha256(salt, secret, b"aead", 32)
    header = b"\x01" + key_id
    plain = (bytes([len(service)]) + service.encode()
             + hashlib.sha256(principal.encode()).digest()[:16]
             + bytes([len(connector)]) + connector.encode()
             + struct.pack(">H", len(backend_id)) + backend_id.encode())
    sealed = ChaCha20Poly1305(key).encrypt(nonce, plain, header)
    return b64u(header + nonce + sealed)


def session_id():
    put("session_id", "structured", b"\x01everything\0client:alice\0dc1\0f3a9c0de-7b1e-4c55-9a0e-2d4c1b7e8f60")
    put("session_id", "structured-empty-id", b"\x07svc\0\0dc1\0")
    put("session_id", "garbage", b"\x00not-a-session")
    put("session_id", "padded", b"\x00AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==")
    try:
        for name, secret in [("sealed-key1", bytes([7] * 32)), ("sealed-key2", bytes([8] * 32)),
                             ("sealed-foreign", bytes([9] * 32))]:
            sid = sealed_id(secret, "everything", "client:alice", "dc1", "backend-session-1",
                            bytes(range(12)))
            put("session_id", name, b"\x00" + sid.encode())
    except ImportError:
        print("python cryptography missing: sealed session id seeds not rewritten", file=sys.stderr)


# A P-256 request for spiffe://underpass.local/connector/dc1 (openssl req -newkey ec).
CSR_PEM = """-----BEGIN CERTIFICATE REQUEST-----
MIIBDjCBtAIBADAOMQwwCgYDVQQDDANkYzEwWTATBgcqhkjOPQIBBggqhkjOPQMB
BwNCAATcBQL/IHZ0JT+a+nORz0P3EEK44P/HGenEwrCTo391MpjDVk2jVq1idudj
hjnVSpkl/Ji0JxFPtxcCgTnaBPXgoEQwQgYJKoZIhvcNAQkOMTUwMzAxBgNVHREE
KjAohiZzcGlmZmU6Ly91bmRlcnBhc3MubG9jYWwvY29ubmVjdG9yL2RjMTAKBggq
hkjOPQQDAgNJADBGAiEAhemRoTMMYFoTKzBil/eHNECT501/NWlx1Ku/hcMCsYsC
IQC6LNE06yfvsHURfpKAOtlMmlW4m+WVbqPF3vw7l272lg==
-----END CERTIFICATE REQUEST-----
"""


def enroll():
    claims = {"id": bytes(range(16)), "trust_domain": "underpass.local", "connector": "dc1",
              "edges": ["127.0.0.1:7443", "[::1]:7443"], "server_name": "localhost",
              "ca_sha256": bytes(range(32)), "issuer_kid": bytes(range(8)),
              "not_after": 1800000000, "services": ["billing", "crm"]}
    token = "upt1." + b64u(mp(claims)) + "." + b64u(b"0E\x02\x21" + bytes(range(69)))
    put("enroll", "token", b"\x00" + token.encode())
    put("enroll", "token-garbage", b"\x00upt1.AAAA.BBBB")
    put("enroll", "request", b"\x01" + frame({"token": token, "csr_pem": CSR_PEM}))
    put("enroll", "answer-issued", b"\x01" + frame({"Issued": {
        "chain_pem": "-----BEGIN CERTIFICATE-----\n", "ca_pem": "", "connector": "dc1",
        "trust_domain": "underpass.local", "not_after": 1800000000}}))
    put("enroll", "answer-refused", b"\x01" + frame({"Refused": {"code": "TokenUsed",
                                                                 "reason": "used"}}))
    put("enroll", "csr-pem", b"\x02" + CSR_PEM.encode())
    der = base64.b64decode("".join(CSR_PEM.strip().splitlines()[1:-1]))
    put("enroll", "csr-der", b"\x02" + der)


def federation():
    """List pages as hostile backends write them (whole answers or bare results)."""
    schema = {"type": "object"}
    normal = {"jsonrpc": "2.0", "id": 1, "result": {"tools": [
        {"name": "echo", "inputSchema": schema}, {"name": "blob", "inputSchema": schema},
        {"name": "a__b"}], "nextCursor": "2", "ttlMs": 60000, "cacheScope": "public",
        "resultType": "complete"}}
    dupes = {"tools": [{"name": "echo"}, {"name": "echo"}, {"name": "x"}, {"name": 5},
                       {"title": "unnamed"}, "echo"], "ttlMs": -1}
    control = {"prompts": [{"name": "ok"}, {"name": "bad\nline"}, {"name": "bell\u0007"},
                           {"name": "\u009b31m"}, {"name": ""}], "ttlMs": 1e300}
    long_names = {"tools": [{"name": "t" * 70}, {"name": "t" * 71}, {"name": "t" * 59},
                            {"name": "t" * 60}, {"name": "x" * 1025},
                            {"name": "t" * 51 + "-0123456789ab"}], "ttlMs": 86400001}
    unicode = {"tools": [{"name": "\u00e9cho"}, {"name": "\u65e5\u672c" * 40},
                         {"name": "\U0001f600" * 30}, {"name": "e\u0301"}],
               "cacheScope": "shared"}
    resources = {"resources": [{"uri": "file:///etc/hosts", "name": "h"},
                               {"uri": "underpass://svc/x"}, {"uri": ""},
                               {"uri": "demo://a\u0000b"}, {"uri": "urn:x:y"}],
                 "ttlMs": 1500.5}
    templates = {"resourceTemplates": [{"uriTemplate": "test://x/{id}"},
                                       {"uriTemplate": "a/b//c"}]}
    put("federation", "normal", js(normal))
    put("federation", "duplicates", js(dupes))
    put("federation", "control", js(control))
    put("federation", "long-names", js(long_names))
    put("federation", "unicode", json.dumps(unicode, ensure_ascii=False))
    put("federation", "resources", js(resources))
    put("federation", "templates", js(templates))
    put("federation", "bare-array", js([{"name": "svc"}, {"name": "__"}, {"name": "a"}]))
    put("federation", "uri-text", "demo://resource/static/document/hello.txt")


if __name__ == "__main__":
    for fn in [frames, control, mcp, sse, lists, audit, policy, config, jwks, jwt, bridge,
               session_id, enroll, federation]:
        fn()
    print("seeds written to", CORPUS, file=sys.stderr)
