//! SQL values and rows, with conversions to and from Rust types.

use crate::__bindings::wasmig::plugin::types as wit_types;
use crate::{Error, Result};

/// One SQL value: the WIT `value` type itself, so parameters cross to the host without
/// being copied first.
pub use crate::__bindings::wasmig::plugin::types::Value;

impl Value {
    /// Appends the value as `execute-packed` takes it (see `wit/plugin.wit`): a tag byte,
    /// then 8 little-endian bytes of number, or a 4-byte little-endian length and the bytes.
    // Inlined into each caller, where a batch row's kinds of value are often known: at
    // `opt-level = "s"` it would otherwise be a call per value, for a few KB of code.
    #[inline(always)]
    pub(crate) fn pack(&self, out: &mut Vec<u8>) {
        match self {
            Value::Null => out.push(0),
            Value::Integer(i) => put(out, 1, i.to_le_bytes()),
            Value::Real(r) => put(out, 2, r.to_le_bytes()),
            Value::Text(t) => put_bytes(out, 3, t.as_bytes()),
            Value::Blob(b) => put_bytes(out, 4, b),
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Value::Null => "NULL",
            Value::Integer(_) => "INTEGER",
            Value::Real(_) => "REAL",
            Value::Text(_) => "TEXT",
            Value::Blob(_) => "BLOB",
        }
    }
}

macro_rules! integer_from {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Self {
                Value::Integer(v.into())
            }
        }
    )*};
}
integer_from!(i8, i16, i32, i64, u8, u16, u32, bool);

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Real(v)
    }
}
impl From<f32> for Value {
    fn from(v: f32) -> Self {
        Value::Real(v.into())
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_string())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}
impl From<&String> for Value {
    fn from(v: &String) -> Self {
        Value::Text(v.clone())
    }
}
impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Self {
        Value::Blob(v)
    }
}
impl From<&[u8]> for Value {
    fn from(v: &[u8]) -> Self {
        Value::Blob(v.to_vec())
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

/// Converts a SQL value into a Rust type, for [`Row::get`].
pub trait FromValue: Sized {
    /// Converts `value`, or explains why it cannot.
    fn from_value(value: &Value) -> Result<Self>;
}

fn mismatch<T>(want: &str, got: &Value) -> Result<T> {
    Err(Error::other(format!(
        "expected {want}, found {}",
        got.kind()
    )))
}

impl FromValue for i64 {
    fn from_value(value: &Value) -> Result<Self> {
        match value {
            Value::Integer(v) => Ok(*v),
            other => mismatch("INTEGER", other),
        }
    }
}
impl FromValue for bool {
    fn from_value(value: &Value) -> Result<Self> {
        Ok(i64::from_value(value)? != 0)
    }
}
impl FromValue for f64 {
    fn from_value(value: &Value) -> Result<Self> {
        match value {
            Value::Real(v) => Ok(*v),
            Value::Integer(v) => Ok(*v as f64),
            other => mismatch("REAL", other),
        }
    }
}
impl FromValue for String {
    fn from_value(value: &Value) -> Result<Self> {
        match value {
            Value::Text(v) => Ok(v.clone()),
            other => mismatch("TEXT", other),
        }
    }
}
impl FromValue for Vec<u8> {
    fn from_value(value: &Value) -> Result<Self> {
        match value {
            Value::Blob(v) => Ok(v.clone()),
            other => mismatch("BLOB", other),
        }
    }
}
impl FromValue for Value {
    fn from_value(value: &Value) -> Result<Self> {
        Ok(value.clone())
    }
}
impl<T: FromValue> FromValue for Option<T> {
    fn from_value(value: &Value) -> Result<Self> {
        match value {
            Value::Null => Ok(None),
            other => T::from_value(other).map(Some),
        }
    }
}

/// A way to name a column in [`Row::get`]: its name or its index.
pub trait ColumnIndex {
    #[doc(hidden)]
    fn position(&self, columns: &[String]) -> Result<usize>;
}

impl ColumnIndex for usize {
    fn position(&self, columns: &[String]) -> Result<usize> {
        if *self < columns.len() {
            Ok(*self)
        } else {
            Err(Error::other(format!(
                "column index {self} out of range ({} columns)",
                columns.len()
            )))
        }
    }
}

impl ColumnIndex for &str {
    fn position(&self, columns: &[String]) -> Result<usize> {
        columns
            .iter()
            .position(|c| c.eq_ignore_ascii_case(self))
            .ok_or_else(|| Error::other(format!("no column named {self}")))
    }
}

/// The rows a query returned.
#[derive(Debug, Clone, Default)]
pub struct Rows {
    columns: std::rc::Rc<[String]>,
    rows: Vec<Vec<Value>>,
}

impl Rows {
    pub(crate) fn from_wit(rows: wit_types::Rows) -> Self {
        Rows {
            columns: rows.columns.into(),
            rows: rows.rows,
        }
    }

    /// Column names, in order.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// How many rows there are.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The row at `index`.
    pub fn get(&self, index: usize) -> Option<Row<'_>> {
        self.rows.get(index).map(|values| Row {
            columns: &self.columns,
            values,
        })
    }

    /// Iterates over the rows.
    pub fn iter(&self) -> impl Iterator<Item = Row<'_>> {
        self.rows.iter().map(|values| Row {
            columns: &self.columns,
            values,
        })
    }
}

impl<'a> IntoIterator for &'a Rows {
    type Item = Row<'a>;
    type IntoIter = Box<dyn Iterator<Item = Row<'a>> + 'a>;
    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

/// One row of a query result.
#[derive(Debug, Clone, Copy)]
pub struct Row<'a> {
    columns: &'a [String],
    values: &'a [Value],
}

impl Row<'_> {
    /// The value of a column, by name (case-insensitive) or index, converted to `T`.
    pub fn get<T: FromValue>(&self, column: impl ColumnIndex) -> Result<T> {
        let i = column.position(self.columns)?;
        T::from_value(&self.values[i])
            .map_err(|e| Error::other(format!("column {}: {}", self.columns[i], e.message())))
    }

    /// The raw values, in column order.
    pub fn values(&self) -> &[Value] {
        self.values
    }
}

/// Appends a tag byte, the 4-byte length and the bytes of a text or blob. Linear memory is
/// 32-bit: the length fits.
#[inline(always)]
fn put_bytes(out: &mut Vec<u8>, tag: u8, bytes: &[u8]) {
    put(out, tag, (bytes.len() as u32).to_le_bytes());
    let (len, n) = (out.len(), bytes.len());
    if n > 16 {
        out.extend_from_slice(bytes);
        return;
    }
    // Up to 16 bytes (names, keys, codes: most texts) are copied with fixed-size loads and
    // stores, overlapping where `n` is not a power of two. `extend_from_slice` would copy
    // them with `memory.copy`, a call into the host per text.
    out.reserve(n);
    // SAFETY: `reserve` made room for `n` more bytes, and every read and write below is
    // within `bytes[..n]` and the `n` bytes after `len`; they are all written before the
    // length covers them.
    unsafe {
        let (src, dst) = (bytes.as_ptr(), out.as_mut_ptr().add(len));
        match n {
            8..=16 => copy_ends::<u64>(src, dst, n),
            4..=7 => copy_ends::<u32>(src, dst, n),
            1..=3 => {
                dst.write(src.read());
                dst.add(n / 2).write(src.add(n / 2).read());
                dst.add(n - 1).write(src.add(n - 1).read());
            }
            _ => {}
        }
        out.set_len(len + n);
    }
}

/// Copies `n` bytes, `size_of::<T>() <= n <= 2 * size_of::<T>()`, as the first and the last
/// `T` of them (overlapping unless `n` is twice the width).
///
/// # Safety
/// `src` must be readable and `dst` writable for `n` bytes.
#[inline(always)]
unsafe fn copy_ends<T>(src: *const u8, dst: *mut u8, n: usize) {
    let w = std::mem::size_of::<T>();
    // SAFETY: both copies lie within the first `n` bytes of `src` and `dst`, since
    // `w <= n`; the caller vouches for those.
    unsafe {
        dst.cast::<T>()
            .write_unaligned(src.cast::<T>().read_unaligned());
        dst.add(n - w)
            .cast::<T>()
            .write_unaligned(src.add(n - w).cast::<T>().read_unaligned());
    }
}

/// Appends a tag byte and `N` bytes with plain stores. `extend_from_slice` would do the same
/// through `memcpy`, which a wasm build turns into `memory.copy`: a call into the host per use,
/// five per row of four values.
#[inline(always)]
fn put<const N: usize>(out: &mut Vec<u8>, tag: u8, bytes: [u8; N]) {
    out.reserve(N + 1);
    let len = out.len();
    // SAFETY: `reserve` made room for `N + 1` more bytes; they are written before the length
    // covers them.
    unsafe {
        let end = out.as_mut_ptr().add(len);
        end.write(tag);
        end.add(1).cast::<[u8; N]>().write_unaligned(bytes);
        out.set_len(len + N + 1);
    }
}
