//! synguard's userspace: loading the embedded XDP program, its pinned state
//! under bpffs, and reading its counters. The `synguard` binary (main.rs and
//! `cli/`) is a thin layer over these modules; the tests use them directly.
pub mod attach;
pub mod bgp;
pub mod capture;
pub mod clock;
pub mod config;
pub mod counters;
pub mod daemon;
pub mod explain;
pub mod features;
pub mod flood;
pub mod frames;
pub mod host;
pub mod kernel;
pub mod lists;
pub mod metrics;
pub mod nic;
pub mod pins;
pub mod program;
pub mod settings;
pub mod state;
pub mod sysctl;
