//! The data dir and the files kept in it (the SQLite database with its `-wal` and `-shm` files,
//! the queue database, the generated sealing key) are the owner's alone: the dir 0700, the
//! files 0600. New ones are made so; ones an earlier version (or a lax umask) left readable by
//! others are tightened at start, with one log line naming them.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::config::Settings;

/// Makes the data dir (and the SQLite files, if the database is SQLite) private: creates what
/// is missing with owner-only modes and tightens what is looser.
pub fn secure(settings: &Settings) -> anyhow::Result<()> {
    let mut tightened = Vec::new();
    if make_private_dir(&settings.data_dir)
        .with_context(|| format!("cannot create data dir {}", settings.data_dir.display()))?
    {
        tightened.push(settings.data_dir.clone());
    }
    let url = &settings.database_url;
    let databases = [
        timix_engine::store::db::sqlite_file(url),
        timix_engine::store::jobs::sqlite_queue_file(url),
    ];
    let mut files: Vec<PathBuf> = Vec::new();
    for database in databases.into_iter().flatten() {
        // Made now, empty (SQLite takes an empty file for a new database), so SQLite opens a
        // private file; its -wal and -shm files take the database file's mode.
        create_private_file(&database)
            .with_context(|| format!("cannot create {}", database.display()))?;
        for suffix in ["-wal", "-shm", "-journal"] {
            let mut sibling = database.clone().into_os_string();
            sibling.push(suffix);
            files.push(PathBuf::from(sibling));
        }
        files.push(database);
    }
    // Everything else the process keeps in the data dir (the sealing key).
    if let Ok(entries) = std::fs::read_dir(&settings.data_dir) {
        files.extend(entries.flatten().map(|e| e.path()));
    }
    files.sort();
    files.dedup();
    for file in files {
        if tighten_file(&file).with_context(|| format!("cannot protect {}", file.display()))? {
            tightened.push(file);
        }
    }
    if !tightened.is_empty() {
        let paths: Vec<String> = tightened.iter().map(|p| p.display().to_string()).collect();
        tracing::info!(
            paths = %paths.join(", "),
            "Tightened the data dir and its files to owner-only modes (0700 and 0600)."
        );
    }
    Ok(())
}

/// Creates `dir` (0700) if missing; tightens it if others may enter. True when it was
/// tightened.
#[cfg(unix)]
fn make_private_dir(dir: &Path) -> std::io::Result<bool> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        return Ok(false);
    }
    let mode = std::fs::metadata(dir)?.permissions().mode();
    if mode & 0o077 == 0 {
        return Ok(false);
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode & 0o700))?;
    Ok(true)
}

#[cfg(not(unix))]
fn make_private_dir(dir: &Path) -> std::io::Result<bool> {
    std::fs::create_dir_all(dir).map(|()| false)
}

/// Creates an empty file readable by the owner only, unless it exists.
fn create_private_file(path: &Path) -> std::io::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
        && !parent.exists()
    {
        make_private_dir(parent)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Removes group and other permissions from a regular file, if it exists and has any. True when
/// it was tightened.
#[cfg(unix)]
fn tighten_file(path: &Path) -> std::io::Result<bool> {
    use std::os::unix::fs::PermissionsExt;
    let metadata = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    let mode = metadata.permissions().mode();
    if !metadata.is_file() || mode & 0o077 == 0 {
        return Ok(false);
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & !0o077))?;
    Ok(true)
}

#[cfg(not(unix))]
fn tighten_file(_path: &Path) -> std::io::Result<bool> {
    Ok(false)
}
