"""The checks, one module per part of the product; each check is ``(Snapshot, Config) -> list[Finding]``."""
