//! The `siaga` binary. Placeholder.

fn main() {}
