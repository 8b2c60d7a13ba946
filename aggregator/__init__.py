"""Turkish news feed aggregator: seed scrapes and web sources in, RSS 2.0 and Atom 1.0 out."""

import os

__version__ = "0.1.0"
USER_AGENT = f"haber-aggregator/{__version__} (+https://pypi.org/project/haber-aggregator/)"

# numpy serves only element-wise hashing here (signature.py, dedupe.py). Its BLAS would start
# a thread per core on import, each reserving buffers: ~120 MiB of address space per process
# (a run under `ulimit -v` could then start no thread) for work that never calls BLAS.
for _blas in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_blas, "1")
