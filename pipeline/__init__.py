"""dcpipe's data side: Dask stages from raw sources to versioned Zarr datasets."""
from pipeline.api import RunResult, run
from pipeline.config import JobConfig, load_config
from pipeline.errors import UserError


def open_dataset(name: str, version: str = "latest", root="dcpipe-work/datasets"):
    """The lazy xarray Dataset of a stored version; see :func:`pipeline.store.open_dataset`."""
    from pipeline.store import open_dataset as _open
    return _open(name, version, root)


__all__ = ["JobConfig", "RunResult", "UserError", "load_config", "open_dataset", "run"]
