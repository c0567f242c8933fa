//! The host side of `wasmig:plugin/sql`, written by hand instead of generated: statements and
//! parameters are read in place from the plugin's linear memory (no `String` or `Vec` per
//! value), which would otherwise be most of what one import call per row costs.

use super::StepState;
use super::batch::{BATCH_CHUNK, MAX_BATCH_VALUES, run_batch, unpack};
use super::bindings::wasmig::plugin::types;
use crate::store::{Backend, Rows, SqlError, Value, ValueRef};
use wasmtime::component::{ComponentType, Lift, Linker, WasmList, WasmStr};
use wasmtime::{AsContextMut, StoreContextMut};

/// The WIT interface these functions implement.
const INTERFACE: &str = "wasmig:plugin/sql@0.1.0";

/// The most values a packed call reserves room for before it decodes them: what the SDK's
/// batch sends per call.
const RESERVED_VALUES: usize = 16 * 1024;

/// The most parameters one statement may take: SQLite's default `SQLITE_MAX_VARIABLE_NUMBER`.
const MAX_STATEMENT_PARAMS: usize = 32766;

/// The most values of `execute-many` rows lifted and run at once.
const MANY_CHUNK_VALUES: usize = 64 * 1024;

/// The WIT `value`, lifted without copying: text and blobs stay in the plugin's memory.
#[derive(ComponentType, Lift)]
#[component(variant)]
pub(super) enum Param {
    #[component(name = "null")]
    Null,
    #[component(name = "integer")]
    Integer(i64),
    #[component(name = "real")]
    Real(f64),
    #[component(name = "text")]
    Text(WasmStr),
    #[component(name = "blob")]
    Blob(WasmList<u8>),
}

impl Param {
    /// The value, borrowed from the plugin's memory.
    fn get<'a>(&self, store: &'a StoreContextMut<'_, StepState>) -> wasmtime::Result<ValueRef<'a>> {
        Ok(match self {
            Param::Null => ValueRef::Null,
            Param::Integer(i) => ValueRef::Integer(*i),
            Param::Real(r) => ValueRef::Real(*r),
            Param::Text(t) => match t.to_str(store)? {
                std::borrow::Cow::Borrowed(t) => ValueRef::Text(t),
                // Only for plugins that declare a UTF-16 or Latin-1 string encoding; wasmig's
                // SDK uses UTF-8, which is always borrowed.
                std::borrow::Cow::Owned(_) => {
                    wasmtime::bail!("wasmig takes text parameters in UTF-8 only")
                }
            },
            Param::Blob(b) => ValueRef::Blob(b.as_le_slice(store)),
        })
    }
}

/// What a call borrows from the store while the plugin's memory is read in place: the
/// backend, the audit trail and scratch space for lifted parameters. Always handed back, even
/// when the call traps.
struct Lent {
    backend: Box<dyn Backend>,
    report: super::CallReport,
    params: Vec<Param>,
    values: Vec<ValueRef<'static>>,
}

/// Lends the step's backend to `body`, with the store readable for the plugin's memory.
/// Without a backend (during `manifest()`) the plugin gets `access-denied`. Every error
/// answer goes into the audit trail's record ([`super::CallReport::answered`]); with `one`,
/// `body` runs one statement, whose error, once it ran, is its failure
/// ([`super::CallReport::failed`]), whole if no row changed meanwhile (a batch's rows may
/// have been written before its error: not `one`).
fn with_backend<R>(
    mut store: StoreContextMut<'_, StepState>,
    one: bool,
    body: impl FnOnce(
        &mut Lent,
        &mut StoreContextMut<'_, StepState>,
    ) -> wasmtime::Result<Result<R, SqlError>>,
) -> wasmtime::Result<Result<R, types::Error>> {
    let state = store.data_mut();
    if let Err(e) = ready(state) {
        state.report.answered(&e);
        return Ok(Err(e));
    }
    let runs = state.report.runs;
    let backend = state.backend.take().expect("ready");
    let changes = backend.total_changes();
    let mut lent = Lent {
        backend,
        report: std::mem::take(&mut state.report),
        params: std::mem::take(&mut state.params),
        values: std::mem::take(&mut state.values),
    };
    let result = body(&mut lent, &mut store);
    let state = store.data_mut();
    state.backend = Some(lent.backend);
    state.report = lent.report;
    lent.params.clear();
    state.params = lent.params;
    state.values = lent.values;
    let result = result?.map_err(to_wit_error);
    if let Err(e) = &result {
        state.report.answered(e);
        if one && state.report.runs > runs {
            let whole = state
                .backend
                .as_ref()
                .is_none_or(|b| b.total_changes() == changes);
            state.report.failed(whole);
        }
    }
    Ok(result)
}

/// What every call does first: waits for a batch in flight (its error, if it failed, is
/// this call's answer), and checks that a step is running (not `manifest()`).
fn ready(state: &mut StepState) -> Result<(), types::Error> {
    if let Some(e) = settle_batches(state) {
        return Err(to_wit_error(e));
    }
    if state.backend.is_none() {
        return Err(types::Error::AccessDenied(
            "SQL is only available while a migration step runs, not in manifest()".into(),
        ));
    }
    Ok(())
}

/// Waits for the batch `send-batch-packed` started, if one is running, and gives the step its
/// backend back; the batch's error, if it failed (reported by the call that settles it).
pub(super) fn settle_batches(state: &mut StepState) -> Option<SqlError> {
    state.pipeline.as_mut()?.settle(&mut state.backend)
}

/// Lifts a parameter list into `out` (handles into the plugin's memory, not copies).
fn lift_params(
    store: &mut StoreContextMut<'_, StepState>,
    list: &WasmList<Param>,
    out: &mut Vec<Param>,
) -> wasmtime::Result<()> {
    for p in list.iter(store.as_context_mut())? {
        out.push(p?);
    }
    Ok(())
}

/// One statement with its parameters, recorded in the audit trail and run by `run` on the
/// lent backend.
fn one_statement<R>(
    mut store: StoreContextMut<'_, StepState>,
    statement: WasmStr,
    params: WasmList<Param>,
    run: impl FnOnce(&mut dyn Backend, &str, &[ValueRef<'_>]) -> Result<R, SqlError>,
) -> wasmtime::Result<Result<R, types::Error>> {
    let result = with_backend(store.as_context_mut(), true, |lent, store| {
        if let Err(e) = statement_params(params.len()) {
            return Ok(Err(e));
        }
        lift_params(store, &params, &mut lent.params)?;
        let store = &*store;
        let statement = statement.to_str(store)?;
        lent.report.ran(&statement);
        let values = values(&lent.params, store)?;
        Ok(run(&mut *lent.backend, &statement, &values))
    })?;
    Ok(result)
}

/// Refuses more parameters than one statement can bind, before the host lifts any: the list
/// sits in the plugin's memory, bounded by the plugin's memory limit, but each lifted value
/// costs the host more than it costs the plugin.
fn statement_params(n: usize) -> Result<(), SqlError> {
    if n > MAX_STATEMENT_PARAMS {
        return Err(SqlError::Limit(format!(
            "a statement takes at most {MAX_STATEMENT_PARAMS} parameters, got {n}"
        )));
    }
    Ok(())
}

/// One statement with packed parameters (at most `max` values), recorded in the audit trail
/// and run by `run` on the lent backend; `one` as [`with_backend`] takes it.
fn packed_statement<R>(
    mut store: StoreContextMut<'_, StepState>,
    statement: WasmStr,
    params: WasmList<u8>,
    max: usize,
    one: bool,
    run: impl FnOnce(&mut dyn Backend, &str, &[ValueRef<'_>]) -> Result<R, SqlError>,
) -> wasmtime::Result<Result<R, types::Error>> {
    with_backend(store.as_context_mut(), one, |lent, store| {
        let store = &*store;
        let statement = statement.to_str(store)?;
        lent.report.ran(&statement);
        let packed = params.as_le_slice(store);
        // Room for as many values as the bytes would hold numbers (9 bytes each; text and
        // blobs take 5 and more), up to what the SDK's batch sends: a batch's vector is not
        // grown 14 times, and a 1 MiB blob reserves room for 16,384 values, not 116,509.
        let room = (packed.len() / 9 + 1).min(max).min(RESERVED_VALUES);
        let mut values = relend(std::mem::take(&mut lent.values));
        values.reserve(room);
        let result = match unpack(packed, &mut values, max) {
            Ok(()) => run(&mut *lent.backend, &statement, &values),
            Err(e) => Err(e),
        };
        lent.values = relend(values);
        Ok(result)
    })
}

/// Empties a vector of borrowed values so that its allocation can hold values of another
/// lifetime: the decoding buffer is kept between calls instead of allocated for each one.
/// (`collect` reuses the allocation of a `vec::IntoIter` whose items have the same layout.)
fn relend<'b>(mut values: Vec<ValueRef<'_>>) -> Vec<ValueRef<'b>> {
    values.clear();
    values
        .into_iter()
        .map(|_| unreachable!("emptied"))
        .collect()
}

pub(super) fn add_to_linker(linker: &mut Linker<StepState>) -> wasmtime::Result<()> {
    let mut sql = linker.instance(INTERFACE)?;
    // `query` lifts its parameters into a buffer kept between calls, after checking how
    // many there are.
    sql.func_wrap(
        "query",
        |store: StoreContextMut<'_, StepState>, (statement, params): (WasmStr, WasmList<Param>)| {
            let result = one_statement(store, statement, params, |backend, statement, values| {
                backend.query(statement, values)
            })?;
            Ok((result.map(to_wit_rows),))
        },
    )?;
    sql.func_wrap(
        "execute-many",
        |mut store: StoreContextMut<'_, StepState>,
         (statement, rows): (WasmStr, WasmList<WasmList<Param>>)| {
            let result = with_backend(store.as_context_mut(), false, |lent, store| {
                // Owned: rows are lifted chunk by chunk, which needs the store mutably.
                let statement = statement.to_str(&*store)?.into_owned();
                lent.report.ran(&statement);
                // Rows are lifted a chunk at a time, bounded in rows and in values, and the
                // statement runs (is prepared and authorized) even for no rows.
                let (count, mut next) = (rows.len(), 0);
                let mut changed = 0;
                let mut ends = Vec::with_capacity(BATCH_CHUNK);
                loop {
                    lent.params.clear();
                    ends.clear();
                    while next < count
                        && ends.len() < BATCH_CHUNK
                        && lent.params.len() < MANY_CHUNK_VALUES
                    {
                        let row = rows
                            .get(store.as_context_mut(), next)
                            .expect("an index below the length")?;
                        if let Err(e) = statement_params(row.len()) {
                            return Ok(Err(e));
                        }
                        lift_params(store, &row, &mut lent.params)?;
                        ends.push(lent.params.len());
                        next += 1;
                    }
                    let ends = ends.iter().copied();
                    match run_rows(&mut *lent.backend, &statement, store, &lent.params, ends)? {
                        Ok(n) => changed += n,
                        Err(e) => return Ok(Err(e)),
                    }
                    if next >= count {
                        break;
                    }
                }
                Ok(Ok(changed))
            })?;
            Ok((result,))
        },
    )?;
    sql.func_wrap(
        "execute-packed",
        |store: StoreContextMut<'_, StepState>, (statement, params): (WasmStr, WasmList<u8>)| {
            let result = packed_statement(
                store,
                statement,
                params,
                MAX_STATEMENT_PARAMS,
                true,
                |b, s, v| b.execute(s, v),
            )?;
            Ok((result,))
        },
    )?;
    sql.func_wrap(
        "execute-batch-packed",
        |store: StoreContextMut<'_, StepState>,
         (statement, width, params): (WasmStr, u32, WasmList<u8>)| {
            let result = packed_statement(
                store,
                statement,
                params,
                MAX_BATCH_VALUES,
                false,
                |b, s, v| run_batch(b, s, width as usize, v, "execute-batch-packed"),
            )?;
            Ok((result,))
        },
    )?;
    sql.func_wrap(
        "send-batch-packed",
        |mut store: StoreContextMut<'_, StepState>,
         (statement, width, params): (WasmStr, u32, WasmList<u8>)| {
            let state = store.data_mut();
            if let Err(e) = ready(state) {
                state.report.answered(&e);
                return Ok((Err(e),));
            }
            if state.pipeline.is_none() {
                match super::pipeline::Pipeline::start() {
                    Ok(p) => state.pipeline = Some(p),
                    Err(e) => {
                        let e = to_wit_error(e);
                        state.report.answered(&e);
                        return Ok((Err(e),));
                    }
                }
            }
            if params.len() > super::pipeline::MAX_COPIED_BYTES {
                // Too large to copy: run in place, as `execute-batch-packed` does, and report
                // an error the way a batch on the worker would.
                let result = packed_statement(
                    store.as_context_mut(),
                    statement,
                    params,
                    MAX_BATCH_VALUES,
                    false,
                    |b, s, v| run_batch(b, s, width as usize, v, "send-batch-packed"),
                )?;
                let result = result.map_err(from_wit_error);
                let pipeline = store.data_mut().pipeline.as_mut().expect("started");
                pipeline.ran_here(result);
                return Ok((Ok(()),));
            }
            let mut bytes = state.pipeline.as_mut().expect("started").buffer();
            // A copy: the plugin reuses its buffer for the next rows while these run.
            bytes.extend_from_slice(params.as_le_slice(&store));
            let statement = statement.to_str(&store)?.into_owned();
            let state = store.data_mut();
            state.report.ran(&statement);
            let backend = state.backend.take().expect("checked above");
            let pipeline = state.pipeline.as_mut().expect("started");
            pipeline.send(backend, statement, width as usize, bytes);
            Ok((Ok(()),))
        },
    )?;
    sql.func_wrap(
        "finish-batches",
        |mut store: StoreContextMut<'_, StepState>, (): ()| {
            let state = store.data_mut();
            if let Err(e) = ready(state) {
                state.report.answered(&e);
                return Ok((Err(e),));
            }
            let changed = state.pipeline.as_mut().map_or(0, |p| p.take_changed());
            Ok((Ok(changed),))
        },
    )?;
    sql.func_wrap(
        "execute-script",
        |mut store: StoreContextMut<'_, StepState>, (script,): (WasmStr,)| {
            // The backend tells which of the script's statements failed, if one did.
            let result = with_backend(store.as_context_mut(), false, |lent, store| {
                let script = script.to_str(&*store)?;
                let report = &mut lent.report;
                Ok(lent
                    .backend
                    .execute_script(&script, &mut |step| report.script_step(step)))
            })?;
            Ok((result,))
        },
    )?;
    Ok(())
}

/// Binds and runs rows whose parameters lie end to end in `params`, row `i` ending at the
/// `i`-th of `ends`.
fn run_rows(
    backend: &mut dyn Backend,
    statement: &str,
    store: &StoreContextMut<'_, StepState>,
    params: &[Param],
    ends: impl Iterator<Item = usize>,
) -> wasmtime::Result<Result<u64, SqlError>> {
    let values = values(params, store)?;
    let mut start = 0;
    let rows: Vec<&[ValueRef<'_>]> = ends
        .map(|end| {
            let row = &values[start..end];
            start = end;
            row
        })
        .collect();
    Ok(backend.execute_many(statement, &rows))
}

/// The lifted parameters as values borrowed from the plugin's memory.
fn values<'a>(
    params: &[Param],
    store: &'a StoreContextMut<'_, StepState>,
) -> wasmtime::Result<Vec<ValueRef<'a>>> {
    params.iter().map(|p| p.get(store)).collect()
}

fn from_value(v: Value) -> types::Value {
    match v {
        Value::Null => types::Value::Null,
        Value::Integer(i) => types::Value::Integer(i),
        Value::Real(r) => types::Value::Real(r),
        Value::Text(t) => types::Value::Text(t),
        Value::Blob(b) => types::Value::Blob(b),
    }
}

pub(super) fn to_wit_error(e: SqlError) -> types::Error {
    match e {
        SqlError::AccessDenied(m) => types::Error::AccessDenied(m),
        SqlError::Constraint(m) => types::Error::Constraint(m),
        SqlError::Syntax(m) => types::Error::Syntax(m),
        SqlError::Limit(m) => types::Error::Limit(m),
        SqlError::Other(m) => types::Error::Other(m),
    }
}

fn from_wit_error(e: types::Error) -> SqlError {
    match e {
        types::Error::AccessDenied(m) => SqlError::AccessDenied(m),
        types::Error::Constraint(m) => SqlError::Constraint(m),
        types::Error::Syntax(m) => SqlError::Syntax(m),
        types::Error::Limit(m) => SqlError::Limit(m),
        types::Error::Other(m) => SqlError::Other(m),
    }
}

fn to_wit_rows(rows: Rows) -> types::Rows {
    types::Rows {
        columns: rows.columns,
        rows: rows
            .rows
            .into_iter()
            .map(|r| r.into_iter().map(from_value).collect())
            .collect(),
    }
}
