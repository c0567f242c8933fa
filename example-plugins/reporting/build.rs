// A step added to `migrations/` rebuilds the plugin (`plugin!` reads the folder).
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
