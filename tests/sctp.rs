//! SCTP through sock_diag (`--sctp`). On a kernel with SCTP and
//! sctp_diag, an SCTP listener is shown with protocol sctp; on one
//! with SCTP but no sctp_diag, `sctp` is a blind spot; on one without
//! SCTP at all (no socket can be made), the dump's refusal hides
//! nothing: no error, no blind spot, and TCP and UDP are answered as
//! without the flag.

mod common;

use std::net::TcpListener;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use common::*;
use serde_json::{Value, json};

/// IPPROTO_SCTP.
const IPPROTO_SCTP: i32 = 132;

/// An SCTP listener on 127.0.0.1:`port`, or None when the kernel has no
/// SCTP.
fn sctp_listener(port: u16) -> Option<OwnedFd> {
    // SAFETY: socket(2) takes no pointers; a non-negative result is a new
    // fd that nothing else owns.
    let fd = unsafe {
        libc::socket(
            libc::AF_INET,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            IPPROTO_SCTP,
        )
    };
    if fd < 0 {
        return None;
    }
    // SAFETY: fd was just made and is owned here alone.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let address = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes([127, 0, 0, 1]),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: the pointer and length describe `address`, alive for the call.
    let bound = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            std::ptr::from_ref(&address).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    // SAFETY: a plain system call on an fd we own.
    let listening = bound == 0 && unsafe { libc::listen(fd.as_raw_fd(), 8) } == 0;
    assert!(
        listening,
        "an SCTP socket was made but not bound and listening"
    );
    Some(fd)
}

#[test]
fn sctp_is_read_where_the_kernel_has_it_and_its_absence_hides_nothing() {
    let test = "sctp_is_read_where_the_kernel_has_it_and_its_absence_hides_nothing";
    if !private_netns(test) {
        return;
    }
    let tcp = TcpListener::bind("127.0.0.1:5071").unwrap();
    let sctp = sctp_listener(5071);
    let (doc, output) = lsport_json(&["--sctp", "-t", "5071"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stderr(&output), "", "nothing said on stderr");
    let protocols: Vec<Value> = doc["sockets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["protocol"].clone())
        .collect();
    common::schema::assert_valid("probe", &doc);
    match &sctp {
        None => {
            // No SCTP in this kernel: the dump is refused (ENOENT), and
            // that hides no socket.
            assert_eq!(protocols, [json!("tcp")], "{doc:#}");
            assert_eq!(doc["blind_spots"], json!([]), "{doc:#}");
            let output = lsport(["--sctp", "5071"]);
            assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
            assert_eq!(stderr(&output), "");
            assert!(
                stdout(&output).starts_with("Port 5071 is FREE")
                    && stdout(&output).contains("no SCTP socket has it"),
                "{}",
                stdout(&output)
            );
            // /proc/net answers too, and SCTP's absence is no blind spot
            // there either.
            let (doc, _) = lsport_json(&["--source", "proc", "--sctp", "5071"]);
            let spots = doc["blind_spots"].as_array().unwrap();
            assert!(!spots.contains(&json!("sctp")), "{doc:#}");
        }
        Some(_) if doc["blind_spots"] == json!(["sctp"]) => {
            // SCTP without sctp_diag: said, and only TCP shown.
            assert_eq!(protocols, [json!("tcp")], "{doc:#}");
        }
        Some(_) => {
            assert_eq!(doc["blind_spots"], json!([]), "{doc:#}");
            assert_eq!(protocols.len(), 2, "{doc:#}");
            assert!(protocols.contains(&json!("sctp")), "{doc:#}");
            let sctp_row = doc["sockets"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["protocol"] == "sctp")
                .unwrap();
            assert_eq!(sctp_row["state"], "LISTEN", "{doc:#}");
            assert_eq!(sctp_row["role"], "listener", "{doc:#}");
            assert_eq!(sctp_row["local"]["port"], 5071, "{doc:#}");
        }
    }
    // Without --sctp nothing of SCTP is asked for.
    let (doc, _) = lsport_json(&["5071"]);
    assert!(
        doc["sockets"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["protocol"] != "sctp"),
        "{doc:#}"
    );
    // --sctp is the probe's alone.
    let output = lsport(["--sctp", "wait", "--free", "5071"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    drop((tcp, sctp));
}
