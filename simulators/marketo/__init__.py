"""A simulated Marketo Engage instance: identity, the REST Lead Database and Activities APIs,
custom activities, Call Webhook flow steps, and an admin API for tests and demos.

    sim = create_app(MarketoSimConfig(client_id="id", client_secret="secret"))
    with ServerThread(sim.app, tls=tls) as server: ...   # sim.state for in-process access
"""

from simulators.marketo.app import MarketoSim, create_app
from simulators.marketo.config import ExtraField, Limits, MarketoSimConfig

__all__ = ["ExtraField", "Limits", "MarketoSim", "MarketoSimConfig", "create_app"]
