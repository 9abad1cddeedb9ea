"""`edgecv serve`: one process, one asyncio loop: uvicorn (REST) and grpc.aio (gRPC) share the
model, its batchers and a thread pool of `workers` model calls. SIGTERM/SIGINT: stop accepting,
finish what is in flight (uvicorn's graceful shutdown, gRPC's grace period, the batch queue), exit.
"""

from __future__ import annotations

import asyncio
import re
import socket
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Optional

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from edgecv.errors import InputError
from edgecv.serving.batching import Batcher
from edgecv.serving.metrics import Metrics
from edgecv.serving.model import RequestError, ServedModel


@dataclass
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 8501
    grpc_port: int = 8500  # 0: no gRPC
    batching: bool = True
    max_batch_size: int = 32
    batch_timeout_micros: int = 2000
    max_enqueued_batches: int = 100
    workers: int = 2
    max_body_bytes: int = 32 * 1024 * 1024
    header_timeout: float = 10.0  # seconds for a request's headers to arrive
    body_timeout: float = 30.0  # seconds for its body
    limit_concurrency: int = 512  # open connections + requests before uvicorn answers 503
    graceful_seconds: float = 10.0


class ModelServer:
    def __init__(self, model: ServedModel, options: ServeOptions, log=print):
        self.model, self.options, self.log = model, options, log
        self.metrics = Metrics(model.name)
        self.max_body_bytes, self.body_timeout = options.max_body_bytes, options.body_timeout
        self.executor = ThreadPoolExecutor(options.workers, thread_name_prefix="edgecv-serve")
        self.batchers: dict = {}
        self.grpc = None

    async def predict(self, signature: str, inputs: dict) -> dict:
        sig = self.model.signatures[signature]
        sig.check(inputs)
        try:
            return await self.batchers[signature].submit(inputs)
        except RequestError:
            raise
        except Exception as e:  # the model refused the values (a corrupt image past its header ...)
            if type(e).__name__ in ("InvalidArgumentError", "ValueError", "ImageDecodeError"):
                why = re.sub(r"\{\{[^}]*\}\}\s*", "", str(e)).strip().splitlines()[0][:300]  # TF's node prefix
                raise RequestError(f"the model cannot run this input: {why}") from None
            raise

    async def start(self) -> None:
        o = self.options
        for name, sig in self.model.signatures.items():
            self.batchers[name] = Batcher(sig.run, self.executor, o.workers, o.max_batch_size,
                                          o.batch_timeout_micros / 1e6, o.batching,
                                          o.max_enqueued_batches * o.max_batch_size, self.metrics.batch_ran)
        if o.grpc_port:
            from edgecv.serving.grpc_service import start_grpc

            self.grpc = await start_grpc(self, o.host, o.grpc_port, o.max_body_bytes)

    async def stop(self) -> None:
        o = self.options
        if self.grpc is not None:  # uvicorn has drained REST; gRPC gets its grace period
            await self.grpc.stop(o.graceful_seconds)
        for b in self.batchers.values():
            await asyncio.wait_for(b.close(), o.graceful_seconds)
        self.executor.shutdown(wait=True)


def header_timeout_protocol(seconds: float):
    """uvicorn's h11 protocol with a deadline for each request's headers: a client that opens a
    connection and drips (or never sends) its request line gets 408 and is closed, instead of
    holding a connection forever (uvicorn only times out idle keep-alive connections)."""
    body = b'{"error": "the request headers did not arrive within %g s"}' % seconds
    reply = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
             b"content-length: %d\r\n\r\n%s" % (len(body), body))

    class HeaderTimeoutProtocol(H11Protocol):
        _header_timer = None

        def connection_made(self, transport):
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.conn.their_state is h11.IDLE:  # still waiting for a request line and headers
                self._arm()
            else:
                self._disarm()

        def connection_lost(self, exc):
            self._disarm()
            super().connection_lost(exc)

        def _arm(self):
            if self._header_timer is None:
                self._header_timer = self.loop.call_later(seconds, self._expired)

        def _disarm(self):
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _expired(self):
            self._header_timer = None
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                self.transport.write(reply)
                self.transport.close()

    return HeaderTimeoutProtocol


class _Server(uvicorn.Server):
    """Exits normally after a graceful SIGTERM/SIGINT (uvicorn re-raises the signal after its
    shutdown, which would end the process before the gRPC server and the batch queue drain)."""

    stopped_by: Optional[int] = None

    def handle_exit(self, sig, frame) -> None:
        super().handle_exit(sig, frame)
        self.stopped_by = sig
        captured = getattr(self, "_captured_signals", None)
        if isinstance(captured, list):
            captured.clear()


def check_free(host: str, port: int, option: str) -> None:
    """Before loading a model for a minute: is the port free? (InputError naming the option.)"""
    listen(host, port, option).close()


def listen(host: str, port: int, option: str = "--port") -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise InputError(f"cannot listen on {host}:{port} ({e.strerror}): choose another {option}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def serve(model: ServedModel, options: ServeOptions, log=print) -> Optional[int]:
    """Run until SIGTERM/SIGINT; returns the signal that stopped it."""
    from edgecv.serving.rest import build_app

    server = ModelServer(model, options, log)
    sock = listen(options.host, options.port)
    config = uvicorn.Config(build_app(server), loop="asyncio", lifespan="off", log_level="warning",
                            http=header_timeout_protocol(options.header_timeout), ws="none",
                            limit_concurrency=options.limit_concurrency, timeout_keep_alive=5,
                            timeout_graceful_shutdown=options.graceful_seconds, server_header=False)
    runner = _Server(config)

    async def main():
        await server.start()
        try:
            await runner.serve(sockets=[sock])
        finally:  # uvicorn has drained REST; gRPC gets its grace period, the batch queue finishes
            await server.stop()

    try:
        asyncio.run(main())
    finally:
        sock.close()
        model.close()
    if not runner.started:
        raise InputError("the server did not start: see the messages above")
    return runner.stopped_by
