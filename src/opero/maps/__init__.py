"""Where attempts run: worker threads and worker processes fed in batches by a dispatcher
in the caller. The pipeline (cache, retry, fallback, rate limit) never runs here."""

__all__: list[str] = []
