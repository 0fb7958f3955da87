"""Security on the message path: authorization server, OAuth introspection, token
lifetimes, per-user rate limiting and abuse detection, one module each."""
