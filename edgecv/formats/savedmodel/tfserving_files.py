"""The files that run a SavedModel folder on real TensorFlow Serving: models.config, the batching
parameters, the Prometheus monitoring config (text protos), the warm-up requests
(assets.extra/tf_serving_warmup_requests: PredictionLog records), a Dockerfile with its run
command, and Kubernetes / KServe manifests that scale it out.

Written beside the numbered versions:  <name>/models.config, batching_parameters.txt,
monitoring.config, Dockerfile, run-tfserving.sh, kubernetes.yaml, kserve.yaml, <version>/...
"""

from __future__ import annotations

from pathlib import Path
from typing import List

from pydantic import BaseModel, ConfigDict, Field
from edgecv.files import atomic_write_text

MODELS_PATH = "/models"  # where TF Serving's image looks for models
METRICS_PATH = "/monitoring/prometheus/metrics"  # TF Serving's Prometheus path (monitoring.config)


class BatchingOptions(BaseModel):
    """TF Serving's BatchingParameters (and `edgecv serve`'s dynamic batching)."""

    model_config = ConfigDict(extra="forbid")
    max_batch_size: int = Field(32, ge=1, description="the most images one model call takes")
    batch_timeout_micros: int = Field(2000, ge=0, description="the longest a request waits for others to join it")
    num_batch_threads: int = Field(2, ge=1, description="model calls running at once")
    max_enqueued_batches: int = Field(100, ge=1, description="queued batches before requests are refused")
    allowed_batch_sizes: List[int] = Field(default_factory=list, description="pad batches up to these sizes "
                                           "(increasing, the last = max_batch_size); empty: any size")


class DeployOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    replicas: int = Field(2, ge=1, description="Kubernetes: pods at the start")
    max_replicas: int = Field(8, ge=1, description="Kubernetes: the autoscaler's ceiling")
    cpu: str = Field("2", description="Kubernetes: CPU request and limit per pod")
    memory: str = Field("2Gi", description="Kubernetes: memory request and limit per pod")
    image: str = Field("", description="TF Serving image (default tensorflow/serving at the TensorFlow "
                       "version that wrote the SavedModel)")


def models_config(name: str, base_path: str) -> str:
    return (
        "model_config_list {\n  config {\n"
        f"    name: '{name}'\n    base_path: '{base_path}'\n    model_platform: 'tensorflow'\n"
        "  }\n}\n"
    )


def batching_parameters(b: BatchingOptions) -> str:
    lines = [f"max_batch_size {{ value: {b.max_batch_size} }}",
             f"batch_timeout_micros {{ value: {b.batch_timeout_micros} }}",
             f"max_enqueued_batches {{ value: {b.max_enqueued_batches} }}",
             f"num_batch_threads {{ value: {b.num_batch_threads} }}"]
    lines += [f"allowed_batch_sizes: {s}" for s in b.allowed_batch_sizes]
    return "\n".join(lines) + "\n"


def monitoring_config() -> str:
    return f'prometheus_config {{\n  enable: true\n  path: "{METRICS_PATH}"\n}}\n'


def server_args(name: str) -> list[str]:
    """tensorflow_model_server's flags for the folder mounted at /models/<name>."""
    base = f"{MODELS_PATH}/{name}"
    return ["--port=8500", "--rest_api_port=8501", f"--model_config_file={base}/models.config",
            "--enable_batching=true", f"--batching_parameters_file={base}/batching_parameters.txt",
            f"--monitoring_config_file={base}/monitoring.config", "--enable_model_warmup=true"]


def dockerfile(name: str, image: str) -> str:
    args = ", ".join(f'"{a}"' for a in server_args(name))
    return (f"# A TF Serving image with this model inside: docker build -t {name.replace('_', '-')}:latest .\n"
            f"FROM {image}\nCOPY . {MODELS_PATH}/{name}\nEXPOSE 8500 8501\n"
            f'ENTRYPOINT ["tensorflow_model_server", {args}]\n')


def run_script(name: str, image: str) -> str:
    base = f"{MODELS_PATH}/{name}"
    flags = " \\\n  ".join(server_args(name))
    return ("#!/bin/sh\n# Serve this folder on TF Serving (gRPC 8500, REST 8501), read-only, from the folder itself.\n"
            'set -e\ncd "$(dirname "$0")"\n'
            f'exec docker run --rm -p 8500:8500 -p 8501:8501 -v "$PWD:{base}:ro" --entrypoint tensorflow_model_server \\\n'
            f"  {image} \\\n  {flags}\n")


def kubernetes_manifest(name: str, model_name: str, d: DeployOptions, image_tag: str) -> str:
    """A Deployment of the image the Dockerfile builds (folder `name`), its Service and an autoscaler."""
    app = name.replace("_", "-").lower()
    args = "".join(f"        - {a}\n" for a in server_args(name)[2:])
    return f"""# Kubernetes: the image from ./Dockerfile (push it where the cluster pulls from and set `image`),
# {d.replicas} to {d.max_replicas} pods behind one Service (gRPC 8500, REST 8501).
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {app}
  labels: {{app: {app}}}
spec:
  replicas: {d.replicas}
  selector:
    matchLabels: {{app: {app}}}
  template:
    metadata:
      labels: {{app: {app}}}
      annotations:
        prometheus.io/scrape: "true"
        prometheus.io/port: "8501"
        prometheus.io/path: {METRICS_PATH}
    spec:
      containers:
      - name: tfserving
        image: {image_tag}
        command: [tensorflow_model_server]
        args:
        - --port=8500
        - --rest_api_port=8501
{args}        ports:
        - {{name: grpc, containerPort: 8500}}
        - {{name: http, containerPort: 8501}}
        readinessProbe:
          httpGet: {{path: /v1/models/{model_name}, port: 8501}}
          initialDelaySeconds: 5
          periodSeconds: 5
        livenessProbe:
          tcpSocket: {{port: 8500}}
          initialDelaySeconds: 15
          periodSeconds: 10
        resources:
          requests: {{cpu: "{d.cpu}", memory: {d.memory}}}
          limits: {{cpu: "{d.cpu}", memory: {d.memory}}}
---
apiVersion: v1
kind: Service
metadata:
  name: {app}
spec:
  selector: {{app: {app}}}
  ports:
  - {{name: grpc, port: 8500, targetPort: 8500}}
  - {{name: http, port: 8501, targetPort: 8501}}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {app}
spec:
  scaleTargetRef: {{apiVersion: apps/v1, kind: Deployment, name: {app}}}
  minReplicas: {d.replicas}
  maxReplicas: {d.max_replicas}
  metrics:
  - type: Resource
    resource:
      name: cpu
      target: {{type: Utilization, averageUtilization: 70}}
"""


def kserve_manifest(name: str, d: DeployOptions, runtime_version: str) -> str:
    app = name.replace("_", "-").lower()
    return f"""# KServe: copy this folder to object storage (the numbered versions beside this file) and set storageUri.
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: {app}
spec:
  predictor:
    minReplicas: {d.replicas}
    maxReplicas: {d.max_replicas}
    tensorflow:
      storageUri: gs://YOUR-BUCKET/{name}
      runtimeVersion: "{runtime_version}"
      resources:
        requests: {{cpu: "{d.cpu}", memory: {d.memory}}}
        limits: {{cpu: "{d.cpu}", memory: {d.memory}}}
"""


def write_warmup(path: Path, name: str, signatures: dict, batch_sizes=(1,)) -> int:
    """assets.extra/tf_serving_warmup_requests: one PredictionLog per signature and batch size, on
    synthetic inputs (`signatures`: {signature name: {input name: callable(batch) -> numpy}}).
    Returns the number of records."""
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    from edgecv._keras import tf

    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with tf.io.TFRecordWriter(str(path)) as writer:
        for sig, inputs in signatures.items():
            for batch in batch_sizes:
                request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name=name, signature_name=sig))
                for key, make in inputs.items():
                    request.inputs[key].CopyFrom(tf.make_tensor_proto(make(batch)))
                log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
                writer.write(log.SerializeToString())
                n += 1
    return n


def write_deployment_files(root: Path, model_name: str, batching: BatchingOptions, deploy: DeployOptions,
                           tf_version: str) -> list[str]:
    """Everything beside the versions except models.config; returns the file names."""
    image = deploy.image or f"tensorflow/serving:{tf_version}"
    files = {
        "batching_parameters.txt": batching_parameters(batching),
        "monitoring.config": monitoring_config(),
        "Dockerfile": dockerfile(root.name, image),
        "run-tfserving.sh": run_script(root.name, image),
        "kubernetes.yaml": kubernetes_manifest(root.name, model_name, deploy, f"{root.name.replace('_', '-')}:latest"),
        "kserve.yaml": kserve_manifest(root.name, deploy, tf_version),
    }
    for fname, text in files.items():
        atomic_write_text(root / fname, text)
    (root / "run-tfserving.sh").chmod(0o755)
    return sorted(files)
