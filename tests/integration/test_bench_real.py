"""One short real bench (few tokens, one repeat) on the real model: against the session node over
HTTP, an agent job with grammar-forced tool calls and a json_schema answer, a prediction for a Pi 4,
and one node the bench starts itself (cold start)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from slmnode.bench.agent_jobs import JOBS
from slmnode.bench.agent_runner import run_job
from slmnode.bench.client import BenchClient, parse_endpoint
from slmnode.bench.predict import predict_jobs, resolve_model_info
from slmnode.bench.results import JobResult, TargetResult
from slmnode.bench.runner import BenchPlan, NodeConfig, run_bench
from slmnode.cli import main
from tests.conftest import RunningNode

pytestmark = pytest.mark.integration

# The real workload sends the ~1.2k-token system prompt; a short one keeps this test fast on a busy box.
SHORT_SYSTEM = "You are an operations agent. Call the tool you are asked to call; copy ids exactly; answer in JSON."


def test_short_cli_bench_against_the_node(node: RunningNode) -> None:
    out = CliRunner().invoke(main, ["bench", "--endpoint", node.base_url + "/v1", "-r", "1", "--warmup", "0",
                                    "--only", "pp128", "--json"])
    assert out.exit_code == 0, out.output
    target = json.loads(out.stdout)["targets"][0]
    assert target["model"] == node.model and target["errors"] == {}
    m = target["metrics"]
    assert m["pp128"]["median"] > 0 and 100 <= m["pp128"]["tokens"] <= 160  # calibrated to ~128 real tokens
    assert m["pp128_server"]["median"] > 0  # slmnode reports llama-server-style timings


@pytest.mark.timeout(900)  # three grammar-constrained calls: ~15 s on a quiet 2-core box, minutes on a busy one
def test_agent_job_on_the_real_model_validates_and_predicts_a_pi4_time(node: RunningNode, smollm_path: Path) -> None:
    with BenchClient(parse_endpoint(node.base_url)) as client:
        run = run_job(client, JOBS["triage"], system=SHORT_SYSTEM)
    assert [s.name for s in run.steps] == ["lookup_customer", "create_ticket", "final"]
    assert run.valid, run.problems  # grammar-forced tool calls and the json_schema answer all validate
    assert all(s.prompt_tokens > 0 and s.completion_tokens > 0 for s in run.steps)
    target = TargetResult(label="node", kind="endpoint", url=node.base_url, model=node.model,
                          jobs=[JobResult(name="triage", title="t", runs=[run])])
    pred = predict_jobs(target, resolve_model_info(str(smollm_path)), "pi4-8gb", ctx=2048)
    p = pred.jobs[0]
    assert p.steps == 3 and pred.prompt_tps > 0 and pred.gen_tps > 0
    assert p.predicted_s == pytest.approx(p.prompt_tokens / pred.prompt_tps + p.completion_tokens / pred.gen_tps)
    assert p.predicted_cached_s <= p.predicted_s


def test_bench_starts_its_own_node_and_measures_cold_start(embedded_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLMNODE_HOME", str(embedded_home))
    plan = BenchPlan(repeats=1, warmup=0, workloads=("cold", "pp128"))
    report = run_bench(plan, configs=[NodeConfig(ctx=512, threads=1)])
    target = report.targets[0]
    assert target.kind == "node" and target.settings["threads"] == 1 and target.settings["ctx"] == 512
    cold, load = target.metrics["cold_start_s"].median, target.metrics["model_load_s"].median
    assert 0 < load < cold  # process start → first token includes the model load
    assert target.metrics["pp128"].values and target.errors == {}
