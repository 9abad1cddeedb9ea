"""TF Serving's gRPC PredictionService (Predict, GetModelMetadata) from tensorflow-serving-api's
stubs, on grpc.aio in the same event loop as the REST server, sharing its batchers. Classify,
Regress and MultiInference answer UNIMPLEMENTED (the stubs' default)."""

from __future__ import annotations

import grpc
import numpy as np
from tensorflow_serving.apis import get_model_metadata_pb2, predict_pb2, prediction_service_pb2_grpc

from edgecv.serving.model import RequestError
from edgecv.errors import InputError
from edgecv.serving.tensors import shape_text, to_array, TF_DTYPES

_CODES = {400: grpc.StatusCode.INVALID_ARGUMENT, 404: grpc.StatusCode.NOT_FOUND, 408: grpc.StatusCode.DEADLINE_EXCEEDED,
          413: grpc.StatusCode.RESOURCE_EXHAUSTED, 503: grpc.StatusCode.UNAVAILABLE}


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, server):
        from edgecv._keras import tf

        self.server, self.model, self.tf = server, server.model, tf

    def _check_spec(self, spec) -> None:
        if spec.name != self.model.name:
            raise RequestError(f"Servable not found for request: Latest({spec.name}); this server serves "
                               f"model {self.model.name!r}", 404)
        if spec.HasField("version") and spec.version.value != self.model.version:
            raise RequestError(f"Servable not found for request: Specific({spec.name}, {spec.version.value}); "
                               f"version {self.model.version} is served", 404)
        if spec.version_label:
            raise RequestError(f"version labels are not supported (label {spec.version_label!r})", 404)

    async def _abort(self, context, api: str, e: RequestError):
        self.server.metrics.count(api, "", _CODES.get(e.status, grpc.StatusCode.INVALID_ARGUMENT).name)
        await context.abort(_CODES.get(e.status, grpc.StatusCode.INVALID_ARGUMENT), str(e))

    async def Predict(self, request, context):
        try:
            self._check_spec(request.model_spec)
            sig_name = request.model_spec.signature_name or "serving_default"
            sig = self.model.signatures.get(sig_name)
            if sig is None:
                raise RequestError(f"signature {sig_name!r} not found: this model has {sorted(self.model.signatures)}")
            if set(request.inputs) != set(sig.inputs):
                raise RequestError(f"inputs {sorted(request.inputs)}: signature {sig_name} takes {sorted(sig.inputs)}")
            inputs = {}
            for name, proto in request.inputs.items():
                try:
                    value = self.tf.make_ndarray(proto)
                except Exception as e:
                    raise RequestError(f"input {name}: not a valid TensorProto ({e})") from None
                info = sig.inputs[name]
                if info.dtype == "string":
                    if value.dtype != object or value.ndim != 1:
                        raise RequestError(f"input {name}: expected DT_STRING of shape [-1], got "
                                           f"{value.dtype} {shape_text(value.shape)}")
                    inputs[name] = value
                elif value.dtype != np.dtype(info.dtype):
                    raise RequestError(f"input {name}: expected dtype {info.dtype}, got {value.dtype}")
                else:
                    inputs[name] = to_array(value, info, f"input {name}")
            outputs = await self.server.predict(sig_name, inputs)
        except RequestError as e:
            await self._abort(context, "predict", e)
            return
        wanted = list(request.output_filter) or list(outputs)
        response = predict_pb2.PredictResponse()
        response.model_spec.name = self.model.name
        response.model_spec.version.value = self.model.version
        response.model_spec.signature_name = sig_name
        for k in wanted:
            if k in outputs:
                response.outputs[k].CopyFrom(self.tf.make_tensor_proto(outputs[k]))
        self.server.metrics.count("predict", sig_name, "OK")
        return response

    async def GetModelMetadata(self, request, context):
        from tensorflow.core.framework import tensor_shape_pb2, types_pb2


        try:
            self._check_spec(request.model_spec)
            if list(request.metadata_field) != ["signature_def"]:
                raise RequestError(f"metadata_field {list(request.metadata_field)}: only ['signature_def'] is served")
        except RequestError as e:
            await self._abort(context, "metadata", e)
            return
        defs = get_model_metadata_pb2.SignatureDefMap()
        for sig in self.model.signatures.values():
            d = defs.signature_def[sig.name]
            d.method_name = "tensorflow/serving/predict"
            for group, infos in ((d.inputs, sig.inputs), (d.outputs, sig.outputs)):
                for name, info in infos.items():
                    group[name].name = f"{sig.name}_{name}:0"
                    group[name].dtype = types_pb2.DataType.Value(TF_DTYPES[info.dtype])
                    group[name].tensor_shape.CopyFrom(tensor_shape_pb2.TensorShapeProto(
                        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=-1 if s is None else s) for s in info.shape]))
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = self.model.name
        response.model_spec.version.value = self.model.version
        response.metadata["signature_def"].Pack(defs)
        self.server.metrics.count("metadata", "", "OK")
        return response


async def start_grpc(server, host: str, port: int, max_message_bytes: int):
    """A started grpc.aio server on host:port (InputError when the port is taken)."""
    options = [("grpc.max_receive_message_length", max_message_bytes),
               ("grpc.max_send_message_length", max_message_bytes), ("grpc.so_reuseport", 0)]
    g = grpc.aio.server(options=options)
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionService(server), g)
    try:
        bound = g.add_insecure_port(f"{host}:{port}")
    except RuntimeError as e:
        raise InputError(f"gRPC cannot listen on {host}:{port} ({e}): choose another --grpc-port (0: no gRPC)") from None
    if bound == 0:
        raise InputError(f"gRPC cannot listen on {host}:{port}: choose another --grpc-port (0: no gRPC)")
    await g.start()
    return g
