//! Building blocks of `cargo xtask bench`: raw BPF_PROG_TEST_RUN (timed
//! the same way for synguard, a floor program and a peer), flood
//! generators, and CPU placement and accounting for the flood lab.
pub mod cpu;
pub mod generator;
