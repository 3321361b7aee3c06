"""One map call driven from the caller's event loop, and the transports its attempts run on
(worker threads, worker processes, a given executor or Dask). Cache lookups, rate limits,
waits and every judgement stay in the caller; workers only run attempts."""

__all__: list[str] = []
