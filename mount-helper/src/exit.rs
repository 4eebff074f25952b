//! mount(8)'s exit status values (`man 8 mount`, EXIT STATUS): mount(8)
//! returns its helper's status, so the helper speaks mount's language.

/// Incorrect invocation or permissions.
pub const USAGE: i32 = 1;
/// System error: unionfs cannot be found or started.
pub const SYSERR: i32 = 2;
/// Mount failure: bad options, missing or wrong layers, unionfs refused.
pub const FAILURE: i32 = 32;

/// Why the helper stops: a status and, unless someone else already said it,
/// the one line to print.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: i32,
    pub msg: Option<String>,
}

impl Failure {
    pub fn new(code: i32, msg: impl Into<String>) -> Failure {
        Failure { code, msg: Some(msg.into()) }
    }

    /// The failure of a command that printed its own error.
    pub fn silent(code: i32) -> Failure {
        Failure { code, msg: None }
    }
}

/// `io::Error` text without the `(os error N)` tail.
pub fn os_msg(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}
