"""The server side of a run: gateway, message service and delivery, assembled by
:class:`~sim.model.server.assembly.Server`."""
