//! The only `unsafe` code: thin wrappers over libc calls std lacks.

pub mod unpack;
