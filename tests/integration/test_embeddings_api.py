"""Embeddings on a real node (the embedded default model) through the real ``openai`` and ``ollama`` clients.

Properties that a wrong pooling, batching or normalisation would break: unit length, the same text gives the
same vector, a batch gives what the texts give one by one, different texts differ, a paraphrase is closer
than an unrelated sentence, ``dimensions`` keeps the leading components (normalised again). Bad input gets a
4xx in each protocol's shape and the node keeps serving; a long embedding does not stall a generation.
"""

from __future__ import annotations

import base64
import math
import struct
import threading
import time

import httpx
import ollama
import openai
import pytest

from tests.conftest import RunningNode

pytestmark = pytest.mark.integration

CAT = "The cat sat on the mat."
CAT2 = "A cat was sitting on the rug."
BANK = "Quarterly revenue of the bank rose by four percent."
CODE = "I love writing programs in Python."


def norm(v: list[float]) -> float:
    return math.sqrt(math.fsum(x * x for x in v))


def cos(a: list[float], b: list[float]) -> float:
    return math.fsum(x * y for x, y in zip(a, b, strict=True)) / (norm(a) * norm(b))


def max_diff(a: list[float], b: list[float]) -> float:
    return max(abs(x - y) for x, y in zip(a, b, strict=True))


@pytest.fixture(scope="module")
def oai(node: RunningNode) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{node.base_url}/v1", api_key="unused", max_retries=0)


@pytest.fixture(scope="module")
def oll(node: RunningNode) -> ollama.Client:
    return ollama.Client(host=node.base_url)


def test_openai_client_embeddings(node: RunningNode, oai: openai.OpenAI) -> None:
    one = oai.embeddings.create(model=node.model, input=CAT)  # the client asks for base64 and decodes it
    assert len(one.data) == 1 and one.usage.prompt_tokens > 0
    full = list(one.data[0].embedding)
    assert len(full) > 64 and abs(norm(full) - 1) < 1e-5

    texts = [CAT, CAT2, BANK, CODE, CAT]
    batch = oai.embeddings.create(model=node.model, input=texts, encoding_format="float")
    vecs = [list(d.embedding) for d in sorted(batch.data, key=lambda d: d.index)]
    assert [d.index for d in batch.data] == list(range(len(texts)))
    assert all(abs(norm(v) - 1) < 1e-5 for v in vecs)
    assert max_diff(vecs[0], full) < 1e-4  # float and base64 answers agree
    assert vecs[0] == vecs[4]  # the same text in one batch: the same vector
    for text, v in zip(texts, vecs, strict=True):  # a batch gives what each text gives alone
        alone = oai.embeddings.create(model=node.model, input=text, encoding_format="float").data[0].embedding
        assert max_diff(list(alone), v) < 1e-4
    assert batch.usage.prompt_tokens == sum(
        oai.embeddings.create(model=node.model, input=t).usage.prompt_tokens for t in texts)
    for i in range(4):
        for j in range(i + 1, 4):
            assert cos(vecs[i], vecs[j]) < 0.999, (texts[i], texts[j])
    assert cos(vecs[0], vecs[1]) > cos(vecs[0], vecs[2])  # cat/cat closer than cat/bank

    short = oai.embeddings.create(model=node.model, input=CAT, dimensions=64).data[0].embedding
    assert len(short) == 64 and abs(norm(list(short)) - 1) < 1e-5
    head = full[:64]
    assert max_diff(list(short), [x / norm(head) for x in head]) < 1e-5


def test_openai_token_arrays_and_base64(node: RunningNode) -> None:
    r = httpx.post(f"{node.base_url}/v1/embeddings", json={"model": node.model, "input": CAT, "encoding_format": "base64"},
                   timeout=120)
    assert r.status_code == 200, r.text
    raw = base64.b64decode(r.json()["data"][0]["embedding"])
    b64 = list(struct.unpack(f"<{len(raw) // 4}f", raw))
    floats = httpx.post(f"{node.base_url}/v1/embeddings", json={"model": node.model, "input": CAT},
                        timeout=120).json()["data"][0]["embedding"]
    assert max_diff(b64, floats) < 1e-6
    ids = [[1, 2, 3, 4], [5, 6, 7]]
    got = httpx.post(f"{node.base_url}/v1/embeddings", json={"model": node.model, "input": ids}, timeout=120).json()
    assert len(got["data"]) == 2 and got["usage"]["prompt_tokens"] == 7
    single = httpx.post(f"{node.base_url}/v1/embeddings", json={"model": node.model, "input": ids[0]}, timeout=120).json()
    assert max_diff(single["data"][0]["embedding"], got["data"][0]["embedding"]) < 1e-4


def test_ollama_client_embed_and_embeddings(node: RunningNode, oll: ollama.Client) -> None:
    r = oll.embed(model=node.model, input=[CAT, BANK])
    assert r.model == node.model and len(r.embeddings) == 2 and r.prompt_eval_count and r.total_duration
    assert all(abs(norm(list(v)) - 1) < 1e-5 for v in r.embeddings)
    assert cos(list(r.embeddings[0]), list(r.embeddings[1])) < 0.999
    one = oll.embed(model=node.model, input=CAT)
    assert max_diff(list(one.embeddings[0]), list(r.embeddings[0])) < 1e-4
    legacy = oll.embeddings(model=node.model, prompt=CAT)
    assert max_diff(list(legacy.embedding), list(one.embeddings[0])) < 1e-4
    dims = oll.embed(model=node.model, input=CAT, dimensions=32)
    assert len(dims.embeddings[0]) == 32 and abs(norm(list(dims.embeddings[0])) - 1) < 1e-5
    # Past the context: cut by default (Ollama's truncate=true), a 400 when truncation is turned off.
    long = "word " * 3000  # the node runs at --ctx 2048
    cut = oll.embed(model=node.model, input=long)
    assert cut.prompt_eval_count == 2048 and abs(norm(list(cut.embeddings[0])) - 1) < 1e-5
    with pytest.raises(ollama.ResponseError) as err:
        oll.embed(model=node.model, input=long, truncate=False)
    assert err.value.status_code == 400 and "2048" in err.value.error
    assert oll.embed(model=node.model, input=[]).embeddings == []


@pytest.mark.parametrize(("path", "body", "status"), [
    ("/v1/embeddings", {"model": "M", "input": []}, 400),
    ("/v1/embeddings", {"model": "M", "input": ""}, 400),
    ("/v1/embeddings", {"model": "M", "input": ["a", ""]}, 400),
    ("/v1/embeddings", {"model": "M", "input": ["a", 1]}, 400),
    ("/v1/embeddings", {"model": "M", "input": [[99999999]]}, 400),
    ("/v1/embeddings", {"model": "M", "input": "a", "dimensions": 0}, 400),
    ("/v1/embeddings", {"model": "M", "input": "a", "dimensions": 100000}, 400),
    ("/v1/embeddings", {"model": "M", "input": "a", "encoding_format": "int8"}, 400),
    ("/v1/embeddings", {"model": "M", "input": "word " * 3000}, 400),
    ("/v1/embeddings", {"input": "a"}, 400),
    ("/v1/embeddings", {"model": "no-such-model", "input": "a"}, 404),
    ("/api/embed", {"model": "M", "input": 5}, 400),
    ("/api/embed", {"model": "M", "input": "word " * 3000, "truncate": False}, 400),
    ("/api/embed", {"model": "M", "input": "a", "dimensions": 100000}, 400),
    ("/api/embed", {"model": "M", "input": "a", "keep_alive": "soon"}, 400),
    ("/api/embed", {"model": "no-such-model", "input": "a"}, 404),
    ("/api/embeddings", {"model": "M", "prompt": ["a"]}, 400),
])
def test_bad_input_gets_4xx_in_the_protocols_shape(node: RunningNode, path: str, body: dict[str, object],
                                                   status: int) -> None:
    body = {k: (node.model if v == "M" else v) for k, v in body.items()}
    r = httpx.post(f"{node.base_url}{path}", json=body, timeout=120)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    if path.startswith("/api/"):
        assert isinstance(err, str) and err
    else:
        assert isinstance(err, dict) and err["message"] and err["type"] == "invalid_request_error"
    if "word" in str(body.get("input", "")):  # too long: the message names the limit
        assert "at most 2048 tokens" in (err if isinstance(err, str) else err["message"])
        if isinstance(err, dict):
            assert err["code"] == "context_length_exceeded" and err["param"] == "input"
    ok = httpx.post(f"{node.base_url}/v1/embeddings", json={"model": node.model, "input": "still here"}, timeout=120)
    assert ok.status_code == 200  # the node keeps serving


def test_a_long_embedding_does_not_stall_a_generation(node: RunningNode) -> None:
    """Embedding decodes and generation steps take turns: tokens keep coming while a long embedding runs, and the
    embedding is not starved by the generation either (it ends first, though it was sent second)."""
    inputs = [f"{i} " + "the quick brown fox jumps over the lazy dog " * 20 for i in range(8)]  # ~8 x 200 tokens
    token_times: list[float] = []
    embed_span: list[float] = []
    started = threading.Event()

    def embed() -> None:
        started.wait(120)
        t0 = time.monotonic()
        r = httpx.post(f"{node.base_url}/v1/embeddings", json={"model": node.model, "input": inputs}, timeout=600)
        embed_span.extend([t0, time.monotonic()])
        assert r.status_code == 200, r.text

    th = threading.Thread(target=embed)
    th.start()
    with httpx.stream("POST", f"{node.base_url}/v1/completions", timeout=600, json={
            "model": node.model, "prompt": "1, 2, 3, 4, 5, 6, 7, 8,", "max_tokens": 400, "temperature": 0,
            "stream": True}) as r:
        for line in r.iter_lines():
            if line.startswith("data: {"):
                token_times.append(time.monotonic())
                started.set()
    th.join()
    gen_done = time.monotonic()
    t0, t1 = embed_span
    during = [t for t in token_times if t0 < t < t1]
    assert len(during) >= 2, (len(token_times), t1 - t0)
    assert t1 < gen_done and token_times[-1] > t1  # the generation went on after the embedding ended


def test_a_client_that_leaves_stops_its_embedding(node: RunningNode) -> None:
    """Embeddings are served one at a time, so a small request queued behind a big one whose client left returns
    after at most one more decode, not after the rest of the big one (deadline: a multiple of a measured group)."""
    group = [f"{i} the quick brown fox jumps over the dog" for i in range(32)]  # one decode group
    url = f"{node.base_url}/v1/embeddings"
    t0 = time.monotonic()
    assert httpx.post(url, json={"model": node.model, "input": group}, timeout=600).status_code == 200
    one_group = time.monotonic() - t0
    with pytest.raises(httpx.TimeoutException):  # 16 groups; the client gives up during the first
        httpx.post(url, json={"model": node.model, "input": group * 16}, timeout=one_group)
    t0 = time.monotonic()
    assert httpx.post(url, json={"model": node.model, "input": "small"}, timeout=600).status_code == 200
    assert time.monotonic() - t0 < 4 * one_group  # not the ~15 groups left of the big request
