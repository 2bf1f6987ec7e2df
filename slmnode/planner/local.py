"""This machine's device profile: a short real llama.cpp run turned into a cached :class:`DeviceProfile`.

The measuring (``slmnode.engine.build_info.measure_throughput``) sits below the planner, so the caller
passes it in; this module probes, does the arithmetic (:mod:`slmnode.planner.calibrate`) and caches.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from slmnode.hardware.cpu import default_threads
from slmnode.hardware.probe import HardwareFacts
from slmnode.planner.calibrate import profile_from_measurement
from slmnode.planner.fit import machine_repack_types
from slmnode.planner.model_facts import facts_from_gguf
from slmnode.planner.profiles import DeviceProfile, save_local_profile


class Throughput(Protocol):
    @property
    def prompt_tps(self) -> float: ...
    @property
    def gen_tps(self) -> float: ...
    @property
    def n_prompt(self) -> int: ...
    @property
    def n_gen(self) -> int: ...


Measure = Callable[..., Throughput]  # measure(model_path, threads=...) -> Throughput


def calibrate_local(hw: HardwareFacts, model_path: str | Path, measure: Measure,
                    threads: int | None = None) -> tuple[DeviceProfile, float]:
    """Measure ``model_path`` on this machine, save the profile; returns it and the 1-minute load
    average during the run (above ``threads`` other work slowed the measurement)."""
    cores = hw.cpu.cores or os.cpu_count() or 1
    t = threads or default_threads()
    m = measure(model_path, threads=t)
    profile = profile_from_measurement(
        facts_from_gguf(model_path), prompt_tps=m.prompt_tps, gen_tps=m.gen_tps, n_prompt=m.n_prompt,
        n_gen=m.n_gen, threads=t, cores=min(cores, default_threads()), ram_bytes=hw.memory.total_bytes or 0,
        arch=hw.cpu.arch or "?", cpu_features=hw.cpu.llama_features,
        repack_types=machine_repack_types(hw.cpu.arch, hw.cpu.flags),
        description=f"this machine: {hw.board or hw.cpu.model or '?'} ({hw.cpu.cores} CPUs)",
    )
    load = os.getloadavg()[0]
    measurement: dict[str, Any] = {**vars(m), "load_average_1m": load}
    save_local_profile(profile, measurement)
    return profile, load
