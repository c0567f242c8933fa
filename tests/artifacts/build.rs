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

    for target in [WASIP2, NO_WASI] {
        ensure_wasm_target(&root, target);
    }
    // Every plugin for wasm32-wasip2; a few also for wasm32-unknown-unknown, linked into a
    // component by wasm-component-ld (example-plugins/.cargo/config.toml): no WASI imports.
    cargo_build(&plugins, &target_dir, WASIP2, &[]);
    cargo_build(&plugins, &target_dir, NO_WASI, NO_WASI_PLUGINS);

    let mut generated = String::new();
    for crate_name in members(&plugins.join("Cargo.toml")) {
        let constant = crate_name.replace('-', "_").to_uppercase();
        let path = built(&target_dir, WASIP2, &crate_name);
        generated.push_str(&format!(
            "/// The `{crate_name}` example plugin, compiled for wasm32-wasip2.\n\
             pub const {constant}: &str = {:?};\n",
            path.display().to_string()
        ));
        if NO_WASI_PLUGINS.contains(&crate_name.as_str()) {
            let path = built(&target_dir, NO_WASI, &crate_name);
            generated.push_str(&format!(
                "/// The `{crate_name}` example plugin, compiled for wasm32-unknown-unknown: a \
                 component without WASI imports.\npub const {constant}_NO_WASI: &str = {:?};\n",
                path.display().to_string()
            ));
        }
    }
    std::fs::write(out_dir.join("artifacts.rs"), generated).unwrap();
}

const WASIP2: &str = "wasm32-wasip2";
const NO_WASI: &str = "wasm32-unknown-unknown";

/// The plugins also built for wasm32-unknown-unknown.
const NO_WASI_PLUGINS: &[&str] = &[
    "accounts",
    "notes",
    "hostile",
    "bench-rows",
    "bench-template10",
    "bench-template20",
];

/// The component cargo built for `crate_name`.
fn built(target_dir: &Path, target: &str, crate_name: &str) -> PathBuf {
    let wasm_dir = target_dir.join(target).join("release");
    // A library's file name has underscores; a binary's keeps the crate's hyphens.
    let file = crate_name.replace('-', "_");
    [&file, crate_name]
        .iter()
        .map(|f| wasm_dir.join(format!("{f}.wasm")))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("{crate_name} was not built into {}", wasm_dir.display()))
}

/// Builds the example plugins (`packages`, or all) for `target`.
fn cargo_build(plugins: &Path, target_dir: &Path, target: &str, packages: &[&str]) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(plugins)
        .args(["build", "--release", "--target", target, "--locked"])
        .arg("--target-dir")
        .arg(target_dir);
    for package in packages {
        cmd.args(["-p", package]);
    }
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
        "building the example plugins for {target} failed; is the target installed? \
         (rustup target add {target})"
    );
}

/// rust-toolchain.toml lists the wasm targets, but rustup adds listed targets only when it
/// installs the toolchain; add them to an already installed one.
fn ensure_wasm_target(root: &Path, target: &str) {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    if sysroot.is_some_and(|s| s.join("lib/rustlib").join(target).is_dir()) {
        return;
    }
    println!("cargo:warning=installing the {target} target with rustup");
    let _ = Command::new("rustup")
        .current_dir(root)
        .args(["target", "add", target])
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
