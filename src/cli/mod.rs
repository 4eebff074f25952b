//! Command-line front ends: argument handling and output only; the work happens below.

pub mod image;
pub mod mount;
pub mod registry;
