"""Benchmark `vla serve` on loopback under load and abuse, against the server as users run it (a `vla serve`
subprocess).

1. One client: round-trip p50/p99, and the same minus the server's own inference time (``server_timing.infer_ms``):
   the cost of serving (msgpack, websocket framing, the worker-thread hop).
2. ``--clients`` concurrent clients for ``--seconds`` seconds: round-trip p50/p99, requests/s, errors.
3. ``--malformed`` malformed messages, each on its own connection, ``--abusers`` at a time: random bytes, truncated
   and bit-flipped requests, wrong types, wrong dtypes and shapes, missing keys, bad array entries, text frames, deep
   nesting, oversized arrays and maps, payloads over and just under the size limit, floods past the rate limit, and
   slow-loris connections (TCP only, a dribbled HTTP handshake, an open websocket that never sends, a frame dribbled
   byte by byte). Each must get an error text frame and an error close code (1009: the close frame's reason; a
   connection that never finishes its handshake has no websocket to carry a frame: it must be dropped within the
   handshake timeout). Meanwhile one well-formed client (its own process) keeps requesting at ``--hz``: its latency
   and errors are measured, and the server's RSS is sampled from /proc/PID/status before, during and after.

    python tools/bench_serve.py ARTIFACT --clients 64 --seconds 60 --malformed 10000     # the full run
    python tools/bench_serve.py ARTIFACT --quick                                         # ~30 s smoke run

Well-formed clients pace themselves to ``--hz`` requests per second (default 50, ALOHA's control rate: a robot asks
no faster), which keeps them under the server's default per-connection rate limit of 100/s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import platform
import re
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import msgpack
import numpy as np
import websockets
from websockets.asyncio.client import connect as aconnect

from vla_sdk.serve.wire import pack, unpack

ERROR_CODES = (1003, 1007, 1008, 1009, 1011)


# -- the server, as a subprocess --


class Server:
    """`vla serve POLICY --port 0 ...` in a subprocess; its stderr is drained (and its port read) by a thread."""

    def __init__(self, policy: str, flags: list[str]):
        cmd = [sys.executable, "-m", "vla_sdk.cli", "serve", policy, "--port", "0", *flags]
        self.cmd = cmd
        self.proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        self.lines = 0
        self.tail: list[str] = []
        port: list[int] = []
        up = threading.Event()

        def drain():
            for line in self.proc.stderr:
                self.lines += 1
                self.tail = [*self.tail[-20:], line]
                if not up.is_set() and (m := re.search(r"ws://127\.0\.0\.1:(\d+)", line)) and "serving" in line:
                    port.append(int(m.group(1)))
                    up.set()
            up.set()

        threading.Thread(target=drain, daemon=True).start()
        if not up.wait(300) or not port:
            self.proc.kill()
            raise RuntimeError("vla serve did not start:\n" + "".join(self.tail))
        self.port, self.url = port[0], f"ws://127.0.0.1:{port[0]}"

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class RssSampler:
    def __init__(self, server: Server, every: float = 0.25):
        self.server, self.every, self.samples, self._stop = server, every, [], threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.wait(self.every):
            self.samples.append(self.server.rss_mib())

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()


# -- well-formed clients --


def _request(meta: dict, k: int) -> dict:
    rng = np.random.default_rng(k)
    h, w = meta["image_size"]
    images = {c: rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for c in meta["cameras"]}
    return {"images": images, "state": rng.normal(0, 0.1, meta["action_dim"]), "prompt": "pick up the cube"}


def _stats(ms) -> dict:
    a = np.asarray(ms, dtype=float)
    if not len(a):
        return {"n": 0}
    return {
        "n": len(a),
        "p50_ms": round(float(np.percentile(a, 50)), 2),
        "p99_ms": round(float(np.percentile(a, 99)), 2),
    }


async def _good_client(
    url: str, k: int, deadline: float, hz: float, out: dict, max_requests: int | None = None, stop=None
):
    """Requests until ``deadline`` (time.monotonic) or ``stop.is_set()``, at most ``hz`` per second, on one
    connection; appends to out["rt"] / out["infer"] / out["errors"]."""
    period = 1.0 / hz if hz else 0.0
    try:
        async with aconnect(url, compression=None, max_size=None, open_timeout=60) as ws:
            meta = unpack(await ws.recv())
            msg = pack(_request(meta, k))
            n = 0
            while time.monotonic() < deadline and (max_requests is None or n < max_requests):
                if stop is not None and stop.is_set():
                    break
                t = time.monotonic()
                await ws.send(msg)
                reply = await asyncio.wait_for(ws.recv(), 60)
                rt = (time.monotonic() - t) * 1000
                if isinstance(reply, str) or "actions" not in (r := unpack(reply)):
                    out["errors"].append(str(reply)[:200])
                    return
                out["rt"].append(rt)
                out.setdefault("per_client", {}).setdefault(k, 0)
                out["per_client"][k] += 1
                out["infer"].append(r["server_timing"]["infer_ms"])
                n += 1
                if (left := period - (time.monotonic() - t)) > 0:
                    await asyncio.sleep(left)
    except Exception as e:  # noqa: BLE001 - counted
        out["errors"].append(f"{type(e).__name__}: {e}"[:200])


def clients(url: str, n: int, seconds: float, hz: float, max_requests: int | None = None) -> dict:
    out = {"rt": [], "infer": [], "errors": []}

    async def main():
        deadline = time.monotonic() + seconds
        await asyncio.gather(*(_good_client(url, k, deadline, hz, out, max_requests) for k in range(n)))

    t0 = time.monotonic()
    asyncio.run(main())
    wall = time.monotonic() - t0
    overhead = [r - i for r, i in zip(out["rt"], out["infer"], strict=True)]
    return {
        "clients": n,
        **_stats(out["rt"]),
        "infer": _stats(out["infer"]),
        "overhead": _stats(overhead),
        "requests_per_s": round(len(out["rt"]) / wall, 1),
        "errors": len(out["errors"]),
        "first_errors": out["errors"][:3],
        # no client stalled by the others: the fewest and most requests any one of them got through
        "per_client_min_max": [min(per := list(out.get("per_client", {0: 0}).values())), max(per)],
    }


def _good_client_process(url: str, hz: float, stop, conn) -> None:
    """The well-formed client during the abuse, in its own process (the abusers' Python work must not inflate it)."""
    out = {"rt": [], "infer": [], "errors": []}

    asyncio.run(_good_client(url, 0, time.monotonic() + 3600, hz, out, stop=stop))
    conn.send(out)


# -- malformed messages --

KINDS = [
    "random_bytes",
    "truncated",
    "bit_flips",
    "wrong_type",
    "wrong_dtype_or_shape",
    "missing_key",
    "bad_array_entry",
    "text_frame",
    "deep_nesting",
    "too_many_items",
    "over_size_limit",
    "under_size_limit_bad_field",
    "flood",
    "slowloris_tcp_silent",
    "slowloris_http_dribble",
    "slowloris_ws_silent",
    "slowloris_ws_frame_dribble",
]
SLOW = {k for k in KINDS if k.startswith("slowloris")}
# share of each kind (slow ones hold a connection for a timeout; floods cost ~100 inferences each)
WEIGHTS = {k: 1.0 for k in KINDS} | {k: 0.05 for k in SLOW} | {"flood": 0.01, "over_size_limit": 0.3}


def _malformed(kind: str, good: dict, meta: dict, rng, max_bytes: int) -> bytes | str:
    cam = meta["cameras"][0]
    g = pack(good)
    if kind == "random_bytes":
        return rng.bytes(int(rng.integers(1, 4096)))
    if kind == "truncated":
        return g[: int(rng.integers(1, len(g) - 1))]
    if kind == "bit_flips":  # in the first bytes: map headers, keys, the array entries' headers
        b = bytearray(g)
        for i in rng.integers(0, 40, 4):
            b[i] ^= 1 << int(rng.integers(8))
        return bytes(b)
    if kind == "wrong_type":
        wrong = [None, 3, "obs", [1, 2], {"images": 1}, {"images": {}, "state": "x"}, True, b"raw", 1.5]
        return pack(wrong[int(rng.integers(len(wrong)))])
    if kind == "wrong_dtype_or_shape":
        img = good["images"][cam]
        variants = [
            {"images": {**good["images"], cam: img.astype(np.float32)}},
            {"images": {**good["images"], cam: img[..., 0]}},
            {"images": {**good["images"], cam: img[:, :, :2]}},
            {"state": np.zeros(3, np.int64)},
            {"state": np.zeros((2, 7))},
            {"state": np.zeros(len(good["state"]) + 1)},
            {"state": np.full(len(good["state"]), np.nan)},
            {"state": np.zeros(len(good["state"]), bool)},
            {"state": ["a"] * len(good["state"])},
            {"prompt": 7},
        ]
        return pack({**good, **variants[int(rng.integers(len(variants)))]})
    if kind == "missing_key":
        variants = [
            {k: v for k, v in good.items() if k != "images"},
            {k: v for k, v in good.items() if k != "state"},
            {k: v for k, v in good.items() if k != "prompt"},
            {**good, "images": {c: v for c, v in good["images"].items() if c != cam}},
            {},
        ]
        return pack(variants[int(rng.integers(len(variants)))])
    if kind == "bad_array_entry":
        entry = {
            b"__ndarray__": True,
            b"data": rng.bytes(16),
            b"dtype": str(rng.choice(["|O", "<f8", "V4", "zz", "<c16", "|u1"])),
            b"shape": [int(rng.integers(-3, 9)), 3],
        }
        return msgpack.packb({**good, "images": {cam: entry}}, default=_np_default, use_bin_type=True)
    if kind == "text_frame":
        return json.dumps({"state": [0.0], "prompt": "x"})
    if kind == "deep_nesting":
        return b"\x91" * int(rng.integers(40, 100_000)) + b"\xc0"
    if kind == "too_many_items":
        n = 2**16 + 1
        return b"\xdd" + struct.pack(">I", n) + b"\xc0" * n  # an array of 65,537 nils
    if kind == "over_size_limit":
        return b"\x00" * (max_bytes + 1 + int(rng.integers(2**16)))
    if kind == "under_size_limit_bad_field":  # big but allowed: decoded off the event loop, then refused
        return pack({**good, "state": np.zeros((max_bytes - 2**16) // 8)})
    raise ValueError(kind)


def _np_default(obj):
    if isinstance(obj, np.ndarray):
        return {b"__ndarray__": True, b"data": obj.tobytes(), b"dtype": obj.dtype.str, b"shape": list(obj.shape)}
    raise TypeError(type(obj))


async def _expect_error(ws, flood: bool = False) -> str:
    """After a bad message: an error text frame then an error close code (1009: a close reason only)."""
    text = None
    try:
        while True:
            reply = await asyncio.wait_for(ws.recv(), 60)
            if isinstance(reply, str):
                text = reply
            elif flood and "reset" in unpack(reply):
                pass  # a flood's requests are served until the rate limit
            elif "actions" in unpack(reply):
                return "served (still a well-formed observation)"
            else:
                return "FAIL: a binary reply without actions"
    except websockets.ConnectionClosed:
        pass
    code, reason = ws.close_code, ws.close_reason or ""
    if code not in ERROR_CODES:
        return f"FAIL: close code {code} ({reason})"
    if text is None and code != 1009:
        return f"FAIL: close {code} without an error text frame"
    return f"{code} {'text frame' if text is not None else 'close reason'}"


async def _one(url: str, kind: str, good: dict, meta: dict, rng, max_bytes: int, timeouts: dict) -> str:
    host, port = url[5:].split(":")
    if kind in ("slowloris_tcp_silent", "slowloris_http_dribble"):
        t0 = time.monotonic()
        reader, writer = await asyncio.open_connection(host, int(port))
        request = f"GET / HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n".encode()
        try:
            async with asyncio.timeout(timeouts["handshake"] + 10):
                i = 0
                while True:
                    if kind == "slowloris_http_dribble" and i < len(request):
                        writer.write(request[i : i + 1])
                        i += 1
                    try:
                        data = await asyncio.wait_for(reader.read(4096), 0.5)
                    except TimeoutError:
                        continue
                    if not data:
                        break
        except ConnectionResetError:
            pass
        except TimeoutError:
            return "FAIL: still open after the handshake timeout"
        finally:
            writer.close()
        dt = time.monotonic() - t0
        return (
            "dropped at the handshake timeout" if dt < timeouts["handshake"] + 3 else f"FAIL: dropped after {dt:.1f} s"
        )
    try:
        async with aconnect(url, compression=None, max_size=None, open_timeout=60, close_timeout=5) as ws:
            await ws.recv()  # metadata
            if kind == "slowloris_ws_silent":
                return await _expect_idle(ws, timeouts)
            if kind == "slowloris_ws_frame_dribble":
                frame = b"\x82\xfe" + struct.pack(">H", 1000) + b"\x00\x00\x00\x00"  # masked binary, 1000 B to come

                async def dribble():
                    for b in frame + b"\x80" * 40:
                        ws.transport.write(bytes([b]))
                        await asyncio.sleep(0.25)

                task = asyncio.create_task(dribble())
                try:
                    return await _expect_idle(ws, timeouts)
                finally:
                    task.cancel()
            if kind == "flood":  # cheap requests (resets), far faster than the rate limit
                msg = pack({"__reset__": 0})
                try:
                    for _ in range(1000):
                        await ws.send(msg)
                except websockets.ConnectionClosed:
                    pass
                return await _expect_error(ws, flood=True)
            message = _malformed(kind, good, meta, rng, max_bytes)
            try:
                await ws.send(message)
            except websockets.ConnectionClosed:
                pass  # over the size limit: the server may close before the client finished sending
            return await _expect_error(ws)
    except (OSError, websockets.InvalidHandshake) as e:
        return f"FAIL: {type(e).__name__}: {e}"


async def _expect_idle(ws, timeouts: dict) -> str:
    t0 = time.monotonic()
    outcome = await _expect_error(ws)
    dt = time.monotonic() - t0
    if outcome.startswith("1008") and dt > timeouts["idle"] + 5:
        return f"FAIL: closed after {dt:.1f} s, idle timeout {timeouts['idle']} s"
    return outcome + (" (idle)" if "FAIL" not in outcome else "")


def abuse(url: str, n: int, abusers: int, meta: dict, max_bytes: int, timeouts: dict, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    good = _request(meta, 1)
    w = np.array([WEIGHTS[k] for k in KINDS])
    counts = np.maximum(1, np.floor(w / w.sum() * n)).astype(int)  # every kind at least once
    counts[KINDS.index("random_bytes")] += n - counts.sum()
    plan = [k for k, c in zip(KINDS, counts, strict=True) for _ in range(c)]
    rng.shuffle(plan)
    outcomes: dict[str, dict[str, int]] = {}

    async def main():
        queue = list(reversed(plan))
        slow = asyncio.Semaphore(max(1, abusers // 2))  # at most half the abusers hold slow connections

        async def worker(i: int):
            wrng = np.random.default_rng([seed, i])
            while queue:
                kind = queue.pop()
                if kind in SLOW:
                    async with slow:
                        r = await _one(url, kind, good, meta, wrng, max_bytes, timeouts)
                else:
                    r = await _one(url, kind, good, meta, wrng, max_bytes, timeouts)
                outcomes.setdefault(kind, {}).setdefault(r, 0)
                outcomes[kind][r] += 1

        await asyncio.gather(*(worker(i) for i in range(abusers)))

    t0 = time.monotonic()
    asyncio.run(main())
    failures = sum(c for o in outcomes.values() for r, c in o.items() if r.startswith("FAIL"))
    return {
        "messages": len(plan),
        "seconds": round(time.monotonic() - t0, 1),
        "failures": failures,
        "outcomes": {k: outcomes.get(k, {}) for k in KINDS},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("policy", metavar="POLICY", help="a run, checkpoint or artifact, e.g. an int8 .vla")
    ap.add_argument("--clients", type=int, default=64, help="concurrent clients of the load phase (default 64)")
    ap.add_argument("--seconds", type=float, default=60, help="length of the load phase (default 60)")
    ap.add_argument("--single", type=int, default=500, help="requests of the one-client measurement (default 500)")
    ap.add_argument("--malformed", type=int, default=10_000, help="malformed messages (default 10000)")
    ap.add_argument("--abusers", type=int, default=16, help="malformed connections at a time (default 16)")
    ap.add_argument("--hz", type=float, default=50, help="most requests/s of one well-formed client (0: no pause)")
    ap.add_argument("--idle-timeout", type=float, default=3, help="the server's --idle-timeout (default 3 s)")
    ap.add_argument("--handshake-timeout", type=float, default=3, help="the server's --handshake-timeout (default 3)")
    ap.add_argument("--max-message-mb", type=float, default=1, help="the server's --max-message-mb (default 1)")
    ap.add_argument("--quick", action="store_true", help="8 clients for 5 s, 100 requests, 500 malformed messages")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.clients, args.seconds, args.single, args.malformed = 8, 5, 100, 500
    max_bytes = int(args.max_message_mb * 2**20)
    timeouts = {"idle": args.idle_timeout, "handshake": args.handshake_timeout}
    flags = [
        *("--idle-timeout", str(args.idle_timeout), "--handshake-timeout", str(args.handshake_timeout)),
        *("--max-message-mb", str(args.max_message_mb)),
    ]
    server = Server(args.policy, flags)
    try:
        out = {
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
            "policy": args.policy,
            "server": " ".join(["vla", *server.cmd[3:]]),
            "rss_mib": {"started": round(server.rss_mib(), 1)},
        }
        clients(server.url, 1, 600, 0, max_requests=3)  # warm-up: the first inference compiles
        out["rss_mib"]["warm"] = round(server.rss_mib(), 1)
        out["one_client"] = clients(server.url, 1, 600, args.hz, max_requests=args.single)
        with RssSampler(server) as load_rss:
            out["concurrent"] = clients(server.url, args.clients, args.seconds, args.hz)
        out["rss_mib"]["load_max"] = round(max(load_rss.samples, default=float("nan")), 1)
        time.sleep(2)
        out["rss_mib"]["before_abuse"] = round(server.rss_mib(), 1)
        ctx = mp.get_context("spawn")
        stop, (recv_end, send_end) = ctx.Event(), ctx.Pipe(duplex=False)
        good = ctx.Process(target=_good_client_process, args=(server.url, args.hz, stop, send_end))
        meta = unpack_meta(server.url)
        with RssSampler(server) as abuse_rss:
            good.start()
            time.sleep(2)
            out["abuse"] = abuse(server.url, args.malformed, args.abusers, meta, max_bytes, timeouts)
            stop.set()
            g = recv_end.recv()
            good.join(timeout=30)
        out["rss_mib"]["abuse_max"] = round(max(abuse_rss.samples, default=float("nan")), 1)
        time.sleep(args.idle_timeout + 3)
        out["rss_mib"]["after_abuse"] = round(server.rss_mib(), 1)
        out["good_client_during_abuse"] = {
            **_stats(g["rt"]),
            "errors": len(g["errors"]),
            "first_errors": g["errors"][:3],
        }
        out["after"] = clients(server.url, 1, 600, args.hz, max_requests=20)
        out["server_alive"] = server.alive()
    finally:
        server.stop()
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(f"`vla serve` on loopback; {out['machine']}; policy {out['policy']}\nserver: {out['server']}\n")
    print("| clients | requests | p50 ms | p99 ms | infer p50 ms | not inference p50/p99 ms | requests/s | errors |")
    print("|---|---|---|---|---|---|---|---|")
    for r in (out["one_client"], out["concurrent"]):
        print(
            f"| {r['clients']} | {r['n']} | {r['p50_ms']} | {r['p99_ms']} | {r['infer']['p50_ms']} | "
            f"{r['overhead']['p50_ms']} / {r['overhead']['p99_ms']} | {r['requests_per_s']} | {r['errors']} |"
        )
    print(f"requests per client, fewest / most: {out['concurrent']['per_client_min_max']}")
    a, g = out["abuse"], out["good_client_during_abuse"]
    print(f"\nmalformed: {a['messages']} in {a['seconds']} s, failures (no error, or the wrong one): {a['failures']}")
    for kind, o in a["outcomes"].items():
        print(f"  {kind}: {o}")
    print(
        f"good client during the abuse: {g['n']} requests, p50 {g.get('p50_ms')} ms, p99 {g.get('p99_ms')} ms, ", end=""
    )
    print(f"errors {g['errors']} {g['first_errors'] or ''}")
    print(
        f"server RSS MiB: {out['rss_mib']}; alive after: {out['server_alive']}, after: {out['after']['errors']} errors"
    )


def unpack_meta(url: str) -> dict:
    async def get():
        async with aconnect(url, compression=None) as ws:
            return unpack(await ws.recv())

    return asyncio.run(get())


if __name__ == "__main__":
    main()
