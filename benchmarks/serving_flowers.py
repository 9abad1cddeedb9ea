"""`edgecv serve` on a built cloud-tfserving target: agreement and load (issue 26's measurements).

1. Agreement: every validation image of the recipe's split, sent (a) as its JPEG file in b64 over
   REST to `serving_encoded` (decoded and resized in the SavedModel's graph) and (b) as a uint8
   tensor over gRPC to `serving_default` (pixels decoded by edgecv.data.images, as `validate`
   decodes them), against `edgecv validate` on the same SavedModel (top-1 per image).
2. Load: `edgecv bench --serving` at each --concurrency (bounded by --requests and --seconds per
   level), the server's RSS before and after.
3. Dynamic batching against none at the highest concurrency: a second server with --no-batching,
   the two measured alternately in the same run (--rounds times each).

    python benchmarks/serving_flowers.py --target /work/exp/serve/flowers/cloud-tfserving \
        -r examples/flowers/edgecv.yaml --seconds 20 --json /work/exp/serve/serving_flowers.json

Servers listen on 127.0.0.1 only and are stopped (SIGTERM) before the script ends.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


class Server:
    def __init__(self, target: Path, log: Path, *extra: str):
        self.port, self.grpc_port = free_port(), free_port()
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.proc = subprocess.Popen([sys.executable, "-m", "edgecv.cli.main", "serve", str(target), "--host", HOST,
                                      "--port", str(self.port), "--grpc-port", str(self.grpc_port), *extra],
                                     stdout=open(log, "w"), stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"edgecv serve exited: {log.read_text()[-2000:]}")
            try:
                c = http.client.HTTPConnection(HOST, self.port, timeout=5)
                c.request("GET", "/v1/models/flowers")
                if c.getresponse().status == 200:
                    return
            except OSError:
                pass
            time.sleep(1)
        self.stop()
        raise SystemExit("edgecv serve did not start within 300 s")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(120)
        return self.proc.returncode


def validation_split(recipe: Path):
    sys.path.insert(0, str(REPO))
    from edgecv.config import load_recipe
    from edgecv.data.index import build_index

    r = load_recipe(recipe)
    index = build_index(r.data, r.resolve)
    return [(Path(s.path), s.label) for s in index.val], index.info["class_names"], r


def agreement(target: Path, recipe: Path, server: Server, work: Path) -> dict:
    import grpc
    import numpy as np
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    from edgecv.data.images import load_image

    samples, names, r = validation_split(recipe)
    data = work / "val"  # the split as class folders, for `edgecv validate`
    for i, (path, label) in enumerate(samples):
        (data / names[label]).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, data / names[label] / f"{i:04d}_{path.name}")
    files = sorted(data.rglob("*.*"))
    out = work / "validate.json"
    v = subprocess.run([sys.executable, "-m", "edgecv.cli.main", "validate", str(target / "flowers_serving"),
                        "--data", str(data), "--json", str(out)], capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(REPO)})
    if v.returncode:
        raise SystemExit(v.stdout + v.stderr)
    res = json.loads(out.read_text())
    validate_top1 = {Path(img).name: preds[0][0] for img, preds in zip(res["images"], res["predictions"])}

    rest_top1, grpc_top1 = {}, {}
    conn = http.client.HTTPConnection(HOST, server.port, timeout=120)
    with grpc.insecure_channel(f"{HOST}:{server.grpc_port}") as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        for f in files:
            body = json.dumps({"signature_name": "serving_encoded",
                               "instances": [{"b64": base64.b64encode(f.read_bytes()).decode()}]})
            conn.request("POST", "/v1/models/flowers:predict", body, {"Content-Type": "application/json"})
            rest = json.loads(conn.getresponse().read())
            rest_top1[f.name] = names[rest["predictions"][0]["class_id"]]
            req = predict_pb2.PredictRequest()
            req.model_spec.name = "flowers"
            pixels = load_image(f, tuple(r.input.size), r.input.resize)[None]
            req.inputs["images"].CopyFrom(tf.make_tensor_proto(pixels))
            grpc_top1[f.name] = names[int(tf.make_ndarray(stub.Predict(req, timeout=120).outputs["class_id"])[0])]
    conn.close()
    truth = {f.name: f.parent.name for f in files}
    keys = sorted(validate_top1)
    return {
        "images": len(keys),
        "validate_accuracy": res["accuracy"],
        "rest_b64_agrees_with_validate": sum(rest_top1[k] == validate_top1[k] for k in keys),
        "grpc_tensor_agrees_with_validate": sum(grpc_top1[k] == validate_top1[k] for k in keys),
        "rest_b64_accuracy": 100 * np.mean([rest_top1[k] == truth[k] for k in keys]),
        "grpc_tensor_accuracy": 100 * np.mean([grpc_top1[k] == truth[k] for k in keys]),
        "disagreements": {k: {"validate": validate_top1[k], "rest_b64": rest_top1[k], "grpc": grpc_top1[k]}
                          for k in keys if not validate_top1[k] == rest_top1[k] == grpc_top1[k]},
    }


def load(server: Server, levels, requests: int, seconds: float, data: Path) -> dict:
    from edgecv.serving.loadtest import bench_serving

    before = rss_mb(server.proc.pid)
    res = bench_serving(f"http://{HOST}:{server.port}/v1/models/flowers", tuple(levels), requests, seconds, data)
    return {"rss_mb_before": before, "rss_mb_after": rss_mb(server.proc.pid), "request_bytes": res["serving"]["request_bytes"],
            "levels": [{k: lv[k] for k in ("concurrency", "runs", "failed", "seconds", "p50_ms", "p90_ms", "p99_ms",
                                           "throughput_ips")} for lv in res["latency_by_batch"]]}


class _Done(Exception):
    pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--target", type=Path, required=True, help="a built cloud-tfserving target folder")
    ap.add_argument("-r", "--recipe", type=Path, default=REPO / "examples/flowers/edgecv.yaml")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--requests", type=int, default=5000, help="most requests per level")
    ap.add_argument("--seconds", type=float, default=30.0, help="most seconds per level")
    ap.add_argument("--rounds", type=int, default=2, help="batching on/off alternations at the top concurrency")
    ap.add_argument("--agreement-only", action="store_true", help="skip the load and batching measurements")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    sys.path.insert(0, str(REPO))
    out: dict = {"uptime_start": uptime(), "target": str(args.target)}
    with tempfile.TemporaryDirectory(prefix="edgecv-serving-") as tmp:
        work = Path(tmp)
        server = Server(args.target, work / "serve.log")
        try:
            out["agreement"] = agreement(args.target, args.recipe, server, work)
            print(json.dumps(out["agreement"], indent=1), flush=True)
            if args.agreement_only:
                raise _Done
            out["uptime_before_load"] = uptime()
            out["load"] = load(server, args.concurrency, args.requests, args.seconds, work / "val")
            print(json.dumps(out["load"], indent=1), flush=True)
            off = Server(args.target, work / "serve-nobatch.log", "--no-batching")
            try:
                top = max(args.concurrency)
                rows = []
                for rnd in range(args.rounds):
                    for name, srv in (("batching", server), ("no batching", off)):
                        res = load(srv, [top], args.requests, args.seconds, work / "val")
                        rows.append({"round": rnd, "server": name, **res["levels"][0],
                                     "rss_mb_before": res["rss_mb_before"], "rss_mb_after": res["rss_mb_after"]})
                        print(rows[-1], flush=True)
                out["batching_vs_none"] = rows
            finally:
                out["no_batching_exit"] = off.stop()
        except _Done:
            pass
        finally:
            out["exit"] = server.stop()
    out["uptime_end"] = uptime()
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, default=float))
    print(json.dumps({k: out[k] for k in ("uptime_start", "uptime_end", "exit")}, indent=1))


if __name__ == "__main__":
    main()
