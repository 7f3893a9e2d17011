"""The upstream runner (issue 13): a child platform's change feed applied on the platform above,
through ``huren.client`` only (never services, store or bootstrap)."""
