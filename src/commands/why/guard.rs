//! The trial's lookout (see `trial`): before a call that would take
//! traffic, which live sockets on the port would the trial socket share
//! it with. One dump filtered by port, read in the trial's namespace and
//! on its thread, from the source the user chose.

use crate::collect;
use crate::commands::why::rules::TrialView;
use crate::commands::why::trial::BindSpec;
use crate::error::Error;
use crate::filter::SocketFilter;
use crate::query::{CgroupDetail, HolderDetail, Query, SourceChoice};
use crate::socket::{Family, PortRange, Protocol, Socket, State};
use crate::sys::ProcRoot;

/// Where the lookout reads sockets from.
#[derive(Debug, Clone)]
pub struct Lookout {
    source: SourceChoice,
    proc_root: ProcRoot,
}

impl Lookout {
    /// Reads from the source and `/proc` of `query`.
    pub fn new(query: &Query) -> Lookout {
        Lookout {
            source: query.source,
            proc_root: query.proc_root.clone(),
        }
    }

    /// The live sockets a socket bound as `spec` (with IPV6_V6ONLY as
    /// given) would take traffic from: for TCP the listeners of the port
    /// whose addresses overlap its own (it would join their SO_REUSEPORT
    /// group, or, on a narrower address, take their connections to it),
    /// for UDP every socket of the port whose addresses overlap.
    pub fn sharers(&self, spec: &BindSpec, v6only: Option<bool>) -> Result<Vec<Socket>, Error> {
        let mut query = Query::ports([PortRange::single(spec.port)]);
        query.protocols = vec![spec.protocol];
        query.families = vec![Family::Inet, Family::Inet6];
        query.listening_only = spec.protocol == Protocol::Tcp;
        query.source = self.source;
        query.proc_root = self.proc_root.clone();
        query.holders = HolderDetail::None;
        query.cgroups = CgroupDetail::None;
        query.user_names = false;
        let collected = collect::sockets(&query, &SocketFilter::default(), &|| {})?;
        let view = TrialView {
            spec,
            v6only,
            uid: 0,
        };
        Ok(collected
            .sockets
            .into_iter()
            .filter(|s| spec.protocol == Protocol::Udp || s.state == State::Listen)
            .filter(|s| view.meets(s))
            .collect())
    }
}
