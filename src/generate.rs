//! The man page and the shell completions, rendered from the same flag
//! definitions as `--help`, so that neither can drift from the flags.
//!
//! Like cli.rs this sits at the outer edge and sees clap: it renders the
//! definitions and nothing else. The hand-written parts of the page live
//! in man/lsport.1.in; the committed man/lsport.1 is regenerated with
//! `cargo run -- --generate man > man/lsport.1` (tests/generated.rs fails
//! when it is stale).

mod man;
mod roff;

use clap::Command;
use clap_complete::Shell;

use crate::cli::{self, Generate};

pub fn render(what: Generate) -> Result<Vec<u8>, String> {
    let shell = match what {
        Generate::Man => return man::page(cli::command()).map(String::into_bytes),
        Generate::Bash => Shell::Bash,
        Generate::Zsh => Shell::Zsh,
        Generate::Fish => Shell::Fish,
    };
    let mut out = Vec::new();
    clap_complete::generate(
        shell,
        &mut visible_only(&cli::command()),
        "lsport",
        &mut out,
    );
    Ok(out)
}

/// The same command without its hidden flags, which clap_complete would
/// otherwise offer.
fn visible_only(command: &Command) -> Command {
    Command::new("lsport")
        .version(env!("CARGO_PKG_VERSION"))
        .args(
            command
                .get_arguments()
                .filter(|arg| !arg.is_hide_set())
                .cloned(),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completions_offer_the_visible_flags_only() {
        for shell in [Generate::Bash, Generate::Zsh, Generate::Fish] {
            let text = String::from_utf8(render(shell).unwrap()).unwrap();
            for flag in ["listening", "numeric", "color", "always"] {
                assert!(text.contains(flag), "{shell:?} lacks {flag}");
            }
            for hidden in ["proc-root", "generate"] {
                assert!(!text.contains(hidden), "{shell:?} offers {hidden}");
            }
        }
    }
}
