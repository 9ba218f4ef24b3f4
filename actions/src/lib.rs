//! Action and trigger manifests (what timix can do, as data), the templates that map a flow's
//! data into an action's input, and running actions.

pub mod manifest;
pub mod template;

pub use manifest::{ActionManifest, ManifestProblem, Manifests, TriggerManifest};
pub use timix_connectors as connectors;
