//! The tokio shell that owns the engine task. Placeholder.
