//! Every kind of unusable plugin file is refused before anything runs, with an error that
//! names the file and the cause; the database is left as it was.

use crate::declared::leb128;
use crate::support::{Env, artifacts};

/// Adds a good plugin plus the bad file, runs `up`, and checks that it fails naming the bad
/// file and `cause`, and that nothing ran — not even the good plugin.
fn refused(bad_file: &str, setup: impl FnOnce(&Env), cause: &str) -> String {
    let env = Env::new();
    env.add(artifacts::ACCOUNTS, "accounts.wasm");
    setup(&env);
    let err = env.fails(&["up"]);
    assert!(
        err.contains(bad_file),
        "error does not name {bad_file}: {err}"
    );
    assert!(err.contains(cause), "error does not say {cause:?}: {err}");
    assert!(
        !env.tables().iter().any(|t| t.starts_with("accounts__")),
        "the good plugin ran although the set was refused"
    );
    assert!(env.ledger().is_empty());
    err
}

#[test]
fn a_file_that_is_not_webassembly() {
    refused(
        "readme.wasm",
        |env| {
            env.add_bytes(b"this is not wasm", "readme.wasm");
        },
        "not a WebAssembly file",
    );
}

#[test]
fn an_entry_that_is_not_a_regular_file() {
    // A named pipe would block a reader, a device never ends, a link to nothing is a plugin
    // gone: each is named, not skipped and not read.
    refused(
        "pipe.wasm",
        |env| {
            let path = env.plugins.join("pipe.wasm");
            let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
            // SAFETY: mkfifo reads the NUL-terminated path it is given.
            assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        },
        "is not a regular file",
    );
    refused(
        "zero.wasm",
        |env| std::os::unix::fs::symlink("/dev/zero", env.plugins.join("zero.wasm")).unwrap(),
        "is not a regular file",
    );
    let err = refused(
        "gone.wasm",
        |env| {
            std::os::unix::fs::symlink(env.plugins.join("nowhere"), env.plugins.join("gone.wasm"))
                .unwrap()
        },
        "No such file",
    );
    // `status` lists each as a problem (and says so in its exit status), with the rest.
    let env = Env::new();
    env.add(artifacts::ACCOUNTS, "accounts.wasm");
    std::os::unix::fs::symlink("/dev/zero", env.plugins.join("zero.wasm")).unwrap();
    let out = env.run(&["status", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("zero.wasm")
            && text.contains("is not a regular file")
            && text.contains("\"accounts\""),
        "{text}\n{err}"
    );
}

#[test]
fn a_core_module_instead_of_a_component() {
    refused(
        "core.wasm",
        |env| {
            env.add_bytes(b"\0asm\x01\0\0\0", "core.wasm");
        },
        "a core WebAssembly module, not a component",
    );
}

#[test]
fn a_truncated_component() {
    refused(
        "broken.wasm",
        |env| {
            let bytes = std::fs::read(artifacts::NOTES).unwrap();
            env.add_bytes(&bytes[..bytes.len() / 2], "broken.wasm");
        },
        "not a valid WebAssembly component",
    );
}

#[test]
fn a_component_of_the_wrong_world() {
    let err = refused(
        "not-a-plugin.wasm",
        |env| {
            env.add(artifacts::NOT_A_PLUGIN, "not-a-plugin.wasm");
        },
        "does not export wasmig:plugin/plugin@0.1.0",
    );
    assert!(
        err.contains("wasi:cli/run"),
        "the error should say what it exports: {err}"
    );
}

#[test]
fn an_invalid_manifest_lists_every_problem() {
    let err = refused(
        "invalid.wasm",
        |env| {
            env.add(artifacts::INVALID_MANIFEST, "invalid.wasm");
        },
        "invalid manifest",
    );
    assert!(
        err.contains("invalid plugin name \"Invalid_Name\""),
        "{err}"
    );
    assert!(
        err.contains("\"one point oh\" is not a semver version"),
        "{err}"
    );
    assert!(
        err.contains("\"about two\" is not a semver requirement"),
        "{err}"
    );
}

#[test]
fn two_files_with_one_plugin_name() {
    refused(
        "accounts-copy.wasm",
        |env| {
            env.add(artifacts::ACCOUNTS_V1, "accounts-copy.wasm");
        },
        "two files declare plugin accounts",
    );
}

#[test]
fn two_files_of_the_same_bytes() {
    // Refused as two files of one plugin, whether or not its manifest is already stored.
    refused(
        "accounts-copy.wasm",
        |env| {
            env.add(artifacts::ACCOUNTS, "accounts-copy.wasm");
        },
        "two files declare plugin accounts",
    );
    let env = Env::new();
    env.add(artifacts::ACCOUNTS, "accounts.wasm");
    env.ok(&["up"]);
    env.add(artifacts::ACCOUNTS, "accounts-copy.wasm");
    for command in ["status", "up"] {
        let out = env.run(&[command]);
        let told = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.code() == Some(1) && told.contains("two files declare plugin accounts"),
            "{command}: {:?} {told}",
            out.status
        );
    }
}

#[test]
fn several_bad_files_are_all_reported_at_once() {
    let env = Env::new();
    env.add_bytes(b"junk", "one.wasm");
    env.add_bytes(b"\0asm\x01\0\0\0", "two.wasm");
    let err = env.fails(&["up"]);
    assert!(err.contains("2 plugin files cannot be used"), "{err}");
    assert!(
        err.contains("one.wasm") && err.contains("two.wasm"),
        "{err}"
    );
}

#[test]
fn status_shows_bad_files_next_to_good_ones() {
    let env = Env::new();
    env.add(artifacts::ACCOUNTS, "accounts.wasm");
    env.add_bytes(b"junk", "junk.wasm");
    let out = env.run(&["status", "--json"]);
    assert!(
        !out.status.success(),
        "status exits non-zero when a file is unusable"
    );
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["name"], "accounts");
    assert!(rows[1]["problem"].as_str().unwrap().contains("junk.wasm"));
}

#[test]
fn a_missing_plugins_directory_is_a_clear_error() {
    let env = Env::new();
    std::fs::remove_dir(&env.plugins).unwrap();
    let err = env.fails(&["up"]);
    assert!(
        err.contains("plugins directory") && err.contains("plugins"),
        "{err}"
    );
}

/// A section `id` holding `payload`.
fn section(id: u8, payload: &[u8], out: &mut Vec<u8>) {
    out.push(id);
    leb128(payload.len(), out);
    out.extend(payload);
}

/// `component` with a core module appended that nothing instantiates, defining `functions`
/// functions of no arguments, each `body` (instructions before `end`) long.
fn with_unused_module(component: &[u8], functions: usize, body: &[u8]) -> Vec<u8> {
    let mut module = b"\0asm\x01\0\0\0".to_vec();
    section(1, &[1, 0x60, 0, 0], &mut module);
    let mut funcs = Vec::new();
    leb128(functions, &mut funcs);
    funcs.extend(std::iter::repeat_n(0u8, functions));
    section(3, &funcs, &mut module);
    let mut one = Vec::new();
    leb128(body.len() + 2, &mut one);
    one.push(0); // no locals
    one.extend(body);
    one.push(0x0b); // end
    let mut code = Vec::new();
    leb128(functions, &mut code);
    for _ in 0..functions {
        code.extend(&one);
    }
    section(10, &code, &mut module);
    let mut out = component.to_vec();
    section(1, &module, &mut out);
    out
}

#[test]
fn a_component_of_too_much_code_is_refused_before_it_is_compiled() {
    // Compiling costs memory in proportion to the functions and the code, of every core
    // module, used or not: a million empty functions (4 MB) took 6 GB and 20 s.
    let accounts = std::fs::read(artifacts::ACCOUNTS_V1).unwrap();
    for (bytes, cause) in [
        (
            with_unused_module(&accounts, 60_000, &[]),
            "defines more than 50000 functions",
        ),
        (
            with_unused_module(&accounts, 1, &vec![0x01; 7 << 20]),
            "holds more than 6 MiB of code",
        ),
        // One function of blocks nested a hundred thousand deep (200 KB: 3 GB at two million).
        (
            with_unused_module(
                &accounts,
                1,
                &std::iter::repeat_n([0x02u8, 0x40], 100_000)
                    .flatten()
                    .chain(std::iter::repeat_n(0x0b, 100_000))
                    .collect::<Vec<u8>>(),
            ),
            "nests blocks more than 10000 deep in a function",
        ),
        // Each instance holds its globals in the host's memory, 64 instances a store.
        (
            {
                let mut globals = Vec::new();
                crate::declared::leb128(20_000, &mut globals);
                for _ in 0..20_000 {
                    globals.extend([0x7f, 0x00, 0x41, 0x00, 0x0b]); // i32, const, = 0
                }
                let mut module = b"\0asm\x01\0\0\0".to_vec();
                section(6, &globals, &mut module);
                let mut bytes = accounts.clone();
                section(1, &module, &mut bytes);
                bytes
            },
            "defines more than 10000 globals",
        ),
    ] {
        let env = Env::new();
        env.add_bytes(&bytes, "big.wasm");
        let out = env.run(&["status"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{text}");
        assert!(text.contains("big.wasm") && text.contains(cause), "{text}");
    }
}

#[test]
fn a_compile_past_its_memory_or_time_is_stopped_in_its_own_process() {
    // Within every count the loader checks, one function of a million additions in a chain
    // (3 MB) takes Cranelift over a gigabyte and seconds to compile. The compile runs in a
    // child process with its address space limited and a deadline on the host's clock.
    let accounts = std::fs::read(artifacts::ACCOUNTS_V1).unwrap();
    let chain: Vec<u8> = [0x41, 0x01]
        .into_iter()
        .chain(std::iter::repeat_n([0x41, 0x01, 0x6a], 1_000_000).flatten())
        .chain([0x1a])
        .collect();
    let big = with_unused_module(&accounts, 1, &chain);
    for (limit, cause) in [
        (
            r#"max_compile_memory = "400MiB""#,
            "big.wasm: compiling it needed more than 400 MiB of memory (the compile memory limit)",
        ),
        (
            r#"compile_deadline = "1s""#,
            "big.wasm: compiling it took longer than the compile deadline of 1s",
        ),
    ] {
        let env = Env::new();
        env.policy(&format!("[limits]\n{limit}\n"));
        env.add_bytes(&big, "big.wasm");
        // Not from the tests' compile cache: compiled now.
        let (status, peak_kib) =
            env.peak_memory(&["--no-cache", "--compiler", "cranelift", "status"]);
        assert!(!status.success());
        assert!(
            peak_kib < 150 * 1024,
            "the host itself peaked at {} MiB",
            peak_kib / 1024
        );
        let err = env.fails(&["--no-cache", "--compiler", "cranelift", "up"]);
        assert!(err.contains(cause), "{err}");
        assert!(env.ledger().is_empty());
        // The same limits leave room for a real plugin.
        env.remove("big.wasm");
        env.add(artifacts::ACCOUNTS, "accounts.wasm");
        env.ok(&["--no-cache", "--compiler", "cranelift", "up"]);
        assert!(env.tables().iter().any(|t| t.starts_with("accounts__")));
    }
}

#[test]
fn data_segments_far_apart_do_not_make_large_compiled_code() {
    // Two one-byte data segments 15 MiB apart in a memory of 16 MiB: as a memory image
    // (wasmtime's default up to 16 MiB) they compile to 15 MiB of code to hold and cache.
    let mut module = b"\0asm\x01\0\0\0".to_vec();
    section(5, &[1, 0x00, 0x80, 0x02], &mut module); // one memory of 256 pages
    let mut data = vec![2];
    for offset in [0usize, 15 << 20] {
        data.extend([0x00, 0x41]); // active, memory 0, i32.const
        crate::declared::leb128(offset, &mut data); // (a positive signed LEB128 here)
        data.extend([0x0b, 1, 0x2a]); // end; one byte
    }
    section(11, &data, &mut module);
    let mut bytes = std::fs::read(artifacts::ACCOUNTS_V1).unwrap();
    section(1, &module, &mut bytes);
    let env = Env::new();
    env.add_bytes(&bytes, "accounts.wasm");
    let cache = env.dir.path().join("cache");
    for compiler in ["winch", "cranelift"] {
        env.ok(&[
            "--cache-dir",
            cache.to_str().unwrap(),
            "--compiler",
            compiler,
            "compile",
        ]);
    }
    let sizes: Vec<u64> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .collect();
    assert_eq!(sizes.len(), 2);
    assert!(sizes.iter().all(|&s| s < 2 << 20), "{sizes:?}");
}

/// A signed LEB128.
fn sleb128(mut n: i64, out: &mut Vec<u8>) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if (n == 0 && byte & 0x40 == 0) || (n == -1 && byte & 0x40 != 0) {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// `component` with `module` appended and instantiated (no arguments) by the component.
fn with_instantiated_module(component: &[u8], module: &[u8]) -> Vec<u8> {
    with_module_instantiated(component, module, 1)
}

/// `component` with `module` added and instantiated `times` times at its top level.
fn with_module_instantiated(component: &[u8], module: &[u8], times: usize) -> Vec<u8> {
    // The index the module gets: the core modules the component defines before it.
    let modules = sections(component, 1);
    let mut bytes = component.to_vec();
    section(1, module, &mut bytes);
    // A core instance section encodes `instantiate` as a component instance section does.
    section(2, &instantiations(modules, times), &mut bytes);
    bytes
}

#[test]
fn a_plugin_that_does_not_answer_its_manifest_is_stopped_within_seconds() {
    // Every command that lists a plugin not yet applied asks it for its manifest: a start
    // function that never returns would cost each the whole step deadline.
    let mut module = b"\0asm\x01\0\0\0".to_vec();
    section(1, &[1, 0x60, 0, 0], &mut module);
    section(3, &[1, 0], &mut module);
    section(8, &[0], &mut module); // start: function 0
    // One body of seven bytes: no locals, `loop br 0 end`, end.
    section(
        10,
        &[1, 7, 0, 0x03, 0x40, 0x0c, 0x00, 0x0b, 0x0b],
        &mut module,
    );
    let bytes = with_instantiated_module(&std::fs::read(artifacts::ACCOUNTS_V1).unwrap(), &module);
    let env = Env::new();
    env.add_bytes(&bytes, "accounts.wasm");
    let started = std::time::Instant::now();
    let out = env.run(&["--deadline", "60s", "status"]);
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        text.contains("accounts.wasm") && text.contains("manifest() did not answer within 5s"),
        "{text}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
}

#[test]
fn the_memory_limit_counts_all_of_a_plugins_memories_together() {
    // wasmtime's own limit is per memory, and a component may make several: a core module of
    // two memories of 40 MiB that its start function fills, instantiated by the component,
    // before `manifest()` (whose store has 64 MiB) is called.
    let base = std::fs::read(artifacts::ACCOUNTS_V1).unwrap();
    let pages = 640; // 40 MiB
    let mut body = Vec::new();
    for memory in 0..2u8 {
        body.extend([0x41, 0x00, 0x41, 0x01, 0x41]); // i32.const 0, i32.const 1, i32.const
        sleb128(pages * 65536, &mut body);
        body.extend([0xfc, 0x0b, memory]); // memory.fill
    }
    body.push(0x0b);
    let mut module = b"\0asm\x01\0\0\0".to_vec();
    section(1, &[1, 0x60, 0, 0], &mut module);
    section(3, &[1, 0], &mut module);
    let mut memories = vec![2];
    for _ in 0..2 {
        memories.push(0x00);
        crate::declared::leb128(pages as usize, &mut memories);
    }
    section(5, &memories, &mut module);
    section(8, &[0], &mut module); // start: function 0
    let mut code = vec![1];
    crate::declared::leb128(body.len() + 1, &mut code);
    code.push(0); // no locals
    code.extend(&body);
    section(10, &code, &mut module);
    let bytes = with_instantiated_module(&base, &module);

    let env = Env::new();
    env.add_bytes(&bytes, "accounts.wasm");
    let err = env.fails(&["--no-cache", "up"]);
    assert!(
        err.contains("accounts.wasm") && err.contains("exceeded its memory limit of 64 MiB"),
        "{err}"
    );
    assert!(env.ledger().is_empty());
}

#[test]
fn what_a_plugins_instances_hold_in_the_host_counts_against_its_memory_limit() {
    // Each instance of a core module keeps, in the host's memory, a copy of each passive
    // element segment (16 bytes an element) and a slot for each function that can be
    // referenced, whatever its linear memory: one module of a 30,000-element segment,
    // instantiated 60 times, holds about 29 MiB that no memory limit sees, and the cost grows
    // with the segment. Counted from the file, instance by instance, before anything is
    // instantiated: past `manifest()`'s 64 MiB.
    let base = std::fs::read(artifacts::ACCOUNTS_V1).unwrap();
    let passive = |elements: usize| {
        let mut module = b"\0asm\x01\0\0\0".to_vec();
        section(1, &[1, 0x60, 0, 0], &mut module);
        section(3, &[1, 0], &mut module);
        let mut segment = vec![1, 0x01, 0x00]; // one passive segment of function indices
        leb128(elements, &mut segment);
        segment.extend(std::iter::repeat_n(0u8, elements));
        section(9, &segment, &mut module);
        section(10, &[1, 2, 0, 0x0b], &mut module);
        module
    };
    let refused = |bytes: &[u8], cause: &str| {
        let env = Env::new();
        env.add_bytes(bytes, "accounts.wasm");
        let err = env.fails(&["--no-cache", "up"]);
        assert!(
            err.contains("accounts.wasm")
                && err.contains(
                    "exceeded its memory limit of 64 MiB: the instances of its core modules"
                )
                && err.contains(cause),
            "{err}"
        );
        assert!(env.ledger().is_empty());
    };
    let applies = |bytes: &[u8]| {
        let env = Env::new();
        env.add_bytes(bytes, "accounts.wasm");
        env.ok(&["--no-cache", "up"]);
        assert!(!env.ledger().is_empty());
    };
    refused(
        &with_module_instantiated(&base, &passive(30_000), 60),
        "would hold up to 83 MiB in the host",
    );

    // The same 60 instances made by a nested component instantiated 60 times, each making
    // one.
    let mut nested = EMPTY_COMPONENT.to_vec();
    section(1, &passive(30_000), &mut nested);
    section(2, &instantiations(0, 1), &mut nested);
    refused(
        &with_nested_instantiated(&base, &nested, 60),
        "would hold up to 83 MiB in the host",
    );

    // Segments cost each instance a header even when empty: 20,000 of them, 60 instances.
    let mut module = b"\0asm\x01\0\0\0".to_vec();
    section(1, &[1, 0x60, 0, 0], &mut module);
    section(3, &[1, 0], &mut module);
    let mut segments = Vec::new();
    leb128(20_000, &mut segments);
    for _ in 0..20_000 {
        segments.extend([0x01, 0x00, 0x00]); // passive, function indices, none
    }
    section(9, &segments, &mut module);
    section(10, &[1, 2, 0, 0x0b], &mut module);
    refused(
        &with_module_instantiated(&base, &module, 60),
        "MiB in the host",
    );

    // The 30,000-element module instantiated once holds what it holds once, and applies;
    // so do 2,000 elements in ten instances, what a plugin's own function tables hold.
    applies(&with_module_instantiated(&base, &passive(30_000), 1));
    applies(&with_module_instantiated(&base, &passive(2_000), 10));
}

#[test]
fn a_trap_copies_no_function_names_into_the_host() {
    // At a trap wasmtime would capture a backtrace, copying each frame's function name from
    // the plugin's name section, which nothing bounds: a function of an 8 MiB name that
    // recurses 30 deep, then traps, in a start function. The host captures no backtrace.
    let name_bytes = 8 << 20;
    let mut module = b"\0asm\x01\0\0\0".to_vec();
    section(1, &[2, 0x60, 0, 0, 0x60, 1, 0x7f, 0], &mut module);
    section(3, &[2, 0, 1], &mut module);
    section(8, &[0], &mut module); // start: function 0
    // Function 0 calls function 1 with 30; function 1 calls itself with one less, down to
    // zero, where it traps.
    let start = [0, 0x41, 30, 0x10, 1, 0x0b];
    let recurse = [
        0, 0x20, 0, 0x04, 0x40, 0x20, 0, 0x41, 1, 0x6b, 0x10, 1, 0x05, 0x00, 0x0b, 0x0b,
    ];
    let mut code = vec![2];
    for body in [&start[..], &recurse[..]] {
        leb128(body.len(), &mut code);
        code.extend(body);
    }
    section(10, &code, &mut module);
    let mut names = Vec::new();
    leb128(4, &mut names);
    names.extend(b"name");
    let mut function_names = vec![1, 1]; // one naming: function 1
    leb128(name_bytes, &mut function_names);
    function_names.extend(std::iter::repeat_n(b'f', name_bytes));
    names.push(1); // the function names subsection
    leb128(function_names.len(), &mut names);
    names.extend(&function_names);
    section(0, &names, &mut module);
    let bytes = with_instantiated_module(&std::fs::read(artifacts::ACCOUNTS_V1).unwrap(), &module);

    let env = Env::new();
    env.add_bytes(&bytes, "accounts.wasm");
    let (status, peak_kib) = env.peak_memory(&["--no-cache", "status"]);
    assert_eq!(status.code(), Some(1));
    assert!(
        peak_kib < 120 * 1024,
        "the host peaked at {} MiB",
        peak_kib / 1024
    );
    let err = env.fails(&["up"]);
    assert!(
        err.contains("accounts.wasm") && err.contains("unreachable code reached"),
        "{err}"
    );
    assert!(err.len() < 4096, "{} bytes of error", err.len());
}

#[test]
fn nested_component_instances_are_counted_before_anything_is_compiled() {
    // Each component instance takes state of its own in the store; a component that
    // instantiates one that instantiates another multiplies them, from a few bytes.
    let base = std::fs::read(artifacts::ACCOUNTS_V1).unwrap();
    let components = sections(&base, 4);
    let nested = |inner: usize| {
        // Empty, then two levels that each instantiate the one below `inner` times.
        let mut c = EMPTY_COMPONENT.to_vec();
        for _ in 0..2 {
            let mut outer = EMPTY_COMPONENT.to_vec();
            section(4, &c, &mut outer);
            section(5, &instantiations(0, inner), &mut outer);
            c = outer;
        }
        with_component_instantiated(&base, &c)
    };
    let refused = |bytes: &[u8], cause: &str| {
        let env = Env::new();
        env.add_bytes(bytes, "accounts.wasm");
        let err = env.fails(&["--no-cache", "up"]);
        assert!(err.contains(&format!("accounts.wasm: {cause}")), "{err}");
        assert!(env.ledger().is_empty());
    };
    // 1 + 40 × (1 + 40) instances, and one more for the file's own.
    refused(&nested(40), "makes more than 1000 component instances");

    // A component that imports a component and instantiates it counts as little as the
    // file makes it look, and makes as many as its instantiator passes in (each level
    // multiplies): refused, as is taking a component out of an instance's exports.
    let mut importer = EMPTY_COMPONENT.to_vec();
    section(7, &[1, 0x41, 0], &mut importer); // type 0: a component type of nothing
    section(10, &[1, 0x00, 1, b'x', 0x04, 0], &mut importer); // import "x" (component 0)
    section(5, &instantiations(0, 500), &mut importer);
    let mut bytes = base.clone();
    section(4, &importer, &mut bytes);
    section(4, EMPTY_COMPONENT, &mut bytes);
    let mut instance = vec![1, 0x00];
    leb128(components, &mut instance);
    // with "x" = the empty component defined after it
    instance.extend([1, 1, b'x', 0x04]);
    leb128(components + 1, &mut instance);
    section(5, &instance, &mut bytes);
    refused(
        &bytes,
        "imports a component or a core module, which wasmig does not instantiate",
    );

    // The same with a core module: what its instances hold is what the instantiator passes.
    let mut importer = EMPTY_COMPONENT.to_vec();
    section(3, &[1, 0x50, 0], &mut importer); // core type 0: a module type of nothing
    section(10, &[1, 0x00, 1, b'm', 0x00, 0x11, 0], &mut importer); // import "m" (module)
    section(2, &instantiations(0, 60), &mut importer);
    let mut bytes = base.clone();
    let modules = sections(&base, 1);
    section(1, b"\0asm\x01\0\0\0", &mut bytes);
    section(4, &importer, &mut bytes);
    let mut instance = vec![1, 0x00];
    leb128(components, &mut instance);
    instance.extend([1, 1, b'm', 0x00, 0x11]); // with "m" = the empty module
    leb128(modules, &mut instance);
    section(5, &instance, &mut bytes);
    refused(
        &bytes,
        "imports a component or a core module, which wasmig does not instantiate",
    );

    // A component wasmtime inlines into each of its instances brings its canonical
    // functions into each: 60 in a component instantiated 100 times are 6,000.
    let mut inner = EMPTY_COMPONENT.to_vec();
    section(7, &[1, 0x3f, 0x7f, 0x00], &mut inner); // type 0: a resource of an i32
    let mut canon = Vec::new();
    leb128(60, &mut canon);
    for _ in 0..60 {
        canon.extend([0x02, 0x00]); // resource.new of type 0
    }
    section(8, &canon, &mut inner);
    refused(
        &with_nested_instantiated(&base, &inner, 100),
        "makes more than 5000 canonical functions",
    );

    // Each instance of a component defines its resource types anew, and wasmtime keeps a
    // record of each: 1,000 in a component instantiated 11 times are 11,000.
    let resources = |times: usize| {
        let mut defines = EMPTY_COMPONENT.to_vec();
        let mut types = Vec::new();
        leb128(1_000, &mut types);
        for _ in 0..1_000 {
            types.extend([0x3f, 0x7f, 0x00]); // a resource of an i32, no destructor
        }
        section(7, &types, &mut defines);
        with_nested_instantiated(&base, &defines, times)
    };
    refused(
        &resources(11),
        "defines more than 10000 resource types, those of each instance",
    );
    let env = Env::new();
    env.add_bytes(&resources(5), "accounts.wasm");
    env.ok(&["--no-cache", "up"]);

    // A component taken out of another instance's exports.
    let mut exporter = EMPTY_COMPONENT.to_vec();
    section(4, EMPTY_COMPONENT, &mut exporter);
    section(11, &[1, 0x00, 1, b'q', 0x04, 0x00, 0x00], &mut exporter); // export "q" (component 0)
    let mut wrapper = EMPTY_COMPONENT.to_vec();
    section(4, &exporter, &mut wrapper);
    section(5, &instantiations(0, 1), &mut wrapper); // instance 0: the exporter
    section(6, &[1, 0x04, 0x00, 0x00, 1, b'q'], &mut wrapper); // component 1: its "q"
    section(5, &instantiations(1, 1), &mut wrapper);
    refused(
        &with_component_instantiated(&base, &wrapper),
        "takes a component or a core module from an instance's exports",
    );
    // A core module taken out of another instance's exports.
    let mut exporter = EMPTY_COMPONENT.to_vec();
    section(1, b"\0asm\x01\0\0\0", &mut exporter);
    section(
        11,
        &[1, 0x00, 1, b'q', 0x00, 0x11, 0x00, 0x00],
        &mut exporter,
    ); // "q" (module 0)
    let mut wrapper = EMPTY_COMPONENT.to_vec();
    section(4, &exporter, &mut wrapper);
    section(5, &instantiations(0, 1), &mut wrapper); // instance 0: the exporter
    section(6, &[1, 0x00, 0x11, 0x00, 0x00, 1, b'q'], &mut wrapper); // module 0: its "q"
    section(2, &instantiations(0, 1), &mut wrapper);
    refused(
        &with_component_instantiated(&base, &wrapper),
        "takes a component or a core module from an instance's exports",
    );

    // 1 + 10 × (1 + 10): instantiated, and the plugin applies.
    let env = Env::new();
    env.add_bytes(&nested(10), "accounts.wasm");
    env.ok(&["--no-cache", "up"]);
    assert!(!env.ledger().is_empty());
}

#[test]
fn types_nested_deep_are_refused_without_harm_to_the_host() {
    // A type may hold a type, and a reader reads them by recursion: 100,000 instance types
    // one inside the next are 300 KB, and read before anything validated them, they would
    // overflow the host's stack. Only the compile child reads them, after validating.
    let mut ty = vec![0x42, 0x00]; // the innermost: an instance type of nothing
    for _ in 0..100_000 {
        let mut outer = vec![0x42, 0x01, 0x01]; // an instance type of one type declaration
        outer.extend(&ty);
        ty = outer;
    }
    let mut types = vec![1];
    types.extend(&ty);
    let mut bytes = std::fs::read(artifacts::ACCOUNTS_V1).unwrap();
    section(7, &types, &mut bytes);
    let env = Env::new();
    env.add_bytes(&bytes, "accounts.wasm");
    let out = env.run(&["--no-cache", "status"]);
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("accounts.wasm"), "{text}");
    let err = env.fails(&["--no-cache", "up"]);
    assert!(err.contains("accounts.wasm"), "{err}");
    assert!(env.ledger().is_empty());
}

/// A component with nothing in it.
const EMPTY_COMPONENT: &[u8] = b"\0asm\x0d\0\x01\0";

/// An instance section (core or component) that instantiates module or component `index`
/// `times` times, without arguments.
fn instantiations(index: usize, times: usize) -> Vec<u8> {
    let mut instances = Vec::new();
    leb128(times, &mut instances);
    for _ in 0..times {
        instances.push(0x00);
        leb128(index, &mut instances);
        instances.push(0);
    }
    instances
}

/// `component` with `nested` added as a component and instantiated once at its top level.
fn with_component_instantiated(component: &[u8], nested: &[u8]) -> Vec<u8> {
    let index = sections(component, 4);
    let mut bytes = component.to_vec();
    section(4, nested, &mut bytes);
    section(5, &instantiations(index, 1), &mut bytes);
    bytes
}

/// `component` with a component added and instantiated once at its top level, which holds
/// `nested` and instantiates it `times` times.
fn with_nested_instantiated(component: &[u8], nested: &[u8], times: usize) -> Vec<u8> {
    let mut middle = EMPTY_COMPONENT.to_vec();
    section(4, nested, &mut middle);
    section(5, &instantiations(0, times), &mut middle);
    with_component_instantiated(component, &middle)
}

/// How many sections of `id` a component has at its top level: with 1 (core modules) or 4
/// (components), the index the next one defined gets.
fn sections(component: &[u8], id: u8) -> usize {
    let (mut at, mut found) = (8, 0);
    while at < component.len() {
        let this = component[at];
        let (mut size, mut shift) = (0usize, 0);
        at += 1;
        loop {
            let byte = component[at];
            at += 1;
            size |= usize::from(byte & 0x7f) << shift;
            shift += 7;
            if byte & 0x80 == 0 {
                break;
            }
        }
        found += usize::from(this == id);
        at += size;
    }
    found
}

#[test]
fn an_instance_made_ahead_of_its_step_takes_a_small_limit() {
    // While a step runs, the plugin's next step gets its instance made: two stores at once,
    // which must not hold twice the memory limit. A plugin of ten code steps whose start
    // function fills 56 MiB: the instance made ahead fails its smaller limit, each step
    // makes its own within the whole one, and every step runs.
    let pages = 896; // 56 MiB
    let mut body = vec![0x41, 0x00, 0x41, 0x01, 0x41];
    sleb128(pages * 65536, &mut body);
    body.extend([0xfc, 0x0b, 0x00, 0x0b]); // memory.fill, end
    let mut module = b"\0asm\x01\0\0\0".to_vec();
    section(1, &[1, 0x60, 0, 0], &mut module);
    section(3, &[1, 0], &mut module);
    let mut memory = vec![1, 0x00];
    leb128(pages as usize, &mut memory);
    section(5, &memory, &mut module);
    section(8, &[0], &mut module);
    let mut code = vec![1];
    leb128(body.len() + 1, &mut code);
    code.push(0);
    code.extend(&body);
    section(10, &code, &mut module);
    let bytes = with_instantiated_module(
        &std::fs::read(artifacts::BENCH_TEMPLATE10).unwrap(),
        &module,
    );
    let env = Env::new();
    env.add_bytes(&bytes, "template.wasm");
    // The first step alone: one store. Then the nine others, one made ahead of each.
    let (status, one) = env.peak_memory(&["--no-cache", "up", "zbenchplaceholdr@1.1.0"]);
    assert!(status.success());
    let (status, nine) = env.peak_memory(&["--no-cache", "up"]);
    assert!(status.success());
    assert_eq!(env.ledger().len(), 10);
    // Two stores of 56 MiB at once would add that much again.
    assert!(
        nine < one + 28 * 1024,
        "one step peaked at {} MiB, nine at {} MiB",
        one / 1024,
        nine / 1024
    );
}

#[test]
fn a_manifest_of_strings_that_share_one_byte_is_refused_within_a_bound_of_memory() {
    // `manifest()` answers 2,000,000 `reads` that all point at the same byte: 40 MB of the
    // plugin's memory, and in the host a `String` and an allocation each, copied before the
    // host can count them. The manifest's store stops the copy by its hostcall fuel, within
    // a bound of the host's memory.
    listed_within(
        artifacts::MANIFEST_ALIAS,
        "alias.wasm",
        100,
        "alias.wasm sent more than wasmig copies out of a plugin in one call",
    );
}

/// Lists the plugin `artifact` (as `file`) with `status`: the listing fails, its process
/// peaks under `max_mib` MiB, and its output says `expected`.
fn listed_within(artifact: &str, file: &str, max_mib: u64, expected: &str) {
    let env = Env::new();
    env.add(artifact, file);
    let (status, peak_kib) = env.peak_memory(&["--no-cache", "status"]);
    assert!(!status.success());
    assert!(
        peak_kib < max_mib * 1024,
        "listing the plugin peaked at {} MiB",
        peak_kib / 1024
    );
    let out = env.run(&["status"]);
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains(file) && text.contains(expected), "{text}");
}

#[test]
fn a_declared_plugin_is_validated_in_the_compile_child() {
    // Validating a component costs what its structure makes it cost (a component instantiated
    // hundreds of times, each checked against thousands of exports, took gigabytes from 400
    // KB): a declared plugin, whose manifest needs no compile, is validated in the child too,
    // under the same limit. 16 MiB is less than the child's own program takes.
    let env = Env::new();
    env.add(artifacts::ACCOUNTS, "accounts.wasm");
    env.policy("[limits]\nmax_compile_memory = \"16MiB\"\n");
    let err = env.fails(&["--no-cache", "up"]);
    assert!(
        err.contains("accounts.wasm: checking it needed more than 16 MiB of memory"),
        "{err}"
    );
    assert!(env.ledger().is_empty());
}

#[test]
fn a_manifest_of_too_many_steps_from_code_is_refused_within_a_bound_of_memory() {
    // A plugin without a declaration answers `manifest()` from its code, and the host copies
    // the answer out of the plugin's memory before it can count its steps: 600,000 of them.
    listed_within(
        artifacts::MANIFEST_FLOOD,
        "flood.wasm",
        200,
        "exceeded its memory limit of 64 MiB",
    );
}
