"""The hospital front-end machine (前置机): `huren gateway` — sources, mapping, durable outbox,
schedules, preload cache. It talks to the platform only through `huren.client`."""
