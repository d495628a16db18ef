"""``dcpipe serve``: check the runs, then run the app under uvicorn until Ctrl-C or SIGTERM."""
from __future__ import annotations

from pathlib import Path

from pipeline.config import ServeConfig
from pipeline.errors import UserError
from pipeline.workdir import Workdir


def serve(runs: list[str], workdir: str | Path, cfg: ServeConfig, log=print) -> None:
    """Serve the finished ``runs`` of ``workdir`` on ``cfg.host:cfg.port``."""
    import uvicorn

    from pipeline.serve.app import create_app
    from pipeline.serve.metrics import ServeMetrics
    from pipeline.serve.models import ModelRegistry, finished_bundle

    work = Workdir(workdir)
    if not work.path.is_dir():
        raise UserError(f"{work.path}: no such working folder; give the --workdir the run was trained in")
    for run in runs:
        finished_bundle(work, run)          # a run that is not finished is refused before any start
    registry = ModelRegistry(work, cfg, ServeMetrics())
    log(f"dcpipe serve: {', '.join(runs)} on http://{cfg.host}:{cfg.port} (v2: /v2/models/{{run}}/infer, "
        f"TF Serving: /v1/models/{{run}}:predict, /metrics)")
    # httptools and uvloop (pinned): uvicorn's C parser and event loop, ~2x the requests/s of h11/asyncio
    uvicorn.run(create_app(registry, runs), host=cfg.host, port=cfg.port, log_level="warning",
                http="httptools", loop="uvloop", access_log=False)
