#!/usr/bin/python3
"""Independent safetensors reader/writer for tests (json + struct + numpy, from the format's spec).

  safetensors_ref.py read FILE        prints JSON {"meta": {...}, "tensors": {name: {dtype, shape, values}}}
  safetensors_ref.py write FILE       writes a fixed file (names out of order, unpadded header)
"""
import json, struct, sys
import numpy as np

DT = {"F32": np.float32, "F64": np.float64, "I64": np.int64, "I32": np.int32, "U8": np.uint8}

def read(path):
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    hdr = json.loads(raw[8:8 + n].decode("utf-8"))
    data = raw[8 + n:]
    out = {"meta": hdr.pop("__metadata__", {}), "tensors": {}}
    for name, e in hdr.items():
        b, en = e["data_offsets"]
        arr = np.frombuffer(data[b:en], dtype=DT[e["dtype"]]).reshape(e["shape"])
        out["tensors"][name] = {"dtype": e["dtype"], "shape": list(arr.shape),
                                "values": arr.ravel().tolist()}
    print(json.dumps(out))

def write(path):
    tensors = [("z.last", np.arange(6, dtype=np.float32).reshape(2, 3) * 0.5 - 1.0),
               ("a.first", np.array([7, -3], dtype=np.int64)),
               ("m.mid", np.array([[[1, 2], [3, 250]]], dtype=np.uint8))]
    hdr, off, blobs = {"__metadata__": {"arch": "test", "classes": "8"}}, 0, []
    for name, a in tensors:
        b = a.tobytes()
        hdr[name] = {"dtype": {np.float32: "F32", np.int64: "I64", np.uint8: "U8"}[a.dtype.type],
                     "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    h = json.dumps(hdr).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))

if __name__ == "__main__":
    {"read": read, "write": write}[sys.argv[1]](sys.argv[2])
