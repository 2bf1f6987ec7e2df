"""``--predict-for DEVICE``: turn the token counts the agent jobs really used into a predicted wall
time on a device profile of the planner (e.g. ``pi4-8gb``).

Per step: prompt tokens / predicted prompt tok/s + generated tokens / predicted generation tok/s,
summed over the steps of a job. ``predicted_s`` counts every prompt token (no prefix cache);
``predicted_cached_s`` only those the measured server did not take from its prefix cache (what a
node that keeps the system prompt cached would evaluate). HTTP and grammar overheads are not added.
"""

from __future__ import annotations

from pathlib import Path

from slmnode.bench.results import JobPrediction, Prediction, TargetResult
from slmnode.catalog.model_info import ModelInfo, model_info
from slmnode.catalog.store import ModelStore
from slmnode.errors import BenchError, ModelNotFound, SlmnodeError


def resolve_model_info(model: str | None) -> ModelInfo:
    """ModelInfo for a path to a .gguf or a name in the store (None: the store's default)."""
    if model and (model.endswith(".gguf") or Path(model).expanduser().is_file()):
        return model_info(Path(model).expanduser())
    store = ModelStore()
    try:
        manifest = store.get(model or "default")
    except ModelNotFound as exc:
        raise BenchError(f"--predict-for needs the model file: '{model}' is not in the store; pass --model PATH") from exc
    return model_info(store.path_of(manifest))


def predict_jobs(target: TargetResult, info: ModelInfo, device: str, *, threads: int | None = None,
                 ctx: int = 4096) -> Prediction:
    try:
        from slmnode.planner.profiles import get_profile
        from slmnode.planner.speed import predict_speed
    except ImportError as exc:
        raise BenchError("--predict-for needs the planner (slmnode.planner), which this installation lacks") from exc
    try:
        profile = get_profile(device)
        speed = predict_speed(info, profile, threads=threads, ctx=ctx)
    except SlmnodeError:
        raise
    except (KeyError, ValueError) as exc:
        raise BenchError(f"cannot predict for device '{device}': {exc}") from exc
    pp, tg = float(speed.prompt_tps), float(speed.gen_tps)
    if pp <= 0 or tg <= 0:
        raise BenchError(f"the planner predicts no speed for {info.path} on '{device}' (prompt {pp}, generation {tg})")
    jobs = []
    for job in target.jobs:
        if not job.runs:
            continue
        run = job.runs[0]
        prompt = sum(s.prompt_tokens for s in run.steps)
        processed = sum(s.prompt_processed if s.prompt_processed is not None else s.prompt_tokens for s in run.steps)
        gen = sum(s.completion_tokens for s in run.steps)
        jobs.append(JobPrediction(job=job.name, steps=len(run.steps), prompt_tokens=prompt, prompt_processed=processed,
                                  completion_tokens=gen, measured_s=job.wall_s.median if job.wall_s else 0.0,
                                  predicted_s=prompt / pp + gen / tg, predicted_cached_s=processed / pp + gen / tg))
    if not jobs:
        raise BenchError("--predict-for needs at least one agent job that ran; include the 'agent' workload")
    return Prediction(device=device, target=target.label, prompt_tps=pp, gen_tps=tg, jobs=jobs)
