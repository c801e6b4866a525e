//! The chain walk: from each nat base chain hooked at prerouting or
//! output, down every jump and goto, joining the conditions of the rules
//! on the way, to the rules that DNAT or REDIRECT. Pure.
//!
//! The walk is an over-approximation on purpose: a rule earlier in a
//! chain that accepts or returns (Docker's `-i docker0 -j RETURN`) is not
//! taken to shadow the rules after it. A forward is reported under the
//! conditions of its own rule and of the jumps that lead to it; a port
//! is never called free because an earlier rule might have let the
//! traffic pass.

use std::collections::HashMap;

use super::conditions::{Action, Conditions, PortSet, RuleMeaning, table_families};
use super::model::{Forward, Hook, RulePlace, RuleSource, TableFamily, UndecodedRule};

/// A chain and its rules, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainRules {
    /// The chain's name.
    pub name: String,
    /// For a nat base chain at prerouting or output, its hook; None for
    /// any other chain (those are reached only by jumps).
    pub hook: Option<Hook>,
    /// The rules.
    pub rules: Vec<RuleMeaning>,
}

/// A table, ready to walk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// Where it was read.
    pub source: RuleSource,
    /// Its family.
    pub family: TableFamily,
    /// Its name.
    pub name: String,
    /// Its chains.
    pub chains: Vec<ChainRules>,
}

/// nf_tables allows a jump stack 16 deep; iptables' user chains have
/// no such limit, but a loop is refused by both when the rules are
/// loaded. Past this depth lsport stops and says so.
const MAX_DEPTH: usize = 32;

/// The walk gives up (and says so) after this many rule branches, so
/// that a pathological rule set cannot hold the probe.
const MAX_STEPS: usize = 2_000_000;

/// What the walk of one table found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Found {
    /// The forwards on the ports asked about.
    pub forwards: Vec<Forward>,
    /// Rules that may forward them and could not be read.
    pub undecoded: Vec<UndecodedRule>,
}

struct Walk<'a> {
    table: &'a Table,
    /// Each chain's index, by name.
    chains: HashMap<&'a str, usize>,
    asked: &'a PortSet,
    steps: usize,
    found: Found,
}

/// The first rule on a path that read the port in a way lsport could
/// not decode: every forward below it is undecoded, at that rule.
#[derive(Clone)]
struct PortUnknownAt {
    place: RulePlace,
    what: String,
}

/// Walks every hooked nat chain of `table`, keeping what may take a
/// port of `asked`.
pub fn walk(table: &Table, asked: &PortSet) -> Found {
    let mut walk = Walk {
        table,
        chains: table
            .chains
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name.as_str(), i))
            .collect(),
        asked,
        steps: 0,
        found: Found::default(),
    };
    let families = table_families(table.family);
    for (index, chain) in table.chains.iter().enumerate() {
        if let Some(hook) = chain.hook {
            let mut path = vec![index];
            walk.chain(hook, &mut path, &Conditions::any(families), None, None);
        }
    }
    walk.found
}

impl<'t> Walk<'t> {
    fn place(&self, hook: Hook, path: &[usize], rule: u64, position: usize) -> RulePlace {
        RulePlace {
            source: self.table.source,
            family: self.table.family,
            table: self.table.name.clone(),
            chains: path
                .iter()
                .map(|&i| self.table.chains[i].name.clone())
                .collect(),
            hook,
            rule,
            position: position as u64 + 1,
        }
    }

    fn undecoded(&mut self, place: RulePlace, what: String, conditions: &Conditions) {
        let entry = UndecodedRule {
            place,
            what,
            ports: conditions.ports.ranges().to_vec(),
        };
        if !self.found.undecoded.contains(&entry) {
            self.found.undecoded.push(entry);
        }
    }

    fn chain(
        &mut self,
        hook: Hook,
        path: &mut Vec<usize>,
        outer: &Conditions,
        port_unknown: Option<PortUnknownAt>,
        comment: Option<&'t str>,
    ) {
        let table: &'t Table = self.table;
        let chain = &table.chains[*path.last().unwrap()];
        for (position, rule) in chain.rules.iter().enumerate() {
            for branch in &rule.branches {
                self.steps += 1;
                if self.steps == MAX_STEPS {
                    let place = self.place(hook, path, rule.id, position);
                    let what = format!("a rule set with more than {MAX_STEPS} paths to follow");
                    self.undecoded(place, what, outer);
                }
                if self.steps >= MAX_STEPS {
                    return;
                }
                let conditions = outer.and(&branch.conditions);
                if !conditions.possible() || !conditions.ports.meets(self.asked) {
                    continue;
                }
                let mut unknown = port_unknown.clone();
                if unknown.is_none() {
                    if let Some(what) = &branch.conditions.port_unknown {
                        unknown = Some(PortUnknownAt {
                            place: self.place(hook, path, rule.id, position),
                            what: what.clone(),
                        });
                    }
                }
                match &branch.action {
                    Action::Continue | Action::Stop => {}
                    Action::Forward(target) => match unknown {
                        Some(at) => self.undecoded(at.place, at.what, &conditions),
                        None => self.found.forwards.push(Forward {
                            place: self.place(hook, path, rule.id, position),
                            comment: rule.comment.as_deref().or(comment).map(str::to_string),
                            families: conditions.family_list(),
                            protocols: conditions.protocol_list(),
                            ports: conditions.ports.ranges().to_vec(),
                            interfaces: conditions.interfaces.clone(),
                            destinations: conditions.destinations.clone(),
                            destination_types: conditions.destination_types.clone(),
                            unread_conditions: conditions.unread.clone(),
                            target: *target,
                        }),
                    },
                    Action::Undecoded(what) => {
                        let place = self.place(hook, path, rule.id, position);
                        self.undecoded(place, what.clone(), &conditions);
                    }
                    Action::Jump(name) => {
                        let target = self.chains.get(name.as_str()).copied();
                        let problem = match target {
                            None => Some(format!("a jump to chain {name}, which was not found")),
                            Some(i) if path.contains(&i) => {
                                Some(format!("a jump back to chain {name}"))
                            }
                            Some(_) if path.len() >= MAX_DEPTH => {
                                Some(format!("jumps more than {MAX_DEPTH} chains deep"))
                            }
                            Some(_) => None,
                        };
                        if let Some(what) = problem {
                            let place = self.place(hook, path, rule.id, position);
                            self.undecoded(place, what, &conditions);
                            continue;
                        }
                        path.push(target.unwrap());
                        let comment = rule.comment.as_deref().or(comment);
                        self.chain(hook, path, &conditions, unknown, comment);
                        path.pop();
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forwards::conditions::{Branch, IPV4, TCP};
    use crate::forwards::model::Target;
    use crate::socket::PortRange;

    fn rule(id: u64, conditions: Conditions, action: Action) -> RuleMeaning {
        RuleMeaning {
            id,
            comment: None,
            branches: vec![Branch { conditions, action }],
        }
    }

    fn tcp_port(port: u16) -> Conditions {
        let mut c = Conditions::any(IPV4);
        c.protocols = TCP;
        c.ports = PortSet::of([PortRange::single(port)]);
        c
    }

    fn docker_like() -> Table {
        let to_container = Target::Dnat {
            addresses: Some(("172.17.0.2".parse().unwrap(), "172.17.0.2".parse().unwrap())),
            ports: Some(PortRange::single(80)),
        };
        Table {
            source: RuleSource::Nftables,
            family: TableFamily::Ip,
            name: "nat".into(),
            chains: vec![
                ChainRules {
                    name: "DOCKER".into(),
                    hook: None,
                    rules: vec![
                        rule(6, Conditions::any(IPV4), Action::Stop),
                        rule(7, tcp_port(8081), Action::Forward(to_container)),
                    ],
                },
                ChainRules {
                    name: "PREROUTING".into(),
                    hook: Some(Hook::Prerouting),
                    rules: vec![rule(
                        3,
                        Conditions::any(IPV4),
                        Action::Jump("DOCKER".into()),
                    )],
                },
                ChainRules {
                    name: "OUTPUT".into(),
                    hook: Some(Hook::Output),
                    rules: vec![rule(
                        5,
                        Conditions::any(IPV4),
                        Action::Jump("DOCKER".into()),
                    )],
                },
            ],
        }
    }

    #[test]
    fn a_forward_is_found_through_each_hook_that_reaches_it() {
        let found = walk(&docker_like(), &PortSet::asked(&[PortRange::single(8081)]));
        assert!(found.undecoded.is_empty());
        let paths: Vec<(Hook, String)> = found
            .forwards
            .iter()
            .map(|f| (f.place.hook, f.place.path()))
            .collect();
        assert_eq!(
            paths,
            [
                (Hook::Prerouting, "PREROUTING -> DOCKER".to_string()),
                (Hook::Output, "OUTPUT -> DOCKER".to_string())
            ]
        );
        // The jump's comment names a forward whose own rule has none.
        let mut commented = docker_like();
        commented.chains[1].rules[0].comment = Some("published ports".into());
        let found = walk(&commented, &PortSet::asked(&[PortRange::single(8081)]));
        let comments: Vec<Option<&str>> = found
            .forwards
            .iter()
            .map(|f| f.comment.as_deref())
            .collect();
        assert_eq!(comments, [Some("published ports"), None]);
        // The return before it does not hide it; other ports find nothing.
        assert!(
            walk(&docker_like(), &PortSet::asked(&[PortRange::single(8080)]))
                .forwards
                .is_empty()
        );
    }

    #[test]
    fn a_port_read_by_an_unknown_expression_makes_the_forwards_below_undecoded() {
        let mut table = docker_like();
        let mut unknown = Conditions::any(IPV4);
        unknown.port_unknown("xt match set (revision 7)");
        table.chains[1].rules[0].branches[0].conditions = unknown;
        table.chains[2].rules.clear();
        let found = walk(&table, &PortSet::asked(&[PortRange::single(8081)]));
        assert!(found.forwards.is_empty());
        assert_eq!(found.undecoded.len(), 1);
        let undecoded = &found.undecoded[0];
        assert_eq!(
            (undecoded.place.chain(), undecoded.place.rule),
            ("PREROUTING", 3)
        );
        assert_eq!(
            undecoded.to_string(),
            "rule handle 3 in chain PREROUTING (table ip nat, reached by PREROUTING) uses an \
             expression lsport does not decode: xt match set (revision 7)"
        );
    }

    #[test]
    fn missing_chains_and_loops_are_said_not_followed() {
        let mut table = docker_like();
        table.chains[0].rules.push(rule(
            8,
            Conditions::any(IPV4),
            Action::Jump("DOCKER".into()),
        ));
        table.chains[2].rules[0].branches[0].action = Action::Jump("NOWHERE".into());
        let found = walk(&table, &PortSet::all());
        let what: Vec<&str> = found.undecoded.iter().map(|u| u.what.as_str()).collect();
        assert_eq!(
            what,
            [
                "a jump back to chain DOCKER",
                "a jump to chain NOWHERE, which was not found"
            ]
        );
        assert_eq!(found.forwards.len(), 1);
    }
}
