//! What saving a flow, a subscription or a connection obeys besides the database and the
//! caller: the operator's settings and the process's keys, passed as one value.

use crate::caps::Caps;
use crate::connections::Vault;
use crate::manifest::Manifests;
use crate::targets::Targets;

/// The manifests steps name, the vault secrets are sealed with, the operator's caps, and
/// where outbound targets may point.
#[derive(Clone, Copy)]
pub struct Saving<'a> {
    pub manifests: &'a Manifests,
    pub vault: &'a Vault,
    pub caps: &'a Caps,
    pub targets: Targets,
}
