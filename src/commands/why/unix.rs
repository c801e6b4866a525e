//! `lsport why PATH` and `lsport why @NAME`: would a server's bind() on
//! this Unix socket name succeed, and if not, why, and what to do.
//!
//! No trial bind is made: a bind on the user's path would create the
//! file a starting server needs, and a bind on the user's abstract name
//! would take connections meant for it. The answer comes from what the
//! kernel's table and the filesystem say: the sockets bound to the name
//! (sock_diag), the file and its directory (stat, access, statvfs), and
//! the length of sun_path.

use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::query::Query;
use crate::unix::probe;
use crate::unix::report::{TargetAnswer, UnixReport, UnixVerdict};
use crate::unix::target::{FileKind, UnixTarget};

/// Why bind() would fail, or that it would not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnixCause {
    /// Nothing in the way: no file at the path (its directory exists
    /// and the user may create files in it), or no socket has the
    /// abstract name.
    WouldSucceed,
    /// A live socket is bound to it: EADDRINUSE.
    Listening,
    /// A socket file nothing is bound to: EADDRINUSE until it is
    /// removed.
    Stale,
    /// Connections accepted through it are still open but its listener
    /// closed: the file remains (EADDRINUSE).
    ListenerClosed,
    /// Another kind of file is at the path: EADDRINUSE.
    NotASocket(FileKind),
    /// A directory on the way does not exist: ENOENT.
    MissingDirectory(PathBuf),
    /// The user may not create files in the directory: EACCES.
    DirectoryNotWritable(PathBuf),
    /// The directory is on a read-only filesystem: EROFS.
    ReadOnly(PathBuf),
    /// A directory on the way refuses search: EACCES.
    PathNotSearchable(String),
    /// Longer than sun_path: the name cannot be given to bind().
    TooLong(usize),
}

impl UnixCause {
    /// The errno bind() fails with, by name; None when it would succeed.
    pub fn errno_name(&self) -> Option<&'static str> {
        match self {
            UnixCause::WouldSucceed => None,
            UnixCause::Listening
            | UnixCause::Stale
            | UnixCause::ListenerClosed
            | UnixCause::NotASocket(_) => Some("EADDRINUSE"),
            UnixCause::MissingDirectory(_) => Some("ENOENT"),
            UnixCause::DirectoryNotWritable(_) | UnixCause::PathNotSearchable(_) => Some("EACCES"),
            UnixCause::ReadOnly(_) => Some("EROFS"),
            // The kernel refuses an address longer than its structure;
            // C programs usually cut the path silently instead.
            UnixCause::TooLong(_) => Some("EINVAL"),
        }
    }

    /// The stable name in JSON.
    pub fn id(&self) -> &'static str {
        match self {
            UnixCause::WouldSucceed => "would_succeed",
            UnixCause::Listening => "listening",
            UnixCause::Stale => "stale_file",
            UnixCause::ListenerClosed => "listener_closed",
            UnixCause::NotASocket(_) => "not_a_socket",
            UnixCause::MissingDirectory(_) => "missing_directory",
            UnixCause::DirectoryNotWritable(_) => "directory_not_writable",
            UnixCause::ReadOnly(_) => "read_only_filesystem",
            UnixCause::PathNotSearchable(_) => "path_not_searchable",
            UnixCause::TooLong(_) => "too_long",
        }
    }
}

/// The answer of `why PATH`.
#[derive(Debug, Clone)]
pub struct UnixWhyAnswer {
    /// What the user named.
    pub target: UnixTarget,
    /// Why bind() would fail, or that it would not.
    pub cause: UnixCause,
    /// The probe's answer on the name: the sockets in the way and their
    /// holders.
    pub report: UnixReport,
}

impl UnixWhyAnswer {
    /// Whether a server's bind() would succeed.
    pub fn would_succeed(&self) -> bool {
        self.cause == UnixCause::WouldSucceed
    }

    /// The probe's answer on the target.
    pub fn answer(&self) -> Option<&TargetAnswer> {
        self.report.targets.first()
    }
}

/// Answers `why` for the query's one Unix target.
pub fn run(query: &Query) -> Result<UnixWhyAnswer, Error> {
    let [target] = &query.unix_targets[..] else {
        return Err(Error::usage("lsport why takes one socket path or @name"));
    };
    let report = probe::probe(query)?;
    let answer = report
        .targets
        .first()
        .ok_or_else(|| Error::usage("lsport why takes one socket path or @name"))?;
    let cause = cause(target, answer, &report);
    Ok(UnixWhyAnswer {
        target: target.clone(),
        cause,
        report,
    })
}

fn cause(target: &UnixTarget, answer: &TargetAnswer, report: &UnixReport) -> UnixCause {
    let length = match target {
        UnixTarget::Path(path) => path.as_os_str().len(),
        UnixTarget::Abstract(name) => name.len(),
    };
    if !target.fits_sun_path() {
        return UnixCause::TooLong(length);
    }
    match answer.verdict {
        UnixVerdict::InUse if answer.servers(&report.rows).next().is_some() => UnixCause::Listening,
        UnixVerdict::InUse => match &answer.file {
            // Bound by this name to a file since removed: the path is
            // free again.
            Some(Err(err)) if err.is_missing() => path_cause(target),
            _ => UnixCause::ListenerClosed,
        },
        UnixVerdict::Stale => UnixCause::Stale,
        UnixVerdict::NotASocket => match &answer.file {
            Some(Ok(file)) => UnixCause::NotASocket(file.kind),
            _ => UnixCause::NotASocket(FileKind::Other),
        },
        UnixVerdict::Free => path_cause(target),
        UnixVerdict::Unknown => UnixCause::PathNotSearchable(match &answer.file {
            Some(Err(err)) => err.message.clone(),
            _ => String::new(),
        }),
    }
}

/// For a path with no file: whether its directory exists and takes a
/// new file from this user.
fn path_cause(target: &UnixTarget) -> UnixCause {
    let UnixTarget::Path(path) = target else {
        return UnixCause::WouldSucceed;
    };
    let directory = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    directory_cause(&directory)
}

fn directory_cause(directory: &Path) -> UnixCause {
    use nix::unistd::{AccessFlags, access};
    match std::fs::metadata(directory) {
        Err(err) if err.raw_os_error() == Some(libc::EACCES) => {
            return UnixCause::PathNotSearchable(err.to_string());
        }
        Err(_) => return UnixCause::MissingDirectory(directory.to_path_buf()),
        Ok(meta) if !meta.is_dir() => return UnixCause::MissingDirectory(directory.to_path_buf()),
        Ok(_) => {}
    }
    if read_only(directory) {
        return UnixCause::ReadOnly(directory.to_path_buf());
    }
    if access(directory, AccessFlags::W_OK | AccessFlags::X_OK).is_err() {
        return UnixCause::DirectoryNotWritable(directory.to_path_buf());
    }
    UnixCause::WouldSucceed
}

fn read_only(directory: &Path) -> bool {
    nix::sys::statvfs::statvfs(directory)
        .is_ok_and(|s| s.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY))
}
