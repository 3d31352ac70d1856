"""`vla serve`: openpi's own client against the server on real loopback sockets, with a real (tiny) trained policy."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
import websockets
from websockets.sync.client import connect

from vla_sdk.errors import UsageError
from vla_sdk.serve.client import PolicyClient, ServerError
from vla_sdk.serve.server import PolicyServer, TokenBucket
from vla_sdk.serve.wire import WireError, pack, unpack

openpi = pytest.importorskip(
    "openpi_client.websocket_client_policy",
    reason="openpi-client not installed (pip install --no-deps openpi-client: it pins numpy<2, jax needs numpy>=2)",
)

# openpi-client 0.1.2 connects without a context manager, which websockets 17 warns about (their code, not ours)
pytestmark = pytest.mark.filterwarnings("ignore:connect\\(\\) must be used as a context manager:DeprecationWarning")


def _obs(meta: dict, k: int, channel_first: bool = False) -> dict:
    """An openpi request for the server's metadata ``meta``: its cameras at its size, a state, a prompt."""
    rng = np.random.default_rng(k)
    h, w = meta["image_size"]
    images = {c: rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for c in meta["cameras"]}
    if channel_first:
        images = {c: np.ascontiguousarray(v.transpose(2, 0, 1)) for c, v in images.items()}
    state = rng.normal(0, 0.1, meta["action_dim"])
    return {"images": images, "state": state, "prompt": "pick up the cube"}


@pytest.fixture(scope="module")
def served(fr3_policy):
    from vla_sdk.policy import Policy

    server = PolicyServer(Policy.load(fr3_policy / "run"), port=0).start()
    yield server
    server.stop()


class Fake:
    """A Policy-protocol object that takes ``delay`` seconds per call and returns zeros [4, 2]."""

    cameras, image_size, horizon, robot, execute, meta = ("cam",), (8, 8), 4, None, None, {"action_names": ["a", "b"]}

    def __init__(self, delay: float = 0.0):
        self.delay = delay

    def reset(self, seed, calls=0):
        pass

    def __call__(self, obs):
        time.sleep(self.delay)
        return np.zeros((4, 2), np.float32)


FAKE_OBS = {"images": {"cam": np.zeros((8, 8, 3), np.uint8)}, "state": np.zeros(2), "prompt": "x"}


def _error(ws) -> tuple[str, int]:
    """The text frame the server sends on an error, and the close code that follows it."""
    text = ws.recv(timeout=30)
    assert isinstance(text, str), text
    with pytest.raises(websockets.ConnectionClosed):
        ws.recv(timeout=30)
    return text, ws.close_code


def test_openpi_client_gets_the_local_policys_actions(served, fr3_policy):
    from vla_sdk.policy import Policy

    local = Policy.load(fr3_policy / "run")  # same seed, same call sequence: same sampling noise
    client = openpi.WebsocketClientPolicy(host="127.0.0.1", port=served.port)
    meta = client.get_server_metadata()
    assert meta["server"] == "vla-sdk" and meta["robot"] == "fr3"
    assert meta["cameras"] == list(local.cameras) and meta["horizon"] == local.horizon and meta["execute"] == 3
    served.policy.reset(0)
    for k in range(3):
        reply = client.infer(_obs(meta, k, channel_first=k == 2))  # openpi's ALOHA clients send [3, h, w]
        want = local({**_obs(meta, k), "instruction": "pick up the cube"})
        assert reply["actions"].shape == (local.horizon, 8)
        np.testing.assert_allclose(reply["actions"], want, atol=1e-6)
        assert reply["server_timing"]["infer_ms"] > 0
        assert ("prev_total_ms" in reply["server_timing"]) == (k > 0)


def test_the_sdk_client_drives_a_policy_runner(served, fr3_policy):
    from vla_sdk.embodiment import load_embodiment
    from vla_sdk.policy import Policy
    from vla_sdk.runner import PolicyRunner, RunnerConfig

    local = Policy.load(fr3_policy / "run")
    with PolicyClient(served.url) as remote:
        assert (remote.cameras, remote.image_size, remote.horizon) == (local.cameras, local.image_size, local.horizon)
        assert remote.robot == "fr3" and remote.execute == 3
        actions = []
        for policy in (remote, local):
            policy.reset(7)
            runner = PolicyRunner(policy, load_embodiment("fr3"), 15.0, RunnerConfig(max_joint_step=10.0))
            obs = {**_obs(remote.metadata, 0), "instruction": "pick up the cube"}
            del obs["prompt"]
            runner.reset(obs)
            actions.append(np.stack([runner.act(obs) for _ in range(4)]))  # two chunks (execute 3)
        np.testing.assert_allclose(actions[0], actions[1], atol=1e-6)


def test_each_connection_has_its_own_noise_stream(served, fr3_policy):
    """Two clients whose calls interleave each get what a local policy after reset(its seed) gives: one client's
    calls or resets do not move another's sampling noise."""
    from vla_sdk.policy import Policy

    local = Policy.load(fr3_policy / "run")
    obs = {**_obs(served.metadata, 0), "instruction": "pick up the cube"}
    del obs["prompt"]
    want = {}
    for seed in (0, 5):
        local.reset(seed)
        want[seed] = [local(obs) for _ in range(3)]
    with PolicyClient(served.url) as a, PolicyClient(served.url) as b:
        a.reset(5)  # b never resets: seed 0, as a fresh local policy
        got = {0: [], 5: []}
        for _ in range(3):
            got[5].append(a(obs))
            got[0].append(b(obs))
    for seed in (0, 5):
        np.testing.assert_allclose(np.stack(got[seed]), np.stack(want[seed]), atol=1e-6)
    assert np.abs(want[0][0] - want[5][0]).max() > 1e-4  # the seeds do give different noise


def test_a_bad_observation_gets_an_error_frame_naming_the_field_and_the_server_serves_on(served):
    policy = served.policy
    good = _obs(served.metadata, 0)
    bad = {
        "camera": {**good, "images": {policy.cameras[0]: good["images"][policy.cameras[0]]}},
        "state": {**good, "state": np.zeros(3)},
        "images[": {**good, "images": {c: v.astype(np.float32) for c, v in good["images"].items()}},
        "prompt": {k: v for k, v in good.items() if k != "prompt"},
    }
    for field, request in bad.items():
        with connect(served.url) as ws:
            assert unpack(ws.recv(timeout=30))["server"] == "vla-sdk"  # the metadata comes first
            ws.send(pack(request))
            text, code = _error(ws)
            assert field in text and "bad observation" in text and code == 1007, (field, text, code)
    with connect(served.url) as ws:  # not msgpack, and a text frame
        ws.recv(timeout=30)
        ws.send(b"\xc1 not msgpack")
        assert _error(ws)[1] == 1007
    with connect(served.url) as ws:
        ws.recv(timeout=30)
        ws.send("hello")
        assert _error(ws)[1] == 1003
    client = openpi.WebsocketClientPolicy(host="127.0.0.1", port=served.port)  # openpi raises the text frame
    with pytest.raises(RuntimeError, match="field 'state': expected float\\[8\\], got float64\\[3\\]"):
        client.infer(bad["state"])
    client = openpi.WebsocketClientPolicy(host="127.0.0.1", port=served.port)  # the next client is served
    assert client.infer(good)["actions"].shape == (policy.horizon, 8)


def test_health_check(served):
    with urllib.request.urlopen(f"http://127.0.0.1:{served.port}/healthz", timeout=30) as r:
        assert r.status == 200 and r.read() == b"OK\n"


def test_a_non_loopback_bind_needs_a_token_and_clients_must_send_it():
    with pytest.raises(UsageError, match="--token"):
        PolicyServer(Fake(), host="0.0.0.0", port=0)
    from vla_sdk.cli import main

    assert main(["serve", "no/such/run", "--host", "0.0.0.0"]) == 2  # refused before anything loads
    with PolicyServer(Fake(), host="0.0.0.0", port=0, token="s3cret") as server:
        port = server.port
        with pytest.raises(websockets.InvalidStatus, match="401"):
            openpi.WebsocketClientPolicy(host="127.0.0.1", port=port)
        with pytest.raises(ServerError, match="401"):
            PolicyClient(f"ws://127.0.0.1:{port}", token="wrong")
        client = openpi.WebsocketClientPolicy(host="127.0.0.1", port=port, api_key="s3cret")
        assert client.infer(FAKE_OBS)["actions"].shape == (4, 2)
        with PolicyClient(f"ws://127.0.0.1:{port}", token="s3cret") as c:
            assert c({**FAKE_OBS, "instruction": "x"}).shape == (4, 2)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=30) as r:  # no token needed
            assert r.status == 200


def test_a_slow_inference_does_not_stall_other_connections():
    with PolicyServer(Fake(delay=2.0), port=0) as server:
        slow = PolicyClient(server.url)
        t = threading.Thread(target=slow, args=({**FAKE_OBS, "instruction": "x"},))
        t.start()
        time.sleep(0.3)  # the slow call is in the worker now
        t0 = time.monotonic()
        with PolicyClient(server.url) as other:  # handshake + metadata while the worker is busy
            assert other.horizon == 4
        with urllib.request.urlopen(f"{server.url.replace('ws', 'http')}/healthz", timeout=30) as r:
            assert r.status == 200
        assert time.monotonic() - t0 < 1.0
        t.join()
        slow.close()


def test_the_token_bucket_refills_at_its_rate_and_holds_at_most_its_burst():
    now = [0.0]
    bucket = TokenBucket(rate=5, burst=5, clock=lambda: now[0])  # a fake clock: exact, whatever the machine's load
    assert [bucket.take() for _ in range(6)] == [True] * 5 + [False]
    now[0] += 0.2  # one token back
    assert bucket.take() and not bucket.take()
    now[0] += 100.0  # refills to the burst, not beyond
    assert sum(bucket.take() for _ in range(20)) == 5


def test_rate_limit_and_message_size():
    # Not timing-dependent: a flood of 40 requests against 2/s (burst 2) is refused within the first few, and the
    # count served is checked against the bound the measured time allows (burst + rate x elapsed), not a guess of it.
    rate = 2
    with PolicyServer(Fake(), port=0, rate_limit=rate, max_message_bytes=4096) as server:
        with connect(server.url) as ws:
            ws.recv(timeout=30)
            t0 = time.monotonic()
            for _ in range(40):
                ws.send(pack(FAKE_OBS))
            served = 0
            while isinstance(msg := ws.recv(timeout=30), bytes):
                assert unpack(msg)["actions"].shape == (4, 2)
                served += 1
            elapsed = time.monotonic() - t0
            assert rate <= served <= rate + rate * elapsed + 1, (served, elapsed)
            assert "rate limit" in msg and "2 requests per second" in msg, msg
            with pytest.raises(websockets.ConnectionClosed):
                ws.recv(timeout=30)
            assert ws.close_code == 1008
        with connect(server.url) as ws:
            ws.recv(timeout=30)
            ws.send(pack({**FAKE_OBS, "images": {"cam": np.zeros((64, 64, 3), np.uint8)}}))
            with pytest.raises(websockets.ConnectionClosed):
                ws.recv(timeout=30)
            assert ws.close_code == 1009  # too big (websockets closes with the reason; no text frame)
        with PolicyClient(server.url) as c:  # the server serves on
            assert c({**FAKE_OBS, "instruction": "x"}).shape == (4, 2)


def _good_client_loop(url: str, stop: threading.Event, out: dict) -> None:
    """Requests until ``stop``, recording round trips (s) and errors: the well-formed client beside an abuser."""
    try:
        with PolicyClient(url, timeout=10) as c:
            while not stop.is_set():
                t = time.monotonic()
                assert c({**FAKE_OBS, "instruction": "x"}).shape == (4, 2)
                out["rt"].append(time.monotonic() - t)
                time.sleep(0.01)
    except Exception as e:  # noqa: BLE001 - reported by the test
        out["errors"].append(repr(e))


def test_slowloris_connections_are_closed_after_the_timeouts_while_a_good_client_is_served():
    import socket

    with PolicyServer(Fake(), port=0, idle_timeout=0.5, handshake_timeout=0.5) as server:
        stop, good = threading.Event(), {"rt": [], "errors": []}
        worker = threading.Thread(target=_good_client_loop, args=(server.url, stop, good))
        worker.start()
        try:
            t0 = time.monotonic()
            silent_tcp = socket.create_connection(("127.0.0.1", server.port), timeout=10)  # never sends a byte
            with connect(server.url) as silent, connect(server.url) as dribbler:
                silent.recv(timeout=30), dribbler.recv(timeout=30)  # metadata
                # a masked binary frame announcing 1000 bytes, then a byte every 0.1 s: no message ever completes
                frame = b"\x82\xfe" + (1000).to_bytes(2, "big") + b"\0\0\0\0" + b"\x80" * 30

                def dribble_bytes():
                    for i in range(len(frame)):
                        try:
                            dribbler.socket.send(frame[i : i + 1])
                        except OSError:  # closed by the server (the test checks how)
                            return
                        time.sleep(0.1)

                dribble = threading.Thread(target=dribble_bytes)
                dribble.start()
                for ws in (silent, dribbler):
                    text, code = _error(ws)
                    assert "idle" in text and "0.5 s" in text and code == 1008, (text, code)
                assert 0.4 < time.monotonic() - t0 < 5.0
                dribble.join()
            assert silent_tcp.recv(1024) == b""  # dropped at the handshake timeout (no websocket to carry a frame)
            assert time.monotonic() - t0 < 5.0
            silent_tcp.close()
        finally:
            stop.set()
            worker.join()
    assert not good["errors"] and len(good["rt"]) > 20, good["errors"]
    assert max(good["rt"]) < 1.5  # served throughout: never held for a slow-loris's close (2 s) or idle wait


def test_malformed_messages_of_each_kind_get_an_error_frame_and_the_server_serves_on():
    import msgpack

    good = FAKE_OBS
    malformed = {
        "random bytes": (bytes(range(256)) * 4, "not a msgpack message"),
        "truncated": (pack(good)[:-20], "not a msgpack message"),
        "not a map": (pack([1, 2]), "must be a map"),
        "images not a map": (pack({**good, "images": 3}), "field 'images'"),
        "missing camera": (pack({**good, "images": {}}), "no camera 'cam'"),
        "image dtype": (pack({**good, "images": {"cam": np.zeros((8, 8, 3), np.float32)}}), "float32[8, 8, 3]"),
        "image shape": (pack({**good, "images": {"cam": np.zeros((8, 8), np.uint8)}}), "uint8[8, 8]"),
        "state shape": (
            pack({**good, "state": np.zeros(3, np.int64)}),
            "field 'state': expected float[2], got int64[3]",
        ),
        "state dtype": (pack({**good, "state": np.zeros(2, bool)}), "field 'state': expected float[2], got bool[2]"),
        "state strings": (pack({**good, "state": ["a", "b"]}), "field 'state': expected float[2], got a list of 2"),
        "state missing": (pack({k: v for k, v in good.items() if k != "state"}), "field 'state': missing"),
        "state NaN": (pack({**good, "state": np.full(2, np.nan)}), "NaN"),
        "prompt type": (pack({**good, "prompt": 7}), "field 'prompt': expected a string, got an int"),
        "prompt too long": (pack({**good, "prompt": "x" * 70_000}), "field 'prompt': 70000 characters"),
        "object array": (
            msgpack.packb(
                {"images": {"cam": {b"__ndarray__": True, b"data": b"\0" * 8, b"dtype": "|O", b"shape": [1]}}},
                use_bin_type=True,
            ),
            "not allowed",
        ),
        "deep nesting": (b"\x91" * 5000 + b"\xc0", "nests too deeply"),
        "too many items": (b"\xdd" + (2**16 + 1).to_bytes(4, "big") + b"\xc0" * (2**16 + 1), "more than 65536 entries"),
        "reset seed": (pack({"__reset__": "x"}), "expected an int seed"),
    }
    with PolicyServer(Fake(), port=0, max_message_bytes=2**20) as server:
        for kind, (message, says) in malformed.items():
            with connect(server.url, max_size=None) as ws:
                ws.recv(timeout=30)
                ws.send(message)
                text, code = _error(ws)
                assert "bad observation" in text and says in text and code == 1007, (kind, text, code)
        with connect(server.url) as ws:
            ws.recv(timeout=30)
            ws.send(pack({**good, "state": np.zeros(100_000)}))  # big (800 kB: decoded off the event loop), wrong
            assert "got float64[100000]" in _error(ws)[0]
        with connect(server.url) as ws:
            ws.recv(timeout=30)
            ws.send(b"\0" * (2**20 + 1))  # over the size limit
            with pytest.raises(websockets.ConnectionClosed):
                ws.recv(timeout=30)
            assert ws.close_code == 1009 and "exceeds" in ws.close_reason
        with PolicyClient(server.url) as c:
            assert c({**good, "instruction": "x"}).shape == (4, 2)


def test_the_connection_cap_refuses_clearly_and_frees_a_slot_on_close():
    with PolicyServer(Fake(), port=0, max_connections=2) as server:
        a, b = PolicyClient(server.url), PolicyClient(server.url)
        with pytest.raises(
            ServerError, match="HTTP 503 vla serve: too many connections \\(2 open.*--max-connections is 2"
        ):
            PolicyClient(server.url)
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/healthz", timeout=30) as r:  # still answered
            assert r.status == 200
        assert a({**FAKE_OBS, "instruction": "x"}).shape == (4, 2)  # the open ones are served
        b.close()
        deadline = time.monotonic() + 10
        while True:  # the server sees the close within moments
            try:
                c = PolicyClient(server.url)
                break
            except ServerError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        assert c({**FAKE_OBS, "instruction": "x"}).shape == (4, 2)
        assert server.refused >= 1
        a.close(), c.close()


def test_the_sdk_client_reconnects_after_an_idle_close():
    with PolicyServer(Fake(), port=0, idle_timeout=0.3) as server:
        with PolicyClient(server.url) as c:
            obs = {**FAKE_OBS, "instruction": "x"}
            assert c(obs).shape == (4, 2)
            deadline = time.monotonic() + 10
            while c._ws.close_code is None:  # the server closes it as idle
                assert time.monotonic() < deadline
                time.sleep(0.05)
            assert c(obs).shape == (4, 2) and c.reconnects == 1  # nothing lost: the next request reconnects
        with connect(server.url) as ws:  # a raw client sees the error frame
            ws.recv(timeout=30)
            text, code = _error(ws)
            assert "idle" in text and code == 1008


def test_the_wire_format_is_openpis_and_refuses_what_is_not_plain_numbers():
    from openpi_client import msgpack_numpy

    msg = {"a": np.arange(6, dtype=np.int16).reshape(2, 3), "b": np.float32(1.5), "c": [1, "x", None], "d": True}
    for decoded in (msgpack_numpy.unpackb(pack(msg)), unpack(msgpack_numpy.packb(msg))):
        assert decoded["a"].dtype == np.int16 and decoded["a"].tolist() == [[0, 1, 2], [3, 4, 5]]
        assert decoded["b"] == 1.5 and decoded["c"] == [1, "x", None] and decoded["d"] is True
    bad = [
        {b"__ndarray__": True, b"data": b"\0" * 8, b"dtype": "|O", b"shape": [1]},  # object array: pointers
        {b"__ndarray__": True, b"data": b"\0" * 7, b"dtype": "<f8", b"shape": [1]},  # wrong size
        {b"__ndarray__": True, b"data": b"", b"dtype": "<f8", b"shape": [-1]},
        {b"__ndarray__": True, b"data": b"", b"dtype": "V8", b"shape": [0]},
        {b"__npgeneric__": True, b"data": "x", b"dtype": "<f8"},
    ]
    import msgpack

    for entry in bad:
        with pytest.raises(WireError):
            unpack(msgpack.packb({"x": entry}, use_bin_type=True))
    with pytest.raises(TypeError):
        pack({"x": np.array(["a"], dtype=object)})


def test_the_client_imports_no_jax_or_flax():
    code = "import sys, vla_sdk.serve.client; print(sorted(m for m in ('jax', 'flax', 'mujoco') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"


def test_vla_serve_from_the_command_line(fr3_policy):
    proc = subprocess.Popen(
        [sys.executable, "-m", "vla_sdk.cli", "serve", str(fr3_policy / "run"), "--port", "0"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for line in iter(proc.stderr.readline, ""):  # (JAX may warn first)
            if "serving" in line:
                break
        assert "serving" in line and "ws://127.0.0.1:" in line, line
        port = int(line.split("ws://127.0.0.1:")[1].split()[0])
        client = openpi.WebsocketClientPolicy(host="127.0.0.1", port=port)
        meta = client.get_server_metadata()
        assert meta["robot"] == "fr3" and client.infer(_obs(meta, 0))["actions"].shape == (meta["horizon"], 8)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_vla_run_drives_the_sim_from_a_served_policy(served, tmp_path, capsys):
    import json

    from vla_sdk.cli import main

    args = ["run", "--server", served.url, "--task", "fr3/pick_place", "--max-seconds", "1", "--json"]
    assert main([*args, "--video", str(tmp_path / "run.mp4")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["policy"] == "PolicyClient" and out["steps"] > 0 and out["execute"] == 3
    assert main(["run", str(tmp_path), "--server", served.url, "--task", "fr3/pick_place"]) == 2  # one of them
