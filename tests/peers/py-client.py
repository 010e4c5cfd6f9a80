#!/usr/bin/env python3
"""MCP test client built on the official Python SDK (`mcp` 2.3, `mcp.Client` over
`mcp.client.streamable_http.streamable_http_client`). Used by the Underpass end-to-end tests.

    target/peers/venv/bin/python py-client.py <url> [smoke] [--message=TEXT] [--resource=URI]
        [--duration=S] [--steps=N] [--mode=auto|legacy|2026-07-28] [--no-terminate]

Prints ONE JSON object on stdout and exits 0; on failure prints the error on stderr and exits 1.
--mode: `auto` (default; probes `server/discover`, falls back to `initialize` on a legacy server),
`legacy` (initialize handshake only), or `2026-07-28` (stateless modern era, no probe).
Environment:
  UNDERPASS_TEST_HEADERS  JSON object of extra HTTP headers sent on every request
  UNDERPASS_CA_FILE       PEM CA bundle used (instead of the system roots) to verify HTTPS
  UNDERPASS_CLIENT_CERT   PEM client certificate (chain) for mutual TLS, with
  UNDERPASS_CLIENT_KEY    its PEM private key
  SSL_CERT_FILE           honoured by httpx2 when UNDERPASS_CA_FILE is not set
"""
from __future__ import annotations

import base64
import json
import os
import ssl
import sys
import traceback

import anyio
import httpx2
from mcp import Client
from mcp.types import Implementation
from mcp.client.streamable_http import streamable_http_client

USAGE = ("usage: py-client.py <url> [smoke] [--message=TEXT] [--resource=URI] [--duration=S] [--steps=N] "
         "[--mode=auto|legacy|2026-07-28] [--no-terminate]")


def parse_args(argv: list[str]) -> tuple[str, str, dict]:
    opts = {"message": "hello from py-client", "resource": None, "duration": 2, "steps": 4,
            "mode": "auto", "terminate": True}
    pos = []
    for a in argv:
        if not a.startswith("--"):
            pos.append(a)
            continue
        k, _, v = a[2:].partition("=")
        if k == "message":
            opts["message"] = v
        elif k == "resource":
            opts["resource"] = v
        elif k in ("duration", "steps"):
            opts[k] = float(v) if k == "duration" else int(v)
        elif k == "mode":
            opts["mode"] = v
        elif k == "no-terminate":
            opts["terminate"] = False
        else:
            raise SystemExit(f"py-client: unknown option --{k}\n{USAGE}")
    if not pos:
        raise SystemExit(USAGE)
    return pos[0], (pos[1] if len(pos) > 1 else "smoke"), opts


def extra_headers() -> dict[str, str]:
    raw = os.environ.get("UNDERPASS_TEST_HEADERS")
    if not raw:
        return {}
    h = json.loads(raw)
    if not isinstance(h, dict):
        raise ValueError("UNDERPASS_TEST_HEADERS must be a JSON object")
    return {str(k): str(v) for k, v in h.items()}


def tls_verify() -> ssl.SSLContext | bool:
    ca = os.environ.get("UNDERPASS_CA_FILE")
    cert = os.environ.get("UNDERPASS_CLIENT_CERT")
    key = os.environ.get("UNDERPASS_CLIENT_KEY")
    if bool(cert) != bool(key):
        raise ValueError("UNDERPASS_CLIENT_CERT and UNDERPASS_CLIENT_KEY go together")
    if not ca and not cert:
        return True  # httpx2 default: SSL_CERT_FILE / SSL_CERT_DIR, else the system roots
    ctx = ssl.create_default_context(cafile=ca) if ca else ssl.create_default_context()
    if cert:
        ctx.load_cert_chain(cert, key)
    return ctx


def text_of(result) -> str:
    return "\n".join(c.text for c in result.content if getattr(c, "type", None) == "text")


async def smoke(url: str, opts: dict) -> dict:
    session_ids: list[str] = []

    async def on_response(resp: httpx2.Response) -> None:
        sid = resp.headers.get("mcp-session-id")
        if sid and sid not in session_ids:
            session_ids.append(sid)

    http = httpx2.AsyncClient(
        headers=extra_headers(),
        verify=tls_verify(),
        timeout=httpx2.Timeout(30.0, read=300.0),  # the SDK's defaults
        event_hooks={"response": [on_response]},
    )
    out: dict = {"client": "python-sdk"}
    async with http:
        transport = streamable_http_client(url, http_client=http, terminate_on_close=opts["terminate"])
        # cache=None: every request reaches the server (no SEP-2549 client-side caching).
        async with Client(transport, mode=opts["mode"], cache=None,
                          client_info=Implementation(name="underpass-py-client", version="0.1.0")) as client:
            info = client.server_info
            out["protocolVersion"] = client.protocol_version
            out["sessionId"] = session_ids[0] if session_ids else None
            out["serverName"] = info.name if info else None
            out["serverVersion"] = info.version if info else None

            tools = await client.list_tools()
            out["toolNames"] = [t.name for t in tools.tools]

            echo = await client.call_tool("echo", {"message": opts["message"]})
            if echo.is_error:
                raise RuntimeError(f"echo returned isError: {text_of(echo)}")
            out["echo"] = text_of(echo)

            uri = opts["resource"]
            if not uri:
                listed = await client.list_resources()
                out["resourceCount"] = len(listed.resources)
                if not listed.resources:
                    raise RuntimeError("resources/list returned no resources")
                uri = str(listed.resources[0].uri)
            read = await client.read_resource(uri)
            c = read.contents[0]
            out["resourceUri"] = str(c.uri)
            out["resourceMimeType"] = c.mime_type
            if getattr(c, "text", None) is not None:
                out["resourceText"] = c.text
                out["resourceTextLength"] = len(c.text)
            if getattr(c, "blob", None) is not None:
                out["resourceBytes"] = len(base64.b64decode(c.blob))

            progress: list[float] = []

            async def on_progress(p: float, total: float | None, message: str | None) -> None:
                progress.append(p)

            lr = await client.call_tool(
                "trigger-long-running-operation",
                {"duration": opts["duration"], "steps": opts["steps"]},
                read_timeout_seconds=60,
                progress_callback=on_progress,
            )
            if lr.is_error:
                raise RuntimeError(f"long-running tool returned isError: {text_of(lr)}")
            out["progressCount"] = len(progress)
            out["progressValues"] = [int(p) if float(p).is_integer() else p for p in progress]
            out["longRunningResult"] = text_of(lr)
        # Leaving the Client context sends DELETE for the session when terminate_on_close.
        if opts["terminate"] and out.get("sessionId"):
            out["terminated"] = True
    return out


def leaves(e: BaseException) -> list[BaseException]:
    """The innermost exceptions of an (Base)ExceptionGroup tree, for a readable last line."""
    if isinstance(e, BaseExceptionGroup):
        return [leaf for sub in e.exceptions for leaf in leaves(sub)]
    return [e]


def main() -> int:
    url, scenario, opts = parse_args(sys.argv[1:])
    try:
        if scenario != "smoke":
            raise ValueError(f"unknown scenario '{scenario}' (known: smoke)")
        out = anyio.run(smoke, url, opts)
    except BaseException as e:  # noqa: BLE001 - report anything, incl. ExceptionGroup
        if isinstance(e, SystemExit):
            raise
        traceback.print_exception(e, file=sys.stderr)
        for leaf in leaves(e):
            print(f"py-client: {type(leaf).__name__}: {leaf}", file=sys.stderr)
        return 1
    sys.stdout.write(json.dumps(out, ensure_ascii=False) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
