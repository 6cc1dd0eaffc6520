//! Benchmarks of the SIP message layer and transactions. Placeholder.

fn main() {}
