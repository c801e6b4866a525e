//! The committed IANA table must be what tools/gen-iana.py makes of the
//! registry. Runs where the registry copy (../shared/data/iana/ from the
//! project root) and python3 are present; skipped visibly elsewhere, and
//! failed instead with LSPORT_REQUIRE_IANA_DATA set (as CI sets it).

use std::io::Write;
use std::path::Path;
use std::process::Command;

const TABLE: &str = "src/services/iana_table.rs";

fn skip(reason: &str) {
    if std::env::var_os("LSPORT_REQUIRE_IANA_DATA").is_some() {
        panic!("{reason}, and LSPORT_REQUIRE_IANA_DATA is set");
    }
    // Straight to stderr, past the harness's capture: a skip is visible.
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED the_committed_table_is_what_the_generator_makes: {reason}"
    );
}

#[test]
fn the_committed_table_is_what_the_generator_makes() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let xml = root.join("../shared/data/iana/service-names-port-numbers.xml");
    if !xml.is_file() {
        return skip(&format!("no registry copy at {}", xml.display()));
    }
    let output = match Command::new("python3")
        .arg(root.join("tools/gen-iana.py"))
        .arg(&xml)
        .arg("-")
        .output()
    {
        Ok(output) => output,
        Err(err) => return skip(&format!("cannot run python3: {err}")),
    };
    assert!(
        output.status.success(),
        "tools/gen-iana.py failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let fresh = String::from_utf8(output.stdout).expect("the generator writes UTF-8");
    let committed = std::fs::read_to_string(root.join(TABLE)).unwrap();
    if fresh != committed {
        let (line, (want, have)) = fresh
            .lines()
            .zip(committed.lines())
            .enumerate()
            .find(|(_, (a, b))| a != b)
            .unwrap_or((0, ("(length differs)", "")));
        panic!(
            "{TABLE} is stale: line {} should be {want:?}, is {have:?}; run `python3 tools/gen-iana.py` and commit the result",
            line + 1
        );
    }
}
