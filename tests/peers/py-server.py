#!/usr/bin/env python3
"""A small MCP server on the official Python SDK (`mcp` 2.3 MCPServer) that speaks BOTH eras on one
Streamable HTTP endpoint: 2025-11-25 and older (initialize + Mcp-Session-Id) and 2026-07-28 (stateless,
server/discover). server-everything (TS SDK 1.x) only speaks the legacy era, so this is the modern-era
backend. It mirrors the server-everything names the smoke clients use:
  tools: echo(message) -> "Echo: <message>"; trigger-long-running-operation(duration=10, steps=5) with
  notifications/progress when the request carries a progressToken; get-sum(a, b)
  resource: demo://resource/static/document/hello.txt (text/plain)

    target/peers/venv/bin/python py-server.py [--host 127.0.0.1] [--port 3002] [--stateless]
Endpoint: http://HOST:PORT/mcp. Logs go to stderr.
"""
import argparse

import anyio
from mcp.server import MCPServer
from mcp.server.mcpserver import Context

mcp = MCPServer("underpass-py-everything", version="0.1.0", instructions="Underpass test peer (Python SDK).")


@mcp.tool(name="echo", description="Echoes back the input string")
def echo(message: str) -> str:
    return f"Echo: {message}"


@mcp.tool(name="get-sum", description="Returns the sum of two numbers")
def get_sum(a: float, b: float) -> str:
    return f"The sum of {a} and {b} is {a + b}."


@mcp.tool(name="trigger-long-running-operation", description="Long running operation with progress updates")
async def long_running(ctx: Context, duration: float = 10, steps: int = 5) -> str:
    for i in range(1, steps + 1):
        await anyio.sleep(duration / steps)
        await ctx.report_progress(i, steps)
    return f"Long running operation completed. Duration: {duration:g} seconds, Steps: {steps}."


@mcp.resource("demo://resource/static/document/hello.txt", name="hello.txt", mime_type="text/plain")
def hello() -> str:
    return "Hello from the Underpass Python test peer.\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=3002)
    ap.add_argument("--stateless", action="store_true", help="no legacy sessions (stateless_http=True)")
    a = ap.parse_args()
    mcp.run(transport="streamable-http", host=a.host, port=a.port, stateless_http=a.stateless)


if __name__ == "__main__":
    main()
