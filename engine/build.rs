//! Embeds every file of `manifests/actions` and `manifests/triggers` in the binary, so a new
//! manifest is picked up by the next build without a code change.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    // Read when the script runs, not baked in when it was compiled: a build script reused from
    // another checkout (a shared target folder) must still embed this checkout's manifests.
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let root = Path::new(&manifest_dir).join("../manifests");
    println!("cargo:rerun-if-changed={}", root.display());
    // `sqlx::migrate!` embeds the migrations; a new file must rebuild this crate.
    println!("cargo:rerun-if-changed=../migrations");
    let mut out =
        String::from("/// (path under `manifests/`, contents) of every built-in manifest.\n");
    out.push_str("pub static BUILT_IN: &[(&str, &str)] = &[\n");
    for dir in ["actions", "triggers"] {
        let folder = root.join(dir);
        println!("cargo:rerun-if-changed={}", folder.display());
        let mut files: Vec<_> = std::fs::read_dir(&folder)
            .map(|entries| entries.filter_map(|e| e.ok()).map(|e| e.path()).collect())
            .unwrap_or_default();
        files.retain(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"));
        files.sort();
        for file in files {
            let name = format!("{dir}/{}", file.file_name().unwrap().to_string_lossy());
            let path = file.canonicalize().unwrap();
            writeln!(
                out,
                "    ({name:?}, include_str!({:?})),",
                path.display().to_string()
            )
            .unwrap();
        }
    }
    out.push_str("];\n");
    let dest = Path::new(&std::env::var("OUT_DIR").unwrap()).join("built_in_manifests.rs");
    std::fs::write(dest, out).unwrap();
}
