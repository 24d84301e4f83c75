"""Talking to other servers: receiving activities (verify, store, dispatch), remote actors and
objects, and delivery (fan-out, signed POSTs, dead hosts)."""
