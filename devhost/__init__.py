"""devhost: a small local host for exactly the trigger and binding kinds function_app.py uses.

Azure Functions Core Tools cannot be installed on our machines, so this package drives the app's
code unchanged: HTTP triggers and the Durable management API on one port, blob triggers polled
on Azurite, and orchestrations replayed through the Durable SDK's own handler with histories
built as the Durable extension builds them, persisted in SQLite. See docs/devhost.md.
"""
