"""The OIP gRPC front end: `inference.GRPCInferenceService` on asyncio grpcio, plus the
standard health and reflection services. It runs inside the API service's worker, so
gRPC requests reach the same runners (and batches) as HTTP ones."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from tiffin.families.signature import OIPError
from tiffin.oip import inference_pb2 as pb
from tiffin.oip import inference_pb2_grpc as pb_grpc
from tiffin.oip import tensors
from tiffin.oip.models import Registry
from tiffin.oip.rest import SERVER
from tiffin.versions import traffic
from tiffin.wire.limits import MAX_OIP_BYTES

SERVICE_NAME = "inference.GRPCInferenceService"


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(self, registry: Registry):
        self.registry = registry

    async def _model(self, context: grpc.aio.ServicerContext, name: str, version: str):
        try:
            return self.registry.get(name, version)
        except OIPError as exc:
            await context.abort(getattr(grpc.StatusCode, exc.grpc), str(exc))

    async def ServerLive(self, request, context):
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request, context):
        return pb.ServerReadyResponse(ready=await self.registry.all_ready())

    async def ModelReady(self, request, context):
        model = await self._model(context, request.name, request.version)
        return pb.ModelReadyResponse(ready=await self.registry.ready(model.name))

    async def ServerMetadata(self, request, context):
        return pb.ServerMetadataResponse(**SERVER)

    async def ModelMetadata(self, request, context):
        model = await self._model(context, request.name, request.version)
        meta = model.metadata()
        return pb.ModelMetadataResponse(
            name=meta["name"],
            versions=meta["versions"],
            platform=meta["platform"],
            inputs=[pb.ModelMetadataResponse.TensorMetadata(**t) for t in meta["inputs"]],
            outputs=[pb.ModelMetadataResponse.TensorMetadata(**t) for t in meta["outputs"]],
        )

    async def ModelConfig(self, request, context):
        from google.protobuf import json_format

        model = await self._model(context, request.name, request.version)
        return pb.ModelConfigResponse(config=json_format.ParseDict(model.config(), pb.ModelConfig()))

    async def ModelInfer(self, request, context):
        model = await self._model(context, request.model_name, request.model_version)
        try:
            raw = list(request.raw_input_contents)
            if raw and len(raw) != len(request.inputs):
                raise OIPError(f"{len(raw)} raw_input_contents for {len(request.inputs)} inputs")
            inputs = {}
            for i, t in enumerate(request.inputs):
                shape = list(t.shape)
                if len(shape) > 8 or any(d < 0 or d > 2**31 for d in shape):
                    raise OIPError(f"input {t.name[:64]!r}: shape must be at most 8 whole numbers 0..{2**31}")
                try:
                    inputs[t.name] = (
                        tensors.from_raw(t.datatype, shape, raw[i])
                        if raw
                        else tensors.from_contents(t.datatype, shape, t.contents)
                    )
                except tensors.TensorError as exc:
                    raise OIPError(f"input {t.name[:64]}: {exc}") from None
                except (ValueError, TypeError, OverflowError, MemoryError) as exc:  # e.g. 300 as UINT8 contents
                    raise OIPError(f"input {t.name[:64]}: contents do not fit {t.datatype} {shape} ({exc})"[:500]) from None
            if any("classification" in o.parameters for o in request.outputs):
                raise OIPError("the classification extension (class_count) is not served: ask for probabilities and label")
            wanted = [o.name for o in request.outputs] or None
            route = {k.encode(): v.encode() if isinstance(v, str) else v for k, v in context.invocation_metadata() or ()}
            if request.model_version:  # asks for that version, as x-tiffin-version does
                route[traffic.HEADER] = request.model_version.encode()
            traffic.ROUTE.set(route)
            outputs, version = await model.infer(inputs, wanted)
        except OIPError as exc:
            await context.abort(getattr(grpc.StatusCode, exc.grpc), str(exc))
        response = pb.ModelInferResponse(model_name=model.name, model_version=version, id=request.id)
        for name, array in outputs.items():
            response.outputs.add(name=name, datatype=tensors.datatype_of(array), shape=list(array.shape))
            response.raw_output_contents.append(tensors.to_raw(array))
        return response


class KeyCheck(grpc.aio.ServerInterceptor):
    """API keys on the inference service, from call metadata (`authorization: Bearer <key>` or
    `x-api-key`); health and reflection stay open."""

    def __init__(self, keyring):
        self.keyring = keyring

    async def intercept_service(self, continuation, details):
        if not details.method.startswith(f"/{SERVICE_NAME}/"):
            return await continuation(details)
        from tiffin.api import keys

        decision = self.keyring.check(keys.presented(dict(details.invocation_metadata or ())), "infer")
        if decision.allowed:
            return await continuation(details)
        code = {401: grpc.StatusCode.UNAUTHENTICATED, 403: grpc.StatusCode.PERMISSION_DENIED}.get(
            decision.status, grpc.StatusCode.RESOURCE_EXHAUSTED
        )

        async def deny(request, context):
            await context.abort(code, decision.message)

        return grpc.unary_unary_rpc_method_handler(deny)


REFLECTION_V1 = "grpc.reflection.v1.ServerReflection"


def _reflection_v1(server: grpc.aio.Server, names: list[str]) -> None:
    """Reflection under its v1 name too (grpcurl and newer clients ask for v1 first).
    grpcio-reflection serves v1alpha only; v1's messages are v1alpha's, field for field, so
    the same servicer answers both."""
    from grpc_reflection.v1alpha import reflection_pb2
    from grpc_reflection.v1alpha._async import ReflectionServicer

    servicer = ReflectionServicer([*names, REFLECTION_V1])
    method = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(REFLECTION_V1, {"ServerReflectionInfo": method}),))


async def start(registry: Registry, host: str, port: int, keyring=None) -> grpc.aio.Server:
    options = [("grpc.max_receive_message_length", MAX_OIP_BYTES), ("grpc.max_send_message_length", MAX_OIP_BYTES)]
    server = grpc.aio.server(options=options, interceptors=[KeyCheck(keyring)] if keyring is not None else None)
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(InferenceServicer(registry), server)
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    _reflection_v1(server, [SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME])
    reflection.enable_server_reflection(
        [SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME, REFLECTION_V1], server
    )
    if server.add_insecure_port(f"{host}:{port}") == 0:
        raise RuntimeError(f"gRPC could not bind {host}:{port}")
    await server.start()
    await health.set(SERVICE_NAME, health_pb2.HealthCheckResponse.SERVING)
    await health.set("", health_pb2.HealthCheckResponse.SERVING)
    return server
