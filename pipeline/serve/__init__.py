"""``dcpipe serve``: a run's bundle over HTTP (Open Inference Protocol v2 and TF Serving REST).

One concept per module: ``records`` (raw instances checked against the schema), ``cache`` (the LRU
of answers), ``batching`` (the dynamic batcher), ``models`` (the loaded runs), ``metrics``
(Prometheus), ``app`` (the FastAPI routes) and ``server`` (uvicorn). See docs/serving.md.
"""
