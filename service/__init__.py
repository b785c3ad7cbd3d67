"""What both services share: configuration, logging, metrics, HTTP plumbing, TLS and the CLI."""
