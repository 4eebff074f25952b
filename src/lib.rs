//! unionfs: a userspace union filesystem with kernel-overlayfs semantics
//! and on-disk format, plus `unionctl`, a small container image store.
//!
//! Layout (every arrow points down):
//! - [`cli`]: argument handling and output for the binaries.
//! - [`fs`]: the union filesystem, one module per concern (see `fs/mod.rs`).
//! - [`runtime`]: processes in containers (run, exec, the monitor), on the store.
//! - [`registry`]: the registry client (pull, push, login) feeding the store.
//! - [`store`]: the content-addressed image/layer store used by `unionctl`.
//! - [`sys`]: the only `unsafe` code: thin wrappers over libc calls std lacks.

pub mod cli;
pub mod fs;
pub mod registry;
pub mod runtime;
pub mod store;
pub mod sys;
