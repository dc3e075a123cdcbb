#!/usr/bin/env python3
"""A counting proxy for the Docker engine socket, with optional added latency.

    python3 bench/engine_proxy.py --listen /tmp/dm-proxy.sock \
        [--upstream /var/run/docker.sock] [--latency-ms 25] [--log requests.log]

Point a peer at it with DOCKER_HOST=unix:///tmp/dm-proxy.sock. Every HTTP
request the peer sends is counted (method and path, query string dropped,
ids folded to `{id}`), and with --latency-ms each request is held that long
before it is forwarded, as a remote engine's round trip would. Send SIGUSR1
to print the counts so far to stderr; `GET /_proxy/counts` on the proxy
socket itself answers them as JSON and `POST /_proxy/reset` zeroes them, so a
benchmark can read one scenario's count and start the next.

The proxy parses only request lines (`METHOD /path HTTP/1.x`) at the start
of the client's stream and after each request's headers and body
(Content-Length or chunked), so request bodies are never taken for requests.
"""

import argparse
import asyncio
import collections
import json
import os
import re
import signal
import sys

COUNTS: collections.Counter = collections.Counter()
ID = re.compile(r"/(?:[0-9a-f]{12,64}|sha256:[0-9a-f]{64})(?=/|$)")
VERSION = re.compile(r"^/v\d+\.\d+")


def shape(path: str) -> str:
    """`/v1.47/containers/3f2a…/json?all=1` -> `/containers/{id}/json`."""
    path = path.split("?", 1)[0]
    path = VERSION.sub("", path)
    return ID.sub("/{id}", path)


class Request:
    """Reads one HTTP/1.1 request (line, headers, body) from a stream."""

    @staticmethod
    async def read(reader: asyncio.StreamReader) -> tuple[bytes, str, str] | None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        method, path, _ = lines[0].decode("latin-1").split(" ", 2)
        headers = {}
        for line in lines[1:]:
            if b":" in line:
                k, v = line.split(b":", 1)
                headers[k.strip().lower()] = v.strip()
        body = b""
        if b"content-length" in headers:
            body = await reader.readexactly(int(headers[b"content-length"]))
        elif headers.get(b"transfer-encoding", b"").lower() == b"chunked":
            chunks = []
            while True:
                size_line = await reader.readuntil(b"\r\n")
                size = int(size_line.split(b";")[0], 16)
                data = await reader.readexactly(size + 2)
                chunks.append(size_line + data)
                if size == 0:
                    break
            body = b"".join(chunks)
        return head + body, method, path


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        try:
            writer.close()
        except Exception:
            pass


async def handle(client_r, client_w, upstream: str, latency: float, log) -> None:
    try:
        first = await Request.read(client_r)
    except (asyncio.IncompleteReadError, ValueError, ConnectionError):
        client_w.close()
        return
    raw, method, path = first
    if path.startswith("/_proxy/"):
        body = json.dumps({"total": sum(COUNTS.values()), "by_request": dict(COUNTS)}).encode()
        if path.startswith("/_proxy/reset"):
            COUNTS.clear()
        client_w.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                       + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        await client_w.drain()
        client_w.close()
        return
    up_r, up_w = await asyncio.open_unix_connection(upstream)
    back = asyncio.create_task(pipe(up_r, client_w))
    try:
        while True:
            COUNTS[f"{method} {shape(path)}"] += 1
            if log:
                log.write(f"{method} {path}\n")
                log.flush()
            if latency:
                await asyncio.sleep(latency)
            up_w.write(raw)
            await up_w.drain()
            # An upgraded connection (attach, exec) is a raw stream now.
            if b"\r\nupgrade:" in raw.split(b"\r\n\r\n", 1)[0].lower():
                await pipe(client_r, up_w)
                break
            try:
                raw, method, path = await Request.read(client_r)
            except (asyncio.IncompleteReadError, ConnectionError, ValueError):
                break
    finally:
        try:
            up_w.close()
        except Exception:
            pass
        await back


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--listen", required=True, help="the proxy's unix socket path")
    ap.add_argument("--upstream", default="/var/run/docker.sock")
    ap.add_argument("--latency-ms", type=float, default=0.0, help="delay added to every request")
    ap.add_argument("--log", help="append every request line to this file")
    args = ap.parse_args()
    if os.path.exists(args.listen):
        os.unlink(args.listen)
    log = open(args.log, "a") if args.log else None
    server = await asyncio.start_unix_server(
        lambda r, w: handle(r, w, args.upstream, args.latency_ms / 1000.0, log), path=args.listen)
    os.chmod(args.listen, 0o660)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, lambda: print(json.dumps(dict(COUNTS), indent=1), file=sys.stderr))
    print(f"proxy listening on {args.listen} -> {args.upstream}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
