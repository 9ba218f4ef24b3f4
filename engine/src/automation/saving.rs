//! What saving a flow, a subscription or a connection obeys besides the database and the
//! caller: the operator's settings and the process's keys, passed as one value.

use crate::automation::connections::Vault;
use crate::automation::manifest::Manifests;
use crate::automation::quotas::Quotas;
use crate::automation::targets::Targets;

/// The manifests steps name, the vault secrets are sealed with, the operator's quotas, and
/// where outbound targets may point.
#[derive(Clone, Copy)]
pub struct Saving<'a> {
    pub manifests: &'a Manifests,
    pub vault: &'a Vault,
    pub quotas: &'a Quotas,
    pub targets: Targets,
}
