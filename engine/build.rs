//! Embeds the built-in connectors in the binary: every file of `manifests/connectors/timix/actions`
//! and `…/triggers` (timix's own manifests), and the `connector.yaml` of every other folder of
//! `manifests/connectors` (the catalogue), so a new manifest or connector is picked up by the
//! next build without a code change.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn yaml_files(folder: &Path) -> Vec<PathBuf> {
    println!("cargo:rerun-if-changed={}", folder.display());
    let mut files: Vec<_> = std::fs::read_dir(folder)
        .map(|entries| entries.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"));
    files.sort();
    files
}

fn entry(out: &mut String, name: &str, file: &Path) {
    let path = file.canonicalize().unwrap();
    writeln!(
        out,
        "    ({name:?}, include_str!({:?})),",
        path.display().to_string()
    )
    .unwrap();
}

fn main() {
    // Read when the script runs, not baked in when it was compiled: a build script reused from
    // another checkout (a shared target folder) must still embed this checkout's manifests.
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let root = Path::new(&manifest_dir).join("../manifests/connectors");
    println!("cargo:rerun-if-changed={}", root.display());
    // `sqlx::migrate!` embeds the migrations; a new file must rebuild this crate.
    println!("cargo:rerun-if-changed=../migrations");
    let mut out = String::from(
        "/// (path under `manifests/connectors/timix/`, contents) of every built-in manifest.\n",
    );
    out.push_str("pub static BUILT_IN: &[(&str, &str)] = &[\n");
    for dir in ["actions", "triggers"] {
        for file in yaml_files(&root.join("timix").join(dir)) {
            let name = format!("{dir}/{}", file.file_name().unwrap().to_string_lossy());
            entry(&mut out, &name, &file);
        }
    }
    out.push_str("];\n");
    out.push_str("/// (`<key>/connector.yaml`, contents) of every connector of the catalogue.\n");
    out.push_str("pub static CATALOGUE: &[(&str, &str)] = &[\n");
    let mut folders: Vec<_> = std::fs::read_dir(&root)
        .map(|entries| entries.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    folders.retain(|p| p.is_dir() && !p.ends_with("timix"));
    folders.sort();
    for folder in folders {
        println!("cargo:rerun-if-changed={}", folder.display());
        let file = folder.join("connector.yaml");
        if file.exists() {
            let name = format!(
                "{}/connector.yaml",
                folder.file_name().unwrap().to_string_lossy()
            );
            entry(&mut out, &name, &file);
        }
    }
    out.push_str("];\n");
    let dest = Path::new(&std::env::var("OUT_DIR").unwrap()).join("built_in_manifests.rs");
    std::fs::write(dest, out).unwrap();
}
