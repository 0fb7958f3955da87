"""Defences: retry backoff, circuit breakers, bulkheads, the guard around store and
broker calls, graceful degradation, and ``Defences``, which builds them from
``architecture.resilience``; one module each."""
