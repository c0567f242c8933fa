// A step added to `migrations/` rebuilds the plugin: `wasmig_guest::plugin!` reads the folder.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
