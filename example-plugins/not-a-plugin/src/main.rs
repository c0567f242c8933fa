//! A plain WASI program: wasmig must refuse it as a plugin, naming the missing export.
fn main() {
    println!("I am not a migration plugin");
}
