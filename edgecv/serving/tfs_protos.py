"""TF Serving's BatchingParameters and MonitoringConfig messages, for reading and checking the
batching_parameters.txt and monitoring.config files edgecv writes. tensorflow-serving-api ships the
model-server config protos (models.config) but not these two, so they are declared here field for
field as in TF Serving's session_bundle_config.proto and monitoring_config.proto (same package,
names, numbers and types), and the files are parsed with protobuf's own text format: a misspelt or
mistyped field is an error, as in tensorflow_model_server.
"""

from __future__ import annotations

from functools import lru_cache
from edgecv.errors import InputError


@lru_cache(maxsize=1)
def _messages() -> dict:
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, wrappers_pb2

    F = descriptor_pb2.FieldDescriptorProto
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(wrappers_pb2.DESCRIPTOR.serialized_pb)
    f = descriptor_pb2.FileDescriptorProto(name="edgecv/tf_serving_configs.proto", package="tensorflow.serving",
                                           syntax="proto3", dependency=["google/protobuf/wrappers.proto"])

    def add(msg, name, number, type_, type_name="", label=F.LABEL_OPTIONAL):
        field = msg.field.add(name=name, number=number, type=type_, label=label)
        if type_name:
            field.type_name = type_name

    b = f.message_type.add(name="BatchingParameters")
    for name, number in (("max_batch_size", 1), ("batch_timeout_micros", 2), ("max_enqueued_batches", 3),
                         ("num_batch_threads", 4)):
        add(b, name, number, F.TYPE_MESSAGE, ".google.protobuf.Int64Value")
    add(b, "thread_pool_name", 5, F.TYPE_MESSAGE, ".google.protobuf.StringValue")
    add(b, "allowed_batch_sizes", 6, F.TYPE_INT64, label=F.LABEL_REPEATED)
    add(b, "pad_variable_length_inputs", 7, F.TYPE_BOOL)
    p = f.message_type.add(name="PrometheusConfig")
    add(p, "enable", 1, F.TYPE_BOOL)
    add(p, "path", 2, F.TYPE_STRING)
    m = f.message_type.add(name="MonitoringConfig")
    add(m, "prometheus_config", 1, F.TYPE_MESSAGE, ".tensorflow.serving.PrometheusConfig")
    pool.Add(f)
    return {n: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"tensorflow.serving.{n}"))
            for n in ("BatchingParameters", "MonitoringConfig")}


def parse(text: str, message: str):
    """`text` parsed as tensorflow.serving.<message> (google.protobuf.text_format.ParseError if not)."""
    from google.protobuf import text_format

    return text_format.Parse(text, _messages()[message]())


def read_batching(path) -> dict:
    """batching_parameters.txt -> {field: value} of the fields it sets."""
    from pathlib import Path

    from google.protobuf import text_format


    try:
        msg = parse(Path(path).read_text(), "BatchingParameters")
    except text_format.ParseError as e:
        raise InputError(f"{path}: not TF Serving batching parameters ({e})") from None
    out = {}
    for field in ("max_batch_size", "batch_timeout_micros", "max_enqueued_batches", "num_batch_threads"):
        if msg.HasField(field):
            out[field] = getattr(msg, field).value
    return out
