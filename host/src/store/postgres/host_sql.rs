//! The host's own objects on PostgreSQL, all in the schema `wasmig`, which the role wasmig
//! connects as owns and no plugin role may read.

/// The key of the transaction-scoped advisory lock every step's transaction takes ("wasmig"
/// in ASCII). The plugin's statements run inside that transaction, so a plugin asking for it
/// gets it at once (it holds it already) and cannot release it early.
pub(super) const LOCK_KEY: i64 = 0x7761_736d_6967;

/// The version of these tables this wasmig writes (`wasmig.meta.schema_version`).
pub(super) const HOST_SCHEMA_VERSION: i64 = 2;

/// The oldest version of these tables this wasmig reads (and brings up to
/// [`HOST_SCHEMA_VERSION`] when it next writes).
pub(super) const OLDEST_HOST_SCHEMA_VERSION: i64 = 1;

/// A digest of the host's tables and functions as this wasmig makes them
/// (`wasmig.meta.functions_sha256`): a database whose functions another wasmig made gets
/// this one's when a run next writes, the guard's included.
pub(super) fn functions_sha256() -> &'static str {
    static DIGEST: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DIGEST.get_or_init(|| {
        use sha2::{Digest, Sha256};
        let mut hash = Sha256::new();
        hash.update(HOST_SCHEMA);
        hash.update(super::guard::functions());
        hex::encode(hash.finalize())
    })
}

/// The server's digest of the functions in the schema `wasmig`: their signatures, bodies,
/// settings and security, as `pg_proc` holds them.
pub(super) const FUNCTIONS_MD5: &str = "(SELECT pg_catalog.md5(pg_catalog.string_agg(
    p.oid::pg_catalog.regprocedure::text || ':' || p.prosrc || ':'
    || coalesce(p.proconfig::text, '') || ':' || p.prosecdef::text, ','
    ORDER BY p.oid::pg_catalog.regprocedure::text))
   FROM pg_catalog.pg_proc p
  WHERE p.pronamespace = pg_catalog.to_regnamespace('wasmig'))";

/// What `wasmig.meta` says of wasmig's tables and functions: the schema's version, the
/// digest and version of the wasmig that made the functions, the server's digest of them
/// then, and the server's digest of them now ([`FUNCTIONS_MD5`]).
pub(super) fn read_meta() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        format!(
            "SELECT (SELECT value FROM wasmig.meta WHERE key = 'schema_version'),
                    (SELECT value FROM wasmig.meta WHERE key = 'functions_sha256'),
                    (SELECT value FROM wasmig.meta WHERE key = 'functions_wasmig_version'),
                    (SELECT value FROM wasmig.meta WHERE key = 'functions_md5'),
                    {FUNCTIONS_MD5}"
        )
    })
}

/// Tables and functions, created if missing; idempotent, run under [`LOCK_KEY`].
///
/// A step's ledger row commits with the step's effects, so it is written on the plugin's
/// session: through `wasmig.record_step`, a `SECURITY DEFINER` function that only plugin roles
/// may execute. It writes rows for the plugin whose role calls it (`session_user`, which no
/// plugin can change), and only with the token `wasmig.step_begin` handed to the host at the
/// start of the same transaction, before any of the plugin's statements ran; `step_begin`
/// gives one token per transaction, and `record_step` spends it. A plugin cannot read the token (its statements see
/// neither the host's calls nor the table), so it cannot write a ledger row, not even for
/// itself.
pub(super) const HOST_SCHEMA: &str = r#"
CREATE SCHEMA IF NOT EXISTS wasmig;
REVOKE ALL ON SCHEMA wasmig FROM PUBLIC;
CREATE TABLE IF NOT EXISTS wasmig.ledger (
    id               bigserial PRIMARY KEY,
    plugin           text NOT NULL,
    plugin_version   text NOT NULL,
    version          text NOT NULL,
    description      text NOT NULL,
    direction        text NOT NULL CHECK (direction IN ('up', 'down')),
    outcome          text NOT NULL CHECK (outcome IN ('succeeded', 'failed')),
    error            text,
    started_at_ms    bigint NOT NULL,
    duration_us      bigint NOT NULL,
    checksum         text NOT NULL,
    component_sha256 text NOT NULL,
    wasmig_version   text NOT NULL,
    statements       text NOT NULL,
    note             text,
    applied_by       text NOT NULL DEFAULT ''
);
-- Version 1's ledger did not say who ran a step.
ALTER TABLE wasmig.ledger ADD COLUMN IF NOT EXISTS applied_by text NOT NULL DEFAULT '';
CREATE INDEX IF NOT EXISTS ledger_by_plugin ON wasmig.ledger (plugin, id);
CREATE TABLE IF NOT EXISTS wasmig.applied (
    plugin           text NOT NULL,
    version          text NOT NULL,
    checksum         text NOT NULL,
    component_sha256 text NOT NULL,
    plugin_version   text NOT NULL,
    applied_at_ms    bigint NOT NULL,
    ledger_id        bigint NOT NULL REFERENCES wasmig.ledger (id),
    PRIMARY KEY (plugin, version)
);
CREATE TABLE IF NOT EXISTS wasmig.component (
    sha256 text PRIMARY KEY,
    bytes  bytea NOT NULL
);
CREATE TABLE IF NOT EXISTS wasmig.manifest (
    sha256   text PRIMARY KEY,
    manifest text NOT NULL
);
CREATE TABLE IF NOT EXISTS wasmig.meta (
    key   text PRIMARY KEY,
    value text NOT NULL
);
CREATE TABLE IF NOT EXISTS wasmig.plugin_role (
    role   name PRIMARY KEY,
    plugin text NOT NULL UNIQUE
);
-- The role the plugin's functions run as between its steps (see wasmig.code_back).
ALTER TABLE wasmig.plugin_role ADD COLUMN IF NOT EXISTS code name;
CREATE TABLE IF NOT EXISTS wasmig.plugin_read (
    reader text NOT NULL,
    plugin text NOT NULL,
    PRIMARY KEY (reader, plugin)
);
CREATE TABLE IF NOT EXISTS wasmig.step_token (
    xid    xid8 PRIMARY KEY,
    token  text,
    plugin text NOT NULL
);
ALTER TABLE wasmig.step_token ADD COLUMN IF NOT EXISTS others text;
INSERT INTO wasmig.meta (key, value) VALUES ('schema_version', '2') ON CONFLICT DO NOTHING;
UPDATE wasmig.meta SET value = '2' WHERE key = 'schema_version' AND value = '1';
-- Version 1's record_step, without who ran the step.
DROP FUNCTION IF EXISTS wasmig.record_step(text, text, text, text, text, bigint, bigint, text,
    text, text, text, text);
-- The secret the plugin roles' passwords derive from: 244 random bits.
INSERT INTO wasmig.meta (key, value)
VALUES ('role_secret', replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''))
ON CONFLICT DO NOTHING;

-- The functions of every plugin but the one whose role is `me`, with their plugin: what
-- the server records each plugin's role and code role own in this database (pg_shdepend,
-- by its index).
--
-- This and the other functions a step calls at its begin and end are PL/pgSQL, not SQL: the
-- server plans a SQL function's query again at every call (one with a SET clause is never
-- inlined), where PL/pgSQL keeps its plans for the session, which runs the plugin's steps.
-- Their plans are generic: a session runs a plugin's few steps, and the server would plan a
-- query with parameters again at each of its first five runs. They run without JIT: the
-- planner's estimates for the catalogs grow with what every database of the server ever
-- held (shared catalogs keep their pages), and compiling a query once it looks costly
-- enough takes about a second, at every step's begin.
--
-- pg_shdepend holds the dependencies of every database of the server: the rows this needs
-- are one range of its index by database and catalog (this database's functions whose owner
-- or grantees are roles of their own, the plugins' and the application's), which the
-- planner, costing each catalog page as a read from disk, would trade for reading the whole
-- table (a scan that grows with every database of the server) were sequential scans on. The
-- plugins' roles are matched by equality, so the range is read once whatever their number.
-- The callers pass the list on (temporary_held, others_code, others_open).
CREATE OR REPLACE FUNCTION wasmig.others_functions(me name) RETURNS TABLE (fn oid, plugin text)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan SET jit = off SET enable_seqscan = off AS $$
BEGIN
    RETURN QUERY
    SELECT d.objid, w.plugin
      FROM pg_shdepend d
      JOIN pg_roles r ON r.oid = d.refobjid
      JOIN (SELECT p.plugin, x.role FROM wasmig.plugin_role p
              CROSS JOIN LATERAL (VALUES (p.role), (p.code)) x(role)
             WHERE p.role <> me) w ON w.role = r.rolname
     WHERE d.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
       AND d.classid = 'pg_proc'::regclass
       AND d.refclassid = 'pg_authid'::regclass AND d.deptype = 'o';
END
$$;
REVOKE ALL ON FUNCTION wasmig.others_functions(name) FROM PUBLIC;

-- Whether the object `obj` (a row of catalog `cls`) lives in another session's temporary
-- schema (or its TOAST schema): a cast counts as living where its source or target type
-- does, the parts of a relation (its triggers, defaults, rules, policies) where it does,
-- any other object in the schema it names.
-- Only the host's functions call it; a SQL function without settings, so the server
-- inlines it into their queries.
CREATE OR REPLACE FUNCTION wasmig.temporary_elsewhere(cls oid, obj oid) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT coalesce(CASE cls
        WHEN 'pg_catalog.pg_proc'::pg_catalog.regclass THEN
            (SELECT pg_catalog.pg_is_other_temp_schema(x.pronamespace) FROM pg_catalog.pg_proc x WHERE x.oid = obj)
        WHEN 'pg_catalog.pg_type'::pg_catalog.regclass THEN
            (SELECT pg_catalog.pg_is_other_temp_schema(x.typnamespace) FROM pg_catalog.pg_type x WHERE x.oid = obj)
        WHEN 'pg_catalog.pg_class'::pg_catalog.regclass THEN
            (SELECT pg_catalog.pg_is_other_temp_schema(x.relnamespace) FROM pg_catalog.pg_class x WHERE x.oid = obj)
        WHEN 'pg_catalog.pg_operator'::pg_catalog.regclass THEN
            (SELECT pg_catalog.pg_is_other_temp_schema(x.oprnamespace) FROM pg_catalog.pg_operator x WHERE x.oid = obj)
        WHEN 'pg_catalog.pg_constraint'::pg_catalog.regclass THEN
            (SELECT pg_catalog.pg_is_other_temp_schema(x.connamespace) FROM pg_catalog.pg_constraint x WHERE x.oid = obj)
        WHEN 'pg_catalog.pg_statistic_ext'::pg_catalog.regclass THEN
            (SELECT pg_catalog.pg_is_other_temp_schema(x.stxnamespace) FROM pg_catalog.pg_statistic_ext x WHERE x.oid = obj)
        WHEN 'pg_catalog.pg_trigger'::pg_catalog.regclass THEN
            (SELECT pg_catalog.pg_is_other_temp_schema(c.relnamespace) FROM pg_catalog.pg_trigger x
               JOIN pg_catalog.pg_class c ON c.oid = x.tgrelid WHERE x.oid = obj)
        WHEN 'pg_catalog.pg_attrdef'::pg_catalog.regclass THEN
            (SELECT pg_catalog.pg_is_other_temp_schema(c.relnamespace) FROM pg_catalog.pg_attrdef x
               JOIN pg_catalog.pg_class c ON c.oid = x.adrelid WHERE x.oid = obj)
        WHEN 'pg_catalog.pg_rewrite'::pg_catalog.regclass THEN
            (SELECT pg_catalog.pg_is_other_temp_schema(c.relnamespace) FROM pg_catalog.pg_rewrite x
               JOIN pg_catalog.pg_class c ON c.oid = x.ev_class WHERE x.oid = obj)
        WHEN 'pg_catalog.pg_policy'::pg_catalog.regclass THEN
            (SELECT pg_catalog.pg_is_other_temp_schema(c.relnamespace) FROM pg_catalog.pg_policy x
               JOIN pg_catalog.pg_class c ON c.oid = x.polrelid WHERE x.oid = obj)
        WHEN 'pg_catalog.pg_cast'::pg_catalog.regclass THEN
            (SELECT pg_catalog.pg_is_other_temp_schema(s.typnamespace)
                    OR pg_catalog.pg_is_other_temp_schema(t.typnamespace)
               FROM pg_catalog.pg_cast x JOIN pg_catalog.pg_type s ON s.oid = x.castsource
               JOIN pg_catalog.pg_type t ON t.oid = x.casttarget WHERE x.oid = obj)
        WHEN 'pg_catalog.pg_default_acl'::pg_catalog.regclass THEN
            (SELECT pg_catalog.pg_is_other_temp_schema(x.defaclnamespace) FROM pg_catalog.pg_default_acl x WHERE x.oid = obj)
        -- Any other object that names its schema (a collation, a text search dictionary or
        -- configuration, a conversion, …) lives there.
        ELSE (SELECT pg_catalog.pg_is_other_temp_schema(pg_catalog.to_regnamespace(i.schema))
                FROM pg_catalog.pg_identify_object(cls, obj, 0) i)
      END, false)
$$;
REVOKE ALL ON FUNCTION wasmig.temporary_elsewhere(oid, oid) FROM PUBLIC;

-- How another session's temporary schema `nsp` could reach a plugin's step; NULL when it
-- cannot. Such a schema is its session's alone: no other session's search path lists it,
-- and naming it needs USAGE on it, which only superusers have. What the server reaches by
-- identifier instead (a column's type, a cast, a trigger's or a default's function) it
-- records in pg_depend: the walk goes through the objects of temporary schemas and their
-- parts and names the first object outside them that depends on one. And that session's
-- own statements find a type there by its bare name (the session searches its temporary
-- schema first for types), so a plugin's type there (whose casts and checks run its code
-- in whoever's session meets its values) counts as reaching out whatever depends on it now.
CREATE OR REPLACE FUNCTION wasmig.temporary_reach(nsp oid) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan SET jit = off AS $$
DECLARE
    found text;
BEGIN
    IF NOT coalesce(pg_is_other_temp_schema(nsp), false) THEN
        RETURN 'it is no other session''s temporary schema';
    END IF;
    SELECT format('plugin %s''s type %s is there, which that session''s own statements find by its bare name',
                  w.plugin, t.oid::regtype::text) INTO found
      FROM pg_type t
      JOIN pg_roles r ON r.oid = t.typowner
      JOIN wasmig.plugin_role w ON r.rolname IN (w.role, w.code)
     WHERE t.typnamespace = nsp
     LIMIT 1;
    IF found IS NOT NULL THEN
        RETURN found;
    END IF;
    RETURN (WITH RECURSIVE reach(classid, objid, inside) AS (
                SELECT 'pg_namespace'::regclass::oid, nsp, true
                UNION
                SELECT d.classid, d.objid, wasmig.temporary_elsewhere(d.classid, d.objid)
                  FROM reach r
                  JOIN pg_depend d ON d.refclassid = r.classid AND d.refobjid = r.objid
                 WHERE r.inside)
            SELECT pg_describe_object(r.classid, r.objid, 0) || ' depends on objects there'
              FROM reach r
             WHERE NOT r.inside
             LIMIT 1);
END
$$;
REVOKE ALL ON FUNCTION wasmig.temporary_reach(oid) FROM PUBLIC;

-- The temporary schemas of other sessions that hold one of the other plugins' functions
-- `fns` (others_functions) and cannot reach a step (temporary_reach): what is there stops no
-- step. Each is walked once, however many functions it holds.
DROP FUNCTION IF EXISTS wasmig.temporary_held(name);
CREATE OR REPLACE FUNCTION wasmig.temporary_held(fns oid[]) RETURNS oid[]
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan SET jit = off AS $$
BEGIN
    -- Materialized: the server would otherwise walk a schema once per function in it.
    RETURN (WITH s AS MATERIALIZED (
                SELECT DISTINCT p.pronamespace AS nsp
                  FROM pg_proc p
                 WHERE p.oid = ANY (fns) AND pg_is_other_temp_schema(p.pronamespace))
            SELECT coalesce(array_agg(s.nsp), '{}') FROM s
             WHERE wasmig.temporary_reach(s.nsp) IS NULL);
END
$$;
REVOKE ALL ON FUNCTION wasmig.temporary_held(oid[]) FROM PUBLIC;

-- What of the other plugins could run or be read in `me`'s session, as the server stores
-- it now: their functions, their schemas (whose grants say which `me` may use) and the
-- relations of those `me` may use. A catalog row is a new version (a new xmin) after any
-- change of it, a grant, whose rights a function runs with and a relation's kind included,
-- and a new object is a new row. `fns`, `plugins`: the other plugins' functions and whose
-- each is (others_functions).
DROP FUNCTION IF EXISTS wasmig.others_code(name);
CREATE OR REPLACE FUNCTION wasmig.others_code(me name, fns oid[], plugins text[]) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan SET jit = off AS $$
BEGIN
    -- `<plugin>=<digest>` for each plugin, so that a change can be told by whom.
    RETURN (WITH ns AS (
        SELECT n.oid, n.xmin, w.plugin FROM pg_namespace n
          JOIN pg_roles r ON r.oid = n.nspowner
          JOIN wasmig.plugin_role w ON w.role = r.rolname
         WHERE w.role <> me
    )
    SELECT coalesce(string_agg(plugin || '=' || digest, ',' ORDER BY plugin), '') FROM (
        SELECT plugin, md5(string_agg(x, ',' ORDER BY x)) AS digest FROM (
            SELECT o.plugin, 'f' || p.oid::text || ':' || p.xmin::text
              FROM unnest(fns, plugins) o(fn, plugin) JOIN pg_proc p ON p.oid = o.fn
            UNION ALL
            SELECT ns.plugin, 'n' || ns.oid::text || ':' || ns.xmin::text FROM ns
            UNION ALL
            SELECT ns.plugin, 'r' || c.oid::text || ':' || c.xmin::text
              FROM ns
              JOIN pg_depend d ON d.refclassid = 'pg_namespace'::regclass AND d.refobjid = ns.oid
                              AND d.classid = 'pg_class'::regclass
              JOIN pg_class c ON c.oid = d.objid
             WHERE has_schema_privilege(me, ns.oid, 'USAGE')
        ) q(plugin, x)
        GROUP BY plugin
    ) per);
END
$$;
REVOKE ALL ON FUNCTION wasmig.others_code(name, oid[], text[]) FROM PUBLIC;

-- Whether `me` has a right on another plugin's relation `c` (of kind `kind`) beyond reading
-- a base table: any right on a sequence, a view or another kind, and on a table any but
-- SELECT. Only the host's functions call it; a SQL function without settings, so the server
-- inlines it into their queries.
CREATE OR REPLACE FUNCTION wasmig.beyond_read(me name, c oid, kind "char") RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN kind = 'S'
                THEN pg_catalog.has_sequence_privilege(me, c, 'USAGE, SELECT, UPDATE')
                WHEN kind IN ('r', 'p')
                THEN pg_catalog.has_table_privilege(me, c, 'INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')
                     OR pg_catalog.has_any_column_privilege(me, c, 'INSERT, UPDATE, REFERENCES')
                ELSE pg_catalog.has_any_column_privilege(me, c, 'SELECT, INSERT, UPDATE, REFERENCES')
                     OR pg_catalog.has_table_privilege(me, c, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')
           END
$$;
REVOKE ALL ON FUNCTION wasmig.beyond_read(name, oid, "char") FROM PUBLIC;

-- Whether what take_back_others takes back is there now: another plugin's function that
-- runs as its caller or that `me` (plugin `p`) may call, another plugin's schema `me` may
-- use without the policy's read, a right of `me`'s on a read schema's relation but SELECT
-- on a base table. Asked once more when the step has begun and when it ends: a change
-- committed between take_back_others' look and its record would be in the record. A
-- function in another session's temporary schema counts only once that schema could reach
-- a step (temporary_reach): made so while the step runs, it fails the step when it ends.
-- `fns`: the other plugins' functions (others_functions).
DROP FUNCTION IF EXISTS wasmig.others_open(name, text);
CREATE OR REPLACE FUNCTION wasmig.others_open(me name, p text, fns oid[]) RETURNS boolean
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan SET jit = off AS $$
DECLARE
    held oid[] := wasmig.temporary_held(fns);
BEGIN
    RETURN EXISTS (
        SELECT 1 FROM pg_proc x
         WHERE x.oid = ANY (fns)
           AND ((x.prokind IN ('f', 'p') AND NOT x.prosecdef)
                OR has_function_privilege(me, x.oid, 'EXECUTE'))
           AND NOT x.pronamespace = ANY (held))
    OR EXISTS (
        SELECT 1 FROM pg_namespace n
          JOIN pg_roles r ON r.oid = n.nspowner
          JOIN wasmig.plugin_role w ON w.role = r.rolname
         WHERE w.role <> me AND has_schema_privilege(me, n.oid, 'USAGE')
           AND (NOT EXISTS (SELECT 1 FROM wasmig.plugin_read x
                             WHERE x.reader = p AND x.plugin = w.plugin)
                OR EXISTS (
                   SELECT 1 FROM pg_depend d JOIN pg_class c ON c.oid = d.objid
                    WHERE d.refclassid = 'pg_namespace'::regclass AND d.refobjid = n.oid
                      AND d.classid = 'pg_class'::regclass
                      AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
                      AND wasmig.beyond_read(me, c.oid, c.relkind))));
END
$$;
REVOKE ALL ON FUNCTION wasmig.others_open(name, text, oid[]) FROM PUBLIC;

-- Before any of the plugin's statements runs, another plugin's code can run in its session
-- only as that plugin: every other plugin's function runs as its owner and none is
-- executable by this plugin's role (`me`, plugin `p`). Between its steps, a plugin's
-- function runs as its code role, which owns the plugin's functions (a trigger the
-- application fires), and may change them (make them run as their caller, grant them):
-- such changes are taken back here, as the owner (the host's role is a member of every
-- plugin's role and code role), and the
-- step is refused if one cannot be. Called by step_begin and dry_run_begin, as the host,
-- which record what they leave (others_code); a change made while the step runs is caught
-- when it ends (others_changed).
CREATE OR REPLACE FUNCTION wasmig.take_back_others(me name, p text) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan SET jit = off AS $$
DECLARE
    f record;
    t record;
    recorded text;
    fns oid[];
    plugins text[];
    held oid[];
BEGIN
    SELECT array_agg(o.fn), array_agg(o.plugin) INTO fns, plugins
      FROM wasmig.others_functions(me) o;
    held := wasmig.temporary_held(fns);
    FOR f IN SELECT x.oid, x.oid::regprocedure::text AS id, o.plugin,
                    x.prokind IN ('f', 'p') AND NOT x.prosecdef AS invoker,
                    has_function_privilege(me, x.oid, 'EXECUTE') AS callable,
                    pg_is_other_temp_schema(x.pronamespace) AS elsewhere, x.pronamespace AS nsp
               FROM unnest(fns, plugins) o(fn, plugin)
               JOIN pg_proc x ON x.oid = o.fn
              WHERE ((x.prokind IN ('f', 'p') AND NOT x.prosecdef)
                     OR has_function_privilege(me, x.oid, 'EXECUTE'))
                AND NOT x.pronamespace = ANY (held)
    LOOP
        -- wasmig's role may not even name what is in another session's temporary schema.
        IF f.elsewhere THEN
            RAISE EXCEPTION 'wasmig: plugin %''s code made the function % in another session''s temporary schema, where wasmig cannot take it back, and it could run in plugin %''s step: %; other plugins'' steps are refused until that session ends (to keep plugins'' code from making temporary objects, revoke TEMPORARY on the database from PUBLIC and grant it to the application''s roles)',
                f.plugin, f.id, p, wasmig.temporary_reach(f.nsp)
                USING ERRCODE = '42501';
        END IF;
        IF f.invoker THEN
            EXECUTE format('ALTER ROUTINE %s SECURITY DEFINER', f.id);
        END IF;
        IF f.callable THEN
            EXECUTE format('REVOKE ALL ON ROUTINE %s FROM PUBLIC, %I', f.id, me);
            IF has_function_privilege(me, f.oid, 'EXECUTE') THEN
                RAISE EXCEPTION 'wasmig: plugin %''s function % is executable by plugin %''s role through a grant wasmig cannot take back (REVOKE it); another plugin''s code would run in this plugin''s step', f.plugin, f.id, p
                    USING ERRCODE = '42501';
            END IF;
        END IF;
    END LOOP;
    -- Another plugin's schema is this plugin's to use only if the policy lets it read that
    -- plugin, and then its base tables only, to read: not its views (whose queries, and the
    -- functions they call, run with the reader's rights), sequences or anything else, nor
    -- to write. A view a plugin changed between its steps could run any SQL as the reader
    -- (`query_to_xml` of a text). Row security policies never run in a plugin's session
    -- (`row_security` is off there: a table under one is refused, not filtered).
    FOR f IN SELECT n.oid, n.nspname, w.plugin,
                    EXISTS (SELECT 1 FROM wasmig.plugin_read x
                             WHERE x.reader = p AND x.plugin = w.plugin) AS granted
               FROM pg_namespace n
               JOIN pg_roles r ON r.oid = n.nspowner
               JOIN wasmig.plugin_role w ON w.role = r.rolname
              WHERE w.role <> me AND has_schema_privilege(me, n.oid, 'USAGE')
    LOOP
        IF NOT f.granted THEN
            EXECUTE format('REVOKE ALL ON SCHEMA %I FROM PUBLIC, %I', f.nspname, me);
        ELSE
            FOR t IN SELECT c.oid, c.oid::regclass::text AS id, c.relkind IN ('r', 'p') AS base
                       FROM pg_depend d JOIN pg_class c ON c.oid = d.objid
                      WHERE d.refclassid = 'pg_namespace'::regclass AND d.refobjid = f.oid
                        AND d.classid = 'pg_class'::regclass
                        AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
                        AND wasmig.beyond_read(me, c.oid, c.relkind)
            LOOP
                EXECUTE format('REVOKE ALL ON %s FROM PUBLIC, %I', t.id, me);
                IF t.base THEN
                    EXECUTE format('GRANT SELECT ON %s TO %I', t.id, me);
                END IF;
            END LOOP;
        END IF;
    END LOOP;
    -- Recorded first, then looked at again, each with the functions there at that moment
    -- (listed in the same statement): a change committed before the record is seen now, one
    -- after it changes the record.
    SELECT wasmig.others_code(me, array_agg(o.fn), array_agg(o.plugin)) INTO recorded
      FROM wasmig.others_functions(me) o;
    IF wasmig.others_open(me, p, ARRAY(SELECT o.fn FROM wasmig.others_functions(me) o)) THEN
        RAISE EXCEPTION 'wasmig: another plugin''s functions or grants changed while plugin %''s step began; run it again', p
            USING ERRCODE = '40001';
    END IF;
    RETURN recorded;
END
$$;
REVOKE ALL ON FUNCTION wasmig.take_back_others(name, text) FROM PUBLIC;

-- A plugin's functions run, between its steps, as its code role (`wasmig:<database>/<plugin>`),
-- which owns them and nothing else: it may use the plugin's schema, read and write its
-- tables and sequences, and create nothing (no CREATE on any schema, no type of its own, no
-- login). The plugin's code, fired by the application between its steps or while another
-- plugin's step runs, can so change nothing of the catalog but its own functions (which every
-- other plugin's step takes back, and looks at again when it ends): no cast, operator, type,
-- function or view comes or goes, no grant of its tables, no password of the plugin's role.
-- For the plugin's own steps, the functions are its role's again: code_back, when a step (or
-- a dry run) begins, refuses the step while the code role owns anything else (outside the
-- temporary schemas of sessions its code ran in), and code_out, when the step is recorded,
-- hands them over. Both run as the host, which is a member of both roles.
CREATE OR REPLACE FUNCTION wasmig.code_back(me name, p text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan SET jit = off AS $$
DECLARE
    code oid;
    s oid;
    found text;
    f record;
BEGIN
    SELECT r.oid INTO code FROM wasmig.plugin_role w JOIN pg_roles r ON r.rolname = w.code
     WHERE w.role = me;
    IF code IS NULL THEN
        RETURN;
    END IF;
    SELECT n.oid INTO s FROM pg_namespace n JOIN pg_roles r ON r.oid = n.nspowner
     WHERE r.rolname = me;
    SELECT string_agg(pg_describe_object(d.classid, d.objid, d.objsubid), ', ') INTO found
      FROM pg_shdepend d
     WHERE d.refclassid = 'pg_authid'::regclass AND d.refobjid = code AND d.deptype = 'o'
       AND d.dbid IN (0, (SELECT oid FROM pg_database WHERE datname = current_database()))
       AND NOT coalesce(CASE d.classid
               WHEN 'pg_proc'::regclass THEN
                   (SELECT x.pronamespace = s OR x.pronamespace::regnamespace::text ~ '^pg_(toast_)?temp_'
                      FROM pg_proc x WHERE x.oid = d.objid)
               WHEN 'pg_class'::regclass THEN
                   (SELECT x.relpersistence = 't' FROM pg_class x WHERE x.oid = d.objid)
               WHEN 'pg_type'::regclass THEN
                   (SELECT x.typnamespace::regnamespace::text ~ '^pg_(toast_)?temp_'
                      FROM pg_type x WHERE x.oid = d.objid)
               END, false);
    IF found IS NOT NULL THEN
        RAISE EXCEPTION 'wasmig: plugin %''s steps do not run while its code role % owns %: the role its functions run as owns them and nothing else (drop it)', p, code::regrole, found
            USING ERRCODE = '42501';
    END IF;
    FOR f IN SELECT d.objid::regprocedure::text AS id FROM pg_shdepend d
              WHERE d.refclassid = 'pg_authid'::regclass AND d.refobjid = code
                AND d.deptype = 'o' AND d.classid = 'pg_proc'::regclass
                AND d.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
                AND (SELECT x.pronamespace FROM pg_proc x WHERE x.oid = d.objid) = s
    LOOP
        EXECUTE format('ALTER ROUTINE %s OWNER TO %I', f.id, me);
    END LOOP;
END
$$;
REVOKE ALL ON FUNCTION wasmig.code_back(name, text) FROM PUBLIC;

CREATE OR REPLACE FUNCTION wasmig.code_out(me name) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan SET jit = off AS $$
DECLARE
    code name;
    s oid;
    sname name;
    f record;
    may_create boolean := false;
BEGIN
    SELECT w.code INTO code FROM wasmig.plugin_role w WHERE w.role = me;
    IF code IS NULL THEN
        RETURN;
    END IF;
    SELECT n.oid, n.nspname INTO s, sname FROM pg_namespace n JOIN pg_roles r ON r.oid = n.nspowner
     WHERE r.rolname = me;
    -- A function's new owner needs CREATE on its schema, for the moment of the change only.
    FOR f IN SELECT x.oid::regprocedure::text AS id
               FROM pg_depend d JOIN pg_proc x ON x.oid = d.objid
              WHERE d.refclassid = 'pg_namespace'::regclass AND d.refobjid = s
                AND d.classid = 'pg_proc'::regclass
                AND x.proowner = (SELECT oid FROM pg_roles WHERE rolname = me)
    LOOP
        IF NOT may_create THEN
            EXECUTE format('GRANT CREATE ON SCHEMA %I TO %I', sname, code);
            may_create := true;
        END IF;
        EXECUTE format('ALTER ROUTINE %s OWNER TO %I', f.id, code);
    END LOOP;
    IF may_create THEN
        EXECUTE format('REVOKE CREATE ON SCHEMA %I FROM %I', sname, code);
    END IF;
    FOR f IN SELECT c.oid::regclass::text AS id, c.relkind = 'S' AS sequence
               FROM pg_depend d JOIN pg_class c ON c.oid = d.objid
              WHERE d.refclassid = 'pg_namespace'::regclass AND d.refobjid = s
                AND d.classid = 'pg_class'::regclass
                AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
                AND NOT CASE WHEN c.relkind = 'S'
                             THEN has_sequence_privilege(code, c.oid, 'USAGE')
                                  AND has_sequence_privilege(code, c.oid, 'SELECT')
                                  AND has_sequence_privilege(code, c.oid, 'UPDATE')
                             ELSE has_table_privilege(code, c.oid, 'SELECT')
                                  AND has_table_privilege(code, c.oid, 'INSERT')
                                  AND has_table_privilege(code, c.oid, 'UPDATE')
                                  AND has_table_privilege(code, c.oid, 'DELETE')
                                  AND has_table_privilege(code, c.oid, 'TRUNCATE')
                        END
    LOOP
        IF f.sequence THEN
            EXECUTE format('GRANT USAGE, SELECT, UPDATE ON SEQUENCE %s TO %I', f.id, code);
        ELSE
            EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON TABLE %s TO %I', f.id, code);
        END IF;
    END LOOP;
END
$$;
REVOKE ALL ON FUNCTION wasmig.code_out(name) FROM PUBLIC;

-- What of another's would run in the plugin's session, with that other's rights and the
-- session's settings (its search path included, which the plugin sets), when the plugin's
-- step writes its own tables or changes its objects: a foreign key with an action (CASCADE,
-- SET NULL, SET DEFAULT) into one of them, which changes the referencing table's rows as
-- its owner and fires that table's triggers; a trigger on one of them that runs a function
-- not of the plugin's schema; an event trigger whose function runs as its owner and finds
-- tables through the session's temporary schema. The plugin's steps are refused while one
-- exists, before any of its statements.
CREATE OR REPLACE FUNCTION wasmig.refuse_foreign_code(me name, p text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan SET jit = off AS $$
DECLARE
    found text;
BEGIN
    WITH ns AS (
        SELECT n.oid FROM pg_namespace n JOIN pg_roles r ON r.oid = n.nspowner
         WHERE r.rolname = me
    ), tabs AS (
        SELECT d.objid AS oid FROM pg_depend d
         WHERE d.refclassid = 'pg_namespace'::regclass AND d.refobjid IN (SELECT oid FROM ns)
           AND d.classid = 'pg_class'::regclass
    )
    SELECT string_agg(x, '; ' ORDER BY x) INTO found FROM (
        SELECT format('the foreign key %I of %s references the plugin''s table %s with an action (ON DELETE %s, ON UPDATE %s): the step''s changes of its own rows would change that table''s rows and run its triggers, with their owner''s rights, in the plugin''s session; make it NO ACTION or RESTRICT',
                      k.conname, k.conrelid::regclass::text, k.confrelid::regclass::text,
                      CASE k.confdeltype WHEN 'c' THEN 'CASCADE' WHEN 'n' THEN 'SET NULL'
                           WHEN 'd' THEN 'SET DEFAULT' WHEN 'r' THEN 'RESTRICT' ELSE 'NO ACTION' END,
                      CASE k.confupdtype WHEN 'c' THEN 'CASCADE' WHEN 'n' THEN 'SET NULL'
                           WHEN 'd' THEN 'SET DEFAULT' WHEN 'r' THEN 'RESTRICT' ELSE 'NO ACTION' END)
          FROM tabs t
          JOIN pg_depend d ON d.refclassid = 'pg_class'::regclass AND d.refobjid = t.oid
                          AND d.classid = 'pg_constraint'::regclass
          JOIN pg_constraint k ON k.oid = d.objid
         WHERE k.contype = 'f' AND k.confrelid = t.oid
           AND k.conrelid NOT IN (SELECT oid FROM tabs)
           AND (k.confdeltype NOT IN ('a', 'r') OR k.confupdtype NOT IN ('a', 'r'))
        UNION
        SELECT format('the trigger %I on the plugin''s table %s runs %s, which is not the plugin''s: it would run in the plugin''s session, with the search path the plugin sets',
                      g.tgname, g.tgrelid::regclass::text, g.tgfoid::regprocedure::text)
          FROM tabs t
          JOIN pg_trigger g ON g.tgrelid = t.oid
          JOIN pg_proc f ON f.oid = g.tgfoid
         WHERE NOT g.tgisinternal AND f.pronamespace NOT IN (SELECT oid FROM ns)
        UNION
        -- A table of another's that inherits from one of them (or is a partition of one):
        -- the step's writes through its own table reach that table's rows, and with them its
        -- foreign keys' actions and its triggers, as their owners, in the plugin's session.
        SELECT format('the table %s inherits from the plugin''s table %s and is not the plugin''s: the step''s writes of its own table would reach its rows, and run its foreign keys'' actions and its triggers, with their owners'' rights, in the plugin''s session',
                      i.inhrelid::regclass::text, i.inhparent::regclass::text)
          FROM tabs t
          JOIN pg_inherits i ON i.inhparent = t.oid
         WHERE i.inhrelid NOT IN (SELECT oid FROM tabs)
        UNION
        -- An event trigger fires at the plugin's DDL, in its session; one whose function
        -- runs as its owner would name tables and types through the session's temporary
        -- schema first (the server searches it before any schema the path lists, unless
        -- the path names pg_temp itself), where the plugin's own stand in for them.
        SELECT format('the event trigger %I runs %s as its owner at every DDL statement, the plugin''s steps'' included, and its search path does not end with pg_temp: the plugin''s temporary tables would stand in for the tables it names; give the function SET search_path = <its schemas>, pg_temp',
                      e.evtname, e.evtfoid::regprocedure::text)
          FROM pg_event_trigger e JOIN pg_proc f ON f.oid = e.evtfoid
         WHERE e.evtenabled IN ('O', 'A') AND f.prosecdef
           AND NOT EXISTS (SELECT 1 FROM unnest(f.proconfig) c
                            WHERE c ~ '^search_path=' AND c ~ ',\s*"?pg_temp"?\s*$')
        UNION
        -- The same of any function that runs as its owner and that the plugin may call
        -- (what the database grants PUBLIC included), from its own SQL, a default, or an
        -- event trigger's function that runs as the plugin. Other plugins' functions are
        -- taken back after this (take_back_others).
        SELECT format('the function %s runs as its owner (SECURITY DEFINER), the plugin''s role may call it (EXECUTE, PUBLIC''s included), and its search path does not end with pg_temp: the plugin''s temporary tables would stand in for the tables it names; give it SET search_path = <its schemas>, pg_temp, or revoke EXECUTE on it from PUBLIC',
                      f.oid::regprocedure::text)
          FROM pg_proc f
         -- The system's own functions, made with the database (object identifiers below
         -- 16384, FirstNormalObjectId), run as their caller; by its index, the scan reads
         -- only the functions made since.
         WHERE f.oid >= 16384 AND f.prosecdef
           AND f.proowner NOT IN (SELECT r.oid FROM wasmig.plugin_role w
                                    CROSS JOIN LATERAL (VALUES (w.role), (w.code)) x(role)
                                    JOIN pg_roles r ON r.rolname = x.role)
           AND has_function_privilege(me, f.oid, 'EXECUTE')
           AND NOT EXISTS (SELECT 1 FROM unnest(f.proconfig) c
                            WHERE c ~ '^search_path=' AND c ~ ',\s*"?pg_temp"?\s*$')
        UNION
        -- Another plugin's objects that the server runs that plugin's code through, in
        -- whoever's session meets their values, with no check of EXECUTE (as that plugin:
        -- its functions are SECURITY DEFINER; but in this session, whose state its code
        -- could change). Its steps refuse them; made outside its steps (its code role can
        -- make none of them, but an operator acting as its role can), they stand until its
        -- next step.
        SELECT format('plugin %s''s %s runs its code in whoever''s session converts or compares a value of the type, with no check of EXECUTE (%s)',
                      t.plugin, o.what,
                      CASE WHEN wasmig.temporary_elsewhere(t.classid, t.objid)
                           THEN 'made in another session''s temporary schema, whose own statements find the type by its bare name: until that session ends; to keep plugins'' code from making temporary objects, revoke TEMPORARY on the database from PUBLIC and grant it to the application''s roles'
                           ELSE 'made between its steps; its next step refuses it' END)
          FROM (
            SELECT w.plugin, d.classid, d.objid
              FROM wasmig.plugin_role w
              CROSS JOIN LATERAL (VALUES (w.role), (w.code)) x(role)
              JOIN pg_roles r ON r.rolname = x.role
              JOIN pg_shdepend d ON d.refclassid = 'pg_authid'::regclass AND d.refobjid = r.oid
                                AND d.deptype = 'o'
                                AND d.classid IN ('pg_type'::regclass, 'pg_operator'::regclass)
                                AND d.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
             WHERE w.role <> me) t
          CROSS JOIN LATERAL (
            SELECT pg_describe_object('pg_cast'::regclass, c.oid, 0) AS what
              FROM pg_cast c JOIN pg_type ty ON ty.oid = c.casttarget
             WHERE t.classid = 'pg_type'::regclass AND c.castsource = t.objid AND c.castfunc <> 0
               AND (ty.typcategory = 'S' OR c.casttarget IN ('json'::regtype, 'jsonb'::regtype))
            UNION ALL
            SELECT 'range type ' || r.rngtypid::regtype::text || '''s function ' || x.f::regprocedure::text
              FROM pg_range r
              CROSS JOIN LATERAL (VALUES (r.rngsubdiff::oid), (r.rngcanonical::oid)) x(f)
             WHERE t.classid = 'pg_type'::regclass AND r.rngtypid = t.objid AND x.f <> 0
               AND (SELECT y.pronamespace FROM pg_proc y WHERE y.oid = x.f) <> 'pg_catalog'::regnamespace
            UNION ALL
            -- An estimator of the plugin's, or a built-in one, which calls the operator's
            -- function itself (`eqsel` compares the most common values with it): the
            -- predicate of the plugin's own steps' guard.
            SELECT 'operator ' || k.oid::regoperator::text || '''s estimator ' || x.f::regprocedure::text
                   || ' (over ' || k.oprcode::regprocedure::text || ')'
              FROM pg_operator k
              CROSS JOIN LATERAL (VALUES (k.oprrest::oid), (k.oprjoin::oid)) x(f)
             WHERE t.classid = 'pg_operator'::regclass AND k.oid = t.objid AND x.f <> 0
               AND ((SELECT y.pronamespace FROM pg_proc y WHERE y.oid = x.f) <> 'pg_catalog'::regnamespace
                    OR (SELECT y.pronamespace FROM pg_proc y WHERE y.oid = k.oprcode) <> 'pg_catalog'::regnamespace)
          ) o
    ) q(x);
    IF found IS NOT NULL THEN
        RAISE EXCEPTION 'wasmig: plugin %''s steps do not run while %', p, found
            USING ERRCODE = '42501';
    END IF;
END
$$;
REVOKE ALL ON FUNCTION wasmig.refuse_foreign_code(name, text) FROM PUBLIC;

-- The plugin whose role runs this session, refused if its step has begun in this
-- transaction, or if another's code would run in it (refuse_foreign_code).
CREATE OR REPLACE FUNCTION wasmig.stepping_plugin() RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan SET jit = off AS $$
DECLARE
    p text;
BEGIN
    SELECT r.plugin INTO p FROM wasmig.plugin_role r WHERE r.role = session_user;
    IF p IS NULL THEN
        RAISE EXCEPTION 'wasmig: % is not a plugin''s role', session_user;
    END IF;
    IF EXISTS (SELECT 1 FROM wasmig.step_token s WHERE s.xid = pg_current_xact_id()) THEN
        RAISE EXCEPTION 'wasmig: this transaction''s step has begun';
    END IF;
    PERFORM wasmig.refuse_foreign_code(session_user, p);
    RETURN p;
END
$$;
REVOKE ALL ON FUNCTION wasmig.stepping_plugin() FROM PUBLIC;

CREATE OR REPLACE FUNCTION wasmig.step_begin() RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan SET jit = off AS $$
DECLARE
    p text;
    t text;
BEGIN
    p := wasmig.stepping_plugin();
    PERFORM pg_advisory_xact_lock(131260432083303);
    PERFORM wasmig.code_back(session_user, p);
    DELETE FROM wasmig.step_token s WHERE s.xid <> pg_current_xact_id();
    t := replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', '');
    INSERT INTO wasmig.step_token (xid, token, plugin, others)
    VALUES (pg_current_xact_id(), t, p, wasmig.take_back_others(session_user, p));
    RETURN t;
END
$$;
REVOKE ALL ON FUNCTION wasmig.step_begin() FROM PUBLIC;

-- A dry run's transaction, which is always rolled back and takes no lock, the same way:
-- what step_begin does, with no token (nothing of a dry run is recorded).
CREATE OR REPLACE FUNCTION wasmig.dry_run_begin() RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan SET jit = off AS $$
DECLARE
    p text;
BEGIN
    p := wasmig.stepping_plugin();
    PERFORM wasmig.code_back(session_user, p);
    INSERT INTO wasmig.step_token (xid, token, plugin, others)
    VALUES (pg_current_xact_id(), NULL, p, wasmig.take_back_others(session_user, p));
END
$$;
REVOKE ALL ON FUNCTION wasmig.dry_run_begin() FROM PUBLIC;

-- Whether another plugin's functions are not as step_begin left them in this transaction
-- (true when it did not run): one changed since (made to run as its caller and granted,
-- then put back) may have run with this plugin's rights. The guard asks it last.
CREATE OR REPLACE FUNCTION wasmig.others_changed() RETURNS boolean
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan SET jit = off AS $$
DECLARE
    fns oid[];
    plugins text[];
BEGIN
    SELECT array_agg(o.fn), array_agg(o.plugin) INTO fns, plugins
      FROM wasmig.others_functions(session_user) o;
    RETURN coalesce((SELECT s.others IS DISTINCT FROM wasmig.others_code(session_user, fns, plugins)
                            OR wasmig.others_open(session_user, s.plugin, fns)
                       FROM wasmig.step_token s WHERE s.xid = pg_current_xact_id()), true);
END
$$;
REVOKE ALL ON FUNCTION wasmig.others_changed() FROM PUBLIC;

-- Which plugins others_changed() found changed, for the step's error: those whose record
-- differs from step_begin's, and those with a function that take_back_others would take
-- back; NULL when none.
CREATE OR REPLACE FUNCTION wasmig.others_changed_by() RETURNS text
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan SET jit = off AS $$
DECLARE
    was text;
    fns oid[];
    plugins text[];
    held oid[];
BEGIN
    SELECT array_agg(o.fn), array_agg(o.plugin) INTO fns, plugins
      FROM wasmig.others_functions(session_user) o;
    held := wasmig.temporary_held(fns);
    SELECT s.others INTO was FROM wasmig.step_token s WHERE s.xid = pg_current_xact_id();
    RETURN (SELECT string_agg(DISTINCT c.plugin, ', ' ORDER BY c.plugin) FROM (
        SELECT coalesce(a.plugin, b.plugin) AS plugin
          FROM (SELECT split_part(e, '=', 1) AS plugin, split_part(e, '=', 2) AS digest
                  FROM unnest(string_to_array(was, ',')) e) a
          FULL JOIN (SELECT split_part(e, '=', 1) AS plugin, split_part(e, '=', 2) AS digest
                       FROM unnest(string_to_array(wasmig.others_code(session_user, fns, plugins), ',')) e) b
            ON a.plugin = b.plugin
         WHERE a.digest IS DISTINCT FROM b.digest
        UNION
        SELECT o.plugin FROM unnest(fns, plugins) o(fn, plugin) JOIN pg_proc x ON x.oid = o.fn
         WHERE ((x.prokind IN ('f', 'p') AND NOT x.prosecdef)
                OR has_function_privilege(session_user, x.oid, 'EXECUTE'))
           AND NOT x.pronamespace = ANY (held)
    ) c);
END
$$;
REVOKE ALL ON FUNCTION wasmig.others_changed_by() FROM PUBLIC;

CREATE OR REPLACE FUNCTION wasmig.record_step(
    p_token text, p_plugin_version text, p_version text, p_description text,
    p_direction text, p_started_at_ms bigint, p_duration_us bigint, p_checksum text,
    p_component_sha256 text, p_wasmig_version text, p_statements text, p_note text,
    p_applied_by text
) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan SET jit = off AS $$
DECLARE
    p text;
    id bigint;
BEGIN
    -- The token is spent, not deleted: the row stays for the transaction, so step_begin
    -- cannot hand out another one in it.
    UPDATE wasmig.step_token s SET token = NULL
     WHERE s.xid = pg_current_xact_id() AND s.token = p_token
    RETURNING s.plugin INTO p;
    IF p IS NULL THEN
        RAISE EXCEPTION 'wasmig: not the host''s record of this step';
    END IF;
    INSERT INTO wasmig.ledger (plugin, plugin_version, version, description, direction,
        outcome, error, started_at_ms, duration_us, checksum, component_sha256,
        wasmig_version, statements, note, applied_by)
    VALUES (p, p_plugin_version, p_version, p_description, p_direction, 'succeeded', NULL,
        p_started_at_ms, p_duration_us, p_checksum, p_component_sha256, p_wasmig_version,
        p_statements, p_note, p_applied_by)
    RETURNING wasmig.ledger.id INTO id;
    IF p_direction = 'up' THEN
        INSERT INTO wasmig.applied (plugin, version, checksum, component_sha256,
            plugin_version, applied_at_ms, ledger_id)
        VALUES (p, p_version, p_checksum, p_component_sha256, p_plugin_version,
            p_started_at_ms, id);
    ELSE
        DELETE FROM wasmig.applied a WHERE a.plugin = p AND a.version = p_version;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'wasmig: step % of plugin % is not applied', p_version, p;
        END IF;
    END IF;
    PERFORM wasmig.code_out(session_user);
END
$$;
REVOKE ALL ON FUNCTION wasmig.record_step(text, text, text, text, text, bigint, bigint, text,
    text, text, text, text, text) FROM PUBLIC;

-- The first lock that server process `pid`, a session of role `who`, holds outside that
-- role's reach, described; NULL if none. PostgreSQL takes some locks before it checks the
-- privileges they need and keeps them to the transaction's end whatever the check says:
-- `nextval`, `currval` and `setval` lock the relation they are given (any, by its oid),
-- `pg_get_object_address` the object it names. Held by a plugin's step, such a lock would
-- block the owner's and the application's work on that object (`ALTER TABLE`, `CREATE
-- INDEX`, `DROP`, `VACUUM FULL`, and every read queued behind them) until the step ends.
-- Within reach: a relation the role owns or in a schema it owns (its own, temporary and
-- TOAST tables among them), the system's relations, wasmig's tables in the modes wasmig's
-- own functions take, a read (`AccessShareLock`) of what the role may read (an index, TOAST
-- table or partition of it counts as the table), and a relation that depends on the role's
-- objects (the application's foreign key to a plugin's table, a column of a plugin's type,
-- a partition of a plugin's table: the plugin's own changes and deletes lock them); an
-- object in a schema the role owns or a temporary one, that schema itself, and the role and
-- its code role (docs/postgres.md, Known limits, for the application's event triggers).
CREATE OR REPLACE FUNCTION wasmig.foreign_lock(pid integer, who oid) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan SET jit = off AS $$
DECLARE
    mine oid[];
    l record;
    r record;
    found_lock text;
BEGIN
    -- The system's own relations (the catalogs, their TOAST tables and indexes), made by
    -- initdb with object identifiers below FirstNormalObjectId, are everyone's to lock.
    FOR l IN SELECT k.locktype, k.mode, k.relation, k.classid, k.objid, k.objsubid
               FROM pg_catalog.pg_locks k
              WHERE k.pid = $1 AND k.granted
                AND ((k.locktype = 'relation' AND k.relation >= 16384)
                     OR k.locktype IN ('object', 'advisory'))
    LOOP
        IF mine IS NULL THEN
            mine := ARRAY(SELECT n.oid FROM pg_catalog.pg_namespace n WHERE n.nspowner = who);
        END IF;
        IF l.locktype = 'relation' THEN
            -- An index or a TOAST table (or its index) is judged as the table it is of.
            SELECT c.oid, m.oid AS tbl, m.relowner, m.relnamespace, n.nspname
              INTO r
              FROM pg_catalog.pg_class c
              LEFT JOIN pg_catalog.pg_index i ON i.indexrelid = c.oid
              JOIN pg_catalog.pg_class t ON t.oid = coalesce(i.indrelid, c.oid)
              JOIN pg_catalog.pg_class m ON m.oid = CASE WHEN t.relkind <> 't' THEN t.oid
                  ELSE coalesce((SELECT d.refobjid FROM pg_catalog.pg_depend d
                                  WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                                    AND d.objid = t.oid AND d.objsubid = 0
                                    AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
                                    AND d.deptype = 'i' LIMIT 1), t.oid) END
              JOIN pg_catalog.pg_namespace n ON n.oid = m.relnamespace
             WHERE c.oid = l.relation;
            CONTINUE WHEN NOT FOUND
                OR r.tbl < 16384 OR r.relowner = who OR r.relnamespace = ANY (mine)
                OR r.nspname IN ('pg_catalog', 'information_schema')
                OR (r.nspname = 'wasmig'
                    AND l.mode IN ('AccessShareLock', 'RowShareLock', 'RowExclusiveLock'))
                -- A read of what the role may read (a partition of it counts as the table).
                OR (l.mode = 'AccessShareLock'
                    AND pg_catalog.has_table_privilege(who,
                          coalesce(pg_catalog.pg_partition_root(r.tbl), r.tbl), 'SELECT') IS TRUE);
            -- What depends on the role's objects (the application's foreign key to a table
            -- of theirs, a column of their type, a partition of their table): the plugin's
            -- own changes and deletes lock it.
            CONTINUE WHEN EXISTS (
                SELECT 1 FROM pg_catalog.pg_depend d
                 WHERE ((d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                         AND d.objid IN (r.oid, r.tbl))
                        OR (d.classid = 'pg_catalog.pg_constraint'::pg_catalog.regclass
                            AND d.objid IN (SELECT k.oid FROM pg_catalog.pg_constraint k
                                             WHERE k.conrelid IN (r.oid, r.tbl)))
                        OR (d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass
                            AND d.objid IN (SELECT w.oid FROM pg_catalog.pg_rewrite w
                                             WHERE w.ev_class IN (r.oid, r.tbl))))
                   AND CASE d.refclassid
                       WHEN 'pg_catalog.pg_class'::pg_catalog.regclass THEN
                           (SELECT x.relnamespace FROM pg_catalog.pg_class x
                             WHERE x.oid = d.refobjid)
                       WHEN 'pg_catalog.pg_type'::pg_catalog.regclass THEN
                           (SELECT x.typnamespace FROM pg_catalog.pg_type x
                             WHERE x.oid = d.refobjid)
                       WHEN 'pg_catalog.pg_proc'::pg_catalog.regclass THEN
                           (SELECT x.pronamespace FROM pg_catalog.pg_proc x
                             WHERE x.oid = d.refobjid)
                       WHEN 'pg_catalog.pg_collation'::pg_catalog.regclass THEN
                           (SELECT x.collnamespace FROM pg_catalog.pg_collation x
                             WHERE x.oid = d.refobjid)
                       WHEN 'pg_catalog.pg_ts_config'::pg_catalog.regclass THEN
                           (SELECT x.cfgnamespace FROM pg_catalog.pg_ts_config x
                             WHERE x.oid = d.refobjid)
                       WHEN 'pg_catalog.pg_operator'::pg_catalog.regclass THEN
                           (SELECT x.oprnamespace FROM pg_catalog.pg_operator x
                             WHERE x.oid = d.refobjid)
                       END = ANY (mine));
            found_lock := l.mode || ' on ' || coalesce(pg_catalog.pg_describe_object(
                'pg_catalog.pg_class'::pg_catalog.regclass, r.oid, 0), 'relation ' || r.oid)
                || CASE WHEN r.tbl <> r.oid THEN ' (of ' || coalesce(pg_catalog.pg_describe_object(
                       'pg_catalog.pg_class'::pg_catalog.regclass, r.tbl, 0), 'relation ' || r.tbl)
                       || ')' ELSE '' END;
        ELSIF l.locktype = 'advisory' THEN
            -- Advisory keys are the whole database's, the application's among them: a step
            -- holds none but wasmig's own (131260432083303, a bigint key).
            CONTINUE WHEN l.objsubid = 1
                AND (l.classid::pg_catalog.int8 << 32 | l.objid::pg_catalog.int8) = 131260432083303;
            found_lock := l.mode || ' on advisory key ' || CASE WHEN l.objsubid = 1
                THEN (l.classid::pg_catalog.int8 << 32 | l.objid::pg_catalog.int8)::text
                ELSE l.classid::text || ', ' || l.objid::text END;
        ELSE
            CONTINUE WHEN CASE l.classid
                WHEN 'pg_catalog.pg_namespace'::pg_catalog.regclass THEN
                    coalesce((SELECT n.oid = ANY (mine) OR n.nspname ~ '^pg_(toast_)?temp_'
                                FROM pg_catalog.pg_namespace n WHERE n.oid = l.objid), true)
                WHEN 'pg_catalog.pg_authid'::pg_catalog.regclass THEN
                    l.objid = who OR l.objid = (
                        SELECT x.oid FROM pg_catalog.pg_roles x
                         WHERE x.rolname = 'wasmig:' || pg_catalog.substr(
                             (SELECT w.rolname FROM pg_catalog.pg_roles w WHERE w.oid = who), 8))
                ELSE coalesce(
                    (SELECT n.oid = ANY (mine) OR n.nspname ~ '^pg_(toast_)?temp_'
                       FROM pg_catalog.pg_identify_object(l.classid, l.objid, l.objsubid) o
                       JOIN pg_catalog.pg_namespace n
                         ON o.schema IN (n.nspname, pg_catalog.quote_ident(n.nspname))),
                    pg_catalog.pg_describe_object(l.classid, l.objid, l.objsubid) IS NULL)
                END;
            found_lock := l.mode || ' on ' || coalesce(pg_catalog.pg_describe_object(
                l.classid, l.objid, l.objsubid), 'object ' || l.classid || '/' || l.objid);
        END IF;
        -- An event trigger's function runs in the plugin's session at its DDL and locks
        -- what it reaches: with one in the database, nothing is reported. (No trigger of
        -- another's fires on the plugin's tables: its steps do not run while there is one.)
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_event_trigger e WHERE e.evtenabled <> 'D') THEN
            RETURN NULL;
        END IF;
        RETURN found_lock;
    END LOOP;
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION wasmig.foreign_lock(integer, oid) FROM PUBLIC;

-- Run before each of a plugin's statements, with the session's search path as it resolves
-- names (`current_schemas(true)`, read by the caller: this function's own path is fixed):
-- the session's prepared statements are the client's (it looks types up through them), and
-- one the plugin's SQL prepared under such a name would answer the client's next look-up in
-- its place; and the client's look-ups name operators unqualified (`t.oid = $1`), so a
-- schema searched before pg_catalog would give them the plugin's operators (which could
-- describe a type as an array of itself, and the client would recurse until its process
-- ended). A failure aborts the transaction, so the plugin's statement sent after it in the
-- same round trip is not even parsed.
CREATE OR REPLACE FUNCTION wasmig.statement_check(path name[]) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan SET jit = off AS $$
DECLARE
    n text;
    first name;
BEGIN
    SELECT p.name INTO n FROM pg_catalog.pg_prepared_statements p WHERE p.from_sql LIMIT 1;
    IF n IS NOT NULL THEN
        RAISE EXCEPTION 'wasmig: the plugin''s SQL prepared statement % (PREPARE); a plugin''s session holds only the statements wasmig prepares', n
            USING ERRCODE = '42501';
    END IF;
    SELECT u.s INTO first FROM pg_catalog.unnest(path) WITH ORDINALITY u(s, i)
     WHERE u.s !~ '^pg_temp_' ORDER BY u.i LIMIT 1;
    IF first IS DISTINCT FROM 'pg_catalog' THEN
        RAISE EXCEPTION 'wasmig: the plugin''s session resolves names in schema % before pg_catalog (search_path %); a plugin''s session searches pg_catalog first', first, path
            USING ERRCODE = '42501';
    END IF;
    -- Code of another plugin's that ran in this session without a check of EXECUTE (a cast
    -- the JSON functions apply, say) could have made temporary objects standing in for
    -- this plugin's own tables, or turned row security on: the temporary schema is searched
    -- last, and row security stays off (another plugin's policy would run as this plugin).
    IF EXISTS (SELECT 1 FROM pg_catalog.unnest(path) WITH ORDINALITY u(s, i)
                WHERE u.s ~ '^pg_temp_' AND u.i < pg_catalog.cardinality(path)) THEN
        RAISE EXCEPTION 'wasmig: the plugin''s session resolves names in its temporary schema before others (search_path %); a plugin''s session searches it last', path
            USING ERRCODE = '42501';
    END IF;
    n := wasmig.foreign_lock(pg_catalog.pg_backend_pid(),
                             (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname = session_user));
    IF n IS NOT NULL THEN
        RAISE EXCEPTION 'wasmig: the step holds a lock outside its namespace (%): PostgreSQL takes some locks before it checks privileges (nextval''s, pg_get_object_address''s) and keeps them to the end of the transaction, where they would block the work of the object''s owner; the step is refused', n
            USING ERRCODE = '42501';
    END IF;
    IF pg_catalog.current_setting('row_security') <> 'off' THEN
        RAISE EXCEPTION 'wasmig: row security is on in the plugin''s session; a plugin''s session keeps it off (another plugin''s policy would run with its rights)'
            USING ERRCODE = '42501';
    END IF;
END
$$;
REVOKE ALL ON FUNCTION wasmig.statement_check(name[]) FROM PUBLIC;

-- What ANALYZE (autovacuum's too, between steps and with no deadline) computes of schema
-- nsp's objects that the calling role owns, kept to what a step could compute itself:
-- - the statistics target of every expression column of the indexes on its tables, and of
--   every column of its tables and materialized views whose type has a statistics function
--   of its own (arrays, ranges, multiranges, tsvector, and domains over them), set to 0.
--   For each index expression, ANALYZE keeps every sample row's value until it is done, and
--   an index holds a compressed or hashed form of a value, so the values can be of any size
--   the plugin's expression makes them (a hash index over repeat(x, 1000) holds four bytes a
--   row); the statistics functions of those types keep every sample value whole, however
--   wide (a range's bounds), hash every element of an array, and fail on values the type
--   itself accepts (a numrange wider than a double), which stops a database-wide ANALYZE at
--   the plugin's table;
-- - the statistics target of every statistics object, set to 0, so that ANALYZE does not
--   build it: its dependencies and ndistinct sort the whole sample once for each subset of
--   its columns, its MCV list holds every sampled value of its columns decompressed at
--   once, and an object on a column whose type has since lost its ordering (a composite
--   given a json attribute) makes every ANALYZE of the table fail;
-- - the statistics target of every column whose type is not one of pg_catalog's base types
--   (a composite, a domain, an enum, an extension's type) or whose collation is not
--   deterministic, set to 0: ANALYZE compares each sampled value with up to 200 others when
--   the type has no ordering (a composite with an xid field), and a nondeterministic
--   collation makes each comparison go through ICU over the whole value;
-- - a column's statistics target above the server's default, set back to the default:
--   ANALYZE samples 300 times the largest target's rows, and keeps every sampled value of a
--   column, decompressed, until that column is done;
-- - the storage parameters of its tables and materialized views (and of their TOAST tables)
--   that say when and how the server's own vacuum and analyze run (autovacuum_*,
--   vacuum_index_cleanup, vacuum_truncate, log_autovacuum_min_duration, and
--   user_catalog_table, which logical decoding reads), and its BRIN indexes'
--   autosummarize, reset: that work is the operator's (a threshold of 0 analyzes the table
--   again after any change of a row, a freeze age of 100,000 vacuums it, unthrottled, every
--   100,000 transactions).
-- Called by the plugin's role (the owner) at the end of every step: a plugin that sets a
-- target again has it set back. Unless `always`, it looks only when the transaction (by the
-- server's own counters, which the plugin's role can neither reset nor turn off) wrote a row
-- of pg_attribute, where every column of a table or an index and its target live, of
-- pg_statistic_ext, where statistics objects and theirs do, or changed one of pg_class,
-- where storage parameters do.
CREATE OR REPLACE FUNCTION wasmig.no_statistics(nsp name, always boolean) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan SET jit = off AS $$
DECLARE
    r record;
    me oid;
    ns oid;
BEGIN
    IF NOT always AND current_setting('track_counts') = 'on'
       AND pg_stat_get_xact_tuples_inserted('pg_catalog.pg_attribute'::regclass)
           + pg_stat_get_xact_tuples_updated('pg_catalog.pg_attribute'::regclass)
           + pg_stat_get_xact_tuples_inserted('pg_catalog.pg_statistic_ext'::regclass)
           + pg_stat_get_xact_tuples_updated('pg_catalog.pg_statistic_ext'::regclass)
           + pg_stat_get_xact_tuples_updated('pg_catalog.pg_class'::regclass) = 0 THEN
        RETURN;
    END IF;
    SELECT o.oid INTO me FROM pg_roles o WHERE o.rolname = current_user;
    SELECT n.oid INTO ns FROM pg_namespace n WHERE n.nspname = nsp;
    FOR r IN SELECT x.indexrelid::regclass AS i, a.attnum
               FROM pg_index x
               JOIN pg_class t ON t.oid = x.indrelid
               JOIN pg_class c ON c.oid = x.indexrelid
               JOIN pg_attribute a ON a.attrelid = x.indexrelid
              WHERE t.relnamespace = ns AND c.relkind = 'i' AND c.relowner = me
                AND a.attnum > 0 AND x.indkey[a.attnum - 1] = 0
                AND a.attstattarget IS DISTINCT FROM 0
    LOOP
        EXECUTE format('ALTER INDEX %s ALTER COLUMN %s SET STATISTICS 0', r.i, r.attnum);
    END LOOP;
    -- One ALTER a relation: each one rebuilds the relation's cached description.
    FOR r IN SELECT c.oid::regclass AS t,
                    CASE c.relkind WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE 'TABLE' END AS k,
                    (SELECT string_agg(format('ALTER COLUMN %I SET STATISTICS %s', x.attname,
                                              CASE WHEN x.costly THEN 0 ELSE -1 END), ', ')
                       FROM (SELECT a.attname, a.attstattarget,
                                    y.typanalyze <> 0 OR y.typtype <> 'b'
                                    OR y.typnamespace <> 'pg_catalog'::regnamespace
                                    OR EXISTS (SELECT 1 FROM pg_collation l
                                                WHERE l.oid = a.attcollation
                                                  AND NOT l.collisdeterministic) AS costly
                               FROM pg_attribute a JOIN pg_type y ON y.oid = a.atttypid
                              WHERE a.attrelid = c.oid AND a.attnum > 0
                                AND NOT a.attisdropped) x
                      WHERE (x.costly AND x.attstattarget IS DISTINCT FROM 0)
                         OR (NOT x.costly AND x.attstattarget
                                              > current_setting('default_statistics_target')::int))
                      AS columns,
                    (SELECT string_agg(quote_ident(o.option_name), ', ')
                       FROM pg_options_to_table(c.reloptions) o
                      WHERE o.option_name LIKE 'autovacuum\_%'
                         OR o.option_name IN ('vacuum_index_cleanup', 'vacuum_truncate',
                                              'log_autovacuum_min_duration',
                                              'user_catalog_table')) AS own,
                    (SELECT string_agg('toast.' || quote_ident(o.option_name), ', ')
                       FROM pg_class z, pg_options_to_table(z.reloptions) o
                      WHERE z.oid = c.reltoastrelid
                        AND (o.option_name LIKE 'autovacuum\_%'
                             OR o.option_name IN ('vacuum_index_cleanup', 'vacuum_truncate',
                                                  'log_autovacuum_min_duration'))) AS toast
               FROM pg_class c
              WHERE c.relnamespace = ns AND c.relkind IN ('r', 'p', 'm') AND c.relowner = me
    LOOP
        IF r.columns IS NOT NULL OR r.own IS NOT NULL OR r.toast IS NOT NULL THEN
            EXECUTE format('ALTER %s %s %s', r.k, r.t,
                           concat_ws(', ', r.columns,
                                     CASE WHEN r.own IS NOT NULL OR r.toast IS NOT NULL
                                          THEN 'RESET (' || concat_ws(', ', r.own, r.toast) || ')'
                                     END));
        END IF;
    END LOOP;
    -- A BRIN index that asks for its ranges to be summarized as they fill puts a request in
    -- the server's one queue of such work for each range, which holds 256 for every
    -- database; those past it are dropped, other databases' included.
    FOR r IN SELECT x.indexrelid::regclass AS i
               FROM pg_index x
               JOIN pg_class t ON t.oid = x.indrelid
               JOIN pg_class c ON c.oid = x.indexrelid
              WHERE t.relnamespace = ns AND c.relowner = me
                AND EXISTS (SELECT 1 FROM pg_options_to_table(c.reloptions) o
                             WHERE o.option_name = 'autosummarize')
    LOOP
        EXECUTE format('ALTER INDEX %s RESET (autosummarize)', r.i);
    END LOOP;
    FOR r IN SELECT format('%I.%I', nsp, x.stxname) AS s
               FROM pg_statistic_ext x
              WHERE x.stxnamespace = ns AND x.stxowner = me
                AND x.stxstattarget IS DISTINCT FROM 0
    LOOP
        EXECUTE format('ALTER STATISTICS %s SET STATISTICS 0', r.s);
    END LOOP;
END
$$;
REVOKE ALL ON FUNCTION wasmig.no_statistics(name, boolean) FROM PUBLIC;
"#;

/// The functions a plugin role may execute, for `GRANT EXECUTE`.
pub(super) const PLUGIN_FUNCTIONS: &str = "wasmig.step_begin(), wasmig.record_step(text, text, \
     text, text, text, bigint, bigint, text, text, text, text, text, text), \
     wasmig.statement_check(name[]), wasmig.foreign_lock(integer, oid), \
     wasmig.others_changed(), wasmig.others_changed_by(), \
     wasmig.dry_run_begin(), wasmig.no_statistics(name, boolean)";

#[cfg(test)]
mod tests {
    #[test]
    fn the_functions_take_the_hosts_lock() {
        let call = format!("pg_advisory_xact_lock({})", super::LOCK_KEY);
        assert!(super::HOST_SCHEMA.contains(&call));
        // and `wasmig.foreign_lock` lets a step hold it.
        let allowed = format!("l.objid::pg_catalog.int8) = {};", super::LOCK_KEY);
        assert!(super::HOST_SCHEMA.contains(&allowed));
    }
}
