//! The registry client behind `unionctl pull`, `push`, `login` and `logout`
//! (OCI distribution-spec v1.1 over blocking HTTP/1.1, ureq + rustls).
//!
//! - [`reference`]: image names as podman reads them.
//! - [`auth`]: credential files (podman's auth.json, docker's config.json).
//! - [`client`]: TLS, the `/v2/` ping, Basic and Bearer authentication, requests.
//! - [`blob`]: resumable, retried layer downloads (`downloads/*.partial`).
//! - [`pull`], [`push`]: the two directions.

pub mod auth;
pub mod blob;
pub mod client;
pub mod pull;
pub mod push;
pub mod reference;
