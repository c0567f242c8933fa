//! Setting up a database for wasmig and its plugins: wasmig's schema, each plugin's role,
//! schema, password and read grants, and the plugin's session.

use super::*;

/// How long getting the next plugin's session ready waits for the host's lock.
const PREPARE_LOCK_MS: u128 = 50;

impl PgBackend {
    /// Creates the host's schema, tables and functions if missing, committed at once (also
    /// in a dry run: plugin roles need them to log in and to record steps).
    pub(super) fn ensure_host_schema(&mut self) -> Result<()> {
        if !self.host_tables {
            // What is there, and whether it is this wasmig's (one query).
            self.has_host_tables()?;
        }
        if self.host_tables
            && self.host_version == host_sql::HOST_SCHEMA_VERSION
            && self.host_functions_current
        {
            return Ok(());
        }
        let sql = format!(
            "BEGIN; SET LOCAL lock_timeout = {}; SELECT pg_catalog.pg_advisory_xact_lock({}); \
             {} {} \
             INSERT INTO wasmig.meta (key, value) VALUES ('functions_sha256', '{}'), \
             ('functions_wasmig_version', '{}'), ('functions_md5', {}) \
             ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value; COMMIT;",
            self.lock_timeout_ms(),
            host_sql::LOCK_KEY,
            host_sql::HOST_SCHEMA,
            guard::functions(),
            host_sql::functions_sha256(),
            env!("CARGO_PKG_VERSION"),
            host_sql::FUNCTIONS_MD5,
        );
        let label = self.label.clone();
        let waited = self.options.lock_timeout;
        let session = self.setup_session()?;
        let created = session.batch(&sql, None);
        if created.is_err() {
            let _ = session.batch("ROLLBACK", None);
        }
        if let Err(e) = &created
            && is_lock_timeout(e)
        {
            return Err(Error::Locked {
                path: label,
                waited,
            });
        }
        created.map_err(|e| Error::Database {
            path: label,
            message: format!(
                "cannot create wasmig's schema and tables: {e} (the role wasmig connects as \
                 needs CREATE on the database)"
            ),
        })?;
        self.host_tables = true;
        self.host_version = host_sql::HOST_SCHEMA_VERSION;
        self.host_functions_current = true;
        Ok(())
    }

    /// The password of a plugin's role: derived from the database's secret, so every runner
    /// logs in with the same one and none has to tell another.
    pub(super) fn password(&mut self, role: &str) -> Result<String> {
        if self.secret.is_none() {
            // Made with wasmig's tables, under the host's lock: every runner reads the same.
            self.ensure_host_schema()?;
            let label = self.label.clone();
            let session = self.setup_session()?;
            let rows = session
                .run(
                    "SELECT value FROM wasmig.meta WHERE key = 'role_secret'",
                    vec![],
                    None,
                    HOST_MAX_RESULT,
                )
                .map_err(|e| Error::Database {
                    path: label.clone(),
                    message: format!("cannot read the plugin roles' secret: {e}"),
                })?
                .rows;
            let secret = rows
                .into_iter()
                .next()
                .and_then(|r| r.into_iter().next())
                .and_then(|v| match v {
                    Value::Text(t) if !t.is_empty() => Some(t),
                    _ => None,
                })
                .ok_or_else(|| Error::Database {
                    path: label,
                    message: "wasmig.meta holds no secret for the plugin roles".into(),
                })?;
            self.secret = Some(secret);
        }
        let secret = self.secret.as_deref().unwrap_or_default();
        Ok(hex::encode(Sha256::digest(format!("{secret}:{role}"))))
    }

    /// A SCRAM verifier of the role's password, for `ALTER ROLE … PASSWORD`: the password
    /// itself never reaches the server's logs.
    pub(super) fn verifier(&mut self, role: &str) -> Result<String> {
        if let Some(v) = self.verifiers.get(role) {
            return Ok(v.clone());
        }
        let password = self.password(role)?;
        let v = scram_verifier(&password).map_err(|e| {
            self.error(
                &format!("role {role}"),
                format!("no random salt for its password: {e}"),
            )
        })?;
        self.verifiers.insert(role.to_string(), v.clone());
        Ok(v)
    }

    /// Creates (or brings up to date) the plugin's role and schema, and grants its reads.
    pub(super) fn provision(&mut self, access: &PluginAccess) -> Result<Names> {
        let lock_ms = self.lock_timeout_ms();
        self.provision_waiting(access, lock_ms)
    }

    /// [`PgBackend::provision`], waiting at most `lock_ms` for the host's lock. A plugin
    /// [`PgBackend::provision_ahead`] set up for this run is not set up again.
    fn provision_waiting(&mut self, access: &PluginAccess, lock_ms: u128) -> Result<Names> {
        if let Some(names) = self.provisioned.remove(&access.plugin) {
            // Set up earlier in the run: its password is valid again for the login to come.
            let label = self.label.clone();
            let session = self.setup_session()?;
            session
                .batch(&login_window(&names.role, None), None)
                .map_err(|e| Error::Database {
                    path: label,
                    message: format!("cannot let plugin {}'s role log in: {e}", access.plugin),
                })?;
            return Ok(names);
        }
        let (names, statements) = self.provision_sql(access)?;
        let sql = format!(
            "BEGIN; SET LOCAL lock_timeout = {lock_ms}; \
             SELECT pg_catalog.pg_advisory_xact_lock({lock}); {statements} COMMIT;",
            lock = host_sql::LOCK_KEY,
        );
        let label = self.label.clone();
        let session = self.setup_session()?;
        let done = session.batch(&sql, None);
        if let Err(e) = done {
            let _ = session.batch("ROLLBACK", None);
            if is_lock_timeout(&e) {
                return Err(Error::Locked {
                    path: label,
                    waited: self.options.lock_timeout,
                });
            }
            let hint = match &e {
                CallError::Db(db) if db.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) => {
                    " (the role wasmig connects as needs CREATEROLE, CREATE on the database and \
                     `GRANT SET ON PARAMETER temp_file_limit` to it, or to be a superuser)"
                }
                _ => "",
            };
            return Err(Error::Database {
                path: label,
                message: format!(
                    "cannot set up plugin {}'s role and schema: {e}{hint}",
                    access.plugin
                ),
            });
        }
        Ok(names)
    }

    /// Sets up, in one transaction, the roles and schemas of the plugins whose steps this
    /// run is about to run, before any plugin's session logs in. Creating a schema or
    /// changing its grants makes every session of the database plan its statements again
    /// (PostgreSQL resets its plan caches on any change to `pg_namespace`), the guard's
    /// included: set up one by one between steps, every plugin would make the one whose
    /// steps run plan the guard again. Outside a transaction of the host's only, without
    /// waiting for another runner's step, and not for plugins that read others' tables
    /// (their grants cover the tables that exist at their turn). Nothing may fail here:
    /// what is not done is done at the plugin's turn, and reported then.
    pub(super) fn provision_ahead(&mut self, accesses: &[PluginAccess]) {
        self.provisioned.clear();
        if self.open != Open::None {
            return;
        }
        let mut names = BTreeMap::new();
        let mut statements = String::new();
        for access in accesses {
            if !access.reads.is_empty()
                || self.plugins.contains_key(&access.plugin)
                || self.prefetched.contains_key(&access.plugin)
                || names.contains_key(&access.plugin)
            {
                continue;
            }
            // Makes wasmig's tables first if they are missing or not current.
            let Ok((n, sql)) = self.provision_sql(access) else {
                return;
            };
            names.insert(access.plugin.clone(), n);
            statements.push_str(&sql);
        }
        if names.is_empty() {
            return;
        }
        let sql = format!(
            "BEGIN; SET LOCAL lock_timeout = {PREPARE_LOCK_MS}; \
             SELECT pg_catalog.pg_advisory_xact_lock({lock}); {statements} COMMIT;",
            lock = host_sql::LOCK_KEY,
        );
        let Ok(session) = self.setup_session() else {
            return;
        };
        if session.batch(&sql, None).is_err() {
            let _ = session.batch("ROLLBACK", None);
            return;
        }
        self.provisioned = names;
    }

    /// The statements that create (or bring up to date) the plugin's role and schema and
    /// grant its reads, to run under the host's lock.
    fn provision_sql(&mut self, access: &PluginAccess) -> Result<(Names, String)> {
        self.ensure_host_schema()?;
        let names = names_of(&self.database, &access.plugin)
            .map_err(|e| self.error(&format!("plugin {}", access.plugin), e))?;
        let verifier = self.verifier(&names.role)?;
        let (role, schema) = (ident(&names.role), ident(&names.schema));
        // `temp_file_limit` bounds what one server process holds in temporary files, and
        // bounds a step's only while the step runs in one: parallel workers each have their
        // own, and the files a parallel hash join or sort shares among them stop counting
        // once closed, while they stay on disk until the query ends. The role runs without
        // parallel query; a statement of a plugin that turns it on is cancelled once the
        // host sees its workers (`Session::wait`), and a parallel plan its own process runs
        // alone is a known limit (docs/postgres.md).
        let mut sql = format!(
            "DO $wasmig$ BEGIN
               IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = {role_lit}) THEN
                 CREATE ROLE {role} LOGIN NOINHERIT;
               END IF;
               IF EXISTS (SELECT 1 FROM pg_catalog.pg_namespace
                           WHERE nspname = {schema_lit}
                             AND nspowner <> (SELECT oid FROM pg_catalog.pg_roles
                                               WHERE rolname = {role_lit})) THEN
                 RAISE EXCEPTION 'the schema % exists and is not the plugin''s: wasmig gives \
                   each plugin a schema of its own, named after it', {schema_lit};
               END IF;
             END $wasmig$;
             {login}
             DO $wasmig$ BEGIN
               IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles
                           WHERE rolname = {role_lit}
                             AND (rolsuper OR rolreplication OR rolbypassrls)) THEN
                 RAISE EXCEPTION 'the role % has rights beyond its schema (superuser, \
                   replication or bypassrls): wasmig does not run a plugin as it', {role_lit};
               END IF;
               IF EXISTS (SELECT 1 FROM pg_catalog.pg_auth_members m
                           JOIN pg_catalog.pg_roles r ON r.oid = m.member
                          WHERE r.rolname = {role_lit}) THEN
                 RAISE EXCEPTION 'the role % is a member of another role: wasmig runs a plugin \
                   only as a role that can become no other', {role_lit};
               END IF;
             END $wasmig$;
             DO $wasmig$ BEGIN
               IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = {code_lit}) THEN
                 CREATE ROLE {code} NOLOGIN NOINHERIT;
               END IF;
               IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles
                           WHERE rolname = {code_lit}
                             AND (rolsuper OR rolreplication OR rolbypassrls OR rolcreaterole
                                  OR rolcreatedb)) THEN
                 RAISE EXCEPTION 'the role % has rights beyond running the plugin''s functions                    (superuser, replication, bypassrls, createrole or createdb): wasmig does not                    run a plugin''s code as it', {code_lit};
               END IF;
               IF EXISTS (SELECT 1 FROM pg_catalog.pg_auth_members m
                           JOIN pg_catalog.pg_roles r ON r.oid = m.member
                          WHERE r.rolname = {code_lit}) THEN
                 RAISE EXCEPTION 'the role % is a member of another role: wasmig runs a plugin''s                    code only as a role that can become no other', {code_lit};
               END IF;
             END $wasmig$;
             ALTER ROLE {code} NOLOGIN PASSWORD NULL;
             GRANT {role} TO CURRENT_USER;
             GRANT {code} TO CURRENT_USER;
             CREATE SCHEMA IF NOT EXISTS {schema} AUTHORIZATION {role};
             REVOKE ALL ON SCHEMA {schema} FROM PUBLIC;
             GRANT USAGE ON SCHEMA {schema} TO {code};
             ALTER ROLE {role} RESET ALL;
             ALTER ROLE {role} IN DATABASE {database} RESET ALL;
             ALTER ROLE {role} SET search_path = {schema};
             ALTER ROLE {role} SET temp_file_limit = {temp_kb};
             ALTER ROLE {role} SET max_parallel_workers_per_gather = 0;
             ALTER ROLE {role} SET max_parallel_maintenance_workers = 0;
             ALTER ROLE {role} SET client_connection_check_interval = 1000;
             GRANT USAGE ON SCHEMA wasmig TO {role};
             GRANT EXECUTE ON FUNCTION {functions}, {guard} TO {role};
             INSERT INTO wasmig.plugin_role (role, plugin, code)
                 VALUES ({role_lit}, {plugin_lit}, {code_lit})
                 ON CONFLICT (role) DO UPDATE SET code = EXCLUDED.code;",
            code = ident(&names.code),
            code_lit = literal(&names.code),
            role_lit = literal(&names.role),
            schema_lit = literal(&names.schema),
            plugin_lit = literal(&access.plugin),
            database = ident(&self.database),
            login = login_window(&names.role, Some(&verifier)),
            temp_kb = (self.options.max_temp_bytes / 1024).clamp(1, i32::MAX as u64),
            functions = host_sql::PLUGIN_FUNCTIONS,
            guard = guard::SIGNATURES,
        );
        // The reads the policy grants now, and no others: what an earlier policy granted and
        // this one does not is revoked.
        let reads: Vec<String> = access.reads.iter().map(|r| literal(r)).collect();
        sql.push_str(&format!(
            "DELETE FROM wasmig.plugin_read WHERE reader = {plugin_lit};
             DO $wasmig$ DECLARE r record; BEGIN
               FOR r IN SELECT n.nspname FROM wasmig.plugin_role p
                          JOIN pg_catalog.pg_namespace n
                            ON n.nspowner = (SELECT oid FROM pg_catalog.pg_roles
                                              WHERE rolname = p.role)
                         WHERE p.plugin <> {plugin_lit} AND p.plugin <> ALL (ARRAY[{reads}]::text[])
                           AND EXISTS (SELECT 1 FROM pg_catalog.aclexplode(n.nspacl) a
                                        WHERE a.grantee = (SELECT oid FROM pg_catalog.pg_roles
                                                            WHERE rolname = {role_lit}))
               LOOP
                 EXECUTE pg_catalog.format('REVOKE ALL ON ALL TABLES IN SCHEMA %I FROM %I',
                                           r.nspname, {role_lit});
                 EXECUTE pg_catalog.format('REVOKE ALL ON SCHEMA %I FROM %I', r.nspname, {role_lit});
               END LOOP;
             END $wasmig$;",
            plugin_lit = literal(&access.plugin),
            role_lit = literal(&names.role),
            reads = reads.join(", "),
        ));
        for reader in &access.reads {
            let other = names_of(&self.database, reader)
                .map_err(|e| self.error(&format!("plugin {reader}"), e))?;
            sql.push_str(&format!(
                "INSERT INTO wasmig.plugin_read (reader, plugin) VALUES ({}, {});",
                literal(&access.plugin),
                literal(reader)
            ));
            sql.push_str(&format!(
                "DO $wasmig$ BEGIN
                   IF EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = {lit}) THEN
                     EXECUTE 'GRANT USAGE ON SCHEMA ' || {q} || ' TO ' || {me};
                     -- Its base tables only: a view's query runs with its reader's rights.
                     EXECUTE coalesce(
                       (SELECT 'GRANT SELECT ON ' || pg_catalog.string_agg(c.oid::pg_catalog.regclass::text, ', ')
                               || ' TO ' || {me}
                          FROM pg_catalog.pg_class c
                         WHERE c.relnamespace = pg_catalog.to_regnamespace({lit})
                           AND c.relkind IN ('r', 'p')
                        HAVING pg_catalog.count(*) > 0),
                       'SELECT 1');
                   END IF;
                 END $wasmig$;",
                lit = literal(&other.schema),
                q = literal(&ident(&other.schema)),
                me = literal(&role),
            ));
        }
        Ok((names, sql))
    }

    /// The connection settings of a plugin's session: its role and password, and settings
    /// in the startup packet, which outrank the role's and the database's and are what
    /// `RESET ALL` returns to: whatever the plugin makes of its role's settings, its sessions
    /// and the host's statements on them start from these.
    fn plugin_config(&mut self, plugin: &str, names: &Names) -> Result<Config> {
        let password = self.password(&names.role)?;
        let mut config = self.config.clone();
        config
            .user(&names.role)
            .password(password)
            .application_name(format!("wasmig plugin {plugin}"))
            .options(format!(
                "-c search_path={},pg_temp -c standard_conforming_strings=on \
                 -c client_connection_check_interval=1000 -c row_security=off \
                 -c default_transaction_read_only=off \
                 -c default_transaction_isolation=read\\ committed",
                names.schema
            ));
        Ok(config)
    }

    /// Gets the next plugin's session ready while the current plugin's steps run: its role
    /// and schema are set up now, and it logs in and has the guard's functions planned
    /// (in a transaction rolled back, which changes nothing) on the client's thread. Only
    /// outside a transaction of the host's (not in a dry run); anything that fails is done
    /// again, and reported, when the plugin's first step begins.
    pub(super) fn prepare_session(&mut self, access: &PluginAccess) {
        // The plugin told of last time may not have begun yet: it keeps its session. A
        // plugin that reads others' tables is set up at its turn: its grants cover the
        // tables that exist then, those the plugins before it make in this run included.
        if self.open != Open::None
            || !access.reads.is_empty()
            || self.plugins.contains_key(&access.plugin)
            || self.prefetched.contains_key(&access.plugin)
            || self.prefetched.len() >= 2
        {
            return;
        }
        // Only once wasmig's tables are there and current (made at the current plugin's
        // turn otherwise), and without waiting for another runner's step: the lock is
        // tried for a moment only, and the plugin is set up at its turn if it was busy.
        let ready = self.host_tables
            && self.host_version == host_sql::HOST_SCHEMA_VERSION
            && self.host_functions_current;
        if !ready {
            return;
        }
        let Ok(names) = self.provision_waiting(access, PREPARE_LOCK_MS) else {
            return;
        };
        let Ok(config) = self.plugin_config(&access.plugin, &names) else {
            return;
        };
        // The password the guard would put back if the server kept no counters is NULL
        // here: the transaction is rolled back, and the role's verifier stays out of the
        // statement's text (which the server may log).
        let warmup = format!(
            "BEGIN; SET LOCAL lock_timeout = 100; SET LOCAL statement_timeout = 5000; \
             SET LOCAL search_path = pg_catalog, pg_temp; \
             SELECT count(*) FROM wasmig.guard_owned({schema}); \
             SELECT count(*) FROM wasmig.guard_verify({schema}, '{{}}', {allowed}, '{{}}', \
             NULL)",
            schema = literal(&names.schema),
            allowed = literal(&guard::allowed_functions()),
        );
        let session = Session::connect_ahead(self.handle(), &config, warmup);
        self.prefetched
            .insert(access.plugin.clone(), (names, session));
    }

    /// The plugin's session, logging in as its role (and creating the role) if needed.
    pub(super) fn plugin_session(&mut self, access: &PluginAccess) -> Result<&mut PluginSession> {
        let alive = self
            .plugins
            .get(&access.plugin)
            .is_some_and(|p| !p.session.is_closed());
        if !alive {
            // One plugin's session at a time outside a dry run (and the next one's, getting
            // ready): a run over a hundred plugins holds two server connections, not a
            // hundred.
            self.plugins.retain(|_, p| p.in_transaction);
            self.plugins.remove(&access.plugin);
            let ready = match self.prefetched.remove(&access.plugin) {
                Some((names, session)) => session
                    .recv_timeout(CONNECT_TIMEOUT)
                    .ok()
                    .and_then(|s| s.ok())
                    .filter(|s| !s.is_closed())
                    .map(|s| (names, s)),
                _ => None,
            };
            let (names, connected) = match ready {
                Some((names, session)) => (names, Ok(session)),
                None => {
                    let names = self.provision(access)?;
                    let config = self.plugin_config(&access.plugin, &names)?;
                    (
                        names,
                        Session::connect(self.handle(), &config, CONNECT_TIMEOUT),
                    )
                }
            };
            if let Err(e) = &connected
                && is_transient(e)
            {
                // The server was unreachable or went away: worth another attempt.
                self.transient.get_or_insert_with(|| e.to_string());
            }
            let mut session = connected.map_err(|e| {
                self.error(
                    &format!(
                        "cannot log in as plugin {}'s role {:?} (wasmig runs a plugin's SQL \
                             in a session of its own role, which must be able to log in with a \
                             password from here: see pg_hba.conf)",
                        access.plugin, names.role
                    ),
                    e,
                )
            })?;
            session.watch_from(&self.host);
            let lock_ms = self.lock_timeout_ms();
            self.plugins.insert(
                access.plugin.clone(),
                PluginSession {
                    names,
                    session,
                    in_transaction: false,
                    host_turn: host_turn(lock_ms),
                    checked: None,
                    committed: None,
                    statistics_set: false,
                    statistics_looked: false,
                },
            );
        }
        Ok(self.plugins.get_mut(&access.plugin).expect("just made"))
    }

    /// The plugin's session with a transaction open on it (a dry run opens one per plugin).
    pub(super) fn step_session(&mut self, access: &PluginAccess) -> Result<&mut PluginSession> {
        let lock_ms = self.lock_timeout_ms();
        let deadline = Instant::now() + self.begin_bound();
        if self.plugin_session(access)?.in_transaction {
            return self.plugin_session(access);
        }
        let plugin = self.plugin_session(access)?;
        plugin.session.forget_savepoint();
        // A dry run's begin makes the checks a step's begin makes, in the same bound.
        let begun = plugin.session.batch(
            &format!(
                "BEGIN; SET LOCAL lock_timeout = {lock_ms}; \
                 SELECT wasmig.dry_run_begin()"
            ),
            Some(deadline),
        );
        if let Err(e) = begun {
            if !matches!(e, CallError::Stuck(_)) {
                let _ = plugin.session.batch("ROLLBACK", None);
            }
            let what = format!("cannot begin plugin {}'s transaction", access.plugin);
            return Err(self.before_step_failed(&access.plugin, &what, e));
        }
        plugin.in_transaction = true;
        plugin.statistics_looked = false;
        self.plugin_session(access)
    }
}

/// How long a plugin role's password is valid after wasmig sets the role up for a login.
/// A step's SQL, or what the server runs as the plugin's role outside its steps, may set
/// the role's password, which a role may always do; it may not change how long the
/// password is valid (that takes CREATEROLE), so a password set so lets no one log in once
/// the minute after wasmig's last login as the role is over.
const LOGIN_WINDOW: &str = "1 minute";

/// The statement that makes `role`'s password valid for [`LOGIN_WINDOW`] from now (the
/// server's clock), and sets the role's attributes and password (`verifier`) first if given.
/// Another runner may change the role at the same moment, which the server reports as an
/// internal error ("tuple concurrently updated") once that runner commits: the change is
/// tried again then, on the role as it committed it.
fn login_window(role: &str, verifier: Option<&str>) -> String {
    let attributes = match verifier {
        Some(v) => format!(
            "EXECUTE pg_catalog.format('ALTER ROLE %I WITH LOGIN NOCREATEDB NOCREATEROLE \
             NOINHERIT CONNECTION LIMIT -1 PASSWORD %L', {}, {});",
            literal(role),
            literal(v)
        ),
        None => String::new(),
    };
    format!(
        "DO $wasmig$ BEGIN
           FOR attempt IN 1..20 LOOP
             BEGIN
               {attributes}
               EXECUTE pg_catalog.format('ALTER ROLE %I VALID UNTIL %L', {},
                                         pg_catalog.clock_timestamp() + interval '{LOGIN_WINDOW}');
               RETURN;
             EXCEPTION WHEN internal_error THEN
               PERFORM pg_catalog.pg_sleep(0.01 * attempt);
             END;
           END LOOP;
           RAISE EXCEPTION 'wasmig: the role % changed under every attempt to set it up', {};
         END $wasmig$;",
        literal(role),
        literal(role)
    )
}

/// How many times SCRAM's key derivation (PBKDF2) runs for a plugin role's password. Key
/// stretching makes guessing a person's password from its verifier slow; a plugin role's
/// password is 256 bits derived from the database's secret ([`PgBackend::password`]), which
/// no number of guesses finds, so stretching adds nothing to it. It would cost the client's
/// CPU at every login of a plugin's session, and at every verifier made, which PostgreSQL's
/// 4,096 iterations make a visible share of a run's time.
const SCRAM_ITERATIONS: u32 = 1;

/// A SCRAM-SHA-256 verifier of `password` with [`SCRAM_ITERATIONS`] and a random 16-byte
/// salt.
fn scram_verifier(password: &str) -> std::result::Result<String, getrandom::Error> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt)?;
    Ok(scram_verifier_salted(password, &salt, SCRAM_ITERATIONS))
}

/// A SCRAM-SHA-256 verifier (RFC 7677) in PostgreSQL's `pg_authid` format. The password is
/// taken as it is: a plugin role's is hex, which SASLprep leaves unchanged.
fn scram_verifier_salted(password: &str, salt: &[u8], iterations: u32) -> String {
    use base64::Engine as _;
    use hmac::{KeyInit, Mac};
    use sha2_0_11::{Digest, Sha256};
    let hmac = |key: &[u8], parts: &[&[u8]]| {
        let mut mac =
            hmac::Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any size");
        for part in parts {
            mac.update(part);
        }
        mac.finalize().into_bytes()
    };
    // PBKDF2 with HMAC-SHA-256 (RFC 8018), one block: U1 = HMAC(p, salt ‖ INT(1)),
    // Ui = HMAC(p, Ui-1), all XORed together.
    let mut u = hmac(password.as_bytes(), &[salt, &1u32.to_be_bytes()]);
    let mut salted: [u8; 32] = u.into();
    for _ in 1..iterations {
        u = hmac(password.as_bytes(), &[&u]);
        for (s, b) in salted.iter_mut().zip(u.iter()) {
            *s ^= b;
        }
    }
    let client_key = hmac(&salted, &[b"Client Key"]);
    let stored_key = Sha256::digest(client_key);
    let server_key = hmac(&salted, &[b"Server Key"]);
    let b64 = base64::engine::general_purpose::STANDARD;
    format!(
        "SCRAM-SHA-256${iterations}:{}${}:{}",
        b64.encode(salt),
        b64.encode(stored_key),
        b64.encode(server_key)
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_verifier_is_the_one_postgresql_clients_make() {
        // postgres-protocol's own case (its `scram_sha_256_salt`, 4,096 iterations).
        let salt: Vec<u8> = (1..=16).collect();
        assert_eq!(
            super::scram_verifier_salted("secret", &salt, 4096),
            "SCRAM-SHA-256$4096:AQIDBAUGBwgJCgsMDQ4PEA==$8rrDg00OqaiWXJ7p+sCgHEIaBSHY89ZJl3mfIsf32oY=:\
             05L1f+yZbiN8O0AnO40Og85NNRhvzTS57naKRWCcsIA="
        );
        let one = super::scram_verifier("secret").unwrap();
        assert!(one.starts_with("SCRAM-SHA-256$1:"), "{one}");
        assert_ne!(
            one,
            super::scram_verifier("secret").unwrap(),
            "salted at random"
        );
    }
}
