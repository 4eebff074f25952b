//! Command-line front ends: argument handling and output only; the work happens below.

pub mod app;
pub mod container;
pub mod container_files;
pub mod exec;
pub mod format;
pub mod image;
pub mod mount;
pub mod registry;
pub mod run;
pub mod system;
pub mod volume;
