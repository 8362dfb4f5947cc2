//! synguard's userspace: loading the embedded XDP program, its pinned state
//! under bpffs, and reading its counters. The `synguard` binary (main.rs and
//! `cli/`) is a thin layer over these modules; the tests use them directly.
pub mod attach;
pub mod counters;
pub mod lists;
pub mod pins;
pub mod program;
pub mod settings;
