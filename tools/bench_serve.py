"""Benchmark `vla serve` on loopback: round-trip latency for 1 and for N concurrent clients, then fuzz it.

Without --policy the server wraps an instant stand-in policy (zeros [H, A]), so the numbers are the transport's own
cost: msgpack, websocket framing, the worker-thread hop. With --policy they include inference. The fuzz sends
malformed messages (random bytes, truncated and bit-flipped requests, wrong types, bad array entries), each on its own
connection, and checks that every one gets an actions reply or an error frame followed by an error close code, and
that a good request is still served afterwards.

    python tools/bench_serve.py [--policy RUN] [--requests 200] [--clients 4] [--fuzz 300] [--json]
"""

from __future__ import annotations

import argparse
import json
import platform
import threading
import time

import msgpack
import numpy as np
import websockets
from websockets.sync.client import connect

from vla_sdk.serve.client import PolicyClient
from vla_sdk.serve.server import PolicyServer
from vla_sdk.serve.wire import pack, unpack


class Instant:
    """A stand-in policy: ALOHA-sized (4 cameras, 14-D), answers at once."""

    cameras = ("cam_high", "cam_low", "cam_left_wrist", "cam_right_wrist")
    image_size, horizon, robot, execute, meta = (
        (224, 224),
        50,
        None,
        None,
        {"action_names": [f"j{i}" for i in range(14)]},
    )

    def reset(self, seed):
        pass

    def __call__(self, obs):
        return np.zeros((self.horizon, 14), np.float32)


def _obs(meta: dict, rng) -> dict:
    h, w = meta["image_size"]
    images = {c: rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for c in meta["cameras"]}
    return {"images": images, "state": rng.normal(0, 0.1, meta["action_dim"]), "instruction": "pick up the cube"}


def _stats(ms: list[float]) -> dict:
    a = np.asarray(ms)
    return {
        "n": len(a),
        "p50_ms": round(float(np.percentile(a, 50)), 3),
        "p99_ms": round(float(np.percentile(a, 99)), 3),
    }


def latency(url: str, requests: int, clients: int) -> dict:
    times: list[list[float]] = [[] for _ in range(clients)]

    def worker(k: int):
        rng = np.random.default_rng(k)
        with PolicyClient(url) as c:
            obs = _obs(c.metadata, rng)
            c(obs)  # warm-up (the first inference compiles)
            for _ in range(requests):
                t = time.perf_counter()
                c(obs)
                times[k].append((time.perf_counter() - t) * 1000)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    return {"clients": clients, **_stats(sum(times, [])), "requests_per_s": round(clients * requests / wall, 1)}


def _malformed(good: bytes, meta: dict, rng) -> bytes | str:
    kind = int(rng.integers(7))
    if kind == 0:
        return rng.bytes(int(rng.integers(1, 2048)))
    if kind == 1:
        return good[: int(rng.integers(1, len(good)))]
    if kind == 2:
        b = bytearray(good)
        for i in rng.integers(0, len(b), 8):
            b[i] ^= 1 << int(rng.integers(8))
        return bytes(b)
    if kind == 3:
        wrong = [None, 3, "obs", [1, 2], {"images": 1}, {"images": {}, "state": "x"}]
        return pack(wrong[int(rng.integers(len(wrong)))])
    if kind == 4:
        bad = {
            b"__ndarray__": True,
            b"data": rng.bytes(16),
            b"dtype": str(rng.choice(["|O", "<f8", "V4", "zz"])),
            b"shape": [int(rng.integers(-3, 9))],
        }
        return msgpack.packb({"images": {meta["cameras"][0]: bad}, "state": [0.0], "prompt": "x"}, use_bin_type=True)
    if kind == 5:
        return "a text frame"
    return msgpack.packb([[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]], use_bin_type=True)


def fuzz(url: str, n: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    with PolicyClient(url) as c:
        meta = c.metadata
    good = pack({k if k != "instruction" else "prompt": v for k, v in _obs(meta, rng).items()})
    outcomes: dict[str, int] = {}
    for _ in range(n):
        with connect(url, max_size=None) as ws:
            ws.recv(timeout=30)
            ws.send(_malformed(good, meta, rng))
            try:
                reply = ws.recv(timeout=30)
                if isinstance(reply, bytes):
                    assert "actions" in unpack(reply), "a binary reply without actions"
                    key = "served"
                else:
                    ws.recv(timeout=30)
                    raise AssertionError("the connection stayed open after an error frame")
            except websockets.ConnectionClosed:
                assert ws.close_code in (1003, 1007, 1008, 1009, 1011), ws.close_code
                key = f"closed {ws.close_code}"
            outcomes[key] = outcomes.get(key, 0) + 1
    with PolicyClient(url) as c:  # still serving
        c(_obs(meta, rng))
    return {"messages": n, "outcomes": dict(sorted(outcomes.items())), "still_serving": True}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--policy", help="a run, checkpoint or artifact (default: an instant ALOHA-sized stand-in)")
    ap.add_argument("--requests", type=int, default=200, help="timed requests per client")
    ap.add_argument("--clients", type=int, default=4, help="concurrent clients of the second measurement")
    ap.add_argument("--fuzz", type=int, default=300, help="malformed messages to send")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.policy:
        from vla_sdk.policy import Policy

        policy = Policy.load(args.policy)
    else:
        policy = Instant()
    with PolicyServer(policy, port=0, rate_limit=0, max_message_bytes=64 * 2**20) as server:
        out = {
            "machine": f"{platform.machine()} {platform.processor() or ''} ({platform.python_version()})".strip(),
            "policy": args.policy or "instant stand-in (4 cameras 224x224, 14-D)",
            "one_client": latency(server.url, args.requests, 1),
            "concurrent": latency(server.url, args.requests, args.clients),
            "fuzz": fuzz(server.url, args.fuzz),
        }
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(f"`vla serve` on loopback; {out['machine']}; policy: {out['policy']}\n")
    print("| clients | requests | p50 ms | p99 ms | requests/s |\n|---|---|---|---|---|")
    for r in (out["one_client"], out["concurrent"]):
        print(f"| {r['clients']} | {r['n']} | {r['p50_ms']} | {r['p99_ms']} | {r['requests_per_s']} |")
    f = out["fuzz"]
    print(f"\nfuzz: {f['messages']} malformed messages -> {f['outcomes']}; still serving: {f['still_serving']}")


if __name__ == "__main__":
    main()
