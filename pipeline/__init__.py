"""dcpipe's data side: Dask stages from raw sources to versioned Zarr datasets."""
from pipeline.config import JobConfig, load_config
from pipeline.errors import UserError


def run(*args, **kwargs):
    """Run the main job; see :func:`pipeline.job.run`."""
    from pipeline.job import run as _run
    return _run(*args, **kwargs)


__all__ = ["JobConfig", "UserError", "load_config", "run"]
