//! PostgreSQL's values as the plugin's five: what each column type comes back as.
//!
//! | PostgreSQL | value |
//! |---|---|
//! | `boolean` | `integer` 0 or 1 |
//! | `smallint`, `integer`, `bigint`, `oid` | `integer` |
//! | `real`, `double precision` | `real` |
//! | `text`, `varchar`, `char`, `name`, `json`, `jsonb`, `xml`, enums | `text` |
//! | `numeric` | `text`, exact (`12.50`) |
//! | `uuid` | `text` (`8-4-4-4-12` hex) |
//! | `date`, `timestamp`, `timestamptz` | `text` (`2026-12-04 10:30:00`, UTC with `+00`) |
//! | `bytea` | `blob` |
//! | NULL, `void` | `null` |
//!
//! Any other type is an error that names the column and suggests a cast (`col::text`).

use crate::store::Value;
use tokio_postgres::types::{FromSql, Kind, Type};

type BoxError = Box<dyn std::error::Error + Sync + Send>;

/// One column of a row, as a plugin's value.
pub(super) struct Cell(pub Value);

impl<'a> FromSql<'a> for Cell {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        decode(ty, raw).map(Cell)
    }

    fn from_sql_null(_: &Type) -> Result<Self, BoxError> {
        Ok(Cell(Value::Null))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

fn decode(ty: &Type, raw: &[u8]) -> Result<Value, BoxError> {
    let text = |raw: &[u8]| -> Result<Value, BoxError> {
        Ok(Value::Text(std::str::from_utf8(raw)?.to_string()))
    };
    Ok(match *ty {
        Type::BOOL => Value::Integer(bool::from_sql(ty, raw)? as i64),
        Type::INT2 => Value::Integer(i16::from_sql(ty, raw)? as i64),
        Type::INT4 => Value::Integer(i32::from_sql(ty, raw)? as i64),
        Type::INT8 => Value::Integer(i64::from_sql(ty, raw)?),
        Type::OID => Value::Integer(u32::from_sql(ty, raw)? as i64),
        Type::FLOAT4 => Value::Real(f32::from_sql(ty, raw)? as f64),
        Type::FLOAT8 => Value::Real(f64::from_sql(ty, raw)?),
        Type::TEXT
        | Type::VARCHAR
        | Type::BPCHAR
        | Type::NAME
        | Type::UNKNOWN
        | Type::JSON
        | Type::XML
        | Type::CHAR => text(raw)?,
        Type::JSONB => match raw.split_first() {
            Some((1, json)) => text(json)?,
            _ => return Err("unknown jsonb version".into()),
        },
        Type::BYTEA => Value::Blob(raw.to_vec()),
        Type::VOID => Value::Null,
        Type::UUID => Value::Text(uuid(raw)?),
        Type::NUMERIC => Value::Text(numeric(raw)?),
        Type::DATE => {
            let days = i32::from_sql(ty, raw)?;
            Value::Text(date(days as i64))
        }
        Type::TIMESTAMP => Value::Text(timestamp(i64::from_sql(ty, raw)?)),
        Type::TIMESTAMPTZ => Value::Text(format!("{}+00", timestamp(i64::from_sql(ty, raw)?))),
        _ => match ty.kind() {
            Kind::Enum(_) => text(raw)?,
            Kind::Domain(base) => decode(base, raw)?,
            _ => return Err("no mapping to a plugin's value".into()),
        },
    })
}

fn uuid(raw: &[u8]) -> Result<String, BoxError> {
    if raw.len() != 16 {
        return Err("a uuid is 16 bytes".into());
    }
    let hex = hex::encode(raw);
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    ))
}

/// `numeric`'s binary form: digit count, weight, sign, display scale, then base-10000 digits.
fn numeric(raw: &[u8]) -> Result<String, BoxError> {
    let word = |i: usize| -> Result<u16, BoxError> {
        raw.get(i..i + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .ok_or_else(|| "truncated numeric".into())
    };
    let ndigits = word(0)? as usize;
    let weight = word(2)? as i16 as i64;
    let sign = word(4)?;
    let dscale = word(6)? as usize;
    match sign {
        0xC000 => return Ok("NaN".into()),
        0xD000 => return Ok("Infinity".into()),
        0xF000 => return Ok("-Infinity".into()),
        _ => {}
    }
    let digits = (0..ndigits)
        .map(|i| word(8 + 2 * i))
        .collect::<Result<Vec<u16>, _>>()?;
    let digit = |w: i64| -> u16 {
        // The base-10000 digit of weight `w`.
        let index = weight - w;
        if index < 0 || index as usize >= digits.len() {
            0
        } else {
            digits[index as usize]
        }
    };
    let mut out = String::new();
    if sign == 0x4000 {
        out.push('-');
    }
    if weight < 0 {
        out.push('0');
    } else {
        out.push_str(&digit(weight).to_string());
        for w in (0..weight).rev() {
            out.push_str(&format!("{:04}", digit(w)));
        }
    }
    if dscale > 0 {
        out.push('.');
        let mut fraction = String::new();
        let mut w = -1;
        while fraction.len() < dscale {
            fraction.push_str(&format!("{:04}", digit(w)));
            w -= 1;
        }
        fraction.truncate(dscale);
        out.push_str(&fraction);
    }
    Ok(out)
}

/// Days since 2000-01-01 as `YYYY-MM-DD` (proleptic Gregorian).
fn date(days_since_2000: i64) -> String {
    // Days from 0000-03-01, where the 400-year cycles of the algorithm start (Howard
    // Hinnant's `civil_from_days`): 1970-01-01 is day 719,468, 2000-01-01 day 730,425.
    let z = days_since_2000 + 730_425;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + if month <= 2 { 1 } else { 0 };
    format!("{year:04}-{month:02}-{day:02}")
}

/// Microseconds since 2000-01-01 00:00 as `YYYY-MM-DD HH:MM:SS[.ffffff]`.
fn timestamp(micros: i64) -> String {
    match micros {
        i64::MAX => return "infinity".into(),
        i64::MIN => return "-infinity".into(),
        _ => {}
    }
    let day_us = 86_400_000_000i64;
    let days = micros.div_euclid(day_us);
    let rest = micros.rem_euclid(day_us);
    let (secs, us) = (rest / 1_000_000, rest % 1_000_000);
    let clock = format!(
        "{} {:02}:{:02}:{:02}",
        date(days),
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    );
    if us == 0 {
        clock
    } else {
        let fraction = format!("{us:06}");
        format!("{clock}.{}", fraction.trim_end_matches('0'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_timestamps() {
        assert_eq!(date(0), "2000-01-01");
        assert_eq!(date(-1), "1999-12-31");
        assert_eq!(date(59), "2000-02-29");
        assert_eq!(date(9_834), "2026-12-04");
        assert_eq!(timestamp(0), "2000-01-01 00:00:00");
        assert_eq!(timestamp(3_723_500_000), "2000-01-01 01:02:03.5");
        assert_eq!(timestamp(-1), "1999-12-31 23:59:59.999999");
    }

    #[test]
    fn numerics() {
        // 12.50: ndigits 2, weight 0, scale 2, digits [12, 5000].
        let raw = [0, 2, 0, 0, 0, 0, 0, 2, 0, 12, 0x13, 0x88];
        assert_eq!(numeric(&raw).unwrap(), "12.50");
        // -0.001: ndigits 1, weight -1, negative, scale 3, digits [10].
        let raw = [0, 1, 0xff, 0xff, 0x40, 0, 0, 3, 0, 10];
        assert_eq!(numeric(&raw).unwrap(), "-0.001");
        // 123456789: digits [1, 2345, 6789], weight 2.
        let raw = [0, 3, 0, 2, 0, 0, 0, 0, 0, 1, 0x09, 0x29, 0x1a, 0x85];
        assert_eq!(numeric(&raw).unwrap(), "123456789");
    }
}
