//! The error a plugin's SQL or its code returns, and how it crosses the boundary.

use crate::__bindings::wasmig::plugin::types as wit_types;
use std::fmt;

/// The result type of every fallible SDK call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a statement or a migration failed.
///
/// The host sends the first four; a plugin raises its own with [`Error::other`]. Returning
/// any of them from a migration fails the step: the host rolls it back and records the error.
#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// The host refused: the statement touches something outside this plugin's namespace, or
    /// does something no plugin may do. The text names the object or action.
    AccessDenied(String),
    /// A constraint failed (UNIQUE, NOT NULL, CHECK, FOREIGN KEY).
    Constraint(String),
    /// The statement is not valid SQL or names something that does not exist.
    Syntax(String),
    /// A limit was reached (result size, statement length, deadline).
    Limit(String),
    /// Anything else.
    Other(String),
}

impl Error {
    /// An error raised by the plugin itself.
    pub fn other(message: impl Into<String>) -> Self {
        Error::Other(message.into())
    }

    /// The error's message without its kind.
    pub fn message(&self) -> &str {
        match self {
            Error::AccessDenied(m)
            | Error::Constraint(m)
            | Error::Syntax(m)
            | Error::Limit(m)
            | Error::Other(m) => m,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self {
            Error::AccessDenied(_) => "access denied",
            Error::Constraint(_) => "constraint failed",
            Error::Syntax(_) => "SQL error",
            Error::Limit(_) => "limit reached",
            Error::Other(_) => "error",
        };
        write!(f, "{kind}: {}", self.message())
    }
}

impl std::error::Error for Error {}

impl From<wit_types::Error> for Error {
    fn from(e: wit_types::Error) -> Self {
        match e {
            wit_types::Error::AccessDenied(m) => Error::AccessDenied(m),
            wit_types::Error::Constraint(m) => Error::Constraint(m),
            wit_types::Error::Syntax(m) => Error::Syntax(m),
            wit_types::Error::Limit(m) => Error::Limit(m),
            wit_types::Error::Other(m) => Error::Other(m),
        }
    }
}

impl From<Error> for wit_types::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::AccessDenied(m) => wit_types::Error::AccessDenied(m),
            Error::Constraint(m) => wit_types::Error::Constraint(m),
            Error::Syntax(m) => wit_types::Error::Syntax(m),
            Error::Limit(m) => wit_types::Error::Limit(m),
            Error::Other(m) => wit_types::Error::Other(m),
        }
    }
}
