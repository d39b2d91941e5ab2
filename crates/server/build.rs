//! Embeds the web client's built files (`web/dist/` at the workspace root) into the binary:
//! writes `$OUT_DIR/web_assets.rs`, a table of every file there (its URL path, its bytes via
//! `include_bytes!`, and a content hash for its ETag), and tells Cargo to run again whenever a
//! file or directory under it changes, is added or removed. A missing `web/dist` embeds
//! nothing (the server then answers 404 at `/` and says how to build the client).

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let dist = manifest.join("../../web/dist");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR")).join("web_assets.rs");
    println!("cargo:rerun-if-changed=build.rs");
    // Watching the directory itself catches files added or removed (its mtime changes); each
    // file and subdirectory is watched too, for edits in place.
    println!("cargo:rerun-if-changed={}", dist.display());
    let mut files = Vec::new();
    if dist.is_dir() {
        collect(&dist, &dist, &mut files);
    }
    files.sort();
    let mut table = String::from("&[\n");
    for (url, path) in &files {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        let mut hasher = DefaultHasher::new();
        bytes.hash(&mut hasher);
        table.push_str(&format!(
            "    Asset {{ path: {url:?}, body: include_bytes!({:?}), etag: \"\\\"{:016x}\\\"\" }},\n",
            path.display().to_string(),
            hasher.finish()
        ));
    }
    table.push_str("]\n");
    std::fs::write(&out, table).unwrap_or_else(|e| panic!("writing {}: {e}", out.display()));
}

/// Every regular file under `dir` as (URL path such as `/app.js`, file path); hidden files
/// (`.gitignore`, editor droppings) are left out.
fn collect(root: &Path, dir: &Path, files: &mut Vec<(String, PathBuf)>) {
    println!("cargo:rerun-if-changed={}", dir.display());
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        if path.is_dir() {
            collect(root, &path, files);
        } else if path.is_file() {
            println!("cargo:rerun-if-changed={}", path.display());
            let Ok(relative) = path.strip_prefix(root) else { continue };
            let url = format!("/{}", relative.to_string_lossy().replace('\\', "/"));
            files.push((url, path));
        }
    }
}
