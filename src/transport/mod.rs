//! UDP and TCP transports (tokio). Placeholder.
