"""The AO protocols over HTTP: the node's routes, GraphQL, and a client for remote units."""
