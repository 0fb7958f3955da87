"""msgsim: design and stress-test real-time messaging architectures before building them.

The public API::

    import sim
    sc = sim.load_scenario("websocket_microservices", overrides={"workload.users": 10_000})
    res = sim.run(sc, seed=1)
    res.summary, res.deliveries, res.timeseries, res.faults
    table = sim.compare(["http_polling_monolith", "websocket_microservices"], replications=5)
    frame = sim.sweep(sc, grid={"architecture.gateway.instances": [1, 2, 4]}, replications=3)

Nothing runs at import time.
"""

from __future__ import annotations

from sim._version import __version__
from sim.model.result import Result
from sim.scenario.loader import ScenarioError, list_presets, load_scenario
from sim.scenario.schema import Scenario
from sim.studies.experiment import compare, replicate, run
from sim.studies.sweep import sweep

__all__ = [
    "Result",
    "Scenario",
    "ScenarioError",
    "__version__",
    "compare",
    "list_presets",
    "load_scenario",
    "replicate",
    "run",
    "sweep",
]
