"""Quant lab: quantize, dequantize, and compare quantizations of one model on this box.

- ``dequantize``: an F16 GGUF from a quantized one (gguf package), a reference when only a quant exists.
- ``metrics``: numpy math over logits: per-position NLL, KL divergence, top-1 agreement.
- ``evaluate``: perplexity and KL divergence over a corpus, chunked like llama-perplexity.
- ``compare``: one report row per file (size, bpw, RAM, quality, speed) and a verdict each.
- ``chart``: quality vs speed PNG.

Nothing here imports llama_cpp: logits and quantization come from ``slmnode.engine``.
"""
