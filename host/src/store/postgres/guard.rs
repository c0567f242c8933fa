//! The schema guard on PostgreSQL: after a step, before its commit, the catalogs as the
//! server reports them must show that the plugin's role owns nothing outside its schema and
//! left nothing behind that would run later with someone else's rights.
//!
//! Privileges already keep the plugin's statements inside its schema (it has no rights
//! anywhere else); the guard is about what outlives the step:
//!
//! - everything the role owns (`pg_shdepend`) is in its schema, or in this session's
//!   temporary schema, which goes when the step ends: no large objects, nothing elsewhere;
//!   and every relation, type and function in its schema is the role's, but a range type's
//!   constructors, which the server makes and owns;
//! - no grant on its objects to anyone but the readers the policy names (`SELECT` on
//!   tables, `USAGE` on the schema), and no default privileges of its own;
//! - nothing of its objects, of whatever kind (casts of its types included), depends on a
//!   table, function or operator outside its schema: no view over another schema (a read
//!   grant does not stretch into objects), no foreign key into one, no default taking
//!   another's sequence; nor on anything else of another schema, or of none, but the
//!   system's and extensions' (a column of another table's row type would keep that table
//!   from changing; a text search configuration's mapping, a cast's function would keep the
//!   object from being dropped);
//! - an operator in its schema has only operands of the plugin's own types, and a cast of
//!   its types applies only when asked for (operators are not named with the namespace, and
//!   an implicit cast would let one apply to an application's values);
//! - no expression holds a value of an object identifier type (`regclass`, or an array or
//!   domain of one) but a constant: a column, a function's result or a conversion would name
//!   an object chosen when it runs, recording no dependency (`nextval(r)` would reach
//!   another schema's sequence); and a constant names an object of the plugin's schema or
//!   the system's;
//! - a trigger runs a function of the plugin's own schema; every such function runs as its
//!   owner (`SECURITY DEFINER`, made so by the host) with `EXECUTE` for no one else: the
//!   plugin's role during its steps, its code role between them (`wasmig.code_out`);
//! - an expression that runs with the rights of whoever uses the object (a view's query, a
//!   rule, a column default, a check, an index expression, a policy, a trigger's `WHEN`)
//!   calls only the plugin's own functions, immutable built-in ones, or the few built-in
//!   ones listed in [`ALLOWED_FUNCTIONS`]; the function calls are read from the expression
//!   trees the server stores (`:funcid`, `:opfuncid` and the like), not from the SQL text;
//! - what the server runs as a table's owner, the plugin's role, outside its steps (a foreign
//!   key's check and action, a materialized view's refresh) reaches no function of the
//!   plugin's, which its code role could make run as the caller: no table's check, default,
//!   generated column, partition key, column domain, trigger `WHEN` or rule, and no
//!   materialized view's query, calls one (walked through `pg_depend`), no trigger of the
//!   plugin's fires before a key's action changes a row, and no table forces row security;
//! - a view runs with its owner's rights (`security_invoker` is refused);
//! - no trigger of its own is deferrable, in its schema or on a temporary table, and no
//!   trigger event is still pending on its tables (a check of the server's that calls the
//!   plugin's code could queue one more): nothing of the plugin may run at the commit, after
//!   these checks; nor may a cursor declared `WITH HOLD`, whose query runs at the commit (the
//!   host closes every cursor first);
//! - its role grants no role and is a member of none (up to PostgreSQL 15 a role may grant
//!   itself to another, which would let that plugin's session become it);
//! - its tables, indexes, views, sequences, functions, types, collations, text search
//!   configurations and dictionaries, conversions and statistics are named with its namespace
//!   (`evil__*`), as on SQLite: an application that finds plugins' tables through a search
//!   path listing their schemas never finds one plugin's object under another's name.
//!
//! The objects of the schema are found as `DROP SCHEMA … CASCADE` finds them: from the
//! schema through `pg_depend`, the server's own record of what hangs on what ([`OBJECTS`]),
//! by its index. The guard's work grows with the plugin's schema, not with the database.

use super::*;

/// Built-in functions that are not immutable and may still be called where an expression
/// runs with another role's rights: clocks, random values, sequences (a sequence outside
/// the schema is refused by the dependency check), and functions that format values.
pub(super) const ALLOWED_FUNCTIONS: &[&str] = &[
    "now",
    "statement_timestamp",
    "transaction_timestamp",
    "clock_timestamp",
    "timeofday",
    "random",
    "gen_random_uuid",
    "nextval",
    "currval",
    "date_trunc",
    "date_part",
    "extract",
    "to_char",
    "to_timestamp",
    "to_date",
    "age",
    "timezone",
    "timestamptz",
    "date",
    // Stable only because they format values as the session's settings say (dates, numbers),
    // or call the output functions of their arguments' types: they read nothing else.
    "concat",
    "concat_ws",
    "format",
    "to_json",
    "to_jsonb",
    "row_to_json",
    "array_to_json",
    "json_build_object",
    "jsonb_build_object",
    "json_build_array",
    "jsonb_build_array",
    "json_agg",
    "jsonb_agg",
    "json_object_agg",
    "jsonb_object_agg",
    // The planner's selectivity estimators, which an operator names (`RESTRICT`, `JOIN`):
    // the planner calls them with statistics, not with the rights of a query's rows.
    "eqsel",
    "eqjoinsel",
    "neqsel",
    "neqjoinsel",
    "scalarltsel",
    "scalarltjoinsel",
    "scalarlesel",
    "scalarlejoinsel",
    "scalargtsel",
    "scalargtjoinsel",
    "scalargesel",
    "scalargejoinsel",
    "areasel",
    "areajoinsel",
    "contsel",
    "contjoinsel",
    "matchingsel",
    "matchingjoinsel",
];

/// [`ALLOWED_FUNCTIONS`] as a `text[]` literal, the guard's `$3`.
pub(super) fn allowed_functions() -> String {
    let names: Vec<String> = ALLOWED_FUNCTIONS.iter().map(|s| s.to_string()).collect();
    text_array(&names)
}

/// What would go with the schema `$1` if it were dropped with `CASCADE`, as the server
/// records it in `pg_depend`: what depends on the schema itself (its tables, views,
/// sequences, functions, types, operators, …), then, transitively, what depends on those
/// automatically or internally (indexes, constraints, row and array types, rules, triggers,
/// defaults, policies, owned sequences, TOAST). A normal dependency is followed only from
/// the schema: another schema's view or foreign key over a plugin's table is not the
/// plugin's. Rows `(classid, objid)`; each use also checks the catalog's own namespace
/// column, which keeps TOAST (in `pg_toast`) out.
///
/// Every path by which an object is in the schema leaves such a record (PostgreSQL drops a
/// schema's objects by it); the walk costs index lookups per object of the plugin, where
/// reading `pg_class`, `pg_type` and `pg_proc` by their namespace column reads every row of
/// them, every plugin's included.
const OBJECTS: &str = "
WITH RECURSIVE o(classid, objid) AS (
    SELECT 'pg_catalog.pg_namespace'::pg_catalog.regclass::oid, n.oid
      FROM pg_catalog.pg_namespace n WHERE n.nspname = $1
    UNION
    SELECT d.classid, d.objid
      FROM o JOIN pg_catalog.pg_depend d ON d.refclassid = o.classid AND d.refobjid = o.objid
     WHERE d.deptype IN ('a', 'i', 'P', 'S')
        OR (d.deptype = 'n' AND o.classid = 'pg_catalog.pg_namespace'::pg_catalog.regclass)
)
SELECT pg_catalog.array_agg(objid) FILTER (WHERE classid = 'pg_catalog.pg_class'::pg_catalog.regclass),
       pg_catalog.array_agg(objid) FILTER (WHERE classid = 'pg_catalog.pg_proc'::pg_catalog.regclass),
       pg_catalog.array_agg(objid) FILTER (WHERE classid = 'pg_catalog.pg_type'::pg_catalog.regclass),
       pg_catalog.array_agg(objid) FILTER (WHERE classid = 'pg_catalog.pg_constraint'::pg_catalog.regclass),
       pg_catalog.array_agg(objid) FILTER (WHERE classid = 'pg_catalog.pg_operator'::pg_catalog.regclass),
       pg_catalog.array_agg(classid ORDER BY classid, objid),
       pg_catalog.array_agg(objid ORDER BY classid, objid)
  FROM o";

/// The plpgsql variables [`OBJECTS`] fills, which the guard's queries read: the objects of
/// five catalogs, then every object found, of whatever catalog, as the pairs
/// `(o_classes[i], o_ids[i])`.
const OBJECT_VARIABLES: &str = "o_rels oid[]; o_procs oid[]; o_types oid[]; o_cons oid[]; \
     o_opers oid[]; o_classes oid[]; o_ids oid[];";

/// Fills [`OBJECT_VARIABLES`] (a plpgsql statement).
fn find_objects() -> String {
    format!(
        "SELECT * INTO o_rels, o_procs, o_types, o_cons, o_opers, o_classes, o_ids \
         FROM ({OBJECTS}) x;"
    )
}

/// The bytes the schema's tables (with their indexes and TOAST), materialized views and
/// sequences take on disk, as one line `#<bytes>`. `$1`: the schema; `o_rels` from
/// [`OBJECTS`].
const SCHEMA_BYTES: &str = "
SELECT '#' || coalesce(sum(pg_catalog.pg_total_relation_size(c.oid)), 0)::text
  FROM pg_catalog.pg_class c
 WHERE c.oid = ANY (o_rels)
   AND c.relnamespace = (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = $1)
   AND c.relkind IN ('r', 'm', 'S')";

/// The plugin's objects (its role's and its code role's), one line each
/// (`table notes.notes__note`), for the step's report. `$1`: the schema.
const OWNED_OBJECTS: &str = "
SELECT o.type || ' ' || o.identity
  FROM pg_catalog.pg_shdepend d
  CROSS JOIN LATERAL pg_catalog.pg_identify_object(d.classid, d.objid, 0) o
 WHERE d.refclassid = 'pg_catalog.pg_authid'::pg_catalog.regclass
   AND d.refobjid IN (SELECT oid FROM pg_catalog.pg_roles
                       WHERE rolname IN (session_user,
                                         'wasmig:' || pg_catalog.substr(session_user::pg_catalog.text, 8)))
   AND d.deptype = 'o'
   AND d.dbid = (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database())
   AND o.schema = $1
 ORDER BY 1";

/// What the values of the type in column `t` of `$alias` are made of, one type a row: a
/// domain's base, an array's element, a range's subtype, a multirange's range, a
/// composite's attributes (SQL for a `LATERAL` subquery).
#[rustfmt::skip]
macro_rules! made_of {
    ($alias:literal) => {
        concat!(
            "SELECT e.typelem FROM pg_catalog.pg_type e
              WHERE e.oid = ", $alias, ".t AND e.typelem <> 0
             UNION ALL
             SELECT e.typbasetype FROM pg_catalog.pg_type e
              WHERE e.oid = ", $alias, ".t AND e.typbasetype <> 0
             UNION ALL
             SELECT r.rngsubtype FROM pg_catalog.pg_range r WHERE r.rngtypid = ", $alias, ".t
             UNION ALL
             SELECT r.rngtypid FROM pg_catalog.pg_range r WHERE r.rngmultitypid = ", $alias, ".t
             UNION ALL
             SELECT a.atttypid FROM pg_catalog.pg_type e
               JOIN pg_catalog.pg_attribute a ON a.attrelid = e.typrelid
              WHERE e.oid = ", $alias, ".t AND e.typrelid <> 0 AND a.attnum > 0
                AND NOT a.attisdropped"
        )
    };
}

/// The objects of other schemas (not of any session's temporary schema, whose objects go
/// when their session ends, nor TOAST's) that depend on the schema's objects, one line each:
/// `>key<TAB>description`. `DROP … CASCADE`, or dropping a plugin's column or constraint
/// with `CASCADE`, drops them whoever owns them, and `ALTER TYPE … DROP ATTRIBUTE CASCADE`
/// changes the values of another table's column of the type: the host compares the lists
/// before and after a step. The key is the dependent's description, with what the values of
/// the plugin's types it holds mean (every type down the chain of domains, arrays, ranges and
/// composites), so that an object the server makes again (a foreign key rebuilt when the
/// column it references changes type) is the same, and one whose values change is not. The schema's objects (and, as the walk finds
/// them, an application's partitions of its tables) in the variables [`OBJECTS`] fills.
const DEPENDENTS: &str = concat!("
WITH mine(c, o) AS MATERIALIZED (
    SELECT * FROM ROWS FROM (pg_catalog.unnest(o_classes), pg_catalog.unnest(o_ids)) u
), outside AS (
    SELECT DISTINCT d.classid, d.objid, d.objsubid, d.refclassid, d.refobjid,
           pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid) AS what
      FROM mine m CROSS JOIN LATERAL (
           SELECT x.classid, x.objid, x.objsubid, x.refclassid, x.refobjid
             FROM pg_catalog.pg_depend x
            WHERE x.refclassid = m.c AND x.refobjid = m.o AND x.deptype IN ('n', 'a')
           OFFSET 0) d
      -- The dependent's schema: its own, or its table's for what hangs on a table (a rule,
      -- a trigger, a policy, a column's default), which the server names without one.
      CROSS JOIN LATERAL (
           SELECT coalesce(
               (SELECT i.schema FROM pg_catalog.pg_identify_object(d.classid, d.objid, 0) i),
               (SELECT n.nspname::text
                  FROM pg_catalog.pg_class c
                  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                 WHERE c.oid = CASE d.classid
                     WHEN 'pg_catalog.pg_rewrite'::pg_catalog.regclass
                       THEN (SELECT r.ev_class FROM pg_catalog.pg_rewrite r WHERE r.oid = d.objid)
                     WHEN 'pg_catalog.pg_trigger'::pg_catalog.regclass
                       THEN (SELECT g.tgrelid FROM pg_catalog.pg_trigger g WHERE g.oid = d.objid)
                     WHEN 'pg_catalog.pg_policy'::pg_catalog.regclass
                       THEN (SELECT y.polrelid FROM pg_catalog.pg_policy y WHERE y.oid = d.objid)
                     WHEN 'pg_catalog.pg_attrdef'::pg_catalog.regclass
                       THEN (SELECT a.adrelid FROM pg_catalog.pg_attrdef a WHERE a.oid = d.objid)
                     END)) AS schema) i
     WHERE i.schema IS NOT NULL AND i.schema <> $1 AND i.schema !~ '^pg_(toast|temp_)'
), functions AS (
    -- What every function of the schema does, as one digest: a domain's check or an
    -- application's index calls one, which may call the others.
    SELECT ' [' || coalesce(pg_catalog.md5(pg_catalog.string_agg(
               pg_catalog.concat_ws(' ', p.oid, p.prolang, p.prokind, p.prosrc, p.prosqlbody,
                   p.provolatile, p.proisstrict, p.proretset, p.proconfig, p.prorettype,
                   p.proargtypes, p.proallargtypes, p.proargmodes, p.proargdefaults),
               ' ' ORDER BY p.oid)), '') || ']' AS bodies
      FROM pg_catalog.pg_proc p
     WHERE p.pronamespace = (SELECT n.oid FROM pg_catalog.pg_namespace n WHERE n.nspname = $1)
)
SELECT '>' || o.what || ' (' || coalesce((
           -- Every type the values are made of, down the chain (a domain's base, an array's
           -- elements, a range's subtype, a multirange's range, a composite's attributes),
           -- each with what its values mean: a composite's attributes by position (dropped
           -- ones included), an enum's labels in order, a domain's default, NOT NULL and
           -- checks. Changing any of them changes the dependent's values.
           WITH RECURSIVE ty(t) AS (
               SELECT o.refobjid
               UNION
               SELECT x.t
                 FROM ty CROSS JOIN LATERAL (", made_of!("ty"), ") x(t)
           )
           SELECT pg_catalog.string_agg(pg_catalog.format_type(u.t, NULL) || ' {' || pg_catalog.concat_ws('; ',
                      (SELECT pg_catalog.string_agg(a.attnum || ' ' || CASE WHEN a.attisdropped
                                  THEN 'dropped' ELSE a.attname || ' '
                                  || pg_catalog.format_type(a.atttypid, a.atttypmod) END,
                                  ', ' ORDER BY a.attnum)
                         FROM pg_catalog.pg_type e
                         JOIN pg_catalog.pg_attribute a ON a.attrelid = e.typrelid
                        WHERE e.oid = u.t AND e.typrelid <> 0 AND a.attnum > 0),
                      (SELECT pg_catalog.string_agg(l.enumlabel::text, ', ' ORDER BY l.enumsortorder)
                         FROM pg_catalog.pg_enum l WHERE l.enumtypid = u.t),
                      (SELECT CASE WHEN e.typnotnull THEN 'not null' END
                              || coalesce(' default ' || e.typdefault, '')
                         FROM pg_catalog.pg_type e WHERE e.oid = u.t AND e.typtype = 'd'),
                      (SELECT pg_catalog.string_agg(pg_catalog.pg_get_constraintdef(k.oid),
                                                    ', ' ORDER BY k.conname)
                         FROM pg_catalog.pg_constraint k WHERE k.contypid = u.t)) || '}',
                      '; ' ORDER BY u.t)
             FROM (SELECT DISTINCT ty.t FROM ty
                    WHERE (SELECT e.typnamespace FROM pg_catalog.pg_type e WHERE e.oid = ty.t)
                          = (SELECT n.oid FROM pg_catalog.pg_namespace n WHERE n.nspname = $1)) u
       ), '') || ')' || (SELECT f.bodies FROM functions f)
       || E'\t' || o.what
  FROM outside o
 WHERE o.what IS NOT NULL
   AND o.refclassid = 'pg_catalog.pg_type'::pg_catalog.regclass
UNION
-- What calls a plugin's function (an application's index or default over it) depends on
-- what every function of the plugin does: one calls others, and a body names nothing the
-- server records.
SELECT '>' || o.what || (SELECT f.bodies FROM functions f) || E'\t' || o.what
  FROM outside o
 WHERE o.what IS NOT NULL
   AND o.refclassid = 'pg_catalog.pg_proc'::pg_catalog.regclass
UNION
-- What uses a plugin's text search configuration (an application's index over
-- `to_tsvector('plugin.config', …)`) or dictionary depends on what they make of a text: the
-- configuration's parser and mappings, and each dictionary's template and options.
SELECT '>' || o.what || ' [' || coalesce((
           SELECT pg_catalog.md5(pg_catalog.string_agg(pg_catalog.concat_ws(' ',
                      m.maptokentype, m.mapseqno, d.oid, d.dicttemplate, d.dictinitoption),
                      ' ' ORDER BY m.maptokentype, m.mapseqno))
             FROM pg_catalog.pg_ts_config_map m
             JOIN pg_catalog.pg_ts_dict d ON d.oid = m.mapdict
            WHERE m.mapcfg = o.refobjid), '')
       || coalesce((SELECT ' ' || f.cfgparser FROM pg_catalog.pg_ts_config f WHERE f.oid = o.refobjid), '')
       || coalesce((SELECT ' ' || pg_catalog.concat_ws(' ', d.dicttemplate, d.dictinitoption)
                      FROM pg_catalog.pg_ts_dict d WHERE d.oid = o.refobjid), '')
       || ']' || E'\t' || o.what
  FROM outside o
 WHERE o.what IS NOT NULL
   AND o.refclassid IN ('pg_catalog.pg_ts_config'::pg_catalog.regclass,
                        'pg_catalog.pg_ts_dict'::pg_catalog.regclass)
UNION
SELECT '>' || o.what || E'\t' || o.what
  FROM outside o
 WHERE o.what IS NOT NULL
   AND o.refclassid NOT IN ('pg_catalog.pg_type'::pg_catalog.regclass,
                            'pg_catalog.pg_proc'::pg_catalog.regclass,
                            'pg_catalog.pg_ts_config'::pg_catalog.regclass,
                            'pg_catalog.pg_ts_dict'::pg_catalog.regclass)");

/// The grants on the schema's objects to anyone but their owner, one line each, as the
/// step's findings word them, after `a` if the policy allows it (`SELECT` on the tables and
/// `USAGE` on the schema to a role of `readers`, the SQL of a `text[]`), `x` if not. A grant
/// that stood before the step (one the database's owner made) is not the step's: the host
/// compares the lines. The schema's objects in the variables [`OBJECTS`] fills; `$1`: the
/// schema.
fn grants(readers: &str) -> String {
    format!(
        r#"
WITH s AS (
    SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = $1
), code AS (
    -- The plugin's code role: what the host grants it (the use of the schema, to read and
    -- write the tables and sequences, without the grant option) is not the step's.
    SELECT oid FROM pg_catalog.pg_roles
     WHERE rolname = 'wasmig:' || pg_catalog.substr(session_user::pg_catalog.text, 8)
), rel AS MATERIALIZED (
    SELECT c.oid, c.relowner, c.relacl FROM pg_catalog.pg_class c
     WHERE c.oid = ANY (o_rels) AND c.relnamespace = (SELECT oid FROM s)
), procs AS MATERIALIZED (
    SELECT p.oid, p.proowner, p.proacl FROM pg_catalog.pg_proc p
     WHERE p.oid = ANY (o_procs) AND p.pronamespace = (SELECT oid FROM s)
), types AS MATERIALIZED (
    SELECT t.oid, t.typowner, t.typacl FROM pg_catalog.pg_type t
     WHERE t.oid = ANY (o_types) AND t.typnamespace = (SELECT oid FROM s)
)
SELECT CASE WHEN a.privilege_type = 'SELECT' AND NOT a.is_grantable
                 AND pg_catalog.pg_get_userbyid(a.grantee)::text = ANY ({readers})
            THEN 'a' ELSE 'x' END
       || 'the step granted ' || a.privilege_type || ' on ' || c.oid::pg_catalog.regclass::text || ' to '
       || CASE a.grantee WHEN 0 THEN 'PUBLIC' ELSE pg_catalog.pg_get_userbyid(a.grantee)::text END
       || CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END
       || '; another plugin reads a plugin''s tables only through a grant in the policy'
  FROM rel c CROSS JOIN LATERAL pg_catalog.aclexplode(c.relacl) a
 WHERE a.grantee <> c.relowner
   AND NOT (a.grantee IS NOT DISTINCT FROM (SELECT oid FROM code) AND NOT a.is_grantable
            AND a.privilege_type IN ('SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'USAGE'))
UNION ALL
SELECT CASE WHEN a.privilege_type = 'USAGE' AND NOT a.is_grantable
                 AND pg_catalog.pg_get_userbyid(a.grantee)::text = ANY ({readers})
            THEN 'a' ELSE 'x' END
       || 'the step granted ' || a.privilege_type || ' on schema ' || $1 || ' to '
       || CASE a.grantee WHEN 0 THEN 'PUBLIC' ELSE pg_catalog.pg_get_userbyid(a.grantee)::text END
       || CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END
  FROM pg_catalog.pg_namespace n CROSS JOIN LATERAL pg_catalog.aclexplode(n.nspacl) a
 WHERE n.oid = (SELECT oid FROM s) AND a.grantee <> n.nspowner
   AND NOT (a.grantee IS NOT DISTINCT FROM (SELECT oid FROM code) AND NOT a.is_grantable
            AND a.privilege_type = 'USAGE')
UNION ALL
SELECT 'x' || 'the step granted EXECUTE on ' || p.oid::pg_catalog.regprocedure::text || ' to '
       || CASE a.grantee WHEN 0 THEN 'PUBLIC' ELSE pg_catalog.pg_get_userbyid(a.grantee)::text END
       || '; a plugin''s functions run as the plugin and are its own to call'
  FROM procs p CROSS JOIN LATERAL pg_catalog.aclexplode(p.proacl) a
 WHERE a.grantee <> p.proowner
UNION ALL
SELECT 'x' || 'the step granted USAGE on ' || pg_catalog.pg_describe_object('pg_catalog.pg_type'::pg_catalog.regclass, t.oid, 0)
       || ' to ' || CASE a.grantee WHEN 0 THEN 'PUBLIC' ELSE pg_catalog.pg_get_userbyid(a.grantee)::text END
       || CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END
       || '; a plugin''s types are granted by no one but the server'
  FROM types t CROSS JOIN LATERAL pg_catalog.aclexplode(t.typacl) a
 WHERE a.grantee <> t.typowner AND NOT (a.grantee = 0 AND NOT a.is_grantable)
UNION ALL
SELECT 'x' || 'the step granted ' || a.privilege_type || ' on column ' || t.attname || ' of '
       || c.oid::pg_catalog.regclass::text || ' to '
       || CASE a.grantee WHEN 0 THEN 'PUBLIC' ELSE pg_catalog.pg_get_userbyid(a.grantee)::text END
       || '; another plugin reads a plugin''s tables only through a grant in the policy'
  FROM rel c
  CROSS JOIN LATERAL (
       SELECT x.attname, x.attacl FROM pg_catalog.pg_attribute x
        WHERE x.attrelid = c.oid OFFSET 0) t
  CROSS JOIN LATERAL pg_catalog.aclexplode(t.attacl) a
 WHERE a.grantee <> c.relowner
"#
    )
}

/// Makes every function of the schema that the plugin's role owns run as its owner and be
/// executable by no one else (statements of a plpgsql block declaring `routine record`), in
/// one scan of the schema's functions (`o_procs` from [`OBJECTS`]). Runs on the plugin's
/// session. The only others a plugin's schema may hold are a range type's constructors,
/// which the server makes and owns: built-in code that the plugin cannot change (any other
/// object in the schema that its role does not own is refused: [`FINDINGS`]).
const NEUTRALISE: &str = "
    FOR routine IN SELECT p.oid::pg_catalog.regprocedure AS id,
                          p.prokind IN ('f', 'p') AND NOT p.prosecdef AS invoker,
                          p.proacl IS NULL OR EXISTS (
                              SELECT 1 FROM pg_catalog.aclexplode(p.proacl) a
                               WHERE a.grantee <> p.proowner) AS granted
                     FROM pg_catalog.pg_proc p
                    WHERE p.oid = ANY (o_procs)
                      AND p.pronamespace = (SELECT oid FROM pg_catalog.pg_namespace
                                             WHERE nspname = $1)
                      AND p.proowner = (SELECT oid FROM pg_catalog.pg_roles
                                         WHERE rolname = session_user)
    LOOP
        IF routine.invoker THEN
            EXECUTE pg_catalog.format('ALTER ROUTINE %s SECURITY DEFINER', routine.id);
        END IF;
        IF routine.granted THEN
            EXECUTE pg_catalog.format('REVOKE ALL ON ROUTINE %s FROM PUBLIC', routine.id);
        END IF;
    END LOOP;
";

/// What the plugin left that it may not: one line per finding. `$1`: the schema; `$2`: the
/// roles that may read it (`text[]`); `$3`: [`ALLOWED_FUNCTIONS`] (`text[]`); `$4`: the
/// role's settings as the host set them (`text[]`, `name=value`); the schema's objects in
/// the variables [`OBJECTS`] fills.
const FINDINGS: &str = concat!(
    r#"
WITH RECURSIVE me AS (
    SELECT oid FROM pg_catalog.pg_roles WHERE rolname = session_user
), s AS (
    SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = $1
), rel AS MATERIALIZED (
    SELECT c.oid, c.relowner, c.relkind, c.reloptions, c.relname
      FROM pg_catalog.pg_class c
     WHERE c.oid = ANY (o_rels) AND c.relnamespace = (SELECT oid FROM s)
), procs AS MATERIALIZED (
    SELECT p.oid, p.proowner, p.proacl, p.proname, p.prolang, p.prosrc FROM pg_catalog.pg_proc p
     WHERE p.oid = ANY (o_procs) AND p.pronamespace = (SELECT oid FROM s)
), types AS MATERIALIZED (
    SELECT t.oid, t.typdefaultbin, t.typname, t.typrelid AS relid, t.typowner
      FROM pg_catalog.pg_type t
     WHERE t.oid = ANY (o_types) AND t.typnamespace = (SELECT oid FROM s)
), cons AS MATERIALIZED (
    SELECT k.oid, k.conbin, k.contype FROM pg_catalog.pg_constraint k
     WHERE k.oid = ANY (o_cons) AND k.connamespace = (SELECT oid FROM s)
), owner_starts(head, tail, classid, objid, skip) AS (
    -- Where what the server runs as a table's owner can start (see the findings below), with
    -- the finding's words before and after the function it reaches. A foreign key's action
    -- fires the triggers of the plugin's that fire before the change it makes (an update may
    -- move a partitioned table's row to another partition: a delete there, an insert here).
    -- Every table's own expressions: its checks, defaults, generated columns, partition key,
    -- its columns' types (their domains' checks), its triggers' WHEN and its rules, which the
    -- server evaluates in the queries it runs as the owner (a key's action writes the table;
    -- its checks plan the referenced table's queries, and planning folds a call whose
    -- arguments are constants, a check's among them). A materialized view: its query.
    SELECT 'the foreign key ' || pg_catalog.quote_ident(k.conname::pg_catalog.text) || ' of '
           || k.conrelid::pg_catalog.regclass::pg_catalog.text || ' has an action (CASCADE, SET '
           || 'NULL or SET DEFAULT) and '
           || pg_catalog.pg_describe_object('pg_catalog.pg_trigger'::pg_catalog.regclass, g.oid, 0)
           || ', which fires before the change (with no check of EXECUTE), reaches ',
           ': the server runs the action, with what it reaches, as the table''s owner, the '
           || 'plugin''s role, whoever changed the referenced row, outside the plugin''s steps; '
           || 'make the trigger AFTER, or make the key NO ACTION or RESTRICT',
           'pg_catalog.pg_proc'::pg_catalog.regclass::oid, g.tgfoid, 0::oid
      FROM pg_catalog.pg_constraint k
      CROSS JOIN LATERAL (
           SELECT k.confdeltype = 'c' AS deletes,
                  k.confdeltype IN ('n', 'd') OR k.confupdtype IN ('c', 'n', 'd') AS updates) e
      JOIN pg_catalog.pg_trigger g ON g.tgrelid = k.conrelid
     WHERE k.oid IN (SELECT oid FROM cons) AND k.contype = 'f' AND NOT g.tgisinternal
       AND (g.tgtype::pg_catalog.int4 & 2) = 2
       AND ((e.deletes AND (g.tgtype::pg_catalog.int4 & 8) = 8)
            OR (e.updates AND (g.tgtype::pg_catalog.int4 & 28) <> 0))
    UNION ALL
    SELECT CASE x.classid
                WHEN 'pg_catalog.pg_trigger'::pg_catalog.regclass THEN 'the WHEN of ' ELSE '' END
           || pg_catalog.pg_describe_object(x.classid, x.objid, 0) || ' reaches ',
           ': the server evaluates a table''s expressions (checks, defaults, generated columns, '
           || 'partition key, its columns'' domains, its triggers'' WHEN, its rules) as the '
           || 'table''s owner, the plugin''s role, in what it runs as the owner outside the '
           || 'plugin''s steps (a foreign key''s check or action, a refresh; planning folds a '
           || 'call whose arguments are constants), where the plugin''s code, made to run as '
           || 'its caller, would run as that role; a plugin''s tables'' expressions call no '
           || 'function of the plugin''s',
           x.classid, x.objid, x.skip
      FROM (SELECT 'pg_catalog.pg_class'::pg_catalog.regclass::oid AS classid, c.oid AS objid,
                   0::oid AS skip
              FROM rel c
             WHERE c.relkind IN ('r', 'p')
            UNION ALL
            SELECT 'pg_catalog.pg_constraint'::pg_catalog.regclass::oid, c.oid, 0::oid
              FROM pg_catalog.pg_constraint c
             WHERE c.conrelid IN (SELECT oid FROM rel) AND c.contype = 'c'
            UNION ALL
            SELECT 'pg_catalog.pg_attrdef'::pg_catalog.regclass::oid, a.oid, 0::oid
              FROM pg_catalog.pg_attrdef a WHERE a.adrelid IN (SELECT oid FROM rel)
            UNION ALL
            SELECT 'pg_catalog.pg_trigger'::pg_catalog.regclass::oid, g.oid, g.tgfoid
              FROM pg_catalog.pg_trigger g
             WHERE g.tgrelid IN (SELECT oid FROM rel) AND NOT g.tgisinternal
               AND g.tgqual IS NOT NULL
            UNION ALL
            SELECT 'pg_catalog.pg_rewrite'::pg_catalog.regclass::oid, r.oid, 0::oid
              FROM pg_catalog.pg_rewrite r
             WHERE r.ev_class IN (SELECT oid FROM rel) AND r.rulename <> '_RETURN') x
    UNION ALL
    SELECT pg_catalog.pg_describe_object('pg_catalog.pg_class'::pg_catalog.regclass, m.oid, 0)
           || ' reaches ',
           ': the server runs a materialized view''s query as its owner, the plugin''s role, '
           || 'whenever anyone refreshes it, outside the plugin''s steps; a materialized '
           || 'view''s query, and the views, operators and domains it reaches, call no function '
           || 'of the plugin''s',
           'pg_catalog.pg_rewrite'::pg_catalog.regclass::oid, r.oid, 0::oid
      FROM rel m JOIN pg_catalog.pg_rewrite r ON r.ev_class = m.oid
     WHERE m.relkind = 'm'
), owner_reach(head, tail, classid, objid, skip) AS (
    -- What runs from there, by the server's own records: what an expression calls, converts
    -- to or reads (pg_depend), a view's query, an operator's function, a domain's checks and
    -- what a type's values are made of. A function is not walked into: the plugin's are the
    -- finding, and built-in ones call nothing of the plugin's.
    SELECT * FROM owner_starts
    UNION
    SELECT w.head, w.tail, n.classid, n.objid, 0::oid
      FROM owner_reach w CROSS JOIN LATERAL (
           SELECT x.refclassid, x.refobjid FROM pg_catalog.pg_depend x
            WHERE x.classid = w.classid AND x.objid = w.objid AND x.refobjid <> w.skip
              AND w.classid <> 'pg_catalog.pg_proc'::pg_catalog.regclass
              AND x.refclassid IN ('pg_catalog.pg_proc'::pg_catalog.regclass,
                                   'pg_catalog.pg_class'::pg_catalog.regclass,
                                   'pg_catalog.pg_type'::pg_catalog.regclass,
                                   'pg_catalog.pg_operator'::pg_catalog.regclass)
           UNION ALL
           SELECT 'pg_catalog.pg_rewrite'::pg_catalog.regclass::oid, r.oid
             FROM pg_catalog.pg_rewrite r
            WHERE w.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
              AND r.ev_class = w.objid AND r.rulename = '_RETURN'
           UNION ALL
           SELECT 'pg_catalog.pg_proc'::pg_catalog.regclass::oid, o.oprcode::oid
             FROM pg_catalog.pg_operator o
            WHERE w.classid = 'pg_catalog.pg_operator'::pg_catalog.regclass AND o.oid = w.objid
           UNION ALL
           SELECT 'pg_catalog.pg_constraint'::pg_catalog.regclass::oid, c.oid
             FROM pg_catalog.pg_constraint c
            WHERE w.classid = 'pg_catalog.pg_type'::pg_catalog.regclass
              AND c.contypid = w.objid AND c.contype = 'c'
           UNION ALL
           SELECT 'pg_catalog.pg_type'::pg_catalog.regclass::oid, m.t
             FROM (SELECT w.objid AS t
                    WHERE w.classid = 'pg_catalog.pg_type'::pg_catalog.regclass) v
             CROSS JOIN LATERAL ("#,
    made_of!("v"),
    r#") m(t)) n(classid, objid)
), opers AS MATERIALIZED (
    SELECT o.oid, o.oprcode, o.oprrest, o.oprjoin FROM pg_catalog.pg_operator o
     WHERE o.oid = ANY (o_opers) AND o.oprnamespace = (SELECT oid FROM s)
), operands(oper, t) AS (
    -- Each operand's type, then the type a domain is over and an array's element, down to
    -- the type whose values they hold: a domain or an array of the plugin's over a built-in
    -- type takes that type's values. The walk has no cap: no domain is over itself and no
    -- array's element is an array, so every chain ends, however long a plugin makes it.
    SELECT o.oid, x.t
      FROM pg_catalog.pg_operator o CROSS JOIN LATERAL (VALUES (o.oprleft), (o.oprright)) x(t)
     WHERE o.oid IN (SELECT oid FROM opers) AND x.t <> 0
    UNION ALL
    SELECT p.oper, CASE WHEN ty.typtype = 'd' THEN ty.typbasetype ELSE ty.typelem END
      FROM operands p JOIN pg_catalog.pg_type ty ON ty.oid = p.t
     WHERE ty.typtype = 'd' OR (ty.typelem <> 0 AND ty.typcategory = 'A')
), mine(classid, objid) AS MATERIALIZED (
    -- Every object of the schema, of whatever catalog, as `DROP SCHEMA … CASCADE` finds it:
    -- what [`OBJECTS`] found (text search configurations and dictionaries, conversions,
    -- statistics, collations, what hangs on the relations, …), and the casts and transforms
    -- of its types, which are in no schema and hang on a type by a normal dependency (a
    -- cast needs the ownership of one of its types).
    SELECT u.c::pg_catalog.regclass, u.o
      FROM ROWS FROM (pg_catalog.unnest(o_classes), pg_catalog.unnest(o_ids)) u(c, o)
    UNION SELECT 'pg_catalog.pg_class'::pg_catalog.regclass, oid FROM rel
    UNION SELECT 'pg_catalog.pg_proc'::pg_catalog.regclass, oid FROM procs
    UNION SELECT 'pg_catalog.pg_type'::pg_catalog.regclass, oid FROM types
    UNION SELECT 'pg_catalog.pg_operator'::pg_catalog.regclass, oid FROM opers
    UNION SELECT 'pg_catalog.pg_constraint'::pg_catalog.regclass, oid FROM cons
    UNION SELECT 'pg_catalog.pg_attrdef'::pg_catalog.regclass, a.oid
        FROM pg_catalog.pg_attrdef a WHERE a.adrelid IN (SELECT oid FROM rel)
    UNION SELECT 'pg_catalog.pg_rewrite'::pg_catalog.regclass, r.oid
        FROM pg_catalog.pg_rewrite r WHERE r.ev_class IN (SELECT oid FROM rel)
    UNION SELECT 'pg_catalog.pg_trigger'::pg_catalog.regclass, g.oid
        FROM pg_catalog.pg_trigger g WHERE g.tgrelid IN (SELECT oid FROM rel)
    UNION SELECT 'pg_catalog.pg_policy'::pg_catalog.regclass, y.oid
        FROM pg_catalog.pg_policy y WHERE y.polrelid IN (SELECT oid FROM rel)
    UNION SELECT 'pg_catalog.pg_cast'::pg_catalog.regclass, c.oid
        FROM pg_catalog.pg_cast c
       WHERE c.castsource IN (SELECT oid FROM types) OR c.casttarget IN (SELECT oid FROM types)
    UNION SELECT 'pg_catalog.pg_transform'::pg_catalog.regclass, x.oid
        FROM pg_catalog.pg_transform x WHERE x.trftype IN (SELECT oid FROM types)
    UNION SELECT 'pg_catalog.pg_namespace'::pg_catalog.regclass, oid FROM s
), analyzed(what, tree) AS (
    -- The expressions of the plugin's indexes (and their predicates) and statistics objects.
    SELECT pg_catalog.pg_describe_object('pg_catalog.pg_class'::pg_catalog.regclass,
                                         i.indexrelid, 0),
           coalesce(i.indexprs::text, '') || coalesce(i.indpred::text, '')
      FROM rel CROSS JOIN LATERAL (
           SELECT * FROM pg_catalog.pg_index y WHERE y.indrelid = rel.oid OFFSET 0) i
    UNION ALL
    SELECT pg_catalog.pg_describe_object('pg_catalog.pg_statistic_ext'::pg_catalog.regclass,
                                         e.oid, 0),
           coalesce(e.stxexprs::text, '')
      FROM rel CROSS JOIN LATERAL (
           SELECT * FROM pg_catalog.pg_statistic_ext y WHERE y.stxrelid = rel.oid OFFSET 0) e
), trees(what, tree) AS (
    SELECT pg_catalog.pg_describe_object('pg_catalog.pg_rewrite'::pg_catalog.regclass, r.oid, 0),
           r.ev_action::text || coalesce(r.ev_qual::text, '')
      FROM pg_catalog.pg_rewrite r WHERE r.ev_class IN (SELECT oid FROM rel)
    UNION ALL SELECT pg_catalog.pg_describe_object('pg_catalog.pg_attrdef'::pg_catalog.regclass, a.oid, 0),
           a.adbin::text
      FROM pg_catalog.pg_attrdef a WHERE a.adrelid IN (SELECT oid FROM rel)
    UNION ALL SELECT pg_catalog.pg_describe_object('pg_catalog.pg_constraint'::pg_catalog.regclass, k.oid, 0),
           k.conbin::text
      FROM cons k WHERE k.conbin IS NOT NULL
    UNION ALL SELECT pg_catalog.pg_describe_object('pg_catalog.pg_class'::pg_catalog.regclass, i.indexrelid, 0),
           coalesce(i.indexprs::text, '') || coalesce(i.indpred::text, '')
      FROM rel CROSS JOIN LATERAL (
           SELECT * FROM pg_catalog.pg_index x WHERE x.indrelid = rel.oid OFFSET 0) i
    UNION ALL SELECT pg_catalog.pg_describe_object('pg_catalog.pg_trigger'::pg_catalog.regclass, g.oid, 0),
           g.tgqual::text
      FROM pg_catalog.pg_trigger g WHERE g.tgrelid IN (SELECT oid FROM rel) AND g.tgqual IS NOT NULL
    UNION ALL SELECT pg_catalog.pg_describe_object('pg_catalog.pg_policy'::pg_catalog.regclass, y.oid, 0),
           coalesce(y.polqual::text, '') || coalesce(y.polwithcheck::text, '')
      FROM pg_catalog.pg_policy y WHERE y.polrelid IN (SELECT oid FROM rel)
    UNION ALL SELECT pg_catalog.pg_describe_object('pg_catalog.pg_type'::pg_catalog.regclass, t.oid, 0),
           t.typdefaultbin::text
      FROM types t WHERE t.typdefaultbin IS NOT NULL
    -- A function's argument defaults are evaluated by the query that calls it, with the
    -- caller's rights, before the function (which runs as the plugin) starts; the stored
    -- tree of the view or default that calls it does not hold them.
    UNION ALL SELECT pg_catalog.pg_describe_object('pg_catalog.pg_proc'::pg_catalog.regclass, x.oid, 0),
           x.proargdefaults::text
      FROM procs p CROSS JOIN LATERAL (
           SELECT y.oid, y.proargdefaults FROM pg_catalog.pg_proc y WHERE y.oid = p.oid OFFSET 0) x
     WHERE x.proargdefaults IS NOT NULL
    UNION ALL SELECT pg_catalog.pg_describe_object('pg_catalog.pg_proc'::pg_catalog.regclass, g.aggfnoid, 0),
           ':funcid ' || g.aggtransfn::oid || ' :funcid ' || g.aggfinalfn::oid
           || ' :funcid ' || g.aggcombinefn::oid || ' :funcid ' || g.aggserialfn::oid
           || ' :funcid ' || g.aggdeserialfn::oid || ' :funcid ' || g.aggmtransfn::oid
           || ' :funcid ' || g.aggminvtransfn::oid || ' :funcid ' || g.aggmfinalfn::oid
      FROM procs p JOIN pg_catalog.pg_aggregate g ON g.aggfnoid = p.oid
    UNION ALL SELECT pg_catalog.pg_describe_object('pg_catalog.pg_operator'::pg_catalog.regclass, o.oid, 0),
           ':funcid ' || o.oprcode::oid || ' :funcid ' || o.oprrest::oid || ' :funcid ' || o.oprjoin::oid
      FROM opers o
), oid_types AS MATERIALIZED (
    -- The object identifier types (`regclass`, `regproc`, `regconfig`, …): those binary
    -- coercible from `oid` whose input function reads the catalogs (is not immutable).
    SELECT ty.oid
      FROM pg_catalog.pg_type ty JOIN pg_catalog.pg_proc i ON i.oid = ty.typinput
     WHERE i.provolatile <> 'i'
       AND EXISTS (SELECT 1 FROM pg_catalog.pg_cast c
                    WHERE c.castsource = 'pg_catalog.oid'::pg_catalog.regtype
                      AND c.casttarget = ty.oid AND c.castmethod = 'b')
), typed(what, field, t, depth) AS (
    -- The type of every value in the trees: each field of a node that names a type
    -- (`:vartype`, `:consttype`, `:funcresulttype`, `:resulttype`, `:paramtype`,
    -- `:row_typeid`, `:typeId`, `:coltypes (o …)`, …: every field whose name holds `typ`
    -- but a type modifier), then the type a domain is over and an array's element, down to
    -- the type whose values they hold (with no cap, as for `operands`). A field that is not
    -- a type (`:jointype`, `:commandType`) holds a small number that is no type's.
    SELECT DISTINCT t.what, f[1], x::oid, 0
      FROM trees t
      CROSS JOIN LATERAL pg_catalog.regexp_matches(t.tree,
           ':([A-Za-z_]*[Tt][Yy][Pp][A-Za-z_]*) ([0-9]+|\(o[ 0-9]*\))', 'g') f
      CROSS JOIN LATERAL pg_catalog.regexp_split_to_table(pg_catalog.btrim(f[2], '(o) '), ' +') x
     WHERE f[1] !~* 'mod' AND x <> ''
    UNION ALL
    SELECT c.what, c.field, CASE WHEN ty.typtype = 'd' THEN ty.typbasetype ELSE ty.typelem END,
           c.depth + 1
      FROM typed c JOIN pg_catalog.pg_type ty ON ty.oid = c.t
     WHERE ty.typtype = 'd' OR (ty.typelem <> 0 AND ty.typcategory = 'A')
), consts(what, t, v) AS (
    -- Each constant of an object identifier type itself, with the identifier it holds, read
    -- from the bytes the tree prints (`:constvalue 4 [ 57 48 0 0 0 0 0 0 ]`, the bytes of a
    -- `Datum`, signed, in the server's byte order: read as little-endian, a big-endian
    -- server's value would not fit 32 bits).
    SELECT DISTINCT t.what, f[1]::oid,
           CASE WHEN v.le < 4294967296 THEN v.le ELSE v.be END::pg_catalog.int8::pg_catalog.oid
      FROM trees t
      CROSS JOIN LATERAL pg_catalog.regexp_matches(t.tree,
           '\{CONST :consttype ([0-9]+) [^{}]*:constvalue [0-9]+ \[ ([-0-9 ]*)\]', 'g') f
      CROSS JOIN LATERAL (
           SELECT pg_catalog.sum(((b::int + 256) % 256) * pg_catalog.power(256::numeric, i - 1)) AS le,
                  pg_catalog.sum(((b::int + 256) % 256) * pg_catalog.power(256::numeric, n - i)) AS be
             FROM (SELECT pg_catalog.string_to_array(pg_catalog.btrim(f[2]), ' ') AS a) y
             CROSS JOIN LATERAL pg_catalog.unnest(y.a) WITH ORDINALITY u(b, i)
             CROSS JOIN LATERAL (SELECT pg_catalog.cardinality(y.a) AS n) z) v
     WHERE f[1]::oid IN (SELECT oid FROM oid_types)
)
SELECT 'the step left ' || o.type || ' ' || o.identity
       || ' outside its schema; a plugin''s role may own only what is in its schema'
  FROM pg_catalog.pg_shdepend d
  CROSS JOIN LATERAL pg_catalog.pg_identify_object(d.classid, d.objid, 0) o
 WHERE d.refclassid = 'pg_catalog.pg_authid'::pg_catalog.regclass
   AND d.refobjid = (SELECT oid FROM me) AND d.deptype = 'o'
   AND d.dbid = (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database())
   AND (o.schema IS NULL
        OR (o.schema <> $1 AND o.schema IS DISTINCT FROM
            (SELECT nspname FROM pg_catalog.pg_namespace WHERE oid = pg_catalog.pg_my_temp_schema())))
   AND NOT (d.classid = 'pg_catalog.pg_namespace'::pg_catalog.regclass AND d.objid = (SELECT oid FROM s))
UNION ALL
SELECT pg_catalog.pg_describe_object(x.classid, x.oid, 0) || ' in schema ' || $1 || ' is owned by '
       || pg_catalog.pg_get_userbyid(x.owner)::text
       || '; a plugin''s schema holds only what its role owns'
  FROM (SELECT 'pg_catalog.pg_class'::pg_catalog.regclass AS classid, oid, relowner AS owner
          FROM rel
        UNION ALL SELECT 'pg_catalog.pg_type'::pg_catalog.regclass, oid, typowner FROM types
        UNION ALL SELECT 'pg_catalog.pg_proc'::pg_catalog.regclass, oid, proowner FROM procs p
         WHERE NOT (p.prolang = (SELECT l.oid FROM pg_catalog.pg_language l
                                      WHERE l.lanname = 'internal')
                    AND p.prosrc IN ('range_constructor2', 'range_constructor3',
                                     'multirange_constructor0', 'multirange_constructor1',
                                     'multirange_constructor2'))) x
 WHERE x.owner <> (SELECT oid FROM me)
UNION ALL
SELECT 'the step created ' || pg_catalog.pg_describe_object('pg_catalog.pg_class'::pg_catalog.regclass, c.oid, 0)
       || ', which is not named ' || $1 || '__*; an application that finds plugins'' tables '
       || 'through its search path must not find it in place of another''s'
  FROM rel c
 WHERE pg_catalog.left(c.relname::text, pg_catalog.length($1) + 2) <> $1 || '__'
UNION ALL
SELECT 'the step created ' || pg_catalog.pg_describe_object('pg_catalog.pg_proc'::pg_catalog.regclass, p.oid, 0)
       || ', which is not named ' || $1 || '__*; an application that finds plugins'' functions '
       || 'through its search path must not find it in place of another''s'
  FROM procs p
 WHERE pg_catalog.left(p.proname::text, pg_catalog.length($1) + 2) <> $1 || '__'
UNION ALL
SELECT 'the step created ' || pg_catalog.pg_describe_object('pg_catalog.pg_type'::pg_catalog.regclass, t.oid, 0)
       || ', which is not named ' || $1 || '__*'
  FROM types t
 WHERE t.relid = 0
   AND pg_catalog.left(pg_catalog.ltrim(t.typname::text, '_'), pg_catalog.length($1) + 2) <> $1 || '__'
UNION ALL
-- The other kinds of object a schema holds that an application finds through its search
-- path (small catalogs, read by their namespace).
SELECT 'the step created ' || pg_catalog.pg_describe_object(x.classid, x.oid, 0)
       || ', which is not named ' || $1 || '__*'
  FROM (SELECT 'pg_catalog.pg_collation'::pg_catalog.regclass AS classid, c.oid, c.collname AS name
          FROM pg_catalog.pg_collation c WHERE c.collnamespace = (SELECT oid FROM s)
        UNION ALL SELECT 'pg_catalog.pg_ts_config'::pg_catalog.regclass, t.oid, t.cfgname
          FROM pg_catalog.pg_ts_config t WHERE t.cfgnamespace = (SELECT oid FROM s)
        UNION ALL SELECT 'pg_catalog.pg_ts_dict'::pg_catalog.regclass, d.oid, d.dictname
          FROM pg_catalog.pg_ts_dict d WHERE d.dictnamespace = (SELECT oid FROM s)
        UNION ALL SELECT 'pg_catalog.pg_conversion'::pg_catalog.regclass, v.oid, v.conname
          FROM pg_catalog.pg_conversion v WHERE v.connamespace = (SELECT oid FROM s)
        UNION ALL SELECT 'pg_catalog.pg_statistic_ext'::pg_catalog.regclass, e.oid, e.stxname
          FROM pg_catalog.pg_statistic_ext e WHERE e.stxnamespace = (SELECT oid FROM s)) x
 WHERE pg_catalog.left(x.name::text, pg_catalog.length($1) + 2) <> $1 || '__'
UNION ALL
SELECT 'the step changed its role''s settings ('
       || coalesce(pg_catalog.array_to_string(x.setconfig, ', '), '')
       || '); a plugin''s sessions run with the host''s settings'
  FROM pg_catalog.pg_db_role_setting x
 WHERE x.setrole = (SELECT oid FROM me)
   AND NOT (x.setdatabase = 0
            AND (SELECT pg_catalog.array_agg(c ORDER BY c) FROM pg_catalog.unnest(x.setconfig) c)
              = (SELECT pg_catalog.array_agg(c ORDER BY c) FROM pg_catalog.unnest($4::text[]) c))
UNION ALL
SELECT 'the step set default privileges; a plugin''s future objects are granted only by the policy'
  FROM pg_catalog.pg_default_acl x WHERE x.defaclrole = (SELECT oid FROM me)
UNION ALL
-- What the server records of its objects on objects shared by every database (a policy's
-- roles, a tablespace) but their owner and the grants checked above: another role named
-- in a policy could not be dropped while the policy names it.
SELECT pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid) || ' names '
       || pg_catalog.pg_describe_object(d.refclassid, d.refobjid, 0)
       || '; a plugin''s objects name no role but its own and PUBLIC, and no tablespace'
  FROM mine m CROSS JOIN LATERAL (
       SELECT * FROM pg_catalog.pg_shdepend x
        WHERE x.dbid = (SELECT oid FROM pg_catalog.pg_database
                         WHERE datname = pg_catalog.current_database())
          AND x.classid = m.classid AND x.objid = m.objid
       OFFSET 0) d
 WHERE d.deptype NOT IN ('o', 'a')
   AND NOT (d.refclassid = 'pg_catalog.pg_authid'::pg_catalog.regclass
            AND d.refobjid = (SELECT oid FROM me))
UNION ALL
-- What the server runs as a table's owner, the plugin's role, whoever started it and outside
-- the plugin's steps, reaches no code of the plugin's: the plugin's code role owns the
-- plugin's functions, and may make one run as its caller and grant it to anyone, the
-- plugin's role included, which owns the schema and its types. A foreign key's action (ON
-- DELETE or ON UPDATE CASCADE, SET NULL, SET DEFAULT) changes the referencing table's rows
-- as its owner, and a materialized view's query runs as its owner whenever anyone
-- refreshes it (where they start: owner_starts). A rule of the key's table rewrites the
-- action into writes of other tables, with their own triggers, checks and rules. Built-in
-- code there is fine: what expressions may call is checked above.
SELECT DISTINCT w.head || w.objid::pg_catalog.regprocedure::text || w.tail
  FROM owner_reach w
 WHERE w.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass
   AND (SELECT p.pronamespace FROM pg_catalog.pg_proc p WHERE p.oid = w.objid) = (SELECT oid FROM s)
UNION ALL
-- A refresh of a materialized view applies the row security policies of a table that forces
-- them on its owner, the plugin's role, to the view's query: a policy's function would run
-- as that role.
SELECT pg_catalog.pg_describe_object('pg_catalog.pg_class'::pg_catalog.regclass, c.oid, 0)
       || ' forces row security on its owner, the plugin''s role: what the server runs as the '
       || 'owner outside the plugin''s steps (a materialized view''s refresh) would run its '
       || 'policies as that role; a plugin''s table does not force row security'
  FROM pg_catalog.pg_class c
 WHERE c.oid IN (SELECT oid FROM rel) AND c.relforcerowsecurity
UNION ALL
SELECT 'the foreign key ' || pg_catalog.quote_ident(k.conname::pg_catalog.text) || ' of '
       || k.conrelid::pg_catalog.regclass::pg_catalog.text || ' has an action (CASCADE, SET NULL or '
       || 'SET DEFAULT) and ' || pg_catalog.pg_describe_object('pg_catalog.pg_rewrite'::pg_catalog.regclass, r.oid, 0)
       || ' rewrites what the action does: the server runs the action, with what it reaches, as '
       || 'the table''s owner, the plugin''s role, whoever changed the referenced row, outside '
       || 'the plugin''s steps; drop the rule, or make the key NO ACTION or RESTRICT'
  FROM pg_catalog.pg_constraint k JOIN pg_catalog.pg_rewrite r ON r.ev_class = k.conrelid
 WHERE k.oid IN (SELECT oid FROM cons) AND k.contype = 'f'
   AND (k.confdeltype IN ('c', 'n', 'd') OR k.confupdtype IN ('c', 'n', 'd'))
UNION ALL
-- The planner's estimators call an operator's function themselves, with no check of EXECUTE
-- (`eqsel` compares the most common values with it), in the session of whoever plans a query
-- that uses the operator, a reader's query of the plugin's view included.
SELECT 'operator ' || o.oid::pg_catalog.regoperator::text || ' names an estimator ('
       || CASE WHEN o.oprrest <> 0 THEN 'RESTRICT' ELSE 'JOIN' END || ') and runs the '
       || 'plugin''s function ' || o.oprcode::pg_catalog.regprocedure::text || ', which the '
       || 'estimator would call itself, in the session of whoever plans a query with it, with '
       || 'no check of EXECUTE; a plugin''s operators over its own functions name no estimator'
  FROM opers o
 WHERE (o.oprrest <> 0 OR o.oprjoin <> 0)
   AND (SELECT p.pronamespace FROM pg_catalog.pg_proc p WHERE p.oid = o.oprcode)
       <> 'pg_catalog'::pg_catalog.regnamespace
UNION ALL
-- The client looks a type up down the chain of what it is made of, a round trip a level: a
-- chain left deeper than this would make every later look-up of it that long.
SELECT 'the plugin''s types are made of a chain of more than 64 types (domains, arrays, '
       || 'ranges, composites), down to ' || c.t::pg_catalog.regtype::text || '; a plugin''s '
       || 'types are at most 64 deep'
  FROM (WITH RECURSIVE chain(t, depth) AS (
            SELECT t.oid, 1 FROM types t
            UNION
            SELECT x.t, c.depth + 1
              FROM chain c CROSS JOIN LATERAL ("#,
    made_of!("c"),
    r#") x(t)
             WHERE c.depth <= 64)
        SELECT chain.t FROM chain WHERE chain.depth > 64 LIMIT 1) c
UNION ALL
-- A range type's SUBTYPE_DIFF and CANONICAL functions are called by the server itself, with
-- no check of EXECUTE: the planner calls the first for any query over the type's values
-- (in whoever's session plans it), and the second makes every value. A plugin's function
-- there would run in others' sessions, as the plugin, whenever they read.
SELECT 'range type ' || r.rngtypid::pg_catalog.regtype::text || ' has the ' || x.slot
       || ' function ' || x.f::pg_catalog.regprocedure::text || ', which the server calls '
       || 'itself, in the session of whoever reads or makes a value, with no check of '
       || 'EXECUTE; a plugin''s range types use the server''s own functions'
  FROM pg_catalog.pg_range r
  CROSS JOIN LATERAL (VALUES ('SUBTYPE_DIFF', r.rngsubdiff::pg_catalog.oid),
                             ('CANONICAL', r.rngcanonical::pg_catalog.oid)) x(slot, f)
 WHERE r.rngtypid IN (SELECT oid FROM types) AND x.f <> 0
   AND (SELECT p.pronamespace FROM pg_catalog.pg_proc p WHERE p.oid = x.f)
       <> 'pg_catalog'::pg_catalog.regnamespace
UNION ALL
-- The host closes every cursor before the guard; one declared WITH HOLD would run its whole
-- query at the commit, after this check.
SELECT 'the step left the cursor ' || pg_catalog.quote_ident(k.name) || ' WITH HOLD, whose '
       || 'query would run at the commit, after the guard''s check'
  FROM pg_catalog.pg_cursors k WHERE k.is_holdable
UNION ALL
SELECT 'view ' || c.oid::pg_catalog.regclass::text || ' runs with the rights of whoever reads it '
       || '(security_invoker); a plugin''s views run with the plugin''s rights'
  FROM rel c CROSS JOIN LATERAL pg_catalog.unnest(c.reloptions) opt
 WHERE pg_catalog.lower(pg_catalog.split_part(opt, '=', 1)) = 'security_invoker'
   AND pg_catalog.lower(pg_catalog.split_part(opt, '=', 2)) NOT IN ('false', 'off', 'no', '0', 'f', 'n')
UNION ALL
SELECT pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid) || ' depends on '
       || pg_catalog.pg_describe_object(d.refclassid, d.refobjid, d.refobjsubid)
       || ', which is outside the plugin''s schema'
  FROM mine m CROSS JOIN LATERAL (
       SELECT * FROM pg_catalog.pg_depend x WHERE x.classid = m.classid AND x.objid = m.objid
        OFFSET 0
       ) d
 WHERE NOT EXISTS (SELECT 1 FROM mine m2 WHERE m2.classid = d.refclassid AND m2.objid = d.refobjid)
   -- The triggers that enforce another table's foreign key into the plugin's table sit on
   -- that table and are part of the constraint (an internal dependency): the application's,
   -- not the plugin's.
   AND NOT (d.classid = 'pg_catalog.pg_trigger'::pg_catalog.regclass AND d.deptype = 'i'
            AND d.refclassid = 'pg_catalog.pg_constraint'::pg_catalog.regclass)
   AND CASE
       -- A table or view of any other schema (an extension's, the system's too: the
       -- system's views filter what they show by the rights of whoever reads them, and a
       -- plugin's view or rule would hand the reader's view to the plugin).
       WHEN d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass THEN true
       -- A function, operator or constraint of any other schema but the system's (what a
       -- plugin's expressions may call of the system's is checked above).
       WHEN d.refclassid IN ('pg_catalog.pg_proc'::pg_catalog.regclass,
                             'pg_catalog.pg_operator'::pg_catalog.regclass,
                             'pg_catalog.pg_constraint'::pg_catalog.regclass)
       THEN coalesce((SELECT i.schema
                        FROM pg_catalog.pg_identify_object(d.refclassid, d.refobjid, 0) i), '')
            NOT IN ('pg_catalog', 'information_schema')
       -- Anything else of another schema, or of none (another schema itself, a foreign
       -- server, a language): a column of another table's row type or of another schema's
       -- domain or enum, a text search configuration's mapping to another schema's
       -- dictionary, a cast with another schema's function pins it (its table can no
       -- longer change a column, it can no longer be dropped). The system's own objects
       -- and an extension's are not pinned by it.
       ELSE coalesce((SELECT i.schema
                        FROM pg_catalog.pg_identify_object(d.refclassid, d.refobjid, 0) i),
                     (SELECT n.nspname::text FROM pg_catalog.pg_namespace n
                       WHERE d.refclassid = 'pg_catalog.pg_namespace'::pg_catalog.regclass
                         AND n.oid = d.refobjid),
                     '')
              NOT IN ($1, 'pg_catalog', 'information_schema')
            AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend e
                             WHERE e.classid = d.refclassid AND e.objid = d.refobjid
                               AND e.deptype = 'e')
       END
UNION ALL
SELECT 'the step created ' || pg_catalog.pg_describe_object('pg_catalog.pg_operator'::pg_catalog.regclass, o.oid, 0)
       || ', an operand of which is not of the plugin''s own types (a domain over another '
       || 'type is that type); an operator is not named '
       || 'with the namespace, and an application whose search path lists the schema would '
       || 'call it in place of the built-in one'
  FROM pg_catalog.pg_operator o
 WHERE o.oid IN (SELECT oid FROM opers)
   AND EXISTS (
       -- Where an operand's chain of domains and arrays ends: a type of the plugin's own
       -- (a composite, enum or range type), or the operator would win the application's
       -- comparisons of a built-in type (with an untyped literal, say).
       SELECT 1 FROM operands p JOIN pg_catalog.pg_type ty ON ty.oid = p.t
        WHERE p.oper = o.oid
          AND NOT (ty.typtype = 'd' OR (ty.typelem <> 0 AND ty.typcategory = 'A'))
          AND (p.t NOT IN (SELECT oid FROM types) OR ty.typtype = 'b'))
UNION ALL
-- A cast applied without being asked for converts an application's values with the
-- plugin's function wherever a query could use one of its types or operators. A cast needs
-- the ownership of one of its types, so the plugin's casts are those of its types.
SELECT 'the step created ' || pg_catalog.pg_describe_object('pg_catalog.pg_cast'::pg_catalog.regclass, c.oid, 0)
       || ', which applies without being asked for (AS IMPLICIT or AS ASSIGNMENT); a plugin''s '
       || 'casts are explicit'
  FROM pg_catalog.pg_cast c
 WHERE c.castcontext <> 'e'
   AND (c.castsource IN (SELECT oid FROM types) OR c.casttarget IN (SELECT oid FROM types))
UNION ALL
-- Built-in functions of any argument type convert values with the type's cast to one of
-- theirs when there is one, calling the cast's function themselves, with no check of
-- EXECUTE, in the session of whoever passes them the value: `to_json`, `row_to_json`,
-- `json_agg` to json or jsonb; `||`, `quote_literal` and `quote_nullable` (SQL functions
-- that cast their argument) to text. A cast of the plugin's type with a function of its
-- own converts to no type of theirs, nor to any other string type.
SELECT 'the step created ' || pg_catalog.pg_describe_object('pg_catalog.pg_cast'::pg_catalog.regclass, c.oid, 0)
       || ', whose function built-in functions would call themselves (the JSON functions, '
       || '|| and quote_literal convert values with such casts), in the session of whoever '
       || 'passes them a value of the type, with no check of EXECUTE; a plugin''s cast with a '
       || 'function converts to no string type, json nor jsonb'
  FROM pg_catalog.pg_cast c JOIN pg_catalog.pg_type ty ON ty.oid = c.casttarget
 WHERE c.castsource IN (SELECT oid FROM types) AND c.castfunc <> 0
   AND (ty.typcategory = 'S'
        OR c.casttarget IN ('pg_catalog.json'::pg_catalog.regtype, 'pg_catalog.jsonb'::pg_catalog.regtype))
UNION ALL
SELECT pg_catalog.pg_describe_object('pg_catalog.pg_trigger'::pg_catalog.regclass, g.oid, 0)
       || ' runs ' || g.tgfoid::pg_catalog.regprocedure::text
       || ', which is not the plugin''s own function'
  FROM pg_catalog.pg_trigger g JOIN pg_catalog.pg_proc p ON p.oid = g.tgfoid
 WHERE g.tgrelid IN (SELECT oid FROM rel) AND NOT g.tgisinternal
   AND p.pronamespace <> (SELECT oid FROM s)
UNION ALL
-- PostgreSQL before 16 reads CURRENT_ROLE, CURRENT_USER, USER, SESSION_USER,
-- CURRENT_CATALOG and CURRENT_SCHEMA as SQL value functions (`:op` 9 to 14), not as calls
-- of the functions refused below: their values are those of the session that uses the
-- object. The clocks (`:op` 0 to 8) are any session's alike.
SELECT DISTINCT t.what || ' reads the user, role, database or schema of whoever uses it '
       || '(CURRENT_USER, SESSION_USER, CURRENT_SCHEMA, …)'
  FROM trees t
  CROSS JOIN LATERAL pg_catalog.regexp_matches(t.tree, '\{SQLVALUEFUNCTION :op ([0-9]+)', 'g') f
 WHERE f[1]::pg_catalog.int4 >= 9
UNION ALL
SELECT DISTINCT t.what || ' calls ' || p.oid::pg_catalog.regprocedure::text
       || ', which would run later with the rights of whoever uses it'
  FROM trees t
  CROSS JOIN LATERAL pg_catalog.regexp_matches(t.tree,
       ':(?:funcid|opfuncid|aggfnoid|winfnoid|hashfuncid|negfuncid) ([0-9]+)', 'g') f
  CROSS JOIN LATERAL (SELECT * FROM pg_catalog.pg_proc x WHERE x.oid = f[1]::oid OFFSET 0) p
 WHERE f[1] <> '0'
   AND p.pronamespace <> (SELECT oid FROM s)
   AND NOT (p.pronamespace = 'pg_catalog'::pg_catalog.regnamespace
            AND (p.provolatile = 'i' OR p.proname = ANY ($3::text[])))
UNION ALL
-- PostgreSQL takes a check's condition for immutable: it checks a row when the row is
-- written, and again when rows are loaded anew (a dump's restore, `VALIDATE CONSTRAINT`).
-- A condition a clock or a random value decides passes once and fails later: the restore
-- of a dump of the whole database, the application's tables included, then fails on the
-- plugin's rows. A table's or a domain's check calls immutable functions only.
SELECT DISTINCT pg_catalog.pg_describe_object('pg_catalog.pg_constraint'::pg_catalog.regclass, k.oid, 0)
       || ' calls ' || p.oid::pg_catalog.regprocedure::text
       || ', which is not immutable: a row that passed the check could fail it when it is '
       || 'checked again (a dump''s restore, which would then fail); a check calls immutable '
       || 'functions only'
  FROM cons k
  CROSS JOIN LATERAL pg_catalog.regexp_matches(k.conbin::text,
       ':(?:funcid|opfuncid|aggfnoid|winfnoid|hashfuncid|negfuncid) ([0-9]+)', 'g') f
  CROSS JOIN LATERAL (SELECT * FROM pg_catalog.pg_proc x WHERE x.oid = f[1]::oid OFFSET 0) p
 WHERE k.contype = 'c' AND f[1] <> '0' AND p.provolatile <> 'i'
UNION ALL
SELECT DISTINCT pg_catalog.pg_describe_object('pg_catalog.pg_constraint'::pg_catalog.regclass, k.oid, 0)
       || ' reads the clock (CURRENT_DATE, CURRENT_TIMESTAMP, LOCALTIME, …): a row that '
       || 'passed the check could fail it when it is checked again (a dump''s restore, which '
       || 'would then fail); a check calls immutable functions only'
  FROM cons k
 WHERE k.contype = 'c' AND k.conbin::text ~ '\{SQLVALUEFUNCTION :op [0-8] '
UNION ALL
-- Expressions of the plugin's indexes and statistics objects run whenever the table is
-- analyzed (autovacuum's analyze included) or an index summarized, as the plugin, at any
-- time, with nobody running anything of the plugin's: a function of the plugin's there
-- could change the plugin's own functions between its steps (make one run with the rights
-- of whoever calls it next, and grant it to them).
SELECT DISTINCT x.what || ' calls the plugin''s function ' || p.oid::pg_catalog.regprocedure::text
       || ', which ANALYZE (autovacuum''s too) would run between steps, as the plugin, with '
       || 'nobody running anything of the plugin''s; an index''s or statistics object''s '
       || 'expressions call built-in functions only'
  FROM analyzed x
  CROSS JOIN LATERAL pg_catalog.regexp_matches(x.tree,
       ':(?:funcid|opfuncid|aggfnoid|winfnoid|hashfuncid|negfuncid) ([0-9]+)', 'g') f
  CROSS JOIN LATERAL (SELECT * FROM pg_catalog.pg_proc y WHERE y.oid = f[1]::oid OFFSET 0) p
 WHERE f[1] <> '0' AND p.pronamespace = (SELECT oid FROM s)
UNION ALL
-- A statistics object's expressions are computed by ANALYZE alone (autovacuum's too), never
-- in a step: for every row of its sample at once, with no step's deadline, built-in code
-- that cannot be cancelled included, and PostgreSQL keeps what each row's evaluation
-- allocates until the statistics are built. An index's expressions are computed as each
-- row is written, in the step that writes it.
SELECT pg_catalog.pg_describe_object('pg_catalog.pg_statistic_ext'::pg_catalog.regclass, e.oid, 0)
       || ' is on expressions, which only ANALYZE (autovacuum''s too) computes, for its whole '
       || 'sample at once, with no step''s deadline and without freeing their memory until it '
       || 'ends; extended statistics of a plugin''s are on columns'
  FROM rel CROSS JOIN LATERAL (
       SELECT * FROM pg_catalog.pg_statistic_ext y WHERE y.stxrelid = rel.oid OFFSET 0) e
 WHERE e.stxexprs IS NOT NULL
UNION ALL
-- A BRIN index's expressions (and its predicate) are computed when a range of the table is
-- summarized: by VACUUM (autovacuum's too) and brin_summarize_range, for every row of the
-- range, between steps and with no deadline; and the index's owner takes a summary back at
-- will (brin_desummarize_range), so a step of milliseconds would leave a vacuum of the whole
-- table to compute them all again. An index of another method computes them as each row is
-- written, in the step that writes it.
SELECT pg_catalog.pg_describe_object('pg_catalog.pg_class'::pg_catalog.regclass, i.indexrelid, 0)
       || ' is a BRIN index on expressions, which VACUUM (autovacuum''s too) computes for every '
       || 'row of each range it summarizes, with no step''s deadline; a plugin''s BRIN indexes '
       || 'are on columns'
  FROM rel CROSS JOIN LATERAL (
       SELECT * FROM pg_catalog.pg_index y WHERE y.indrelid = rel.oid OFFSET 0) i
  JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
  JOIN pg_catalog.pg_am am ON am.oid = ic.relam
 WHERE am.amname = 'brin' AND (i.indexprs IS NOT NULL OR i.indpred IS NOT NULL)
UNION ALL
-- The same expressions convert values to the types their nodes name: a domain's checks run
-- at a conversion to it (`CoerceToDomain`), and at one to a composite, array or range made
-- of it (read as text, say), naming no function in the tree; a check converts values to
-- the types its own tree names in turn. Every type the trees name, every type it is made of
-- and every type a check of a domain among them names has no check calling a function but
-- an immutable built-in one (a check, unlike an index's expression, may call any function,
-- `query_to_xml` of an SQL text included).
SELECT DISTINCT x.what || ' converts a value to ' || k.contypid::pg_catalog.regtype::text
       || ', whose check calls ' || p.oid::pg_catalog.regprocedure::text
       || ', which ANALYZE (autovacuum''s too) would run between steps, as the plugin, with '
       || 'nobody running anything of the plugin''s; an index''s or statistics object''s '
       || 'expressions call immutable built-in functions only, domains'' checks included'
  FROM analyzed x
  CROSS JOIN LATERAL (
       WITH RECURSIVE chain(t) AS (
           SELECT DISTINCT m[1]::oid
             FROM pg_catalog.regexp_matches(x.tree, ':[A-Za-z_]*[Tt][Yy][Pp][A-Za-z_]* ([0-9]+)', 'g') m
           UNION
           SELECT z.t FROM chain c CROSS JOIN LATERAL ("#,
    made_of!("c"),
    r#"
             UNION ALL
             SELECT m[1]::oid FROM pg_catalog.pg_constraint y
               CROSS JOIN LATERAL pg_catalog.regexp_matches(y.conbin::text,
                    ':[A-Za-z_]*[Tt][Yy][Pp][A-Za-z_]* ([0-9]+)', 'g') m
              WHERE y.contypid = c.t AND y.contype = 'c') z(t)
       )
       SELECT t FROM chain) d
  JOIN pg_catalog.pg_constraint k ON k.contypid = d.t AND k.contype = 'c'
  CROSS JOIN LATERAL pg_catalog.regexp_matches(k.conbin::text,
       ':(?:funcid|opfuncid|aggfnoid|winfnoid|hashfuncid|negfuncid) ([0-9]+)', 'g') f
  CROSS JOIN LATERAL (SELECT * FROM pg_catalog.pg_proc y WHERE y.oid = f[1]::oid OFFSET 0) p
 WHERE f[1] <> '0'
   AND NOT (p.pronamespace = 'pg_catalog'::pg_catalog.regnamespace AND p.provolatile = 'i')
UNION ALL
-- A value of an object identifier type (`regclass`, `regproc`, …, or an array or domain of
-- one) that is not a constant of the tree names an object chosen when the expression runs:
-- text converted (`'public.app_seq'::bpchar::regclass`, which looks the name up then), an
-- `oid` relabelled, a column, a function's result. Given to `nextval`, it reaches another
-- schema's sequence with the rights of whoever uses the object, through no dependency.
SELECT DISTINCT c.what || ' takes a value of type ' || c.t::pg_catalog.regtype::text
       || ' (' || c.field || ') that is not a constant: an object identifier chosen when '
       || 'it runs (looked up by name, or read from a column) could name an object outside '
       || 'the plugin''s schema, reached with the rights of whoever uses it'
  FROM typed c
 WHERE c.t IN (SELECT oid FROM oid_types)
   AND NOT (c.field = 'consttype' AND c.depth = 0)
UNION ALL
-- A constant of such a type names its object for good, and the server records the
-- dependency (checked with the others); it must name an object of the plugin's schema or the system's
-- (`'english'::regconfig`), not an identifier no object has yet.
SELECT DISTINCT c.what || ' names '
       || coalesce(pg_catalog.pg_describe_object(x.classid, c.v, 0),
                   'the object identifier ' || c.v::text || ' (' || c.t::pg_catalog.regtype::text
                   || '), which no object has')
       || '; a constant object identifier names an object of the plugin''s schema or the system''s'
  FROM consts c
  CROSS JOIN LATERAL (
       SELECT CASE c.t
              WHEN 'pg_catalog.regclass'::pg_catalog.regtype
                   THEN 'pg_catalog.pg_class'::pg_catalog.regclass
              WHEN 'pg_catalog.regproc'::pg_catalog.regtype
                   THEN 'pg_catalog.pg_proc'::pg_catalog.regclass
              WHEN 'pg_catalog.regprocedure'::pg_catalog.regtype
                   THEN 'pg_catalog.pg_proc'::pg_catalog.regclass
              WHEN 'pg_catalog.regoper'::pg_catalog.regtype
                   THEN 'pg_catalog.pg_operator'::pg_catalog.regclass
              WHEN 'pg_catalog.regoperator'::pg_catalog.regtype
                   THEN 'pg_catalog.pg_operator'::pg_catalog.regclass
              WHEN 'pg_catalog.regtype'::pg_catalog.regtype
                   THEN 'pg_catalog.pg_type'::pg_catalog.regclass
              WHEN 'pg_catalog.regconfig'::pg_catalog.regtype
                   THEN 'pg_catalog.pg_ts_config'::pg_catalog.regclass
              WHEN 'pg_catalog.regdictionary'::pg_catalog.regtype
                   THEN 'pg_catalog.pg_ts_dict'::pg_catalog.regclass
              WHEN 'pg_catalog.regcollation'::pg_catalog.regtype
                   THEN 'pg_catalog.pg_collation'::pg_catalog.regclass
              WHEN 'pg_catalog.regnamespace'::pg_catalog.regtype
                   THEN 'pg_catalog.pg_namespace'::pg_catalog.regclass
              END AS classid) x
 WHERE c.v <> 0
   -- The object's schema (a schema's own name for a schema); '' for an identifier no
   -- object has.
   AND coalesce((SELECT i.schema FROM pg_catalog.pg_identify_object(x.classid, c.v, 0) i),
                (SELECT n.nspname::text FROM pg_catalog.pg_namespace n
                  WHERE x.classid = 'pg_catalog.pg_namespace'::pg_catalog.regclass
                    AND n.oid = c.v),
                '') NOT IN ($1, 'pg_catalog')
UNION ALL
-- The step's end drops the session's temporary objects in one transaction, which takes a
-- lock for each (and for each object that hangs on one: a column's default, an index) from
-- the server's shared lock table (`max_locks_per_transaction` × connections): thousands
-- would fill it, fail the drop and stay behind, owned by the plugin's role outside its
-- schema.
SELECT 'the step left more than 1000 objects in its session''s temporary schema (with what '
       || 'hangs on them: columns'' defaults, indexes, types); dropping them at its end takes '
       || 'a lock each from the server''s shared lock table'
 WHERE pg_catalog.pg_my_temp_schema() <> 0
   AND (SELECT pg_catalog.count(*) FROM (
          WITH RECURSIVE t(c, o) AS (
              SELECT 'pg_catalog.pg_namespace'::pg_catalog.regclass::pg_catalog.oid,
                     pg_catalog.pg_my_temp_schema()
              UNION
              SELECT d.classid, d.objid
                FROM t CROSS JOIN LATERAL (
                     SELECT x.classid, x.objid FROM pg_catalog.pg_depend x
                      WHERE x.refclassid = t.c AND x.refobjid = t.o OFFSET 0) d)
          SELECT 1 FROM t LIMIT 1002) x) > 1001
UNION ALL
-- Between its steps the plugin's functions belong to its code role, and each step takes
-- them back and hands them over (`wasmig.code_back`, `wasmig.code_out`): a lock each, from
-- the same shared table.
SELECT 'the plugin has ' || pg_catalog.count(*)::text || ' functions; a plugin has at most '
       || '1000 (its functions change hands at each of its steps, which takes a lock each '
       || 'from the server''s shared lock table)'
  FROM procs
HAVING pg_catalog.count(*) > 1000
UNION ALL
SELECT 'the step granted role ' || pg_catalog.pg_get_userbyid(m.roleid)::text || ' to '
       || pg_catalog.pg_get_userbyid(m.member)::text
       || '; a plugin''s role grants no role and is a member of none'
  FROM pg_catalog.pg_auth_members m
 WHERE m.grantor = (SELECT oid FROM me) OR m.member = (SELECT oid FROM me)
UNION ALL
SELECT pg_catalog.pg_describe_object('pg_catalog.pg_trigger'::pg_catalog.regclass, g.oid, 0)
       || ' is deferrable: it could run at the commit, after the host''s checks; a plugin''s '
       || 'triggers run within its step'
  FROM pg_catalog.pg_trigger g
 WHERE NOT g.tgisinternal AND g.tgdeferrable
   AND (g.tgrelid IN (SELECT oid FROM rel)
        -- The session's temporary tables too, which the schema's objects do not list.
        OR g.tgrelid IN (SELECT d.objid FROM pg_catalog.pg_depend d
                          WHERE d.refclassid = 'pg_catalog.pg_namespace'::pg_catalog.regclass
                            AND d.refobjid = pg_catalog.pg_my_temp_schema()
                            AND d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass))
"#
);

/// Statements that change nothing, one for each of the plugin's tables, partitioned ones
/// included (and its session's temporary tables), that has a trigger of any kind (foreign
/// keys' and constraints' own included), each of which PostgreSQL refuses while the table
/// has trigger events pending (`object_in_use`). The host fired the step's deferred
/// triggers and checks before the guard; code of the plugin's that one of them ran (a
/// trigger, a cast or function a check calls, a partition's check the planner evaluates)
/// could run `SET CONSTRAINTS … DEFERRED` and queue more, which would fire at the commit,
/// after this check. An event stays deferred even if its trigger is made not deferrable
/// afterwards, and a foreign key's event can sit on a partitioned table whose own rows
/// never change, so every such table is asked. Pending events have no view of their own:
/// `ALTER TABLE`'s check, made before anything else the command does, is the server's.
/// `SET WITHOUT CLUSTER` (or `CLUSTER ON` the index already marked) changes nothing and takes
/// the lock `VACUUM` takes, which readers and writers do not wait for; on a partitioned
/// table, which has no index to cluster, it then fails (`feature_not_supported`), having
/// found nothing pending.
const DEFERRED_PROBES: &str = r#"
SELECT pg_catalog.format('ALTER TABLE %s ', c.oid::pg_catalog.regclass)
       || COALESCE('CLUSTER ON ' || pg_catalog.quote_ident(x.relname), 'SET WITHOUT CLUSTER')
  FROM pg_catalog.pg_class c
  LEFT JOIN (pg_catalog.pg_index i JOIN pg_catalog.pg_class x ON x.oid = i.indexrelid)
         ON i.indrelid = c.oid AND i.indisclustered
 WHERE (c.oid = ANY (o_rels)
        OR c.oid IN (SELECT d.objid FROM pg_catalog.pg_depend d
                      WHERE d.refclassid = 'pg_catalog.pg_namespace'::pg_catalog.regclass
                        AND d.refobjid = pg_catalog.pg_my_temp_schema()
                        AND d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass))
   AND c.relkind IN ('r', 'p')
   AND c.relowner = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = session_user)
   AND EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t WHERE t.tgrelid = c.oid)
"#;

/// The finding of a [`DEFERRED_PROBES`] statement refused, as an SQL expression.
const DEFERRED_AGAIN: &str = "'the plugin''s code deferred constraints again (SET CONSTRAINTS … \
     DEFERRED) while the host fired the step''s deferred checks, so they would run at the \
     commit, after the guard: ' || SQLERRM";

/// The guard's functions in wasmig's schema, created with the host's tables. They run with
/// the rights of the plugin's session that calls them (they only read the catalogs, and
/// change nothing but the plugin's own functions and the role's password), with the search
/// path fixed; PostgreSQL plans their queries once per session instead of at every step.
/// Without JIT: the planner's estimates of the queries over the catalogs pass its threshold,
/// and compiling them costs far more (a quarter of a second a step) than running them.
///
/// `guard_verify` does the whole check after a step in one round trip: it neutralises the
/// schema's functions, reports the findings (lines starting with `!`, then a lock the step
/// holds outside its reach with `%`), puts the role's
/// password back if the step wrote to the roles' catalog (or the server keeps no counters
/// to tell), and lists the objects the plugin owns now (lines starting with `=`) and the
/// bytes its schema takes (`#`). `guard_owned` lists the objects and the bytes before a step.
pub(super) fn functions() -> String {
    let function = |name: &str, args: &str, returns: &str, body: &str| {
        format!(
            "CREATE OR REPLACE FUNCTION wasmig.{name}({args}) RETURNS {returns}
             LANGUAGE plpgsql SECURITY INVOKER
             SET search_path = pg_catalog, pg_temp SET plan_cache_mode = force_generic_plan
             SET jit = off
             AS $wasmig_guard${body}$wasmig_guard$;
             REVOKE ALL ON FUNCTION wasmig.{name}({args}) FROM PUBLIC;\n"
        )
    };
    // Functions are made to run as their owner after every step, whatever the step wrote: a
    // plugin's function runs as its owner (the code role between steps), and may change
    // itself while it runs in another transaction (a trigger the application fires), which
    // this step's counters do not show. The role's password is put back only if the step wrote to
    // `pg_authid`, as the transaction's own counters say (or when the server keeps none).
    let verify = format!(
        "DECLARE routine record; pending text; {OBJECT_VARIABLES}
         BEGIN
         {find_objects}
         {NEUTRALISE}
         RETURN QUERY SELECT '!' || x FROM ({FINDINGS}) q(x);
         RETURN QUERY SELECT '%' || {FOREIGN_LOCK} || x
           FROM (SELECT wasmig.foreign_lock(pg_catalog.pg_backend_pid(),
                   (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname = session_user))) q(x)
          WHERE x IS NOT NULL;
         FOR pending IN {DEFERRED_PROBES} LOOP
           BEGIN
             EXECUTE pending;
           EXCEPTION
             WHEN object_in_use THEN RETURN NEXT '!' || {DEFERRED_AGAIN};
             WHEN feature_not_supported THEN NULL;
           END;
         END LOOP;
         IF wasmig.others_changed() THEN
           RETURN NEXT '!' || pg_catalog.format({OTHERS_CHANGED},
             coalesce('plugin ' || wasmig.others_changed_by(), 'another plugin'));
         END IF;
         RETURN QUERY SELECT '+' || x FROM ({granted}) q(x);
         IF pg_catalog.current_setting('track_counts') <> 'on' OR {wrote_authid} THEN
           -- Another runner may be making the role's password valid for its login at the
           -- same moment (tuple concurrently updated, once it commits): tried again then.
           FOR attempt IN 1..20 LOOP
             BEGIN
               EXECUTE pg_catalog.format('ALTER ROLE CURRENT_USER PASSWORD %L', $5);
               EXIT;
             EXCEPTION WHEN internal_error THEN
               PERFORM pg_catalog.pg_sleep(0.01 * attempt);
             END;
           END LOOP;
         END IF;
         RETURN QUERY SELECT '=' || x FROM ({OWNED_OBJECTS}) q(x);
         RETURN QUERY {SCHEMA_BYTES};
         RETURN QUERY {DEPENDENTS};
         END",
        wrote_authid = wrote("pg_authid"),
        find_objects = find_objects(),
        granted = grants("$2::text[]"),
    );
    [
        function(
            "guard_owned",
            "text",
            "SETOF text",
            &format!(
                "DECLARE {OBJECT_VARIABLES} BEGIN {} RETURN QUERY {OWNED_OBJECTS}; \
                 RETURN QUERY {SCHEMA_BYTES}; RETURN QUERY {DEPENDENTS}; \
                 RETURN QUERY SELECT '+' || x FROM ({}) q(x); END",
                find_objects(),
                grants("'{}'::text[]"),
            ),
        ),
        function(
            "guard_verify",
            "text, text[], text[], text[], text",
            "SETOF text",
            &verify,
        ),
    ]
    .concat()
}

/// Whether the current transaction (its live and ended subtransactions too) inserted,
/// updated or deleted a row of the system catalog `catalog`, by the server's own counters
/// of the transaction, which the plugin's role can neither reset nor turn off
/// (`track_counts` is a superuser's setting). Counts of the session's earlier transactions
/// not yet reported may add to them, which only makes the guard do more.
fn wrote(catalog: &str) -> String {
    let c = format!("'pg_catalog.{catalog}'::pg_catalog.regclass");
    format!(
        "(pg_catalog.pg_stat_get_xact_tuples_inserted({c}) \
         + pg_catalog.pg_stat_get_xact_tuples_updated({c}) \
         + pg_catalog.pg_stat_get_xact_tuples_deleted({c}) > 0)"
    )
}

/// Why a step is refused that holds a lock outside its reach (`wasmig.foreign_lock`, whose
/// description follows).
const FOREIGN_LOCK: &str = "'the step holds a lock outside its namespace, which PostgreSQL \
     took before it checked privileges (nextval''s, pg_get_object_address''s) and keeps to the \
     end of the transaction, where it would block the work of the object''s owner: '";

/// Why a step is refused when another plugin's functions changed while it ran (outside any
/// step: only a plugin's own code, fired by the application, changes them then); `%s`: which
/// plugin.
const OTHERS_CHANGED: &str = "'%s''s functions changed while the step ran (any change: a \
     grant, whose rights one runs with, a new one, even one that changes neither, cannot be \
     told from one made and put back): its code could have run with this plugin''s rights; \
     run the step again'";

/// Calls of the guard's functions, and their signatures for `GRANT EXECUTE`.
pub(super) const CALL_OWNED: &str = "SELECT * FROM wasmig.guard_owned($1)";
pub(super) const CALL_VERIFY: &str =
    "SELECT * FROM wasmig.guard_verify($1, $2::text[], $3::text[], $4::text[], $5)";
pub(super) const SIGNATURES: &str =
    "wasmig.guard_owned(text), wasmig.guard_verify(text, text[], text[], text[], text)";

impl PgBackend {
    pub(super) fn mark_schema(
        &mut self,
        access: &PluginAccess,
    ) -> Result<crate::store::SchemaMark> {
        // Only a dry run's steps run while the host's own transaction is open.
        let dry_run = self.open == Open::Host;
        // A dry run's step has no begin of its own: its mark is bounded from now.
        let deadline = Some(
            self.begin_deadline
                .unwrap_or_else(|| Instant::now() + self.begin_bound()),
        );
        let plugin = self.step_session(access)?;
        if let Some(mark) = plugin.committed.take()
            && mark.plugin == access.plugin
        {
            return Ok(crate::store::SchemaMark::new(mark));
        }
        let schema = plugin.names.schema.clone();
        let owned = Self::host_turn_run(
            plugin,
            guard::CALL_OWNED,
            vec![Param::Text(schema.clone())],
            deadline,
        );
        let tables = match owned {
            Ok(owned) if dry_run => {
                Self::host_turn_run(plugin, TABLE_COLUMNS, vec![Param::Text(schema)], deadline)
                    .map(|rows| (owned, Some(rows)))
            }
            Ok(owned) => Ok((owned, None)),
            Err(e) => Err(e),
        };
        let (rows, tables) = match tables {
            Ok(read) => read,
            Err(e) => {
                let what = format!("cannot read plugin {}'s schema", access.plugin);
                return Err(self.before_step_failed(&access.plugin, &what, e));
            }
        };
        let lines: Vec<String> = rows.rows.iter().map(|r| Self::text(&r[0])).collect();
        let tables = tables.map(|rows| {
            rows.rows
                .iter()
                .map(|r| Self::text(&r[0]))
                .collect::<Vec<_>>()
        });
        Ok(crate::store::SchemaMark::new(Mark {
            plugin: access.plugin.clone(),
            bytes: schema_bytes(&lines),
            dependents: dependents(&lines),
            grants: grant_lines(&lines).map(|(_, g)| g.to_string()).collect(),
            objects: lines
                .into_iter()
                .filter(|l| !l.starts_with(['#', '>', '+']))
                .collect(),
            tables,
        }))
    }

    pub(super) fn verify_step(
        &mut self,
        access: &PluginAccess,
        before: crate::store::SchemaMark,
    ) -> Result<StepCheck> {
        let before: Mark = before
            .into_inner()
            .filter(|m: &Mark| m.plugin == access.plugin)
            .ok_or_else(|| self.error("schema check", "the mark is not this plugin's"))?;
        let label = self.label.clone();
        // Read with the step's re-check, under the lock the step holds (see `is_applied`).
        let inputs = match self.step_inputs.take() {
            Some((plugin, inputs)) if plugin == access.plugin => inputs,
            _ => self.guard_inputs(&access.plugin, "")?.1,
        };
        // The checks are part of the step: their time grows with what the plugin's schema
        // holds, which its steps choose, so they end at the step's deadline too.
        let deadline = self.checks_deadline.take();
        self.commit_deadline = deadline;
        let plugin = self.step_session(access)?;
        let schema = plugin.names.schema.clone();
        // One round trip, on the session `leave_plugin` gave back to the host's settings.
        let checked = match plugin.session.run(
            guard::CALL_VERIFY,
            vec![
                Param::Text(schema),
                Param::Text(inputs.readers),
                Param::Text(allowed_functions()),
                Param::Text(inputs.settings),
                Param::Text(inputs.verifier),
            ],
            deadline,
            super::CATALOG_READ_MAX,
        ) {
            Ok(checked) => checked,
            Err(CallError::TooLarge(max)) => {
                return Ok(StepCheck {
                    verdict: Err(format!(
                        "the step left plugin {}'s schema with more objects, grants and \
                         dependents than the host reads to check them ({} MiB of their \
                         names)",
                        access.plugin,
                        max >> 20
                    )),
                    changes: Vec::new(),
                });
            }
            Err(CallError::Cancelled) => {
                return Ok(StepCheck {
                    verdict: Err(format!(
                        "the checks of what the step left in its schema were still running at \
                         its deadline (plugin {}'s schema holds too much to check in time)",
                        access.plugin
                    )),
                    changes: Vec::new(),
                });
            }
            Err(e @ CallError::Parallel) => {
                return Ok(StepCheck {
                    verdict: Err(format!(
                        "limit reached: checking what the step left in plugin {}'s schema, {e}",
                        access.plugin
                    )),
                    changes: Vec::new(),
                });
            }
            // The checks' sorts over what the plugin's schema holds spill to temporary files
            // under the plugin's role, within the step's quota: a schema too large for them
            // is the step's failure, as one too large to check in time is.
            Err(CallError::Db(db))
                if db.code() == Some(&SqlState::CONFIGURATION_LIMIT_EXCEEDED) =>
            {
                return Ok(StepCheck {
                    verdict: Err(format!(
                        "limit reached: the checks of what the step left in its schema needed \
                         more temporary storage than the step's quota (`max_temp`) allows \
                         (plugin {}'s schema holds too much to check): {}",
                        access.plugin,
                        db.as_db_error()
                            .map_or_else(|| db.to_string(), |d| d.message().to_string())
                    )),
                    changes: Vec::new(),
                });
            }
            Err(e) => {
                if matches!(e, CallError::Stuck(_)) {
                    // The guard outlived its cancel: the server ends the session, and the
                    // step's transaction and lock with it.
                    self.terminate(&access.plugin);
                }
                return Err(Error::Database {
                    path: label,
                    message: format!("cannot check plugin {}'s schema: {e}", access.plugin),
                });
            }
        };
        let lines: Vec<String> = checked.rows.iter().map(|r| Self::text(&r[0])).collect();
        // A grant the policy does not allow is a finding, unless it stood before the step
        // (the database's owner's).
        let findings: Vec<&str> = lines
            .iter()
            .filter_map(|l| l.strip_prefix('!'))
            .chain(
                grant_lines(&lines)
                    .filter(|(allowed, g)| !allowed && !before.grants.contains(*g))
                    .map(|(_, g)| g),
            )
            .collect();
        let grants_now: BTreeSet<String> =
            grant_lines(&lines).map(|(_, g)| g.to_string()).collect();
        let after: BTreeSet<String> = lines
            .iter()
            .filter_map(|l| l.strip_prefix('='))
            .map(str::to_string)
            .collect();
        let mut changes: Vec<String> = after
            .difference(&before.objects)
            .map(|o| format!("created {o}"))
            .collect();
        changes.extend(
            before
                .objects
                .difference(&after)
                .map(|o| format!("dropped {o}")),
        );
        let bytes_now = schema_bytes(&lines);
        let grown = bytes_now - before.bytes;
        let dependents_now = dependents(&lines);
        let dropped = before
            .dependents
            .iter()
            .find(|(key, _)| !dependents_now.contains_key(*key));
        // What the step did is named before a lock it holds: a refused grant or cascade
        // locks what it reached too.
        let foreign_lock = lines.iter().find_map(|l| l.strip_prefix('%'));
        let verdict = match (findings.first(), dropped) {
            (Some(finding), _) => Err(finding.to_string()),
            (None, Some((_, what))) => Err(format!(
                "the step dropped or changed {what}, which is outside the plugin's schema and \
                 depends on its objects (CASCADE drops other schemas' objects, and a change \
                 of a type changes their values); the application drops its own objects \
                 first"
            )),
            (None, None) if let Some(lock) = foreign_lock => Err(lock.to_string()),
            (None, None) if grown > 0 && grown as u64 > self.growth_quota => Err(format!(
                "the step grew the database past its quota of {} MiB (its schema grew by {} \
                 MiB; max_growth in [limits])",
                self.growth_quota >> 20,
                grown >> 20
            )),
            (None, None) => Ok(()),
        };

        if verdict.is_ok()
            && let Some(p) = self.plugins.get_mut(&access.plugin)
        {
            p.checked = Some(Mark {
                plugin: access.plugin.clone(),
                objects: after.clone(),
                bytes: bytes_now,
                dependents: dependents_now,
                grants: grants_now,
                tables: None,
            });
        }
        Ok(StepCheck { verdict, changes })
    }
}

/// What the guard compares the catalogs with, read at every step from what the host
/// committed (a step's own transaction would see what the step changed; another runner may
/// have provisioned the plugins since).
pub(super) struct GuardInputs {
    /// The roles of the plugins the policy lets read this one (`text[]`): they may hold
    /// `SELECT` on its tables and `USAGE` on its schema.
    readers: String,
    /// The role's settings (`text[]`, `name=value`).
    settings: String,
    /// The role's password verifier, put back if the step changed it.
    verifier: String,
}

/// The readers' roles and the role's settings, and whether the step `$3` of the plugin is
/// applied (the step's re-check), in one round trip. `$1`: the plugin; `$2`: its role.
const GUARD_INPUTS: &str = "
SELECT EXISTS (SELECT 1 FROM wasmig.applied WHERE plugin = $1 AND version = $3),
       coalesce((SELECT pg_catalog.array_agg(p.role::text ORDER BY p.role)::text
                   FROM wasmig.plugin_read r JOIN wasmig.plugin_role p ON p.plugin = r.reader
                  WHERE r.plugin = $1), '{}'),
       coalesce((SELECT setconfig::text FROM pg_catalog.pg_db_role_setting
                  WHERE setdatabase = 0
                    AND setrole = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = $2)), '{}')";

/// A `text[]` literal of `items`.
fn text_array(items: &[String]) -> String {
    format!(
        "{{{}}}",
        items
            .iter()
            .map(|s| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\"")))
            .collect::<Vec<_>>()
            .join(",")
    )
}

impl PgBackend {
    /// The guard's inputs for `plugin`, from the host's session, and whether its step
    /// `version` is applied.
    pub(super) fn guard_inputs(
        &mut self,
        plugin: &str,
        version: &str,
    ) -> Result<(bool, GuardInputs)> {
        let role = names_of(&self.database, plugin)
            .map_err(|e| self.error(&format!("plugin {plugin}"), e))?
            .role;
        let rows = self.host_run(
            "cannot read the applied state and what the guard compares with",
            GUARD_INPUTS,
            vec![
                Param::Text(plugin.to_string()),
                Param::Text(role.clone()),
                Param::Text(version.to_string()),
            ],
        )?;
        let row = rows.first();
        let text = |i: usize| {
            row.map(|r| Self::text(&r[i]))
                .unwrap_or_else(|| "{}".to_string())
        };
        let applied = row.is_some_and(|r| r[0] == Value::Integer(1));
        let inputs = GuardInputs {
            readers: text(1),
            settings: text(2),
            verifier: self.verifier(&role)?,
        };
        Ok((applied, inputs))
    }
}

/// The grants among the guard's lines (see [`grants`]): whether the policy allows each, and
/// its wording.
fn grant_lines(lines: &[String]) -> impl Iterator<Item = (bool, &str)> {
    lines.iter().filter_map(|l| {
        let g = l.strip_prefix('+')?;
        g.strip_prefix('a')
            .map(|g| (true, g))
            .or_else(|| g.strip_prefix('x').map(|g| (false, g)))
    })
}

/// The [`DEPENDENTS`] lines among the guard's: key to description.
fn dependents(lines: &[String]) -> std::collections::BTreeMap<String, String> {
    lines
        .iter()
        .filter_map(|l| l.strip_prefix('>')?.split_once('\t'))
        .map(|(key, what)| (key.to_string(), what.to_string()))
        .collect()
}

/// The `#<bytes>` line of a guard function's answer (0 if none).
fn schema_bytes(lines: &[String]) -> i64 {
    lines
        .iter()
        .find_map(|l| l.strip_prefix('#'))
        .and_then(|b| b.parse().ok())
        .unwrap_or(0)
}
