//! The harness of the sandbox suites: two scripted plugins, `attacker` and `victim`
//! (`example-plugins/attacker`), whose steps run the SQL the test writes into their script
//! tables. A test plays each author step by step, then acts as the application with full
//! rights through a plain SQLite connection, and checks what survived.

use crate::support::{Env, artifacts};

/// `attacker` and `victim` at step 0.1.0 (their script tables), in a fresh environment.
pub fn scripted() -> Env {
    let env = Env::new();
    env.add(artifacts::ATTACKER, "attacker.wasm");
    env.add(artifacts::VICTIM, "victim.wasm");
    env.ok(&["up", "attacker@0.1.0"]);
    env.ok(&["up", "victim@0.1.0"]);
    env
}

impl Env {
    /// Sets what `plugin`'s step `version` runs up and, rolled back, down, on either
    /// database.
    pub fn script(&self, plugin: &str, version: &str, up: &str, down: Option<&str>) {
        match &self.pg {
            Some(pg) => {
                pg.client()
                    .execute(
                        &format!(
                            "INSERT INTO {plugin}.{plugin}__script VALUES ($1, $2, $3) \
                             ON CONFLICT (version) DO UPDATE SET up = EXCLUDED.up, \
                             down = EXCLUDED.down"
                        ),
                        &[&version, &up, &down],
                    )
                    .unwrap();
            }
            None => {
                self.conn()
                    .execute(
                        &format!("INSERT OR REPLACE INTO {plugin}__script VALUES (?1, ?2, ?3)"),
                        rusqlite::params![version, up, down],
                    )
                    .unwrap();
            }
        }
    }

    /// Applies `plugin` up to `version`: `Ok(stdout)`, or `Err(stderr)` when it failed.
    pub fn step(&self, plugin: &str, version: &str) -> Result<String, String> {
        let out = self.run(&["up", &format!("{plugin}@{version}")]);
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// Runs `plugin`'s step `version` with `up`, which must be refused with `expected` in the
    /// error, changing nothing but the ledger; returns the error.
    pub fn refused(&self, plugin: &str, version: &str, up: &str, expected: &str) -> String {
        self.script(plugin, version, up, None);
        let before = self.dump_except_ledger();
        let err = self
            .step(plugin, version)
            .expect_err(&format!("{plugin} {version} should be refused: {up}"));
        assert!(
            err.contains(expected),
            "{plugin} {version}: expected {expected:?} in:\n{err}"
        );
        assert!(
            err.contains(&format!("plugin {plugin} migration {version}")),
            "{err}"
        );
        assert_eq!(
            self.dump_except_ledger(),
            before,
            "{plugin} {version} changed the database"
        );
        let last = self.ledger().pop().unwrap();
        assert_eq!(
            (last.0.as_str(), last.1.as_str(), last.3.as_str()),
            (plugin, version, "failed")
        );
        err
    }

    /// Runs `plugin`'s step `version` with `up`, which must succeed.
    pub fn applies(&self, plugin: &str, version: &str, up: &str) {
        self.script(plugin, version, up, None);
        if let Err(e) = self.step(plugin, version) {
            panic!("{plugin} {version} failed: {e}\nscript: {up}");
        }
    }
}
