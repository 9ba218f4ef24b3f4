//! Which connectors an organization sees, and every version a flow may name. The catalogue is
//! built in; the operator's folder is read again whenever a file in it changes (a bad file is
//! reported and skipped, the others stay); an organization's own come from the database. Versions
//! are immutable, so each is parsed once and kept.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, SystemTime};

use super::{Loaded, Source, parse, store};
use crate::automation::manifest::{CATALOGUE, ManifestProblem, Manifests};
use crate::error::Result;
use crate::store::db::Db;

/// Versions kept parsed at most; the oldest-used go first.
const CACHED_VERSIONS: usize = 500;

/// The connectors of this instance and the versions flows use.
pub struct Registry {
    base: Arc<Manifests>,
    /// Read when first needed: an instance whose flows use no connector does not hold them.
    catalogue: OnceLock<BTreeMap<String, Arc<Loaded>>>,
    dir: Option<PathBuf>,
    instance: RwLock<Instance>,
    versions: Mutex<HashMap<String, Arc<Loaded>>>,
}

/// What the operator's folder held when last read.
#[derive(Default)]
struct Instance {
    connectors: BTreeMap<String, Arc<Loaded>>,
    problems: Vec<ManifestProblem>,
    /// (file, modified, length) of every file read, to see a change.
    seen: Vec<(PathBuf, Option<SystemTime>, u64)>,
}

/// The catalogue's connectors, and the problems of those that do not read; `check`: against
/// the meta-schema too (the catalogue's tests do; a running service need not).
fn read_catalogue(check: bool) -> (BTreeMap<String, Arc<Loaded>>, Vec<ManifestProblem>) {
    let mut catalogue = BTreeMap::new();
    let mut problems = Vec::new();
    for (file, text) in CATALOGUE {
        let read = if check {
            parse(file, text, Source::Catalogue, None)
        } else {
            super::yaml::read(text)
                .map_err(|e| vec![(String::new(), e)])
                .and_then(|document| super::load_checked(document, Source::Catalogue, None))
                .map_err(|found| {
                    found
                        .into_iter()
                        .map(|(path, message)| ManifestProblem {
                            file: (*file).to_owned(),
                            path,
                            message,
                        })
                        .collect()
                })
        };
        match read {
            Ok(loaded) => {
                catalogue.insert(loaded.connector.key.clone(), Arc::new(loaded));
            }
            Err(found) => problems.extend(found),
        }
    }
    (catalogue, problems)
}

/// The keys of the catalogue's connectors (their folders' names), without reading them.
fn catalogue_keys() -> impl Iterator<Item = &'static str> {
    CATALOGUE
        .iter()
        .filter_map(|(file, _)| file.split_once('/').map(|(key, _)| key))
}

impl Registry {
    /// The registry over timix's own manifests (`base`), the catalogue and the operator's
    /// folder (read now).
    pub fn new(base: Arc<Manifests>, dir: Option<PathBuf>) -> Registry {
        let registry = Registry {
            base,
            catalogue: OnceLock::new(),
            dir,
            instance: RwLock::default(),
            versions: Mutex::default(),
        };
        registry.reload();
        registry
    }

    /// Every problem of the catalogue (it is part of the build, and tested: there should be
    /// none).
    pub fn catalogue_problems() -> Vec<ManifestProblem> {
        read_catalogue(true).1
    }

    fn catalogue(&self) -> &BTreeMap<String, Arc<Loaded>> {
        self.catalogue.get_or_init(|| {
            let (catalogue, problems) = read_catalogue(false);
            for problem in &problems {
                tracing::error!(%problem, "A connector of the catalogue does not read.");
            }
            catalogue
        })
    }

    /// timix's own manifests.
    pub fn base(&self) -> &Arc<Manifests> {
        &self.base
    }

    /// Reads the operator's folder again if a file in it changed; the problems of the files
    /// that were skipped.
    pub fn reload(&self) -> Vec<ManifestProblem> {
        let Some(dir) = &self.dir else {
            return Vec::new();
        };
        let files = connector_files(dir);
        let seen: Vec<_> = files
            .iter()
            .map(|f| {
                let meta = std::fs::metadata(f).ok();
                (
                    f.clone(),
                    meta.as_ref().and_then(|m| m.modified().ok()),
                    meta.map_or(0, |m| m.len()),
                )
            })
            .collect();
        if self.read_instance(|i| i.seen == seen) {
            return self.read_instance(|i| i.problems.clone());
        }
        let mut connectors = BTreeMap::new();
        let mut problems = Vec::new();
        for file in &files {
            let name = file.strip_prefix(dir).unwrap_or(file).display().to_string();
            let text = match std::fs::read_to_string(file) {
                Ok(text) => text,
                Err(e) => {
                    problems.push(ManifestProblem {
                        file: name,
                        path: String::new(),
                        message: format!("cannot read the file: {e}"),
                    });
                    continue;
                }
            };
            match parse(&name, &text, Source::Instance, None) {
                Ok(loaded) if catalogue_keys().any(|k| k == loaded.connector.key) => {
                    problems.push(ManifestProblem {
                        file: name,
                        path: "/key".into(),
                        message: format!(
                            "{} is a connector of the catalogue; choose another key",
                            loaded.connector.key
                        ),
                    });
                }
                Ok(loaded) if connectors.contains_key(&loaded.connector.key) => {
                    problems.push(ManifestProblem {
                        file: name,
                        path: "/key".into(),
                        message: format!(
                            "{} is the key of another file of the folder",
                            loaded.connector.key
                        ),
                    });
                }
                Ok(loaded) => {
                    connectors.insert(loaded.connector.key.clone(), Arc::new(loaded));
                }
                Err(found) => problems.extend(found),
            }
        }
        for problem in &problems {
            tracing::warn!(%problem, "A connector of the connectors folder was skipped.");
        }
        tracing::info!(
            loaded = connectors.len(),
            skipped = problems.len(),
            dir = %dir.display(),
            "Connectors folder read."
        );
        let mut instance = self.instance.write().unwrap_or_else(|e| e.into_inner());
        *instance = Instance {
            connectors,
            problems: problems.clone(),
            seen,
        };
        problems
    }

    fn read_instance<T>(&self, read: impl FnOnce(&Instance) -> T) -> T {
        read(&self.instance.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Reads the operator's folder again whenever it changes (looked at every `every`).
    pub async fn watch(self: Arc<Self>, every: Duration) {
        if self.dir.is_none() {
            return;
        }
        loop {
            tokio::time::sleep(every).await;
            let registry = self.clone();
            // File reads and parsing are blocking work.
            let _ = tokio::task::spawn_blocking(move || registry.reload()).await;
        }
    }

    /// The problems of the operator's folder as last read.
    pub fn instance_problems(&self) -> Vec<ManifestProblem> {
        self.read_instance(|i| i.problems.clone())
    }

    /// The connectors built in or the operator's, by key (the operator's cannot take a
    /// catalogue key).
    pub fn shared(&self) -> Vec<Arc<Loaded>> {
        let mut all: Vec<Arc<Loaded>> = self.catalogue().values().cloned().collect();
        all.extend(self.read_instance(|i| i.connectors.values().cloned().collect::<Vec<_>>()));
        all
    }

    /// A connector shared by the instance (catalogue or folder).
    pub fn shared_one(&self, key: &str) -> Option<Arc<Loaded>> {
        self.catalogue()
            .get(key)
            .cloned()
            .or_else(|| self.read_instance(|i| i.connectors.get(key).cloned()))
    }

    /// Every connector an organization sees, its own over the instance's.
    pub async fn for_org(&self, db: &Db, org_id: &str) -> Result<Vec<Arc<Loaded>>> {
        let mut by_key: BTreeMap<String, Arc<Loaded>> = self
            .shared()
            .into_iter()
            .map(|c| (c.connector.key.clone(), c))
            .collect();
        for installed in store::installed(db, org_id).await? {
            let loaded = self.remember(installed.version_id.clone(), || installed.parse(org_id))?;
            by_key.insert(loaded.connector.key.clone(), loaded);
        }
        Ok(by_key.into_values().collect())
    }

    /// timix's manifests with every connector the organization sees.
    pub async fn view(&self, db: &Db, org_id: &str) -> Result<Manifests> {
        Ok(self.base.with_connectors(self.for_org(db, org_id).await?))
    }

    /// A version named by a flow of `org_id`: the instance's as it is, or as it was (stored
    /// when a flow was saved with it), or the organization's.
    pub async fn version(&self, db: &Db, org_id: &str, id: &str) -> Result<Option<Arc<Loaded>>> {
        if let Some(found) = self.cached(id) {
            return Ok(Some(found).filter(|l| l.org_id.as_deref().is_none_or(|o| o == org_id)));
        }
        if let Some(found) = self.shared().into_iter().find(|c| c.version_id == id) {
            return Ok(Some(found));
        }
        let Some(stored) = store::version(db, id).await? else {
            return Ok(None);
        };
        if stored.org_id.as_deref().is_some_and(|o| o != org_id) {
            return Ok(None);
        }
        let owner = stored.org_id.clone();
        self.remember(id.to_owned(), || stored.parse(owner.as_deref()))
            .map(Some)
    }

    fn cached(&self, id: &str) -> Option<Arc<Loaded>> {
        self.versions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
    }

    /// The parsed version `id`, parsing it with `parse` the first time.
    fn remember(&self, id: String, parse: impl FnOnce() -> Result<Loaded>) -> Result<Arc<Loaded>> {
        if let Some(found) = self.cached(&id) {
            return Ok(found);
        }
        let loaded = Arc::new(parse()?);
        let mut versions = self.versions.lock().unwrap_or_else(|e| e.into_inner());
        if versions.len() >= CACHED_VERSIONS {
            // Versions are cheap to parse again; a full cache starts over rather than track use.
            versions.clear();
        }
        versions.insert(id, loaded.clone());
        Ok(loaded)
    }
}

/// The connector files of a folder: `*.yaml` in it, and `*/connector.yaml` (the catalogue's
/// layout), sorted.
fn connector_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return files;
    };
    for path in entries.filter_map(|e| e.ok()).map(|e| e.path()) {
        if path.is_dir() {
            let inner = path.join("connector.yaml");
            if inner.is_file() {
                files.push(inner);
            }
        } else if path
            .extension()
            .is_some_and(|e| e == "yaml" || e == "yml" || e == "json")
        {
            files.push(path);
        }
    }
    files.sort();
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalogue_reads_and_each_connector_has_a_trigger_and_two_actions() {
        let problems = Registry::catalogue_problems();
        assert!(
            problems.is_empty(),
            "{}",
            problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        );
        let base = Arc::new(Manifests::built_in().unwrap());
        let registry = Registry::new(base, None);
        assert_eq!(
            registry.shared().len(),
            catalogue_keys().count(),
            "every folder of the catalogue is a connector"
        );
        for connector in registry.shared() {
            let c = &connector.connector;
            assert!(!c.triggers.is_empty(), "{} has no trigger", c.key);
            assert!(c.actions.len() >= 2, "{} has fewer than two actions", c.key);
            assert_eq!(connector.source, Source::Catalogue);
        }
    }

    #[test]
    fn a_folder_with_a_broken_file_loads_the_others() {
        let dir = std::env::temp_dir().join(format!("timix-connectors-{}", ulid::Ulid::generate()));
        std::fs::create_dir_all(dir.join("notes")).unwrap();
        let good = "key: notes\nlabel: Notes\nversion: 1.0.0\ndescription: Notes.\n\
            baseUrl: https://notes.example\nauth: {type: bearer}\ntest: {method: GET, path: /me}\n";
        std::fs::write(dir.join("notes/connector.yaml"), good).unwrap();
        std::fs::write(dir.join("broken.yaml"), "key: broken\nlabel: [").unwrap();
        std::fs::write(
            dir.join("other.yaml"),
            good.replace("key: notes", "key: other"),
        )
        .unwrap();
        let base = Arc::new(Manifests::built_in().unwrap());
        let registry = Registry::new(base, Some(dir.clone()));
        let keys: Vec<String> = registry
            .shared()
            .iter()
            .filter(|c| c.source == Source::Instance)
            .map(|c| c.connector.key.clone())
            .collect();
        assert_eq!(keys, vec!["notes", "other"]);
        let problems = registry.instance_problems();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].file, "broken.yaml");
        // A change is picked up by the next look; an unchanged folder is not read again.
        std::fs::write(
            dir.join("broken.yaml"),
            good.replace("key: notes", "key: fixed"),
        )
        .unwrap();
        assert!(registry.reload().is_empty());
        assert!(registry.shared_one("fixed").is_some());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
