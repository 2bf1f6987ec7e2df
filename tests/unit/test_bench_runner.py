"""The whole bench (client, workloads, agent jobs, report, plot, CLI) against fake OpenAI-compatible
servers on loopback: fast, and with known server-side timings so ratios are exact."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from click.testing import CliRunner
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from slmnode.bench.client import parse_endpoint
from slmnode.bench.history import BenchHistory
from slmnode.bench.plot import plot_report
from slmnode.bench.runner import BenchPlan, plan_units, run_bench
from slmnode.cli import main
from tests.unit.test_bench_agent_jobs import GOOD_ARGS, good_answer


def fake_app(gen_tps: float, *, token_delay: float = 0.0, broken_json_schema: bool = False) -> FastAPI:
    """An OpenAI-compatible server that answers every agent step correctly and reports fixed timings."""
    app = FastAPI()

    def timings(n_prompt: int, n_gen: int) -> dict[str, Any]:
        return {"prompt_n": n_prompt, "prompt_per_second": 500.0, "predicted_n": n_gen, "predicted_per_second": gen_tps}

    async def sse(chunks: list[dict[str, Any]], final: dict[str, Any]) -> AsyncIterator[str]:
        for c in chunks:
            await asyncio.sleep(token_delay)
            yield f"data: {json.dumps(c)}\n\n"
        yield f"data: {json.dumps(final)}\n\ndata: [DONE]\n\n"

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"data": [{"id": "fake-model"}]}

    @app.post("/v1/completions", response_model=None)
    async def completions(request: Request) -> Any:
        body = await request.json()
        n_prompt, n_gen = len(body["prompt"].split()), body["max_tokens"]
        usage = {"prompt_tokens": n_prompt, "completion_tokens": n_gen}
        if body.get("stream"):
            chunks = [{"choices": [{"text": "w ", "finish_reason": None}]} for _ in range(n_gen)]
            return StreamingResponse(sse(chunks, {"choices": [{"text": "", "finish_reason": "length"}], "usage": usage}),
                                     media_type="text/event-stream")
        return {"choices": [{"text": "w " * n_gen}], "usage": usage, "timings": timings(n_prompt, n_gen)}

    @app.post("/v1/chat/completions", response_model=None)
    async def chat(request: Request) -> Any:
        body = await request.json()
        msgs = body["messages"]
        n_prompt = sum(len((m.get("content") or "").split()) for m in msgs)
        usage = {"prompt_tokens": n_prompt, "completion_tokens": 12}
        if body.get("stream"):
            chunks = [{"choices": [{"delta": {"content": "ok"}, "finish_reason": None}]}]
            return StreamingResponse(sse(chunks, {"choices": [], "usage": usage}), media_type="text/event-stream")
        message: dict[str, Any] = {"role": "assistant", "content": None}
        if body.get("tools"):
            name = body["tool_choice"]["function"]["name"]
            job = next(j for j, (a, b) in _PLANS.items() if name in (a, b))
            step = _PLANS[job].index(name)
            message["tool_calls"] = [{"id": f"call_{step}", "type": "function",
                                      "function": {"name": name, "arguments": json.dumps(GOOD_ARGS[job][step])}}]
        else:
            if broken_json_schema:
                return JSONResponse({"error": {"message": "json_schema is not supported"}}, status_code=500)
            job = body["response_format"]["json_schema"]["name"].removesuffix("_answer")
            results = [json.loads(m["content"]) for m in msgs if m["role"] == "tool"]
            message["content"] = json.dumps(good_answer(job, results))
        return {"choices": [{"message": message, "finish_reason": "stop"}], "usage": usage,
                "timings": timings(n_prompt, 12)}

    return app


_PLANS = {"triage": ("lookup_customer", "create_ticket"), "extract": ("lookup_vendor", "convert_currency"),
          "calendar": ("get_free_slots", "create_event")}


def serve(app: FastAPI) -> Iterator[str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)  # connections queue in the backlog until uvicorn accepts them: no waiting needed
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    server.should_exit = True
    thread.join(10)
    sock.close()


SLOW_TOKEN_DELAY_S = 0.005  # the slow server waits this long before every streamed chunk: at most 200 chunks/s


@pytest.fixture(scope="module")
def fast_url() -> Iterator[str]:
    yield from serve(fake_app(gen_tps=2000.0))


@pytest.fixture(scope="module")
def slow_url() -> Iterator[str]:
    # it reports five times the rate its chunks can be sent at (1 / SLOW_TOKEN_DELAY_S): the two views differ
    yield from serve(fake_app(gen_tps=1000.0, token_delay=SLOW_TOKEN_DELAY_S))


@pytest.fixture(scope="module")
def broken_url() -> Iterator[str]:
    yield from serve(fake_app(gen_tps=30.0, broken_json_schema=True))


PLAN = BenchPlan(repeats=2, warmup=1, workloads=("pp128", "pp512", "tg128", "ttft", "agent"))


def test_bench_against_two_endpoints_gives_every_metric_and_exact_server_ratios(fast_url: str, slow_url: str,
                                                                                 tmp_path: Path) -> None:
    ticks: list[str] = []
    report = run_bench(PLAN, endpoints=[parse_endpoint(fast_url)], vs=[parse_endpoint(slow_url)], tick=ticks.append)
    assert len(ticks) == plan_units(PLAN, 0, 2)
    fast, slow = report.targets
    assert fast.model == "fake-model" and fast.kind == "endpoint" and fast.errors == {}
    for name in ("pp128", "pp128_server", "pp512", "pp512_server", "tg128", "tg128_server", "tg128_ttft_s",
                 "ttft_s", "ttft_fresh_s"):
        assert len(fast.metrics[name].values) == PLAN.repeats, name
    # fresh passages sized by the calibration: the fake counts words, so about 512 "tokens"
    assert 480 <= (fast.metrics["pp512"].tokens or 0) <= 540
    assert fast.metrics["tg128"].tokens == 128
    assert fast.metrics["tg128_server"].median / slow.metrics["tg128_server"].median == pytest.approx(2.0)
    # tg128 is timed by the client between the first and last chunk, which the server sends 127 waits of
    # SLOW_TOKEN_DELAY_S (0.64 s) apart however fast or loaded this machine is: a bound, not a race of two wall
    # clocks (half the server's claim leaves 0.38 s for the first chunk to arrive late on a busy machine)
    assert 0 < slow.metrics["tg128"].median < slow.metrics["tg128_server"].median / 2
    assert fast.metrics["tg128"].median > 0
    for job in fast.jobs:
        assert job.all_valid and job.all_correct and job.steps == 3 and len(job.runs) == PLAN.repeats
        assert job.tokens["completion"] == 36
    png = plot_report(report, tmp_path / "chart.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_server_that_fails_a_step_is_recorded_not_fatal(broken_url: str) -> None:
    plan = BenchPlan(repeats=1, warmup=0, workloads=("tg128", "agent"), jobs=("extract",))
    report = run_bench(plan, endpoints=[parse_endpoint(broken_url)])
    target = report.targets[0]
    assert "tg128" in target.metrics
    run = target.jobs[0].runs[0]
    assert not run.valid and len(run.steps) == 2  # two tool calls done, the final answer failed
    assert "json_schema is not supported" in run.problems[0]


def test_cli_bench_endpoint_json_plot_and_history(fast_url: str, slow_url: str, tmp_path: Path) -> None:
    chart = tmp_path / "b.png"
    out = CliRunner().invoke(main, ["bench", "--endpoint", fast_url + "#fake-model", "--vs", slow_url, "-r", "1",
                                    "--warmup", "0", "--only", "tg128,agent", "--jobs", "triage", "--json",
                                    "--plot", str(chart), "--label", "unit"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert [t["kind"] for t in data["targets"]] == ["endpoint", "endpoint"]
    assert data["workloads"] == ["tg128", "agent"]  # no cold start for a running server
    assert data["targets"][0]["jobs"][0]["all_valid"] is True
    assert chart.exists()
    with BenchHistory() as h:
        runs = h.list()
    assert [r.label for r in runs] == ["unit"] and runs[0].id == data["id"]
    text = CliRunner().invoke(main, ["bench", "--endpoint", fast_url, "--vs", slow_url, "-r", "1", "--warmup", "0",
                                     "--only", "tg128", "--no-history"])
    assert text.exit_code == 0 and "ratios:" in text.output and "2.00×" in text.output


@pytest.mark.parametrize(("args", "message"), [
    (["--only", "pp1024"], "unknown workload: pp1024"),
    (["--jobs", "poetry"], "unknown agent job: poetry"),
    (["--threads", "two"], "--threads takes comma-separated integers"),
    (["--endpoint", "http://127.0.0.1:9/v1", "--threads", "1,2"], "need a node the bench starts"),
    (["--threads", "1,2", "--vs", "http://127.0.0.1:9"], "run the sweep without --vs"),
    (["--endpoint", "127.0.0.1:9"], "must start with http://"),
    (["--endpoint", "http://127.0.0.1:9/v1"], "cannot reach http://127.0.0.1:9"),
])
def test_cli_errors_are_one_clear_line(args: list[str], message: str) -> None:
    out = CliRunner().invoke(main, ["bench", *args])
    assert out.exit_code == 1
    assert message in out.output
