//! A plugin that tries to reach the network. Using `std::net` makes the component import
//! `wasi:sockets`, which wasmig refuses at load.

use wasmig_guest::{Error, Migration, Plugin, Result, Tx};

fn phone_home(_: &Tx) -> Result<()> {
    std::net::TcpStream::connect("127.0.0.1:9")
        .map(drop)
        .map_err(|e| Error::other(e.to_string()))
}

fn plugin() -> Plugin {
    Plugin::new("netcat", "0.1.0").migration(Migration::code(
        "0.1.0",
        "phone home",
        "v1",
        phone_home,
    ))
}

wasmig_guest::export_plugin!(plugin);
