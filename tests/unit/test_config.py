from __future__ import annotations

from pathlib import Path

import pytest

from slmnode.config import home_dir, load_settings
from slmnode.errors import ConfigError


def test_precedence_cli_over_env_over_toml(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('port = 7000\nctx = 1024\nthreads = 3\n[[upstreams]]\nname = "x"\n')
    env = {"SLMNODE_PORT": "7100", "SLMNODE_CTX": "2048"}
    s = load_settings({"port": 7200, "threads": None}, config_file=cfg, environ=env)
    assert (s.port, s.ctx, s.threads) == (7200, 2048, 3)


def test_defaults_and_home(_hermetic_home: Path) -> None:
    s = load_settings({}, environ={})
    assert (s.host, s.port, s.ctx, s.kv_type, s.model) == ("127.0.0.1", 8080, 4096, "f16", None)
    assert home_dir() == _hermetic_home


@pytest.mark.parametrize("text,match", [("port = 'abc'\n", "port"), ("bogus = 1\n", "bogus"), ("port = \n", "TOML")])
def test_bad_config_names_the_problem(tmp_path: Path, text: str, match: str) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_settings({}, config_file=cfg, environ={})


def test_bad_env_value() -> None:
    with pytest.raises(ConfigError, match="kv_type"):
        load_settings({}, environ={"SLMNODE_KV_TYPE": "q3"})


BOARDS = Path(__file__).parents[1] / "data" / "boards"


@pytest.mark.parametrize("board,cache_ram,expected", [
    ("pi4b-4gb", None, 375),  # MemTotal 3,845,824 kB: a tenth of it
    ("pi4b-8gb", None, 512),
    ("pi4b-4gb", 2048, 2048),  # as set, even above the default
    ("pi4b-8gb", 0, 0),  # off
])
def test_parked_prompt_ram_defaults_to_512_mib_but_at_most_a_tenth_of_ram(
        board: str, cache_ram: int | None, expected: int) -> None:
    from slmnode.server.app import cache_ram_for

    s = load_settings({"hardware_root": str(BOARDS / board), "cache_ram": cache_ram}, environ={})
    assert cache_ram_for(s) == expected
