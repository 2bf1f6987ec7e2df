"""The bench's agent job through each wire format the node speaks (``--protocol``): chat completions,
Anthropic Messages and OpenAI Responses, on the real model, with the real tool loop (each call's result fed
back in that protocol's shape); every step must validate (grammar-forced calls, json_schema answer)."""

from __future__ import annotations

import pytest

from slmnode.bench.agent_jobs import JOBS
from slmnode.bench.agent_runner import run_job
from slmnode.bench.client import BenchClient, parse_endpoint
from tests.conftest import RunningNode
from tests.integration.test_bench_real import SHORT_SYSTEM

pytestmark = pytest.mark.integration


@pytest.mark.timeout(1800)  # three protocols × three grammar-constrained calls
def test_agent_job_through_each_protocol_is_valid(node: RunningNode) -> None:
    job = JOBS["triage"]
    with BenchClient(parse_endpoint(node.base_url)) as client:
        for protocol in ("openai", "anthropic", "responses"):
            run = run_job(client, job, system=SHORT_SYSTEM, protocol=protocol)
            assert [s.name for s in run.steps] == [*job.plan, "final"], (protocol, run.problems)
            assert run.valid and all(s.valid for s in run.steps), (protocol, run.problems)
            assert all(s.prompt_tokens > 0 and s.completion_tokens > 0 for s in run.steps), protocol
            if protocol != "openai":  # the later steps' prompts grew by the fed-back tool results
                assert run.steps[1].prompt_tokens > run.steps[0].prompt_tokens, protocol
