"""Feasibility matrix, recommendation and the `slmnode plan` single-question JSON."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from slmnode.cli import main
from slmnode.errors import ConfigError
from slmnode.planner.plan import GOAL_MIN_PARAMS, GOALS, feasibility_matrix, recommend
from slmnode.planner.profiles import PROFILES, get_profile


def test_matrix_marks_fit_and_interactivity() -> None:
    rows = feasibility_matrix(get_profile("pi4-4gb"), ctx=4096)
    by = {(r.model, r.quant): r for r in rows}
    assert by[("smollm2-135m", "Q4_K_M")].fits == "yes"
    assert by[("qwen2.5-7b-instruct", "Q8_0")].fits == "no"  # 8 GB of weights on a 4 GB Pi
    for r in rows:
        assert r.interactive == (r.gen_tps >= 1.0)
        if r.fits == "swap":
            assert not r.interactive and r.agent == "no"


@pytest.mark.parametrize("device", sorted(PROFILES))
@pytest.mark.parametrize("goal", sorted(GOALS))
def test_recommendation_fits(device: str, goal: str) -> None:
    rec = recommend(get_profile(device), goal)
    assert rec.row.fits == "yes" and rec.ctx == GOALS[goal][2]
    assert rec.row.params >= GOAL_MIN_PARAMS[goal] or "fastest" in rec.reason


def test_bigger_box_gets_bigger_model() -> None:
    pi4 = recommend(get_profile("pi4-8gb"), "chat").row.params
    n100 = recommend(get_profile("n100-16gb"), "chat").row.params
    assert n100 >= pi4


def test_unknown_goal() -> None:
    with pytest.raises(ConfigError, match="router"):
        recommend(get_profile("pi4-8gb"), "poetry")


def test_cli_single_question_json() -> None:
    args = ["plan", "--device", "pi4-8gb", "--model", "qwen2.5-0.5b-instruct", "--quant", "Q4_K_M",
            "--ctx", "4096", "--json"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["ram_bytes"] == out["ram"]["total"] > 300e6
    assert 0 < out["gen_tps"] < out["prompt_tps"]
    # KV by hand: 24 layers x 4096 x 2 heads x (64+64) x 2 bytes = 48 MiB
    assert out["ram"]["kv_cache"] == 24 * 4096 * 2 * 128 * 2


def test_cli_matrix_and_errors() -> None:
    res = CliRunner().invoke(main, ["plan", "--device", "pi5-8gb", "--goal", "agent", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["recommendation"]["goal"] == "agent" and len(out["rows"]) > 20
    bad = CliRunner().invoke(main, ["plan", "--device", "pi9"])
    assert bad.exit_code == 1 and "known: pi4-8gb" in bad.output
    bad = CliRunner().invoke(main, ["plan", "--device", "pi4-8gb", "--model", "nope-3b"])
    assert bad.exit_code == 1 and "not in the model catalog" in bad.output
