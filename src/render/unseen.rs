//! The words for holders lsport could not see: the socket's owner as
//! the kernel records it, and the one line that names what could not
//! be read (which processes, and why) with the advice that fits who
//! lsport runs as. Every command that reports hidden holders words them
//! here, so that they read the same everywhere.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::holders::unseen::{FdRefusal, UnreadableProcess, Unseen};
use crate::render::columns::cgroup_label;
use crate::render::escape::escape_str;
use crate::report::Row;

/// How many unreadable processes a line names before "and N more".
const NAMED: usize = 4;

/// What is known of a socket whose holder could not be seen: its owner
/// as the kernel records it, and the unit, container or cgroup it was
/// created in: `owned by uid 33 (www-data), in nginx.service`.
pub fn owner_words(row: &Row) -> String {
    let uid = row.socket.uid;
    let mut text = match &row.owner {
        Some(name) => format!("owned by uid {uid} ({})", escape_str(name)),
        None => format!("owned by uid {uid}"),
    };
    if let Some(place) = row.cgroup.as_deref().and_then(cgroup_label) {
        text.push_str(", in ");
        text.push_str(&place);
    }
    text
}

/// How `count` sockets without a visible holder are described after
/// their number: "with holders hidden from this user" for a user other
/// than root, whom root would see more than; "whose holder lsport could
/// not see" for root, whom the processes themselves (or lsport's own
/// limits) refused.
pub fn hidden_phrase(count: usize, unseen: &Unseen) -> &'static str {
    match (unseen.as_root, count) {
        (false, _) => "with holders hidden from this user",
        (true, 1) => "whose holder lsport could not see",
        (true, _) => "whose holders lsport could not see",
    }
}

/// The line for stderr when `hidden` sockets have no visible holder:
/// what could not be read, named, and what would help. None when no
/// socket is hidden. Raw text, command names included: escape it before
/// it reaches a terminal (as main's messages are, once).
pub fn notice(hidden: usize, unseen: &Unseen) -> Option<String> {
    if hidden == 0 {
        return None;
    }
    let one = hidden == 1;
    let mut line = format!(
        "{hidden} socket{} ha{} ",
        if one { "" } else { "s" },
        if one { "s" } else { "ve" }
    );
    line.push_str(if unseen.as_root {
        "no holder lsport could see"
    } else {
        "holders hidden from this user"
    });
    if unseen.blind {
        line.push_str("; /proc could not be read");
    } else if !unseen.processes.is_empty() {
        let _ = write!(
            line,
            "; the file descriptors of processes that may hold {} could not be read: {}",
            if one { "it" } else { "them" },
            unreadable_list(&unseen.processes)
        );
    }
    if let Some(advice) = advice(unseen) {
        line.push_str("; ");
        line.push_str(advice);
    }
    Some(line)
}

/// `pid 1 (init): fd links refused (Permission denied)`: the processes
/// that could not be read, grouped by why, the first few of each named.
/// Raw text: escape it before showing.
pub fn unreadable_list(processes: &[UnreadableProcess]) -> String {
    let mut by_reason: BTreeMap<(&'static str, &'static str), Vec<&UnreadableProcess>> =
        BTreeMap::new();
    for process in processes {
        by_reason
            .entry((process.why.describe(), process.why.error()))
            .or_default()
            .push(process);
    }
    let groups: Vec<String> = by_reason
        .into_iter()
        .map(|((words, error), group)| {
            let mut names: Vec<String> =
                group.iter().take(NAMED).map(|p| process_name(p)).collect();
            if group.len() > NAMED {
                names.push(format!("{} more", group.len() - NAMED));
            }
            format!("{}: {words} ({error})", join_names(&names))
        })
        .collect();
    groups.join("; ")
}

/// `pid 1 (init)`.
fn process_name(process: &UnreadableProcess) -> String {
    if process.command.is_empty() {
        format!("pid {}", process.pid)
    } else {
        let command = String::from_utf8_lossy(&process.command);
        format!("pid {} ({command})", process.pid)
    }
}

/// `a`, `a and b`, `a, b and c`.
fn join_names(names: &[String]) -> String {
    match names {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

/// What would let lsport see more, if anything would.
fn advice(unseen: &Unseen) -> Option<&'static str> {
    if !unseen.as_root {
        return Some("run as root (or with CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH) to see them");
    }
    if unseen.processes_hidden {
        return Some(
            "/proc hides other users' processes (hidepid), and lsport lacks CAP_SYS_PTRACE",
        );
    }
    if !unseen.ptrace {
        return Some(
            "lsport runs without CAP_SYS_PTRACE, which reading other processes' file descriptors takes",
        );
    }
    if unseen
        .processes
        .iter()
        .any(|p| matches!(p.why, FdRefusal::Exhausted(_)))
    {
        return Some("raise lsport's limit of open files (ulimit -n)");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn process(pid: u32, command: &str, why: FdRefusal) -> UnreadableProcess {
        UnreadableProcess {
            pid,
            command: command.as_bytes().to_vec(),
            uid: Some(0),
            why,
        }
    }

    #[test]
    fn root_refused_by_a_process_is_told_which_one_and_not_to_run_as_root() {
        let unseen = Unseen {
            processes: vec![process(1, "init", FdRefusal::Links(libc::EACCES))],
            as_root: true,
            ptrace: true,
            ..Unseen::default()
        };
        let line = notice(1, &unseen).unwrap();
        assert!(
            line.starts_with("1 socket has no holder lsport could see"),
            "{line}"
        );
        assert!(
            line.ends_with(
                "the file descriptors of processes that may hold it could not be read: pid 1 (init): fd links refused (Permission denied)"
            ),
            "{line}"
        );
        assert!(
            !line.contains("run as root") && !line.contains("hidden"),
            "{line}"
        );
        assert_eq!(
            hidden_phrase(1, &unseen),
            "whose holder lsport could not see"
        );
        assert_eq!(
            hidden_phrase(2, &unseen),
            "whose holders lsport could not see"
        );
        assert_eq!(notice(0, &unseen), None);
    }

    #[test]
    fn a_user_is_told_to_run_as_root_and_many_processes_are_counted() {
        let processes = (1..=7)
            .map(|pid| process(pid * 100, "daemon", FdRefusal::Directory(libc::EACCES)))
            .collect();
        let unseen = Unseen {
            processes,
            ..Unseen::default()
        };
        let line = notice(2, &unseen).unwrap();
        assert!(
            line.starts_with("2 sockets have holders hidden from this user"),
            "{line}"
        );
        assert!(
            line.contains("pid 100 (daemon), pid 200 (daemon), pid 300 (daemon), pid 400 (daemon) and 3 more: fd directory refused"),
            "{line}"
        );
        assert!(
            line.ends_with(
                "run as root (or with CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH) to see them"
            ),
            "{line}"
        );
    }

    #[test]
    fn a_command_name_stays_raw_for_the_one_escape_of_the_message() {
        let named = process(5, "evil\\\x1b[2J", FdRefusal::Links(libc::EPERM));
        let list = unreadable_list(&[named]);
        assert!(list.starts_with("pid 5 (evil\\\x1b[2J)"), "{list}");
        assert_eq!(
            escape_str(&list),
            "pid 5 (evil\\\\\\x1b[2J): fd links refused (Operation not permitted)"
        );
    }
}
