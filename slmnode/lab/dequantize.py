"""Write an F16 GGUF from a quantized one (``gguf`` package), so a reference exists for comparisons.

Every quantized tensor is unpacked with ``gguf.quants.dequantize`` and stored as F16; tensors that
were F32 (norms, small vectors) stay F32, as llama.cpp's converter keeps them. Metadata is copied,
with ``general.file_type`` set to MOSTLY_F16. One tensor is held in memory at a time. The result
carries no more information than the source: it is a faithful *unpacking*, not the original model.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import gguf
import numpy as np

from slmnode.errors import ModelFormatError

LLAMA_FTYPE_MOSTLY_F16 = 1
_KEEP = {gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16}


def _out_type(t: gguf.ReaderTensor) -> gguf.GGMLQuantizationType:
    if t.tensor_type == gguf.GGMLQuantizationType.F32 or len(t.shape) < 2:
        return gguf.GGMLQuantizationType.F32
    return gguf.GGMLQuantizationType.F16


def dequantize_gguf(src: str | Path, dst: str | Path, progress: Callable[[int, int], None] | None = None) -> Path:
    """Unpack ``src`` to an F16 GGUF at ``dst`` (temp name, renamed on success).

    ``progress(done_bytes, total_bytes)`` is called after each tensor (source bytes).
    """
    src, dst = Path(src), Path(dst)
    try:
        reader = gguf.GGUFReader(src)
    except (OSError, ValueError) as exc:
        raise ModelFormatError(f"{src} is not a readable GGUF file: {exc}") from exc
    arch_field = reader.get_field(gguf.Keys.General.ARCHITECTURE)
    if arch_field is None:
        raise ModelFormatError(f"{src} has no general.architecture; is it a GGUF model?")
    arch = str(arch_field.contents())
    tmp = dst.with_name(f".{dst.name}.part-{os.getpid()}")
    dst.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(tmp, arch, endianess=reader.endianess)
    try:
        for f in reader.fields.values():
            if f.name == gguf.Keys.General.ARCHITECTURE or f.name.startswith("GGUF."):
                continue
            if f.name == gguf.Keys.General.FILE_TYPE:
                writer.add_file_type(LLAMA_FTYPE_MOSTLY_F16)
                continue
            vtype = f.types[0]
            sub = f.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
            writer.add_key_value(f.name, f.contents(), vtype, sub_type=sub)
        if reader.get_field(gguf.Keys.General.FILE_TYPE) is None:
            writer.add_file_type(LLAMA_FTYPE_MOSTLY_F16)
        for t in reader.tensors:
            out = _out_type(t)
            np_shape = tuple(int(x) for x in reversed(t.shape.tolist()))
            itemsize = 4 if out == gguf.GGMLQuantizationType.F32 else 2
            dtype = np.float32 if out == gguf.GGMLQuantizationType.F32 else np.float16
            writer.add_tensor_info(t.name, np_shape, np.dtype(dtype), int(t.n_elements) * itemsize, raw_dtype=out)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        total = sum(int(t.n_bytes) for t in reader.tensors)
        done = 0
        for t in reader.tensors:
            out = _out_type(t)
            if t.tensor_type in _KEEP:
                data = np.asarray(t.data).reshape(-1)
            else:
                data = gguf.quants.dequantize(t.data, t.tensor_type).reshape(-1)
            data = data.astype(np.float32 if out == gguf.GGMLQuantizationType.F32 else np.float16)
            writer.write_tensor_data(data)
            done += int(t.n_bytes)
            if progress:
                progress(done, total)
        writer.close()
        os.replace(tmp, dst)
    except NotImplementedError as exc:
        raise ModelFormatError(f"the gguf package cannot dequantize a tensor of {src.name}: {exc}") from exc
    finally:
        writer.close()
        tmp.unlink(missing_ok=True)
    return dst
