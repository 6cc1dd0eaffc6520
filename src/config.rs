//! siaga's configuration: one TOML file (`config/siaga.toml` by default) plus environment
//! overrides. Placeholder; built by the config/CLI work.
