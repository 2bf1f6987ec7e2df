"""``slmnode bench``: cold start, prompt/generation speed, TTFT and multi-step agent jobs over HTTP,
against a node the bench starts or any OpenAI-compatible endpoint; history in SQLite; PNG charts.

Entry points: :func:`slmnode.bench.runner.run_bench`, :class:`slmnode.bench.history.BenchHistory`,
:func:`slmnode.bench.plot.plot_report`, :data:`slmnode.bench.agent_jobs.JOBS`.
"""
