//! The application's connections may set SQLite's run-time limits (`sqlite3_limit`) below its
//! defaults, as SQLite recommends for connections that may meet untrusted input. SQLite
//! applies them when a connection reads the database's schema, to each definition in turn,
//! and a connection that meets one past them reads no table at all ("malformed database
//! schema"): every plugin's tables and the application's are lost to it. When the policy
//! declares such limits (`[sqlite] application_limits`), the definitions a step created or
//! changed are read, after it, by SQLite itself under them: a scratch database is given those
//! rows of `sqlite_schema` and reads them as the application's connection would, with the
//! same parse and the same checks.

use super::Scope;
use super::SqliteBackend;
use super::schema_check::SchemaObject;
use crate::policy::ApplicationLimits;
use rusqlite::{Connection, limits::Limit, params};

impl SqliteBackend {
    /// Whether the plugin's objects that the step created or changed (`changed`, among all
    /// of its objects, `owned`) load under the application's limits, and the database's
    /// objects are within their number; `Err`: why the step is refused.
    pub(super) fn check_load_limits(
        &self,
        scope: &Scope,
        owned: &[SchemaObject],
        changed: &[(&str, &SchemaObject)],
    ) -> Result<(), String> {
        let Some(limits) = self.application_limits else {
            return Ok(());
        };
        if let Some(max) = limits.schema {
            // SQLite counts its own schema table among them, and the primary key of a table
            // WITHOUT ROWID, which has no row of its own (fts5 makes two such tables).
            let objects: i64 = self
                .conn
                .query_row(
                    "SELECT 1 + (SELECT count(*) FROM main.sqlite_schema)
                       + (SELECT count(*) FROM pragma_table_list WHERE schema = 'main' AND wr)",
                    [],
                    |r| r.get(0),
                )
                .map_err(|e| format!("cannot count the schema's objects: {e}"))?;
            if objects > i64::from(max) {
                return Err(format!(
                    "the database would hold {objects} schema objects, more than the {max} \
                     the application's connections read (schema in [sqlite] \
                     application_limits): such a connection reads no table of the database \
                     at all"
                ));
            }
        }
        let main = |o: &&SchemaObject| o.schema == "main" && o.sql.is_some();
        let made: Vec<&SchemaObject> = changed
            .iter()
            .filter(|(what, o)| *what != "dropped" && scope.owns(&o.name))
            .map(|(_, o)| *o)
            .filter(main)
            .collect();
        if made.is_empty() {
            return Ok(());
        }
        // An index or a trigger is read only after the table or view it is on.
        let mut rows: Vec<&SchemaObject> = owned
            .iter()
            .filter(main)
            .filter(|o| {
                made.iter().any(|m| {
                    m.name.eq_ignore_ascii_case(&o.name)
                        || (m.kind != "table" && m.kind != "view")
                            && m.table.eq_ignore_ascii_case(&o.name)
                })
            })
            .collect();
        rows.sort_by_key(|o| match o.kind.as_str() {
            "table" => 0,
            "view" => 1,
            "index" => 2,
            _ => 3,
        });
        // SQLite measures a definition against `length` in the database's encoding.
        let encoding: String = self
            .conn
            .query_row("PRAGMA main.encoding", [], |r| r.get(0))
            .map_err(|e| format!("cannot read the database's encoding: {e}"))?;
        let failed = load_under(&limits, &encoding, &rows).map_err(|e| {
            format!("cannot read the step's definitions under the application's limits: {e}")
        })?;
        let Err(message) = failed else {
            return Ok(());
        };
        let what = message
            .strip_prefix("malformed database schema (")
            .and_then(|rest| rest.split_once(')'))
            .and_then(|(name, _)| rows.iter().find(|o| o.name == name))
            .map_or_else(
                || "a definition the step made".to_string(),
                |o| format!("{} {:?}", o.kind, o.name),
            );
        Err(format!(
            "{what} is past the limits the application's connections set ([sqlite] \
             application_limits): SQLite says \"{message}\" when it reads the schema under \
             them, and such a connection then reads no table of the database at all"
        ))
    }
}

/// SQLite's limit of a key of [`ApplicationLimits`] that it applies to each definition
/// (`schema` is their number in the whole database, counted on the database itself).
pub(super) fn limit_of(key: &str) -> Option<Limit> {
    Some(match key {
        "length" => Limit::SQLITE_LIMIT_LENGTH,
        "sql_length" => Limit::SQLITE_LIMIT_SQL_LENGTH,
        "column" => Limit::SQLITE_LIMIT_COLUMN,
        "expr_depth" => Limit::SQLITE_LIMIT_EXPR_DEPTH,
        "compound_select" => Limit::SQLITE_LIMIT_COMPOUND_SELECT,
        "function_arg" => Limit::SQLITE_LIMIT_FUNCTION_ARG,
        "parser_depth" => Limit::SQLITE_LIMIT_PARSER_DEPTH,
        "trigger_steps" => Limit::SQLITE_LIMIT_TRIGGER_STEPS,
        _ => return None,
    })
}

/// Reads `rows` of `sqlite_schema`, in that order, as a connection with `limits` reads a
/// database's schema: `Ok(Err(message))` is SQLite's refusal.
fn load_under(
    limits: &ApplicationLimits,
    encoding: &str,
    rows: &[&SchemaObject],
) -> rusqlite::Result<Result<(), String>> {
    let c = Connection::open_in_memory()?;
    // Tables and indexes get root pages of their own, each one a page of the file (SQLite
    // checks both), which nothing reads: reading the schema opens no table.
    c.pragma_update(None, "encoding", encoding)?;
    c.execute_batch(&format!(
        "PRAGMA page_size = 512; CREATE TABLE pages (x); \
         INSERT INTO pages VALUES (zeroblob({}))",
        512 * (rows.len() + 4)
    ))?;
    c.execute_batch("PRAGMA writable_schema = ON; DELETE FROM sqlite_schema")?;
    {
        let mut insert = c.prepare(
            "INSERT INTO sqlite_schema (type, name, tbl_name, rootpage, sql) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for (i, o) in rows.iter().enumerate() {
            let virtual_table = o
                .sql
                .as_deref()
                .is_some_and(|sql| sql.starts_with("CREATE VIRTUAL TABLE"));
            let root = match o.kind.as_str() {
                "index" => i as i64 + 3,
                "table" if !virtual_table => i as i64 + 3,
                _ => 0,
            };
            insert.execute(params![o.kind, o.name, o.table, root, o.sql])?;
        }
    }
    let version: i64 = c.query_row("PRAGMA schema_version", [], |r| r.get(0))?;
    c.execute_batch(&format!("PRAGMA schema_version = {}", version + 1))?;
    for (key, value) in limits.set() {
        if let Some(limit) = limit_of(key) {
            c.set_limit(limit, value)?;
        }
    }
    Ok(
        c.execute_batch("PRAGMA writable_schema = RESET; SELECT count(*) FROM sqlite_schema")
            .map_err(|e| match e {
                rusqlite::Error::SqliteFailure(_, Some(message)) => message,
                other => other.to_string(),
            }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(kind: &str, name: &str, table: &str, sql: &str) -> SchemaObject {
        SchemaObject {
            schema: "main".into(),
            kind: kind.into(),
            name: name.into(),
            table: table.into(),
            sql: Some(sql.into()),
        }
    }

    #[test]
    fn a_definitions_length_is_measured_in_the_databases_encoding() {
        let sql = format!("CREATE TABLE p__d (a DEFAULT '{}')", "x".repeat(30_000));
        let table = object("table", "p__d", "p__d", &sql);
        let limits = ApplicationLimits {
            length: Some(50_000),
            ..Default::default()
        };
        assert_eq!(load_under(&limits, "UTF-8", &[&table]).unwrap(), Ok(()));
        for encoding in ["UTF-16le", "UTF-16be"] {
            let err = load_under(&limits, encoding, &[&table])
                .unwrap()
                .unwrap_err();
            assert!(err.contains("too big"), "{encoding}: {err}");
        }
    }

    #[test]
    fn definitions_load_as_a_connection_with_those_limits_reads_them() {
        let columns: Vec<String> = (0..101).map(|i| format!("c{i}")).collect();
        let wide = object(
            "table",
            "p__wide",
            "p__wide",
            &format!("CREATE TABLE p__wide ({})", columns.join(", ")),
        );
        let table = object("table", "p__t", "p__t", "CREATE TABLE p__t (a, b)");
        let index = object(
            "index",
            "p__i",
            "p__t",
            "CREATE INDEX p__i ON p__t (coalesce(a, b, 1, 2, 3, 4, 5, 6, 7, 8))",
        );
        let view = object(
            "view",
            "p__v",
            "p__v",
            "CREATE VIEW p__v AS SELECT 1 UNION SELECT 2 UNION SELECT 3 UNION SELECT 4",
        );
        let fts = object(
            "table",
            "p__f",
            "p__f",
            "CREATE VIRTUAL TABLE p__f USING fts5(x)",
        );
        let recommended = ApplicationLimits::recommended();
        let load = |rows: &[&SchemaObject]| load_under(&recommended, "UTF-8", rows).unwrap();
        assert_eq!(load(&[&table, &fts]), Ok(()));
        assert_eq!(
            load(&[&table, &fts]),
            load_under(&ApplicationLimits::default(), "UTF-8", &[&table, &fts]).unwrap()
        );
        for (rows, expected) in [
            (vec![&wide], "too many columns on p__wide"),
            (
                vec![&table, &index],
                "too many arguments on function coalesce",
            ),
            (vec![&view], "too many terms in compound SELECT"),
        ] {
            let err = load(&rows).unwrap_err();
            assert!(err.contains(expected), "{err}");
            assert!(
                err.starts_with(&format!(
                    "malformed database schema ({})",
                    rows.last().unwrap().name
                )),
                "{err}"
            );
            assert_eq!(
                load_under(&ApplicationLimits::default(), "UTF-8", &rows).unwrap(),
                Ok(()),
                "{rows:?}"
            );
        }
    }
}
