//! The man page: man/lsport.1.in, written by hand, with its title,
//! synopsis and options rendered from the flag definitions.

use std::fmt::Write;

use clap::{Arg, ArgAction, Command};

use super::roff::{escape, push_filled};

/// The date printed on the page. A constant rather than the build date,
/// so that the same source always gives the same page; move it when the
/// page's text changes.
pub const DATE: &str = "2026-12-03";

/// The hand-written page. Each line `.\" @PART@` marks where a part
/// rendered from the definitions goes; lines starting `.\"#` are notes
/// for the template's editors and stay out of the page.
const TEMPLATE: &str = include_str!("../../man/lsport.1.in");
const PARTS: [&str; 5] = ["TITLE", "SYNOPSIS", "OPTIONS", "COMMANDS", "COLUMNS"];

pub fn page(mut command: Command) -> Result<String, String> {
    // Building adds --help and --version, which the page lists too.
    command.build();
    let mut out = String::new();
    let mut seen = Vec::new();
    for line in TEMPLATE.lines() {
        if line.starts_with(".\\\"#") {
            continue;
        }
        let Some(part) = line
            .strip_prefix(".\\\" @")
            .and_then(|rest| rest.strip_suffix('@'))
        else {
            out.push_str(line);
            out.push('\n');
            continue;
        };
        match part {
            "TITLE" => title(&mut out),
            "SYNOPSIS" => synopsis(&mut out, &command),
            "OPTIONS" => options(&mut out, &command),
            "COMMANDS" => commands(&mut out, &command),
            "COLUMNS" => columns(&mut out),
            other => return Err(format!("man/lsport.1.in: unknown part @{other}@")),
        }
        seen.push(part);
    }
    // A template that lost a marker would silently lose that part.
    for part in PARTS {
        if seen.iter().filter(|p| **p == part).count() != 1 {
            return Err(format!(
                "man/lsport.1.in: @{part}@ must appear exactly once"
            ));
        }
    }
    Ok(out)
}

/// The table's columns, from the same registry as the table and `-o help`.
fn columns(out: &mut String) {
    out.push_str(".SH COLUMNS\n");
    push_filled(
        out,
        &escape(
            "-o takes these names, in any order, separated by commas; the default columns are marked *. Each entry also says where the same value is found in a socket of the JSON document.",
        ),
    );
    for column in &lsport::render::columns::COLUMNS {
        let mark = if lsport::render::columns::DEFAULT.contains(&column.id) {
            " *"
        } else {
            ""
        };
        let _ = writeln!(out, ".TP\n.B {}{mark}", escape(column.name));
        push_filled(
            out,
            &escape(&format!(
                "{} ({}). JSON: {}.",
                column.help, column.header, column.json_key
            )),
        );
    }
}

fn title(out: &mut String) {
    let _ = writeln!(
        out,
        ".TH LSPORT 1 {DATE} \"lsport {}\" \"User Commands\"",
        env!("CARGO_PKG_VERSION")
    );
}

enum Kind {
    Positional,
    /// --help and --version.
    Meta,
    Flag,
    Valued,
}

fn kind(arg: &Arg) -> Kind {
    if arg.is_positional() {
        Kind::Positional
    } else if matches!(
        arg.get_action(),
        ArgAction::Help | ArgAction::HelpShort | ArgAction::HelpLong | ArgAction::Version
    ) {
        Kind::Meta
    } else if arg.get_action().takes_values() {
        Kind::Valued
    } else {
        Kind::Flag
    }
}

fn visible(command: &Command) -> impl Iterator<Item = &Arg> {
    command.get_arguments().filter(|arg| !arg.is_hide_set())
}

/// `lsport [-altu46nq] [--remote] [--color=WHEN] [PORT]...`, then a line
/// for --help and --version.
fn synopsis(out: &mut String, command: &Command) {
    out.push_str(".SH SYNOPSIS\n.B lsport\n");
    let shorts: String = visible(command)
        .filter(|arg| matches!(kind(arg), Kind::Flag))
        .filter_map(Arg::get_short)
        .collect();
    if !shorts.is_empty() {
        let _ = writeln!(out, "[\\fB\\-{}\\fR]", escape(&shorts));
    }
    for arg in visible(command) {
        match kind(arg) {
            Kind::Flag if arg.get_short().is_none() => {
                let _ = writeln!(out, "[{}]", option_name(arg));
            }
            Kind::Valued => {
                let _ = writeln!(out, "[{}]", option_name(arg));
            }
            _ => {}
        }
    }
    for arg in visible(command).filter(|arg| matches!(kind(arg), Kind::Positional)) {
        let _ = writeln!(out, "{}", positional_name(arg));
    }
    let meta: Vec<String> = visible(command)
        .filter(|arg| matches!(kind(arg), Kind::Meta))
        .map(option_name)
        .collect();
    for sub in subcommands(command) {
        let _ = writeln!(out, ".br\n.B lsport {}", escape(sub.get_name()));
        for arg in own_args(sub).filter(|arg| !matches!(kind(arg), Kind::Positional)) {
            let _ = writeln!(out, "[{}]", option_name(arg));
        }
        for arg in own_args(sub).filter(|arg| matches!(kind(arg), Kind::Positional)) {
            let _ = writeln!(out, "{}", positional_name(arg));
        }
    }
    if !meta.is_empty() {
        let _ = writeln!(out, ".br\n.B lsport\n{}", meta.join(" | "));
    }
}

fn subcommands(command: &Command) -> impl Iterator<Item = &Command> {
    command.get_subcommands().filter(|sub| !sub.is_hide_set())
}

/// A subcommand's own arguments: not the global ones it shares with
/// lsport, nor --help.
fn own_args(command: &Command) -> impl Iterator<Item = &Arg> {
    visible(command).filter(|arg| !arg.is_global_set() && !matches!(kind(arg), Kind::Meta))
}

/// Each subcommand: what it does, then its own options.
fn commands(out: &mut String, command: &Command) {
    out.push_str(".SH COMMANDS\n");
    for sub in subcommands(command) {
        let _ = writeln!(out, ".SS lsport {}", escape(sub.get_name()));
        let about = sub
            .get_long_about()
            .or(sub.get_about())
            .map(|a| a.to_string());
        let mut text = escape(about.unwrap_or_default().trim());
        if !text.is_empty() && !text.ends_with(['.', '!', '?']) {
            text.push('.');
        }
        push_filled(out, &text);
        for arg in own_args(sub) {
            out.push_str(".TP\n");
            let _ = writeln!(out, "{}", option_header(arg));
            push_filled(out, &option_text(arg));
            possible_values_list(out, arg);
        }
    }
}

/// `--color=WHEN` or `--all`, in bold with the value in italics.
fn option_name(arg: &Arg) -> String {
    let mut name = match (arg.get_long(), arg.get_short()) {
        (Some(long), _) => format!("\\fB\\-\\-{}\\fR", flag_name(long)),
        (None, Some(short)) => format!("\\fB\\-{}\\fR", escape(&short.to_string())),
        (None, None) => String::new(),
    };
    if matches!(kind(arg), Kind::Valued) {
        let _ = write!(name, "=\\fI{}\\fR", value_name(arg));
    }
    name
}

/// A flag's name, every hyphen a minus sign: `all\-netns`, so that a
/// search for `--all-netns` in the page finds it.
/// (Flag names hold only letters, digits and hyphens.)
fn flag_name(name: &str) -> String {
    name.replace('-', "\\-")
}

fn value_name(arg: &Arg) -> String {
    let name = arg
        .get_value_names()
        .and_then(|names| names.first())
        .map(|name| name.as_str().to_string())
        .unwrap_or_else(|| arg.get_id().as_str().to_uppercase());
    escape(&name)
}

/// `[PORT]...`: brackets when optional, dots when repeatable.
fn positional_name(arg: &Arg) -> String {
    let mut name = format!("\\fI{}\\fR", value_name(arg));
    if !arg.is_required_set() {
        name = format!("[{name}]");
    }
    let many = arg
        .get_num_args()
        .is_some_and(|range| range.max_values() > 1)
        || matches!(arg.get_action(), ArgAction::Append);
    if many {
        name.push_str("...");
    }
    name
}

fn options(out: &mut String, command: &Command) {
    out.push_str(".SH OPTIONS\n");
    // The operands first, then the options in the order they are defined.
    let args = visible(command)
        .filter(|arg| matches!(kind(arg), Kind::Positional))
        .chain(visible(command).filter(|arg| !matches!(kind(arg), Kind::Positional)));
    for arg in args {
        out.push_str(".TP\n");
        let _ = writeln!(out, "{}", option_header(arg));
        push_filled(out, &option_text(arg));
        possible_values_list(out, arg);
    }
}

/// `-a, --all`, or `--color=WHEN`, with any visible aliases.
fn option_header(arg: &Arg) -> String {
    if matches!(kind(arg), Kind::Positional) {
        return positional_name(arg);
    }
    let mut names = Vec::new();
    if let Some(short) = arg.get_short() {
        names.push(format!("\\fB\\-{}\\fR", escape(&short.to_string())));
    }
    if let Some(long) = arg.get_long() {
        names.push(format!("\\fB\\-\\-{}\\fR", flag_name(long)));
    }
    for alias in arg.get_visible_aliases().unwrap_or_default() {
        names.push(format!("\\fB\\-\\-{}\\fR", flag_name(alias)));
    }
    let mut header = names.join(", ");
    if matches!(kind(arg), Kind::Valued) {
        let _ = write!(header, "=\\fI{}\\fR", value_name(arg));
    }
    header
}

/// The help as full sentences, then the values, the default and the
/// environment variable, when the definitions have them.
fn option_text(arg: &Arg) -> String {
    let help = arg
        .get_long_help()
        .or(arg.get_help())
        .map(|help| help.to_string())
        .unwrap_or_default();
    let mut text = escape(help.trim());
    if !text.is_empty() && !text.ends_with(['.', '!', '?']) {
        text.push('.');
    }
    let values = visible_values(arg);
    if !values.is_empty() && values.iter().all(|(_, help)| help.is_none()) {
        let names: Vec<String> = values
            .iter()
            .map(|(name, _)| format!("\\fB{}\\fR", escape(name)))
            .collect();
        let _ = write!(
            text,
            " \\fI{}\\fR is one of {}.",
            value_name(arg),
            names.join(", ")
        );
    }
    if matches!(kind(arg), Kind::Valued) && !arg.is_hide_default_value_set() {
        let defaults: Vec<String> = arg
            .get_default_values()
            .iter()
            .map(|value| format!("\\fB{}\\fR", escape(&value.to_string_lossy())))
            .collect();
        if !defaults.is_empty() {
            let _ = write!(text, " The default is {}.", defaults.join(" "));
        }
    }
    if let Some(env) = arg.get_env().filter(|_| !arg.is_hide_env_set()) {
        let _ = write!(
            text,
            " The environment variable \\fB{}\\fR sets it too.",
            escape(&env.to_string_lossy())
        );
    }
    text
}

fn visible_values(arg: &Arg) -> Vec<(String, Option<String>)> {
    if arg.is_hide_possible_values_set() || !matches!(kind(arg), Kind::Valued) {
        return Vec::new();
    }
    arg.get_possible_values()
        .iter()
        .filter(|value| !value.is_hide_set())
        .map(|value| {
            let help = value.get_help().map(|help| help.to_string());
            (value.get_name().to_string(), help)
        })
        .collect()
}

/// Values that have their own help get a list of their own.
fn possible_values_list(out: &mut String, arg: &Arg) {
    let values = visible_values(arg);
    if values.iter().all(|(_, help)| help.is_none()) {
        return;
    }
    out.push_str(".RS\n");
    for (name, help) in values {
        let _ = writeln!(out, ".TP\n.B {}", escape(&name));
        let mut text = escape(help.unwrap_or_default().trim());
        if !text.is_empty() && !text.ends_with(['.', '!', '?']) {
            text.push('.');
        }
        push_filled(out, &text);
    }
    out.push_str(".RE\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test_command() -> Command {
        Command::new("lsport")
            .version("1.0")
            .arg(Arg::new("ports").value_name("PORT").num_args(0..))
            .arg(
                Arg::new("all")
                    .short('a')
                    .long("all")
                    .action(ArgAction::SetTrue)
                    .help("Every socket (like `ss -a`)"),
            )
            .arg(
                Arg::new("json")
                    .long("json")
                    .action(ArgAction::SetTrue)
                    .help("JSON"),
            )
            .arg(
                Arg::new("color")
                    .long("color")
                    .value_name("WHEN")
                    .value_parser(["auto", "never"])
                    .default_value("auto")
                    .help("When to use colour"),
            )
            .arg(
                Arg::new("secret")
                    .long("secret")
                    .hide(true)
                    .action(ArgAction::SetTrue),
            )
    }

    #[test]
    fn synopsis_and_options_follow_the_definitions() {
        let mut command = test_command();
        command.build();
        let mut out = String::new();
        synopsis(&mut out, &command);
        assert_eq!(
            out,
            ".SH SYNOPSIS\n.B lsport\n[\\fB\\-a\\fR]\n[\\fB\\-\\-json\\fR]\n\
             [\\fB\\-\\-color\\fR=\\fIWHEN\\fR]\n[\\fIPORT\\fR]...\n\
             .br\n.B lsport\n\\fB\\-\\-help\\fR | \\fB\\-\\-version\\fR\n"
        );
        let mut out = String::new();
        options(&mut out, &command);
        assert!(out.starts_with(".SH OPTIONS\n.TP\n[\\fIPORT\\fR]...\n"));
        assert!(out.contains(
            ".TP\n\\fB\\-a\\fR, \\fB\\-\\-all\\fR\nEvery socket (like \\fBss \\-a\\fR).\n"
        ));
        // Filled text: compare the words, not where the lines break.
        let words = out.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(words.contains(
            "\\fB\\-\\-color\\fR=\\fIWHEN\\fR When to use colour. \\fIWHEN\\fR is one of \
             \\fBauto\\fR, \\fBnever\\fR. The default is \\fBauto\\fR. .TP"
        ));
        assert!(!out.contains("secret"));
    }

    #[test]
    fn the_page_has_every_part_once() {
        let page = page(test_command()).unwrap();
        assert!(page.contains(&format!(
            ".TH LSPORT 1 {DATE} \"lsport {}\"",
            env!("CARGO_PKG_VERSION")
        )));
        for part in PARTS {
            assert!(!page.contains(&format!("@{part}@")), "{part} left in");
        }
        for section in ["NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "EXIT STATUS"] {
            assert_eq!(page.matches(&format!("\n.SH {section}\n")).count(), 1);
        }
    }
}
