//! Running action manifests: input validation, template rendering, performing the request on
//! this instance or through a connection, and reading the output.

pub use timix_connectors as connectors;
