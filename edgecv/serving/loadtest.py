"""`edgecv bench --serving URL`: latency percentiles and throughput of a running TF Serving REST
endpoint (edgecv's or the real one) at several concurrency levels, each bounded in requests and
seconds. Clients are threads holding one keep-alive HTTP connection each (http.client), the
request bodies prepared before timing.
"""

from __future__ import annotations

import base64
import http.client
import io
import json
import threading
import time
from pathlib import Path
from typing import Optional
from urllib.parse import urlsplit

import numpy as np

from edgecv.errors import InputError
import edgecv
from edgecv.data.images import IMAGE_EXTENSIONS
from edgecv.files import tree_sha256, walk_files
from edgecv.validate.bench import BENCH_SCHEMA, describe_device


def model_url(url: str) -> tuple[str, int, str]:
    """(host, port, /v1/models/NAME[/versions/N]) from http://host:port/v1/models/NAME[...]."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname or not parts.path.startswith("/v1/models/"):
        raise InputError(f"--serving {url}: give the model's REST URL, e.g. http://127.0.0.1:8501/v1/models/flowers")
    return parts.hostname, parts.port or 80, parts.path.rstrip("/")


def get_json(host: str, port: int, path: str, timeout: float = 10.0) -> dict:
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        data = r.read()
    except OSError as e:
        raise InputError(f"cannot reach http://{host}:{port}{path} ({e}): is the server running?") from None
    finally:
        conn.close()
    if r.status != 200:
        raise InputError(f"GET http://{host}:{port}{path}: HTTP {r.status} {data[:300]!r}")
    return json.loads(data)


def request_bodies(metadata: dict, data: Optional[Path], count: int = 16, seed: int = 0) -> tuple[list, str]:
    """Prepared :predict bodies and the signature they use: JPEG files (or synthetic JPEGs) as b64 on
    `serving_encoded` when the model has it, else random uint8 pixels on `serving_default`."""
    from PIL import Image

    sigs = metadata["metadata"]["signature_def"]["signature_def"]
    rng = np.random.default_rng(seed)
    if "serving_encoded" in sigs:
        if data is not None:
            files = sorted(p for p in walk_files(Path(data)) if p.suffix.lower() in IMAGE_EXTENSIONS)[:count]
            if not files:
                raise InputError(f"--data {data}: no images")
            blobs = [p.read_bytes() for p in files]
        else:
            blobs = []
            for _ in range(count):
                buf = io.BytesIO()
                Image.fromarray(rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)).save(buf, "JPEG", quality=90)
                blobs.append(buf.getvalue())
        return [json.dumps({"signature_name": "serving_encoded",
                            "instances": [{"b64": base64.b64encode(b).decode()}]}).encode() for b in blobs], "serving_encoded"
    info = sigs["serving_default"]["inputs"]
    (name, spec), = info.items()
    dims = [int(d["size"]) for d in spec["tensor_shape"]["dim"]][1:]
    bodies = [json.dumps({"instances": rng.integers(0, 256, (1, *dims), dtype=np.uint8).tolist()}).encode()
              for _ in range(min(count, 4))]
    return bodies, "serving_default"


def run_level(host: str, port: int, path: str, bodies: list, concurrency: int, max_requests: int,
              max_seconds: float) -> dict:
    latencies: list = []
    failures: list = []
    lock = threading.Lock()
    counter = iter(range(max_requests))
    stop_at = time.perf_counter() + max_seconds

    def client(k: int):
        conn = http.client.HTTPConnection(host, port, timeout=60)
        headers = {"Content-Type": "application/json"}
        while time.perf_counter() < stop_at:
            with lock:
                i = next(counter, None)
            if i is None:
                break
            body = bodies[i % len(bodies)]
            t0 = time.perf_counter()
            try:
                conn.request("POST", f"{path}:predict", body, headers)
                r = conn.getresponse()
                payload = r.read()
                ok = r.status == 200 and b"predictions" in payload[:64]
            except (OSError, http.client.HTTPException) as e:
                ok, payload = False, str(e).encode()
                conn.close()
                conn = http.client.HTTPConnection(host, port, timeout=60)
            dt = (time.perf_counter() - t0) * 1000
            with lock:
                (latencies.append(dt) if ok else failures.append(payload[:200].decode("utf-8", "replace")))
        conn.close()

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max_seconds + 120)
    wall = time.perf_counter() - t0
    lat = np.array(latencies) if latencies else np.array([np.nan])
    return {"batch": 1, "concurrency": concurrency, "runs": len(latencies), "failed": len(failures),
            "failures": failures[:5], "seconds": round(wall, 3),
            "p50_ms": float(np.percentile(lat, 50)), "p90_ms": float(np.percentile(lat, 90)),
            "p99_ms": float(np.percentile(lat, 99)), "mean_ms": float(lat.mean()), "std_ms": float(lat.std()),
            "throughput_ips": len(latencies) / wall if wall > 0 else 0.0, "warmup": 0, "first_ms": None}


def bench_serving(url: str, levels=(1, 4, 16), max_requests: int = 2000, max_seconds: float = 10.0,
                  data: Optional[Path] = None, artifact: Optional[Path] = None, log=print) -> dict:
    """An `edgecv.bench/1` result (mergeable with `report --merge` when `artifact` names the served
    files): `latency` is the concurrency-1 level, every level in `latency_by_batch`."""
    from datetime import datetime, timezone


    host, port, path = model_url(url)
    status = get_json(host, port, path)
    metadata = get_json(host, port, f"{path}/metadata")
    bodies, signature = request_bodies(metadata, data)
    run_level(host, port, path, bodies, 1, min(10, max_requests), max_seconds)  # warm-up, not timed
    results = []
    for c in levels:
        res = run_level(host, port, path, bodies, c, max_requests, max_seconds)
        log(f"concurrency {c}: {res['runs']} requests in {res['seconds']:.1f} s, p50 {res['p50_ms']:.1f} ms, "
            f"p99 {res['p99_ms']:.1f} ms, {res['throughput_ips']:.1f} req/s, {res['failed']} failed")
        results.append(res)
    out = {
        "schema": BENCH_SCHEMA, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "edgecv_version": edgecv.__version__,
        "device": {**describe_device(), "board": f"server {host}:{port}"},
        "serving": {"url": url, "signature": signature, "model_status": status, "request_bytes": len(bodies[0]),
                    "max_requests_per_level": max_requests, "max_seconds_per_level": max_seconds},
        "inputs": str(data) if data else "synthetic JPEG" if signature == "serving_encoded" else "random uint8",
        "threads": None, "runtime": {"library": f"TF Serving REST API ({signature})"}, "load_seconds": None,
        "first_inference_ms": None, "memory": {"peak_rss_mb": None},
        "latency": results[0] if results else None, "latency_by_batch": results, "accuracy": None, "metrics": {},
    }
    if artifact is not None:
        out["artifact"] = {"path": str(artifact), "name": artifact.name, "format": "savedmodel" if artifact.is_dir()
                           else artifact.suffix.lstrip("."), "sha256": tree_sha256(artifact)}
    return out
