"""Architecture facts of the model families people run on small boxes.

Figures are from each model's published ``config.json`` (Hugging Face) and, where llama.cpp
differs, from what llama.cpp loads (e.g. Gemma 3's sliding-window pattern: 5 local layers then
1 global). ``params`` counts every weight of the text model, embeddings included, and the output
projection when it is not tied to the embeddings. Qwen 3.5 is a hybrid: only every 4th layer is
softmax attention with a KV cache; the others are Gated DeltaNet layers with a small fixed state.
Entries marked ``verified=False`` were assembled from secondary sources; prefer a local GGUF.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ModelFamily:
    key: str  # canonical name, e.g. "qwen2.5-0.5b-instruct"
    display: str
    architecture: str  # llama.cpp's general.architecture
    n_layers: int
    n_embd: int
    n_ff: int
    n_head: int
    n_head_kv: int
    head_dim: int
    vocab: int
    ctx_train: int
    params: int
    tied_embeddings: bool
    sliding_window: int | None = None
    swa_period: int | None = None  # every swa_period-th layer is global; the rest use the window
    kv_layer_period: int | None = None  # hybrid models: only every N-th layer keeps a KV cache
    n_expert: int = 0
    n_expert_used: int = 0
    params_active: int | None = None  # MoE: weights touched per token
    instruct: bool = True
    verified: bool = True
    aliases: tuple[str, ...] = field(default_factory=tuple)

    @property
    def n_kv_layers(self) -> int:
        if self.kv_layer_period:
            return self.n_layers // self.kv_layer_period
        return self.n_layers

    @property
    def n_swa_layers(self) -> int:
        """Layers that attend only to the last ``sliding_window`` tokens (llama.cpp's ``is_swa``)."""
        if not self.sliding_window or not self.swa_period:
            return 0
        return sum(1 for i in range(self.n_layers) if (i + 1) % self.swa_period != 0)


F = ModelFamily
FAMILIES: list[ModelFamily] = [
    F("gemma3-270m", "Gemma 3 270M", "gemma3", 18, 640, 2048, 4, 1, 256, 262144, 32768,
      268_098_176, True, 512, 6, instruct=False,
      aliases=("gemma3:270m", "gemma3:270m-pt", "gemma-3-270m", "gemma-3-270m-it", "gemma3-270m-it")),
    F("gemma3-1b", "Gemma 3 1B", "gemma3", 26, 1152, 6912, 4, 1, 256, 262144, 32768,
      999_885_952, True, 512, 6, aliases=("gemma3:1b", "gemma-3-1b-it", "gemma3-1b-it")),
    F("gemma3-4b", "Gemma 3 4B (text)", "gemma3", 34, 2560, 10240, 8, 4, 256, 262208, 131072,
      3_880_099_328, True, 1024, 6, aliases=("gemma3:4b", "gemma-3-4b-it", "gemma3-4b-it")),
    F("gemma3-12b", "Gemma 3 12B (text)", "gemma3", 48, 3840, 15360, 16, 8, 256, 262208, 131072,
      11_766_034_176, True, 1024, 6, aliases=("gemma3:12b", "gemma-3-12b-it", "gemma3-12b-it")),
    F("qwen3.5-0.8b", "Qwen 3.5 0.8B", "qwen35", 24, 1024, 3584, 8, 2, 256, 248320, 262144,
      752_000_000, True, kv_layer_period=4, verified=False, aliases=("qwen3.5:0.8b",)),
    F("qwen3.5-2b", "Qwen 3.5 2B", "qwen35", 24, 2048, 6144, 8, 2, 256, 248320, 262144,
      1_880_000_000, True, kv_layer_period=4, verified=False, aliases=("qwen3.5:2b",)),
    F("qwen3.5-4b", "Qwen 3.5 4B", "qwen35", 32, 2560, 9216, 16, 4, 256, 248320, 262144,
      4_210_000_000, True, kv_layer_period=4, verified=False, aliases=("qwen3.5:4b",)),
    F("qwen3-0.6b", "Qwen3 0.6B", "qwen3", 28, 1024, 3072, 16, 8, 128, 151936, 40960,
      596_049_920, True, aliases=("qwen3:0.6b",)),
    F("qwen3-30b-a3b", "Qwen3 30B-A3B (MoE)", "qwen3moe", 48, 2048, 768, 32, 4, 128, 151936, 40960,
      30_532_122_624, False, n_expert=128, n_expert_used=8, params_active=3_340_000_000,
      aliases=("qwen3:30b-a3b", "qwen3-30b-a3b-instruct-2507")),
    F("qwen2.5-0.5b-instruct", "Qwen 2.5 0.5B Instruct", "qwen2", 24, 896, 4864, 14, 2, 64, 151936,
      32768, 494_032_768, True, aliases=("qwen2.5-0.5b", "qwen2.5:0.5b")),
    F("qwen2.5-1.5b-instruct", "Qwen 2.5 1.5B Instruct", "qwen2", 28, 1536, 8960, 12, 2, 128, 151936,
      32768, 1_543_714_304, True, aliases=("qwen2.5-1.5b", "qwen2.5:1.5b")),
    F("qwen2.5-3b-instruct", "Qwen 2.5 3B Instruct", "qwen2", 36, 2048, 11008, 16, 2, 128, 151936,
      32768, 3_085_938_688, True, aliases=("qwen2.5-3b", "qwen2.5:3b")),
    F("qwen2.5-7b-instruct", "Qwen 2.5 7B Instruct", "qwen2", 28, 3584, 18944, 28, 4, 128, 152064,
      32768, 7_615_616_512, False, aliases=("qwen2.5-7b", "qwen2.5:7b")),
    F("llama3.2-1b", "Llama 3.2 1B Instruct", "llama", 16, 2048, 8192, 32, 8, 64, 128256, 131072,
      1_235_814_400, True, aliases=("llama3.2:1b", "llama-3.2-1b-instruct", "llama3.2-1b-instruct")),
    F("llama3.2-3b", "Llama 3.2 3B Instruct", "llama", 28, 3072, 8192, 24, 8, 128, 128256, 131072,
      3_212_749_824, True, aliases=("llama3.2:3b", "llama-3.2-3b-instruct", "llama3.2-3b-instruct")),
    F("phi3.5-mini", "Phi-3.5 mini Instruct", "phi3", 32, 3072, 8192, 32, 32, 96, 32064, 131072,
      3_821_079_552, False, aliases=("phi-3.5-mini-instruct", "phi3.5:3.8b", "phi-3.5-mini")),
    F("phi4-mini", "Phi-4 mini Instruct", "phi3", 32, 3072, 8192, 24, 8, 128, 200064, 131072,
      3_836_021_760, True, aliases=("phi-4-mini-instruct", "phi4-mini:3.8b", "phi-4-mini")),
    F("smollm2-135m", "SmolLM2 135M Instruct", "llama", 30, 576, 1536, 9, 3, 64, 49152, 8192,
      134_515_008, True, aliases=("smollm2:135m", "smollm2-135m-instruct")),
    F("smollm2-360m", "SmolLM2 360M Instruct", "llama", 32, 960, 2560, 15, 5, 64, 49152, 8192,
      361_821_120, True, aliases=("smollm2:360m", "smollm2-360m-instruct")),
    F("smollm2-1.7b", "SmolLM2 1.7B Instruct", "llama", 24, 2048, 8192, 32, 32, 64, 49152, 8192,
      1_711_376_384, True, aliases=("smollm2:1.7b", "smollm2-1.7b-instruct")),
    # Older models that appear in the real Raspberry Pi measurements (used by the accuracy check).
    F("smollm-135m", "SmolLM 135M (v1)", "llama", 30, 576, 1536, 9, 3, 64, 49152, 2048,
      134_515_008, True, instruct=False, aliases=("smollm:135m",)),
    F("tinyllama-1.1b", "TinyLlama 1.1B Chat", "llama", 22, 2048, 5632, 32, 4, 64, 32000, 2048,
      1_100_048_384, False, aliases=("tinyllama", "tinyllama:1.1b", "tinyllama-1.1b-chat")),
    F("llama-7b", "LLaMA 7B (v1)", "llama", 32, 4096, 11008, 32, 32, 128, 32000, 2048,
      6_738_415_616, False, instruct=False, aliases=("llama:7b", "llama2-7b", "llama-2-7b")),
]

BY_KEY: dict[str, ModelFamily] = {f.key: f for f in FAMILIES}
