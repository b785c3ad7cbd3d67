"""The harness's library: running programs, certificates, OCI images, pinned versions and the upstream
files read from them, objects the suites share."""
