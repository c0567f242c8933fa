//! Running a batch of rows whose values lie end to end: what `execute-batch-packed` does in
//! the call and `send-batch-packed` on the pipeline's worker, so both share one leaf.

use crate::store::{Backend, SqlError, ValueRef};

/// The most values one packed batch may carry: bounds what the host holds at once (the SDK
/// sends 16,384 per call).
pub(super) const MAX_BATCH_VALUES: usize = 1 << 20;

/// Rows bound per call into the storage seam: bounds the host memory a batch of any size
/// needs to a few of these rows at a time.
pub(super) const BATCH_CHUNK: usize = 1024;

/// `items` in chunks of `size`, or one empty chunk when there are none: an empty batch still
/// prepares its statement, so a bad one is reported.
fn chunks_or_empty<T>(items: &[T], size: usize) -> impl Iterator<Item = &[T]> {
    items.chunks(size).chain(items.is_empty().then_some(items))
}

/// Runs `statement` once per row of `values`, `width` values a row, bound a chunk of rows at a
/// time. `call` names the import in the error for values that are not whole rows.
pub(super) fn run_batch(
    backend: &mut dyn Backend,
    statement: &str,
    width: usize,
    values: &[ValueRef<'_>],
    call: &str,
) -> Result<u64, SqlError> {
    if width == 0 || !values.len().is_multiple_of(width) {
        return Err(SqlError::Syntax(format!(
            "{call} got {} values, which is not a whole number of rows of {width}",
            values.len()
        )));
    }
    let mut changed = 0;
    for chunk in chunks_or_empty(values, width * BATCH_CHUNK) {
        let rows: Vec<&[ValueRef<'_>]> = chunk.chunks(width).collect();
        changed += backend.execute_many(statement, &rows)?;
    }
    Ok(changed)
}

/// Decodes packed values (see [`wasmig_format::packed`]), at most `max` of them.
pub(super) fn unpack<'a>(
    bytes: &'a [u8],
    out: &mut Vec<ValueRef<'a>>,
    max: usize,
) -> Result<(), SqlError> {
    wasmig_format::packed::unpack(bytes, out, max).map_err(|e| match e {
        wasmig_format::packed::UnpackError::Malformed(m) => SqlError::Other(m),
        e @ wasmig_format::packed::UnpackError::TooMany(_) => SqlError::Limit(e.to_string()),
    })
}
