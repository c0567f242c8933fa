//! Benchmark template: 20 migrations.
const STEPS: usize = 20;
include!("../../bench-template10/src/template.rs");
