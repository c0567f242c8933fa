//! SQL values packed into bytes, as the `execute-packed` family of the `sql` interface takes
//! them: per value a tag byte (0 null, 1 integer, 2 real, 3 text, 4 blob), then 8 bytes of
//! number or a 4-byte length and the bytes of text or blob, all little-endian.

/// One SQL value, borrowed from where it lives (text and blobs are not copied).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ValueRef<'a> {
    /// NULL.
    Null,
    /// A 64-bit integer.
    Integer(i64),
    /// A 64-bit float.
    Real(f64),
    /// UTF-8 text.
    Text(&'a str),
    /// Bytes.
    Blob(&'a [u8]),
}

/// Why packed values could not be read.
#[derive(Debug, Clone, PartialEq)]
pub enum UnpackError {
    /// The bytes are not values packed as described above.
    Malformed(String),
    /// There are more values than the caller takes.
    TooMany(usize),
}

impl std::fmt::Display for UnpackError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UnpackError::Malformed(m) => f.write_str(m),
            UnpackError::TooMany(max) => write!(
                f,
                "a packed call takes at most {max} values; send the rows in several calls"
            ),
        }
    }
}

/// Decodes packed values into `out`, borrowing text and blobs from `bytes`: nothing is
/// copied. At most `max` values.
#[inline]
pub fn unpack<'a>(
    bytes: &'a [u8],
    out: &mut Vec<ValueRef<'a>>,
    max: usize,
) -> Result<(), UnpackError> {
    let malformed = |at: usize, what: &str| {
        UnpackError::Malformed(format!(
            "malformed packed parameters: {what} at byte {at} of {}",
            bytes.len()
        ))
    };
    let mut rest = bytes;
    while let Some((&tag, after_tag)) = rest.split_first() {
        let at = bytes.len() - rest.len();
        if out.len() == max {
            return Err(UnpackError::TooMany(max));
        }
        let (value, after) = match tag {
            0 => (ValueRef::Null, after_tag),
            1 | 2 => {
                let (number, after) = after_tag
                    .split_first_chunk::<8>()
                    .ok_or_else(|| malformed(at, "a number cut short"))?;
                let value = if tag == 1 {
                    ValueRef::Integer(i64::from_le_bytes(*number))
                } else {
                    ValueRef::Real(f64::from_le_bytes(*number))
                };
                (value, after)
            }
            3 | 4 => {
                let (len, after) = after_tag
                    .split_first_chunk::<4>()
                    .ok_or_else(|| malformed(at, "a length cut short"))?;
                let len = u32::from_le_bytes(*len) as usize;
                if after.len() < len {
                    return Err(malformed(at, "a text or blob longer than the bytes left"));
                }
                let (data, after) = after.split_at(len);
                let value = if tag == 3 {
                    ValueRef::Text(if data.is_ascii() {
                        // Most texts are ASCII, and checking that is a few word-wide loads;
                        // `from_utf8` costs far more on a short text.
                        // SAFETY: ASCII is valid UTF-8.
                        unsafe { std::str::from_utf8_unchecked(data) }
                    } else {
                        std::str::from_utf8(data).map_err(|_| malformed(at, "text not UTF-8"))?
                    })
                } else {
                    ValueRef::Blob(data)
                };
                (value, after)
            }
            _ => return Err(malformed(at, &format!("unknown tag {tag}"))),
        };
        out.push(value);
        rest = after;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_the_encoding() {
        let mut bytes = vec![0, 1];
        bytes.extend_from_slice(&7i64.to_le_bytes());
        bytes.push(2);
        bytes.extend_from_slice(&1.5f64.to_le_bytes());
        bytes.extend_from_slice(&[3, 2, 0, 0, 0, b'h', b'i', 4, 1, 0, 0, 0, 0xff]);
        let mut out = Vec::new();
        unpack(&bytes, &mut out, 10).unwrap();
        assert_eq!(
            out,
            [
                ValueRef::Null,
                ValueRef::Integer(7),
                ValueRef::Real(1.5),
                ValueRef::Text("hi"),
                ValueRef::Blob(&[0xff])
            ]
        );
        assert_eq!(
            unpack(&bytes, &mut Vec::new(), 2),
            Err(UnpackError::TooMany(2))
        );
        assert!(unpack(&[3, 9, 0, 0, 0, b'x'], &mut Vec::new(), 10).is_err());
    }
}
