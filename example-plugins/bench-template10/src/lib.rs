//! Benchmark template: 10 migrations.
const STEPS: usize = 10;
include!("template.rs");
