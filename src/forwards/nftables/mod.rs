//! The nf_tables rule set (what `nft` and `iptables-nft` write), read
//! over netlink: per table family (ip, ip6, inet) one dump of the
//! chains, one of the rules and one of the sets, then the elements of
//! the sets that nat rules look up. The dumps must come from one
//! generation of the rule set; when it changed between them, they are
//! read again.

mod interpret;
pub mod nfnetlink;
pub mod objects;
mod session;

use std::collections::{HashMap, HashSet};

use super::conditions::PortSet;
use super::model::{Hook, RuleSource, TableFamily};
use super::walk::{ChainRules, Table};
use interpret::{SetContents, Sets, interpret};
use nfnetlink::{DumpFailure, Message};
use objects::{Element, Expr, decode_chain, decode_elements, decode_rule, decode_set};
use session::{Session, SessionError};

/// The table families lsport reads, with their NFPROTO_* numbers.
const FAMILIES: [(TableFamily, u8); 3] = [
    (TableFamily::Ip, 2),
    (TableFamily::Ip6, 10),
    (TableFamily::Inet, 1),
];

/// How many times the dumps of a family are read again when the rule
/// set changes under them.
const ATTEMPTS: usize = 5;

/// What reading nf_tables gave.
#[derive(Debug)]
pub enum Outcome {
    /// The tables with nat chains, ready to walk, and the families read.
    Read {
        /// The tables that have a nat chain at prerouting or output.
        tables: Vec<Table>,
        /// The families read.
        families: Vec<TableFamily>,
    },
    /// The kernel refused the dump (the errno: EPERM without
    /// CAP_NET_ADMIN).
    Refused(i32),
    /// The kernel has no nf_tables (or no nfnetlink): there are no
    /// rules to read.
    Absent,
}

/// The replies of one family's dumps, undecoded.
#[derive(Debug, Default, Clone)]
pub struct Replies {
    /// NFT_MSG_NEWCHAIN messages.
    pub chains: Vec<Message>,
    /// NFT_MSG_NEWRULE messages.
    pub rules: Vec<Message>,
    /// NFT_MSG_NEWSET messages.
    pub sets: Vec<Message>,
    /// NFT_MSG_NEWSETELEM messages, of any sets.
    pub elements: Vec<Message>,
}

/// Reads every family's nat tables in the calling thread's network
/// namespace, keeping the rules that may take a port of `asked`.
pub fn read(asked: &PortSet) -> Result<Outcome, crate::Error> {
    let mut session = match Session::open() {
        Ok(session) => session,
        Err(SessionError::Io(e))
            if matches!(
                e.raw_os_error(),
                Some(libc::EPROTONOSUPPORT | libc::EAFNOSUPPORT)
            ) =>
        {
            return Ok(Outcome::Absent);
        }
        Err(err) => return Err(error("opening a netfilter netlink socket", err)),
    };
    let mut tables = Vec::new();
    let mut families = Vec::new();
    for (family, nfproto) in FAMILIES {
        match read_family(&mut session, nfproto) {
            Ok(replies) => {
                tables.extend(tables_of(family, &replies, asked));
                families.push(family);
            }
            Err(SessionError::Dump(DumpFailure::Kernel(errno)))
                if matches!(errno, libc::EPERM | libc::EACCES) =>
            {
                return Ok(Outcome::Refused(errno));
            }
            // nfnetlink without the nf_tables subsystem.
            Err(SessionError::Dump(DumpFailure::Kernel(libc::EOPNOTSUPP)))
                if families.is_empty() =>
            {
                return Ok(Outcome::Absent);
            }
            Err(err) => {
                return Err(error(&format!("reading the {} tables", family.name()), err));
            }
        }
    }
    Ok(Outcome::Read { tables, families })
}

fn error(what: &str, err: SessionError) -> crate::Error {
    match err {
        SessionError::Io(e) => crate::Error::Netlink {
            errno: e.raw_os_error(),
            message: format!("nftables: {what}: {e}"),
        },
        SessionError::Dump(DumpFailure::Kernel(errno)) => crate::Error::Netlink {
            errno: Some(errno),
            message: format!(
                "nftables: {what}: {}",
                std::io::Error::from_raw_os_error(errno)
            ),
        },
        SessionError::Dump(DumpFailure::Interrupted) => crate::Error::Netlink {
            errno: None,
            message: format!("nftables: {what}: the rule set kept changing while it was read"),
        },
        SessionError::Dump(DumpFailure::Malformed(why)) => crate::Error::Netlink {
            errno: None,
            message: format!("nftables: {what}: {why}"),
        },
    }
}

/// One family's dumps, from a single generation of the rule set.
fn read_family(session: &mut Session, nfproto: u8) -> Result<Replies, SessionError> {
    for _ in 0..ATTEMPTS {
        match read_family_once(session, nfproto) {
            Ok(replies) if one_generation(&replies) => return Ok(replies),
            Ok(_) | Err(SessionError::Dump(DumpFailure::Interrupted)) => {}
            Err(err) => return Err(err),
        }
    }
    Err(SessionError::Dump(DumpFailure::Interrupted))
}

fn read_family_once(session: &mut Session, nfproto: u8) -> Result<Replies, SessionError> {
    use nfnetlink::Dump;
    let mut replies = Replies {
        chains: session.dump(Dump::Chains, nfproto, None)?,
        rules: session.dump(Dump::Rules, nfproto, None)?,
        sets: session.dump(Dump::Sets, nfproto, None)?,
        elements: Vec::new(),
    };
    for (table, set) in sets_to_read(&replies) {
        match session.dump(Dump::SetElements, nfproto, Some((&table, &set))) {
            Ok(messages) => replies.elements.extend(messages),
            // Gone since the set dump: the generation check catches it.
            Err(SessionError::Dump(DumpFailure::Kernel(libc::ENOENT))) => {}
            Err(err) => return Err(err),
        }
    }
    Ok(replies)
}

/// Whether every message came from the same generation of the rule set.
fn one_generation(replies: &Replies) -> bool {
    let mut all = replies
        .chains
        .iter()
        .chain(&replies.rules)
        .chain(&replies.sets)
        .chain(&replies.elements)
        .map(|m| m.generation);
    match all.next() {
        Some(first) => all.all(|g| g == first),
        None => true,
    }
}

/// The hook of a chain if it is a nat base chain at prerouting
/// (NF_INET_PRE_ROUTING, 0) or output (NF_INET_LOCAL_OUT, 3).
fn nat_hook(chain: &objects::Chain) -> Option<Hook> {
    if chain.kind.as_deref() != Some("nat") {
        return None;
    }
    match chain.hook? {
        0 => Some(Hook::Prerouting),
        3 => Some(Hook::Output),
        _ => None,
    }
}

/// The tables that have a nat chain at prerouting or output.
fn nat_tables(replies: &Replies) -> Vec<String> {
    let mut names: Vec<String> = replies
        .chains
        .iter()
        .filter_map(|m| decode_chain(&m.attributes))
        .filter(|c| nat_hook(c).is_some())
        .map(|c| c.table)
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The (table, set) pairs that rules of nat tables look up.
fn sets_to_read(replies: &Replies) -> Vec<(String, String)> {
    let tables = nat_tables(replies);
    let known: HashSet<(String, String)> = replies
        .sets
        .iter()
        .filter_map(|m| decode_set(&m.attributes))
        .map(|s| (s.table, s.name))
        .collect();
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for rule in replies
        .rules
        .iter()
        .filter_map(|m| decode_rule(&m.attributes))
    {
        if !tables.contains(&rule.table) {
            continue;
        }
        for expr in rule.expressions.iter().flatten() {
            if let Expr::Lookup { set, .. } = expr {
                let pair = (rule.table.clone(), set.clone());
                if known.contains(&pair) && seen.insert(pair.clone()) {
                    out.push(pair);
                }
            }
        }
    }
    out
}

/// The elements of each (table, set), from every element message.
fn elements_by_set(replies: &Replies) -> HashMap<(String, String), Result<Vec<Element>, String>> {
    let mut elements: HashMap<(String, String), Result<Vec<Element>, String>> = HashMap::new();
    for message in &replies.elements {
        let table = nfnetlink::find(&message.attributes, 1).map(nfnetlink::string);
        let set = nfnetlink::find(&message.attributes, 2).map(nfnetlink::string);
        let (Some(table), Some(set)) = (table, set) else {
            continue;
        };
        let entry = elements
            .entry((table, set))
            .or_insert_with(|| Ok(Vec::new()));
        if let Ok(list) = entry {
            if let Err(why) = decode_elements(&message.attributes, list) {
                *entry = Err(why);
            }
        }
    }
    elements
}

/// The tables of one family's replies that have a nat chain at
/// prerouting or output, their rules interpreted. Pure. Each message is
/// decoded once: a Kubernetes node has thousands of chains and tens of
/// thousands of rules.
pub fn tables_of(family: TableFamily, replies: &Replies, asked: &PortSet) -> Vec<Table> {
    let names = nat_tables(replies);
    let mut elements = elements_by_set(replies);
    let mut tables: Vec<Table> = names
        .iter()
        .map(|name| Table {
            source: RuleSource::Nftables,
            family,
            name: name.clone(),
            chains: Vec::new(),
        })
        .collect();
    let mut sets: Vec<Sets> = vec![Sets::new(); names.len()];
    let table_index = |table: &str| names.binary_search_by(|n| n.as_str().cmp(table)).ok();
    for set in replies
        .sets
        .iter()
        .filter_map(|m| decode_set(&m.attributes))
    {
        let Some(i) = table_index(&set.table) else {
            continue;
        };
        let elements = elements
            .remove(&(set.table.clone(), set.name.clone()))
            .unwrap_or_else(|| Err("they were not read".into()));
        sets[i].insert(set.name.clone(), SetContents { set, elements });
    }
    // Chains in dump order, and where each is, by (table, name).
    let mut chain_index: HashMap<(usize, String), usize> = HashMap::new();
    for chain in replies
        .chains
        .iter()
        .filter_map(|m| decode_chain(&m.attributes))
    {
        let Some(i) = table_index(&chain.table) else {
            continue;
        };
        chain_index.insert((i, chain.name.clone()), tables[i].chains.len());
        tables[i].chains.push(ChainRules {
            hook: nat_hook(&chain),
            name: chain.name,
            rules: Vec::new(),
        });
    }
    for rule in replies
        .rules
        .iter()
        .filter_map(|m| decode_rule(&m.attributes))
    {
        let Some(i) = table_index(&rule.table) else {
            continue;
        };
        // A rule of a chain the chain dump did not have: the generation
        // check makes this rare; it is left out with its chain.
        if let Some(&c) = chain_index.get(&(i, rule.chain.clone())) {
            let meaning = interpret(&rule, family, &sets[i], asked);
            tables[i].chains[c].rules.push(meaning);
        }
    }
    tables
}
