//! The library's one error type. Each variant carries the context the
//! user needs; `Display` is written here and nowhere else. Text in an
//! error may come from the user or from other processes (a path, an
//! argument): whoever prints it escapes it once, as the binary does.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// What went wrong, with enough context to say so in one line.
#[derive(Debug)]
pub enum Error {
    /// Bad input: an argument, an option value or a combination of them.
    Usage(String),
    /// A sock_diag request failed.
    Netlink {
        /// The errno the kernel or the socket call gave, if any.
        errno: Option<i32>,
        /// What was being asked, and why it failed.
        message: String,
    },
    /// A network namespace could not be found, opened or entered.
    Netns {
        /// The namespace as the user named it, or its file.
        target: String,
        /// Why.
        reason: String,
    },
    /// A file could not be read.
    Io {
        /// The file.
        path: PathBuf,
        /// The error reading it.
        source: io::Error,
    },
}

impl Error {
    /// A usage error from a message.
    pub fn usage(message: impl Into<String>) -> Error {
        Error::Usage(message.into())
    }

    /// The errno behind the error, where there is one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Netlink { errno, .. } => *errno,
            Error::Io { source, .. } => source.raw_os_error(),
            Error::Usage(_) | Error::Netns { .. } => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(message) | Error::Netlink { message, .. } => f.write_str(message),
            Error::Netns { target, reason } => {
                write!(f, "network namespace {target}: {reason}")
            }
            Error::Io { path, source } => write!(f, "reading {}: {source}", path.display()),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_says_its_context_in_one_line() {
        let io = Error::Io {
            path: "/proc/net/tcp".into(),
            source: io::Error::from_raw_os_error(libc::EACCES),
        };
        assert!(io.to_string().starts_with("reading /proc/net/tcp: "));
        assert_eq!(io.errno(), Some(libc::EACCES));
        let netns = Error::Netns {
            target: "blue".into(),
            reason: "no such namespace".into(),
        };
        assert_eq!(
            netns.to_string(),
            "network namespace blue: no such namespace"
        );
        assert!(!Error::usage("bad port").to_string().contains('\n'));
    }
}
