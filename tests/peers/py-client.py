#!/usr/bin/env python3
"""MCP test client built on the official Python SDK (`mcp` 2.3, `mcp.Client` over
`mcp.client.streamable_http.streamable_http_client`). Used by the Underpass end-to-end tests.

    target/peers/venv/bin/python py-client.py <url> [smoke] [--message=TEXT] [--resource=URI]
        [--duration=S] [--steps=N] [--mode=auto|legacy|2026-07-28] [--no-terminate]

    target/peers/venv/bin/python py-client.py <url> loop [--calls=N] [--for-ms=D]
        [--stop-file=PATH] [--timeout-ms=T] [--interval-ms=M] [--tool=echo|sleep] [--sleep-ms=MS]
        [--mode=...]

    target/peers/venv/bin/python py-client.py <url> federated --services=a,b,c [--message=TEXT] [--mode=...]
    target/peers/venv/bin/python py-client.py <url> call --tool=NAME [--args=JSON] [--mode=...]

Prints ONE JSON object on stdout and exits 0; on failure prints the error on stderr and exits 1.
`loop` (for the fault injection tests) makes N tool calls instead (fewer if D ms pass or PATH
appears first), prints one JSON line per call, {"i", "ok", "ms", "kind": "ok" | "error" |
"timeout", "error"?}, then a summary line, and exits 0: every call is bounded by T ms (the
SDK's read timeout, and a harness deadline of T + 2 s around connecting and calling); after a
failed call the next one connects afresh.
`federated` (the edge's federated /mcp) and `call` print what the same scenarios of
ts-client.mjs print (see there), with "client": "py-sdk"; resource URIs printed with str().
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

from contextlib import asynccontextmanager

import anyio
import httpx2
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp.types import DiscoverResult, Implementation
from mcp.client.streamable_http import streamable_http_client

USAGE = ("usage: py-client.py <url> [smoke|loop|federated|call] [--services=a,b] [--args=JSON] [--message=TEXT] [--resource=URI] [--duration=S] [--steps=N] "
         "[--mode=auto|legacy|2026-07-28] [--no-terminate] [--calls=N] [--timeout-ms=T] [--interval-ms=M] "
         "[--tool=echo|sleep] [--sleep-ms=MS] [--for-ms=D] [--stop-file=PATH]")


def parse_args(argv: list[str]) -> tuple[str, str, dict]:
    opts = {"message": "hello from py-client", "resource": None, "duration": 2, "steps": 4,
            "mode": "auto", "terminate": True, "calls": 50, "timeout-ms": 20000,
            "interval-ms": 20, "tool": "echo", "sleep-ms": 100, "for-ms": 0, "stop-file": None,
            "services": [], "args": {}}
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
        elif k in ("calls", "timeout-ms", "interval-ms", "sleep-ms", "for-ms"):
            opts[k] = int(v)
        elif k == "tool":
            opts["tool"] = v
        elif k == "stop-file":
            opts["stop-file"] = v
        elif k == "services":
            opts["services"] = [x for x in v.split(",") if x]
        elif k == "args":
            opts["args"] = json.loads(v or "{}")
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


async def loop(url: str, opts: dict) -> dict:
    """Bounded loop of tool calls for the fault injection tests (see the module doc). A
    session lives in one `async with` (the SDK's task groups must be left where they were
    entered); a failed call ends it and the next call connects afresh."""
    import math

    timeout = opts["timeout-ms"] / 1000
    summary = {"ok": 0, "error": 0, "timeout": 0}
    begun = anyio.current_time()
    until = begun + opts["for-ms"] / 1000 if opts["for-ms"] > 0 else math.inf
    i = 0

    def more() -> bool:
        stopped = opts["stop-file"] is not None and os.path.exists(opts["stop-file"])
        return i < opts["calls"] and anyio.current_time() < until and not stopped

    def emit(line: dict, started: float) -> None:
        line["ms"] = int((anyio.current_time() - started) * 1000)
        summary[line["kind"]] += 1
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()

    while more():
        line: dict = {"i": i}
        started = anyio.current_time()
        try:
            # Bounds connecting; lifted once connected (each call has its own deadline).
            with anyio.CancelScope(deadline=started + timeout + 2) as scope:
                async with httpx2.AsyncClient(
                        headers=extra_headers(), verify=tls_verify(),
                        timeout=httpx2.Timeout(timeout, read=timeout)) as http:
                    transport = streamable_http_client(url, http_client=http, terminate_on_close=False)
                    async with Client(transport, mode=opts["mode"], cache=None, read_timeout_seconds=timeout,
                                      client_info=Implementation(name="underpass-py-client",
                                                                 version="0.1.0")) as client:
                        scope.deadline = math.inf
                        try:
                            while True:
                                if opts["tool"] == "sleep":
                                    args, want = {"ms": opts["sleep-ms"]}, f"slept {opts['sleep-ms']} ms"
                                else:
                                    args, want = {"message": f"py {i}"}, f"echo: py {i}"
                                with anyio.fail_after(timeout + 2):
                                    r = await client.call_tool(opts["tool"], args, read_timeout_seconds=timeout)
                                if r.is_error:
                                    raise RuntimeError(f"isError: {text_of(r)}")
                                if text_of(r) != want:
                                    raise RuntimeError(f"unexpected result: {text_of(r)[:200]}")
                                line.update(ok=True, kind="ok")
                                emit(line, started)
                                i += 1
                                if not more():
                                    break
                                await anyio.sleep(opts["interval-ms"] / 1000)
                                line, started = {"i": i}, anyio.current_time()
                        except BaseException:
                            scope.deadline = anyio.current_time() + 5  # bounds the teardown
                            raise
            if scope.cancelled_caught:
                line.update(ok=False, kind="timeout", error="no end within the deadline")
                emit(line, started)
                i += 1
        except BaseException as e:  # noqa: BLE001 - every way a call can end is reported
            if isinstance(e, (KeyboardInterrupt, SystemExit)):
                raise
            found = leaves(e)
            text = "; ".join(f"{type(x).__name__}: {x}" for x in found)
            timed_out = any(isinstance(x, TimeoutError) for x in found) or "timed out" in text.lower()
            line.update(ok=False, kind="timeout" if timed_out else "error", error=text[:300])
            emit(line, started)
            i += 1
            await anyio.sleep(max(opts["interval-ms"], 50) / 1000)
    return {"client": "python-sdk", "summary": summary}


@asynccontextmanager
async def connected(url: str, opts: dict):
    """A connected Client (the mode of --mode, no client-side cache) and the session ids seen."""
    session_ids: list[str] = []

    async def on_response(resp: httpx2.Response) -> None:
        sid = resp.headers.get("mcp-session-id")
        if sid and sid not in session_ids:
            session_ids.append(sid)

    async with httpx2.AsyncClient(headers=extra_headers(), verify=tls_verify(),
                                  timeout=httpx2.Timeout(30.0, read=300.0),
                                  event_hooks={"response": [on_response]}) as http:
        transport = streamable_http_client(url, http_client=http, terminate_on_close=True)
        async with Client(transport, mode=opts["mode"], cache=None,
                          client_info=Implementation(name="underpass-py-client", version="0.1.0")) as client:
            yield client, session_ids


MAX_PAGES = 1000


async def list_all(fetch, attr: str) -> tuple[list, int]:
    """Every item of a paginated list, following next_cursor until it is absent (more than
    MAX_PAGES pages fail)."""
    items: list = []
    cursor = None
    for pages in range(1, MAX_PAGES + 1):
        page = await fetch(cursor=cursor)
        items.extend(getattr(page, attr))
        if page.next_cursor is None:
            return items, pages
        cursor = page.next_cursor
    raise RuntimeError(f"{attr}: still a nextCursor after {MAX_PAGES} pages")


def error_of(e: BaseException) -> dict:
    return {"error": "; ".join(f"{x}" for x in leaves(e))}


async def federated(url: str, opts: dict) -> dict:
    services = opts["services"]
    async with connected(url, opts) as (client, session_ids):
        info, caps, instructions = client.server_info, client.server_capabilities, client.instructions
        if opts["mode"] == "2026-07-28":
            # Stateless without a probe: the SDK assumes no capabilities; ask server/discover.
            d = DiscoverResult.model_validate(await client.session.send_discover("2026-07-28"))
            caps, instructions = d.capabilities, d.instructions
            stamp = (d.meta or {}).get("io.modelcontextprotocol/serverInfo")
            info = Implementation.model_validate(stamp) if stamp else None
        out: dict = {"client": "py-sdk", "protocolVersion": client.protocol_version,
                     "sessionId": session_ids[0] if session_ids else None,
                     "serverName": info.name if info else None, "instructions": instructions}
        tools, out["toolPages"] = await list_all(client.list_tools, "tools")
        out["toolNames"] = [t.name for t in tools]
        out["calls"] = {}
        for s in services:
            try:
                r = await client.call_tool(f"{s}__echo", {"message": opts["message"]})
                out["calls"][s] = {"error": text_of(r)} if r.is_error else text_of(r)
            except Exception as e:  # noqa: BLE001 - recorded, not fatal
                out["calls"][s] = error_of(e)
        # Lists the server does not advertise are left empty (a plain backend may lack them).
        resources, out["resourcePages"] = (await list_all(client.list_resources, "resources")
                                           if caps.resources else ([], 0))
        out["resourceUris"] = [str(r.uri) for r in resources]
        out["reads"] = {}
        for s in services:
            uri = next((u for u in out["resourceUris"] if u.startswith(f"underpass://{s}/")), None)
            if uri is None:
                continue
            try:
                c = (await client.read_resource(uri)).contents[0]
                if getattr(c, "text", None) is not None:
                    out["reads"][uri] = c.text
                else:
                    out["reads"][uri] = len(base64.b64decode(getattr(c, "blob", "") or ""))
            except Exception as e:  # noqa: BLE001
                out["reads"][uri] = error_of(e)
        templates, _ = (await list_all(client.list_resource_templates, "resource_templates")
                        if caps.resources else ([], 0))
        out["templateUris"] = [str(t.uri_template) for t in templates]
        prompts, out["promptPages"] = (await list_all(client.list_prompts, "prompts")
                                       if caps.prompts else ([], 0))
        out["promptNames"] = [p.name for p in prompts]
        out["prompts"] = {}
        for s in services:
            p = next((p for p in prompts if p.name.startswith(f"{s}__")
                      and not any(a.required for a in (p.arguments or []))), None)
            if p is None:
                continue
            try:
                out["prompts"][p.name] = len((await client.get_prompt(p.name, {})).messages)
            except Exception as e:  # noqa: BLE001
                out["prompts"][p.name] = error_of(e)
    return out


async def call(url: str, opts: dict) -> dict:
    async with connected(url, opts) as (client, _):
        try:
            r = await client.call_tool(opts["tool"], opts["args"])
            out = ({"ok": False, "isError": True, "text": text_of(r)} if r.is_error
                   else {"ok": True, "text": text_of(r)})
        except MCPError as e:
            out = {"ok": False, "error": {"code": e.code, "message": e.message}}
        except Exception as e:  # noqa: BLE001 - a failure that is not a JSON-RPC error
            out = {"ok": False, "error": {"code": None, **error_of(e)}}
            out["error"]["message"] = out["error"].pop("error")
    return out


def leaves(e: BaseException) -> list[BaseException]:
    """The innermost exceptions of an (Base)ExceptionGroup tree, for a readable last line."""
    if isinstance(e, BaseExceptionGroup):
        return [leaf for sub in e.exceptions for leaf in leaves(sub)]
    return [e]


def main() -> int:
    url, scenario, opts = parse_args(sys.argv[1:])
    try:
        if scenario == "smoke":
            out = anyio.run(smoke, url, opts)
        elif scenario == "loop":
            out = anyio.run(loop, url, opts)
        elif scenario == "federated":
            out = anyio.run(federated, url, opts)
        elif scenario == "call":
            out = anyio.run(call, url, opts)
        else:
            raise ValueError(f"unknown scenario '{scenario}' (known: smoke, loop, federated, call)")
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
