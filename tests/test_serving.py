"""`edgecv serve`: TF Serving's REST and gRPC APIs over a built target folder, TFLite and ONNX files;
a matrix of bad requests (each a 4xx with a message, the server answering correct requests after);
graceful SIGTERM; `edgecv bench --serving` merged into the target's report.

Servers run as subprocesses on 127.0.0.1 (free ports), every wait is bounded, every server is
stopped by its test."""

from __future__ import annotations

import base64
import http.client
import io
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("uvicorn", reason="needs the serve extra (uvicorn, starlette, prometheus-client)")
pytest.importorskip("starlette", reason="needs the serve extra")
pytest.importorskip("prometheus_client", reason="needs the serve extra")

REPO = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
MAX_BODY = 1024 * 1024  # --max-body-mb 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class Server:
    """`edgecv serve ARGS` in a subprocess; `stop()` sends SIGTERM and returns the exit code."""

    def __init__(self, args: list, log: Path, name: str, grpc: bool = True, extra=()):
        self.port, self.grpc_port = free_port(), (free_port() if grpc else 0)
        self.name, self.log = name, log
        env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
        cmd = [sys.executable, "-m", "edgecv.cli.main", "serve", *map(str, args), "--host", HOST,
               "--port", str(self.port), "--grpc-port", str(self.grpc_port), "--max-body-mb", "1",
               "--header-timeout", "1", "--body-timeout", "1", *extra]
        self.proc = subprocess.Popen(cmd, stdout=open(log, "w"), stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"edgecv serve exited {self.proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if request("GET", f"/v1/models/{name}", port=self.port)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.5)
        self.stop()
        pytest.fail(f"edgecv serve did not answer within 180 s:\n{log.read_text()[-3000:]}")

    def stop(self, sig=signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode


def request(method: str, path: str, body=None, port: int = 0, headers=None, timeout: float = 60):
    """(status, parsed JSON or raw bytes)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
        conn.request(method, path, data, headers or {"Content-Type": "application/json"})
        r = conn.getresponse()
        raw = r.read()
    finally:
        conn.close()
    try:
        return r.status, json.loads(raw)
    except ValueError:
        return r.status, raw


def raw_exchange(port: int, chunks: list, pause: float = 0.0, wait: float = 10.0) -> bytes:
    """Send `chunks` on a raw socket (pausing between them), then read until the server closes."""
    with socket.create_connection((HOST, port), timeout=wait) as s:
        for i, c in enumerate(chunks):
            if i and pause:
                time.sleep(pause)
            if select.select([s], [], [], 0)[0]:  # the server has answered (and closes): stop sending
                break
            try:
                s.sendall(c)
            except (BrokenPipeError, ConnectionResetError):
                break
        out = b""
        try:
            while True:
                got = s.recv(65536)
                if not got:
                    break
                out += got
        except (socket.timeout, ConnectionResetError):
            pass
        return out


def jpeg_bytes(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=92)
    return buf.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture(scope="module")
def built(tmp_path_factory, tiny_recipe_path):
    """The tiny recipe's cloud-tfserving target folder (report.json, preprocessing.json, tiny_serving/)."""
    from rich.console import Console

    from edgecv.orchestrator.runner import run_build

    out = tmp_path_factory.mktemp("serve-build")
    result = run_build(tiny_recipe_path, ["cloud-tfserving"], out, console=Console(file=open(os.devnull, "w")))
    assert result.exit_code == 0, [o.messages for o in result.outcomes]
    return out / "cloud-tfserving"


@pytest.fixture(scope="module")
def server(built, tmp_path_factory):
    # a long batch timeout so concurrent requests surely share model calls
    s = Server([built], tmp_path_factory.mktemp("log") / "serve.log", "tiny",
               extra=["--batch-timeout-micros", "50000", "--max-batch-size", "8"])
    yield s
    assert s.stop() == 0, s.log.read_text()[-2000:]


@pytest.fixture(scope="module")
def images(tiny_val):
    return tiny_val[0][:6]


def expected(built, pixels):
    from edgecv.runtimes import load_runtime

    with load_runtime(built / "tiny_serving") as rt:
        return rt.predict(pixels)


def test_status_metadata_and_predict_forms(server, built, images):
    from edgecv.data.images import decode_rgb, resize

    p = server.port
    assert request("GET", "/v1/models/tiny", port=p) == (200, {"model_version_status": [
        {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]})
    assert request("GET", "/v1/models/tiny/versions/1", port=p)[0] == 200
    status, meta = request("GET", "/v1/models/tiny/metadata", port=p)
    defs = meta["metadata"]["signature_def"]["signature_def"]
    assert status == 200 and set(defs) == {"serving_default", "serving_encoded"}
    assert defs["serving_default"]["inputs"]["images"]["dtype"] == "DT_UINT8"
    assert [d["size"] for d in defs["serving_default"]["inputs"]["images"]["tensor_shape"]["dim"]] == ["-1", "32", "32", "3"]
    assert defs["serving_encoded"]["inputs"]["image_bytes"]["dtype"] == "DT_STRING"

    want = expected(built, images)
    status, rows = request("POST", "/v1/models/tiny:predict", {"instances": images.tolist()}, port=p)
    assert status == 200 and [r["class_id"] for r in rows["predictions"]] == want["class_id"].tolist()
    assert np.allclose([r["probabilities"] for r in rows["predictions"]], want["probabilities"], atol=1e-5)
    status, cols = request("POST", "/v1/models/tiny/versions/1:predict", {"inputs": {"images": images.tolist()}}, port=p)
    assert status == 200 and cols["outputs"]["class_id"] == want["class_id"].tolist()

    # encoded images of other sizes, decoded and resized in the SavedModel's graph
    blobs = [jpeg_bytes(np.asarray(Image.fromarray(im).resize((45 + 7 * i, 38)))) for i, im in enumerate(images)]
    pixels = np.stack([resize(decode_rgb(b), (32, 32), "center_crop") for b in blobs])
    want = expected(built, pixels)
    status, enc = request("POST", "/v1/models/tiny:predict", {"signature_name": "serving_encoded",
                                                               "instances": [{"b64": b64(b)} for b in blobs]}, port=p)
    assert status == 200 and [r["class_id"] for r in enc["predictions"]] == want["class_id"].tolist()
    status, enc = request("POST", "/v1/models/tiny:predict", {"signature_name": "serving_encoded",
                                                               "inputs": {"image_bytes": [{"b64": b64(b)} for b in blobs]}}, port=p)
    assert status == 200 and enc["outputs"]["class_id"] == want["class_id"].tolist()


def test_grpc_predict_and_metadata(server, built, images):
    grpc = pytest.importorskip("grpc")
    pytest.importorskip("tensorflow_serving", reason="needs tensorflow-serving-api (build and test extras)")
    from tensorflow_serving.apis import get_model_metadata_pb2, predict_pb2, prediction_service_pb2_grpc

    from edgecv._keras import tf

    with grpc.insecure_channel(f"{HOST}:{server.grpc_port}") as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        req = predict_pb2.PredictRequest()
        req.model_spec.name = "tiny"
        req.inputs["images"].CopyFrom(tf.make_tensor_proto(images))
        res = stub.Predict(req, timeout=60)
        assert tf.make_ndarray(res.outputs["class_id"]).tolist() == expected(built, images)["class_id"].tolist()
        assert res.model_spec.version.value == 1 and res.model_spec.signature_name == "serving_default"

        enc = predict_pb2.PredictRequest()
        enc.model_spec.name, enc.model_spec.signature_name = "tiny", "serving_encoded"
        enc.inputs["image_bytes"].CopyFrom(tf.make_tensor_proto([jpeg_bytes(im) for im in images]))
        assert tf.make_ndarray(stub.Predict(enc, timeout=60).outputs["probabilities"]).shape == (len(images), 3)

        meta = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        meta.model_spec.name = "tiny"
        defs = get_model_metadata_pb2.SignatureDefMap()
        stub.GetModelMetadata(meta, timeout=60).metadata["signature_def"].Unpack(defs)
        assert set(defs.signature_def) == {"serving_default", "serving_encoded"}

        bad = predict_pb2.PredictRequest()
        bad.CopyFrom(req)
        bad.inputs["images"].CopyFrom(tf.make_tensor_proto(images.astype(np.float32)))
        with pytest.raises(grpc.RpcError) as e:
            stub.Predict(bad, timeout=60)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "dtype uint8" in e.value.details()
        bad.model_spec.name = "other"
        with pytest.raises(grpc.RpcError) as e:
            stub.Predict(bad, timeout=60)
        assert e.value.code() == grpc.StatusCode.NOT_FOUND


def test_concurrent_requests_are_batched(server, built, images):
    want = expected(built, images[:1])["class_id"].tolist()
    results = []

    def one():
        results.append(request("POST", "/v1/models/tiny:predict", {"instances": images[:1].tolist()}, port=server.port))

    threads = [threading.Thread(target=one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 8 and all(s == 200 and [r["class_id"] for r in b["predictions"]] == want for s, b in results)
    status, text = request("GET", "/monitoring/prometheus/metrics", port=server.port)
    lines = dict(line.rsplit(" ", 1) for line in text.decode().splitlines() if line and not line.startswith("#"))
    calls = float(lines['edgecv_serving_batch_size_count{model="tiny"}'])
    examples = float(lines['edgecv_serving_batch_size_sum{model="tiny"}'])
    assert examples / calls > 1  # some model calls answered several requests
    assert float(lines['edgecv_serving_requests_total{api="predict",code="200",model="tiny",signature="serving_default"}']) >= 8


def _corrupt_jpeg() -> bytes:
    y, x = np.mgrid[0:64, 0:64]
    good = jpeg_bytes(np.stack([x * 4, y * 4, (x + y) * 2], -1).astype(np.uint8))
    return good[:len(good) // 2]  # its header parses; half its scan data is missing


def _huge_png() -> bytes:
    buf = io.BytesIO()
    Image.new("L", (9000, 8000)).save(buf, "PNG")  # 72 megapixels of zeros: ~70 kB
    return buf.getvalue()


PX = np.zeros((1, 32, 32, 3), int).tolist()
PREDICT = "/v1/models/tiny:predict"


def encoded(make):
    return lambda: {"signature_name": "serving_encoded", "instances": [{"b64": b64(make())}]}


# (kind, method, path, body or a function making it, expected status)
BAD_REQUESTS = [
    ("not JSON", "POST", PREDICT, b"{instances: nope", 400),
    ("JSON not an object", "POST", PREDICT, b"[1, 2, 3]", 400),
    ("JSON nested too deeply", "POST", PREDICT, b'{"instances": ' + b"[" * 200000 + b"]" * 200000 + b"}", 400),
    ("both instances and inputs", "POST", PREDICT, {"instances": PX, "inputs": PX}, 400),
    ("neither instances nor inputs", "POST", PREDICT, {"examples": PX}, 400),
    ("empty instances", "POST", PREDICT, {"instances": []}, 400),
    ("wrong shape", "POST", PREDICT, {"instances": np.zeros((1, 31, 32, 3), int).tolist()}, 400),
    ("wrong dtype: strings for pixels", "POST", PREDICT, {"instances": [[["a"] * 3] * 32] * 32}, 400),
    ("value out of uint8 range", "POST", PREDICT, {"instances": np.full((1, 32, 32, 3), 300).tolist()}, 400),
    ("fractional pixel values", "POST", PREDICT, {"instances": np.full((1, 32, 32, 3), 0.5).tolist()}, 400),
    ("ragged array", "POST", PREDICT, {"instances": [[[0, 0, 0]] * 32] * 31 + [[[0, 0]] * 32]}, 400),
    ("bad base64", "POST", PREDICT, {"signature_name": "serving_encoded", "instances": [{"b64": "not*base64"}]}, 400),
    ("b64 of something not an image", "POST", PREDICT, encoded(lambda: b"hello, world"), 400),
    ("corrupt JPEG", "POST", PREDICT, encoded(_corrupt_jpeg), 400),
    ("image over the pixel limit", "POST", PREDICT, encoded(_huge_png), 413),
    ("pixels sent to the encoded signature", "POST", PREDICT, {"signature_name": "serving_encoded", "instances": PX}, 400),
    ("unknown signature", "POST", PREDICT, {"signature_name": "classify_me", "instances": PX}, 400),
    ("wrong input name", "POST", PREDICT, {"instances": [{"pixels": PX[0]}]}, 400),
    ("unknown model", "POST", "/v1/models/other:predict", {"instances": PX}, 404),
    ("unknown version", "POST", "/v1/models/tiny/versions/7:predict", {"instances": PX}, 404),
    ("version label", "GET", "/v1/models/tiny/labels/stable", None, 404),
    ("classify API", "POST", "/v1/models/tiny:classify", {"examples": []}, 400),
    ("GET on predict", "GET", PREDICT, None, 405),
    ("unknown path", "GET", "/v2/models/tiny", None, 404),
    ("oversized body", "POST", PREDICT, b"{" + b" " * (MAX_BODY + 10) + b"}", 413),
]


@pytest.mark.parametrize("kind,method,path,body,want", BAD_REQUESTS, ids=[c[0] for c in BAD_REQUESTS])
def test_bad_request_gets_4xx_and_server_keeps_answering(server, images, kind, method, path, body, want):
    status, answer = request(method, path, body() if callable(body) else body, port=server.port)
    assert status == want, (kind, answer)
    assert isinstance(answer, dict) and answer["error"], kind  # {"error": "..."}, a message
    ok, _ = request("POST", PREDICT, {"instances": images[:1].tolist()}, port=server.port)
    assert ok == 200, f"after {kind}"


def test_protocol_level_bad_requests(server, images):
    p = server.port
    good = json.dumps({"instances": images[:1].tolist()}).encode()
    head = f"POST /v1/models/tiny:predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"

    # a body that stops halfway: 408 after --body-timeout
    got = raw_exchange(p, [(head + f"Content-Length: {len(good)}\r\n\r\n").encode() + good[:100]])
    assert got.startswith(b"HTTP/1.1 408") and b'"error"' in got
    # a chunked body over the limit, no Content-Length to refuse it by
    chunk = b"x" * 65536
    chunks = [(head + "Transfer-Encoding: chunked\r\n\r\n").encode()]
    chunks += [b"%x\r\n%s\r\n" % (len(chunk), chunk)] * (MAX_BODY // len(chunk) + 2) + [b"0\r\n\r\n"]
    got = raw_exchange(p, chunks)
    assert got.startswith(b"HTTP/1.1 413") and b"over the" in got
    # headers that never finish: 408 after --header-timeout
    got = raw_exchange(p, [b"POST /v1/models/tiny:predict HTTP/1.1\r\nHost: x\r\n"])
    assert got.startswith(b"HTTP/1.1 408") and b"headers" in got
    # not HTTP at all
    got = raw_exchange(p, [b"HELLO THERE\r\n\r\n"])
    assert got.startswith(b"HTTP/1.1 400")
    # a Content-Length that is not a number
    got = raw_exchange(p, [(head + "Content-Length: lots\r\n\r\n").encode()])
    assert got.startswith(b"HTTP/1.1 400")
    assert request("POST", "/v1/models/tiny:predict", {"instances": images[:1].tolist()}, port=p)[0] == 200


def test_many_slow_clients_do_not_block_correct_requests(server, images):
    """40 clients dripping their headers one byte at a time: each gets 408 after the header
    timeout while correct requests keep being answered in the meantime."""
    answers, lock = [], threading.Lock()
    line = b"POST /v1/models/tiny:predict HTTP/1.1\r\nHost: x\r\n"

    def slow():
        got = raw_exchange(server.port, [line[i:i + 1] for i in range(len(line))], pause=0.1, wait=15)
        with lock:
            answers.append(got)

    threads = [threading.Thread(target=slow) for _ in range(40)]
    for t in threads:
        t.start()
    time.sleep(0.3)
    t0 = time.monotonic()
    for _ in range(3):
        assert request("POST", "/v1/models/tiny:predict", {"instances": images[:1].tolist()}, port=server.port,
                       timeout=10)[0] == 200
    assert time.monotonic() - t0 < 10
    for t in threads:
        t.join(30)
    assert len(answers) == 40 and all(a.startswith(b"HTTP/1.1 408") for a in answers), answers[:2]


def test_corrupt_image_in_a_batch_fails_only_its_own_request(server, images):
    corrupt = encoded(_corrupt_jpeg)()
    good = {"signature_name": "serving_encoded", "instances": [{"b64": b64(jpeg_bytes(images[1]))}]}
    results = {}

    def send(key, body):
        results[key] = request("POST", "/v1/models/tiny:predict", body, port=server.port)[0]

    threads = [threading.Thread(target=send, args=(i, corrupt if i % 3 == 0 else good)) for i in range(9)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results == {i: 400 if i % 3 == 0 else 200 for i in range(9)}


def test_bench_serving_merges_a_device_row(server, built, tmp_path):
    out = tmp_path / "bench.json"
    cmd = [sys.executable, "-m", "edgecv.cli.main", "bench", str(built / "tiny_serving"), "--serving",
           f"http://{HOST}:{server.port}/v1/models/tiny", "--concurrency", "1", "--concurrency", "4",
           "--runs", "40", "--seconds", "20", "--json", str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert r.returncode == 0, r.stdout + r.stderr
    res = json.loads(out.read_text())
    levels = res["latency_by_batch"]
    assert [lv["concurrency"] for lv in levels] == [1, 4] and all(lv["failed"] == 0 for lv in levels)
    assert all(0 < lv["runs"] <= 40 and lv["p50_ms"] <= lv["p99_ms"] for lv in levels)
    assert res["serving"]["signature"] == "serving_encoded"
    report = json.loads((built / "report.json").read_text())
    row = report["artifacts"][0]["device_results"][-1]
    assert row["latency"]["p50_ms"] == levels[0]["p50_ms"] and "server" in row["device"]["board"]
    assert "merged into" in r.stdout


def test_bench_serving_unreachable_is_a_clear_error():
    port = free_port()
    r = subprocess.run([sys.executable, "-m", "edgecv.cli.main", "bench", "--serving",
                        f"http://{HOST}:{port}/v1/models/tiny", "--runs", "1", "--seconds", "1"],
                       capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert r.returncode == 2 and "is the server running" in r.stderr and "Traceback" not in r.stderr


def test_sigterm_finishes_the_request_in_flight(built, tmp_path, images):
    s = Server([built / "tiny_serving"], tmp_path / "serve.log", "tiny", grpc=False, extra=["--body-timeout", "20"])
    body = json.dumps({"instances": images[:2].tolist()}).encode()
    answer = {}

    def client():
        head = (f"POST /v1/models/tiny:predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
        with socket.create_connection((HOST, s.port), timeout=30) as c:
            c.sendall(head + body[:50])
            time.sleep(2.0)  # SIGTERM arrives now (after 1 s), the request already begun
            c.sendall(body[50:])
            answer["raw"] = c.recv(65536)

    t = threading.Thread(target=client)
    t.start()
    time.sleep(1.0)
    code = s.stop(signal.SIGTERM)
    t.join(30)
    assert answer["raw"].startswith(b"HTTP/1.1 200"), answer
    assert code == 0 and "stopped on SIGTERM" in s.log.read_text()


@pytest.mark.parametrize("fmt", ["tflite", "onnx"])
def test_serves_tflite_and_onnx(fmt, tiny_model, tiny_val, tmp_path):
    if fmt == "onnx":
        pytest.importorskip("tf2onnx", reason="needs the onnx extra")
    from edgecv.config.target import ArtifactSpec
    from edgecv.data.images import decode_rgb, resize
    from edgecv.exporters import ExportContext, get_exporter
    from edgecv.runtimes import load_runtime

    art = get_exporter(fmt)().export(tiny_model, ArtifactSpec(name="fp32", format=fmt, precision="fp32"), tmp_path,
                                     ExportContext("tiny"))
    (tmp_path / "preprocessing.json").write_text(json.dumps({"resize": "resize", "input": {"height": 32, "width": 32}}))
    s = Server([art.path], tmp_path / "serve.log", art.path.stem, grpc=False, extra=["--workers", "2"])
    try:
        blobs = [jpeg_bytes(np.asarray(Image.fromarray(im).resize((40, 30)))) for im in tiny_val[0][:4]]
        with load_runtime(art.path) as rt:
            want = rt.predict(np.stack([resize(decode_rgb(b), (32, 32), "resize") for b in blobs]))
        status, got = request("POST", f"/v1/models/{s.name}:predict", {"signature_name": "serving_encoded",
                              "inputs": [{"b64": b64(b)} for b in blobs]}, port=s.port)
        assert status == 200
        out = got["outputs"]  # a lone output is the value itself (TF Serving's columnar form)
        probs = out["probabilities"] if isinstance(out, dict) else out
        assert np.allclose(probs, want["probabilities"], atol=1e-5)  # Pillow decodes: the same pixels
        status, meta = request("GET", f"/v1/models/{s.name}/metadata", port=s.port)
        assert meta["model_spec"]["version"] == "1"
    finally:
        assert s.stop() == 0


def test_serve_bad_input_exits_2_with_a_message(built, tmp_path):
    def run(*args):
        r = subprocess.run([sys.executable, "-m", "edgecv.cli.main", "serve", *map(str, args), "--host", HOST],
                           capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})
        r.stderr = " ".join(r.stderr.split())
        return r

    r = run(tmp_path / "missing")
    assert r.returncode == 2 and "no such file or folder" in r.stderr
    (tmp_path / "a.onnx").write_bytes(b"x")
    (tmp_path / "b.tflite").write_bytes(b"x")
    r = run(tmp_path)
    assert r.returncode == 2 and "a.onnx, b.tflite" in r.stderr and "name one" in r.stderr
    with socket.socket() as taken:
        taken.bind((HOST, 0))
        taken.listen(1)
        r = run(built, "--port", taken.getsockname()[1], "--grpc-port", "0")
    assert r.returncode == 2 and "choose another --port" in r.stderr
    r = run(tmp_path / "a.onnx", "--port", free_port(), "--grpc-port", "0")
    assert r.returncode == 2 and "a.onnx" in r.stderr and "Traceback" not in r.stderr
