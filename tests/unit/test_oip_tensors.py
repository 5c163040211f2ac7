import numpy as np
import pytest

from tiffin.oip import tensors


@pytest.mark.parametrize(
    "array",
    [
        np.arange(6, dtype=np.uint8).reshape(2, 3),
        np.array([[0.5, -1.25]], dtype=np.float16),
        np.array([1.5, 2.5], dtype=np.float32),
        np.array([-(2**40), 7], dtype=np.int64),
        np.array([True, False]),
        np.array([b"", b"caf\xc3\xa9", b"x" * 300], dtype=object),
    ],
)
def test_raw_round_trip(array):
    dtype = tensors.datatype_of(array)
    back = tensors.from_raw(dtype, list(array.shape), tensors.to_raw(array))
    assert back.shape == array.shape and back.tolist() == array.tolist()


def test_bytes_wire_format_is_length_prefixed_little_endian():
    assert tensors.to_raw(np.array([b"ab", b"c"], dtype=object)) == b"\x02\x00\x00\x00ab\x01\x00\x00\x00c"


@pytest.mark.parametrize(
    "datatype, shape, raw, fragment",
    [
        ("FP32", [2], b"\0" * 7, "needs 8 bytes, got 7"),
        ("BYTES", [2], b"\x01\x00\x00\x00a", "holds 1 elements; shape [2] needs 2"),
        ("BYTES", [1], b"\x09\x00\x00\x00a", "longer than the data sent"),
        ("BYTES", [1], b"\x01\x00", "inside an element's length prefix"),
        ("FP8", [1], b"\0", "unknown datatype 'FP8'"),
        ("UINT8", [-1], b"", "negative dimension"),
    ],
)
def test_bad_raw_tensors_say_why(datatype, shape, raw, fragment):
    with pytest.raises(tensors.TensorError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        tensors.from_raw(datatype, shape, raw)


def test_json_tensors():
    t = {"name": "x", "datatype": "INT64", "shape": [2, 2], "data": [[1, 2], [3, 4]]}
    assert tensors.from_json(t).tolist() == [[1, 2], [3, 4]]
    assert tensors.to_json("y", np.array([b"hi"], dtype=object)) == {
        "name": "y",
        "datatype": "BYTES",
        "shape": [1],
        "data": ["hi"],
    }
    with pytest.raises(tensors.TensorError, match="needs 3 values, got 2"):
        tensors.from_json({"name": "x", "datatype": "FP32", "shape": [3], "data": [1, 2]})
    with pytest.raises(tensors.TensorError, match="data is not INT64"):
        tensors.from_json({"name": "x", "datatype": "INT64", "shape": [1], "data": ["seven"]})
    with pytest.raises(tensors.TensorError, match="BYTES data must be strings"):
        tensors.from_json({"name": "x", "datatype": "BYTES", "shape": [1], "data": [3]})


def test_model_config_messages_keep_tritons_field_numbers():
    """Our ModelConfig subset decodes as Triton's own message (perf_analyzer and tritonclient
    read it with theirs): every field we declare has Triton's number and type. Each side is
    read in a subprocess of its own: both register the `inference` protobuf package."""
    import json
    import subprocess
    import sys

    names = ["ModelConfig", "ModelInput", "ModelOutput", "ModelDynamicBatching", "ModelTensorReshape"]

    def fields(imports: str, config: str, service: str) -> dict:
        probe = (
            f"import json\n{imports}\nout = {{}}\n"
            f"for n in {names!r}:\n"
            f"    out[n] = {{f.name: [f.number, f.type] for f in getattr({config}, n).DESCRIPTOR.fields}}\n"
            "for n in ('ModelConfigRequest', 'ModelConfigResponse'):\n"
            f"    out[n] = {{f.name: [f.number, f.type] for f in getattr({service}, n).DESCRIPTOR.fields}}\n"
            f"out['DataType'] = {{v.name: v.number for v in {config}.DataType.DESCRIPTOR.values}}\n"
            "print(json.dumps(out))"
        )
        return json.loads(subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True).stdout)

    triton = fields("from tritonclient.grpc import model_config_pb2 as m, service_pb2 as s", "m", "s")
    ours = fields("from tiffin.oip import inference_pb2 as pb", "pb", "pb")
    for name in [*names, "ModelConfigRequest", "ModelConfigResponse"]:
        assert ours[name] and all(triton[name][k] == v for k, v in ours[name].items()), name
    assert ours["DataType"] == triton["DataType"]
