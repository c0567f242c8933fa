//! Builds every crate of `example-plugins/` to a WebAssembly component, the way wasmtime's
//! test-programs artifacts are built: a nested cargo for wasm32-wasip2 with its own target
//! directory, and a generated module that names each component's path.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.join("../..").canonicalize().unwrap();
    let plugins = root.join("example-plugins");
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").unwrap());
    // OUT_DIR is <target>/<profile>/build/<crate>-<hash>/out: share one plugin build per target dir.
    let target_dir = out_dir
        .ancestors()
        .nth(4)
        .expect("OUT_DIR is inside the target directory")
        .join("example-plugins");

    for watched in ["example-plugins", "guest-sdk", "wit"] {
        rerun_if_changed(&root.join(watched));
    }

    ensure_wasm_target(&root);

    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&plugins)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--locked",
        ])
        .arg("--target-dir")
        .arg(&target_dir);
    // The outer build's settings are not the plugins' settings.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if (key.starts_with("CARGO_") && key != "CARGO_HOME" && !key.starts_with("CARGO_NET"))
            || key.starts_with("RUSTC")
            || key == "RUSTFLAGS"
            || key == "RUSTDOCFLAGS"
        {
            cmd.env_remove(key.as_ref());
        }
    }
    let status = cmd
        .status()
        .expect("cannot run cargo to build the example plugins");
    assert!(
        status.success(),
        "building the example plugins failed; is the wasm32-wasip2 target installed? \
         (rustup target add wasm32-wasip2)"
    );

    let wasm_dir = target_dir.join("wasm32-wasip2/release");
    let mut generated = String::new();
    for crate_name in members(&plugins.join("Cargo.toml")) {
        // A library's file name has underscores; a binary's keeps the crate's hyphens.
        let file = crate_name.replace('-', "_");
        let path = [&file, &crate_name]
            .iter()
            .map(|f| wasm_dir.join(format!("{f}.wasm")))
            .find(|p| p.exists())
            .unwrap_or_else(|| panic!("{crate_name} was not built into {}", wasm_dir.display()));
        let constant = file.to_uppercase();
        generated.push_str(&format!(
            "/// The `{crate_name}` example plugin, compiled.\npub const {constant}: &str = {:?};\n",
            path.display().to_string()
        ));
    }
    std::fs::write(out_dir.join("artifacts.rs"), generated).unwrap();
}

/// rust-toolchain.toml lists wasm32-wasip2, but rustup adds listed targets only when it
/// installs the toolchain; add it to an already installed one.
fn ensure_wasm_target(root: &Path) {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    if sysroot.is_some_and(|s| s.join("lib/rustlib/wasm32-wasip2").is_dir()) {
        return;
    }
    println!("cargo:warning=installing the wasm32-wasip2 target with rustup");
    let _ = Command::new("rustup")
        .current_dir(root)
        .args(["target", "add", "wasm32-wasip2"])
        .status();
}

/// The crates listed in the example plugins' workspace `members`.
fn members(workspace: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(workspace).unwrap();
    let start = text.find("members").expect("members list");
    let list = &text[start..];
    let list = &list[list.find('[').unwrap() + 1..list.find(']').unwrap()];
    list.split(',')
        .map(|m| m.trim().trim_matches('"').to_string())
        .filter(|m| !m.is_empty())
        .map(|m| m.rsplit('/').next().unwrap().to_string())
        .collect()
}

fn rerun_if_changed(dir: &Path) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if name == "target" {
            continue;
        }
        if path.is_dir() {
            rerun_if_changed(&path);
        } else {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
}
