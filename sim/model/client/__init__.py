"""The client side of a run: the connection, the outbox and the timeline of every user."""
