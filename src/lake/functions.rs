//! SQL functions tmctl adds to every DataFusion session (gold models, `tmctl query`, the UI).
//!
//! `timezone(zone, ts)`: the wall-clock time of the instant `ts` in the IANA time zone `zone`
//! (a per-row value, e.g. a course's), as a timestamp without time zone — DuckDB's function of
//! the same name and signature, so the gold SQL files run unchanged in both engines. DST-correct
//! (the time zone database of `chrono-tz`, never a fixed offset); NULL when either argument is
//! NULL; an unknown zone is an error naming it.

use std::any::Any;
use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Offset, TimeZone};
use chrono_tz::Tz;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, TimestampMicrosecondArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, TimeUnit, TimestampMicrosecondType};
use datafusion::common::{Result, exec_err, plan_err};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility};
use datafusion::prelude::SessionContext;

/// Registers tmctl's functions in `ctx`.
pub fn register(ctx: &SessionContext) {
    ctx.register_udf(ScalarUDF::from(LocalTime::default()));
}

/// `timezone(zone, ts)`; see the module documentation.
#[derive(Debug, PartialEq, Eq, Hash)]
struct LocalTime {
    signature: Signature,
}

impl Default for LocalTime {
    fn default() -> Self {
        LocalTime { signature: Signature::user_defined(Volatility::Immutable) }
    }
}

/// An instant in UTC, as `ts` is coerced to.
fn utc_micros() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

impl ScalarUDFImpl for LocalTime {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn name(&self) -> &str {
        "timezone"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let [zone, ts] = arg_types else {
            return plan_err!("timezone(zone, ts) takes 2 arguments, got {}", arg_types.len());
        };
        if !matches!(zone, DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 | DataType::Null)
            && !matches!(zone, DataType::Dictionary(_, v) if v.is_string())
        {
            return plan_err!("timezone(zone, ts): zone must be a string (an IANA time zone), not {zone}");
        }
        if !matches!(ts, DataType::Timestamp(_, Some(_)) | DataType::Null) {
            return plan_err!(
                "timezone(zone, ts): ts must be a timestamp with a time zone (an instant, e.g. silver's \
                 fix_timestamp), not {ts}"
            );
        }
        Ok(vec![DataType::Utf8, utc_micros()])
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Timestamp(TimeUnit::Microsecond, None))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let all_scalar = args.args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let zones = cast(&arrays[0], &DataType::Utf8)?;
        let zones = zones.as_string::<i32>();
        let instants = cast(&arrays[1], &utc_micros())?;
        let instants = instants.as_primitive::<TimestampMicrosecondType>();
        let mut parsed: HashMap<&str, Tz> = HashMap::new();
        let mut out = Vec::with_capacity(rows);
        for row in 0..zones.len() {
            if zones.is_null(row) || instants.is_null(row) {
                out.push(None);
                continue;
            }
            let name = zones.value(row);
            let tz = match parsed.get(name) {
                Some(tz) => *tz,
                None => match name.parse::<Tz>() {
                    Ok(tz) => *parsed.entry(name).or_insert(tz),
                    Err(_) => {
                        return exec_err!(
                            "timezone(zone, ts): unknown time zone `{name}` (use an IANA name such as America/Boise)"
                        );
                    }
                },
            };
            let micros = instants.value(row);
            let Some(utc) = DateTime::from_timestamp_micros(micros) else {
                return exec_err!("timezone(zone, ts): timestamp {micros} µs is out of range");
            };
            let offset = tz.offset_from_utc_datetime(&utc.naive_utc()).fix().local_minus_utc();
            out.push(Some(micros + i64::from(offset) * 1_000_000));
        }
        let result: ArrayRef = Arc::new(TimestampMicrosecondArray::from(out));
        if all_scalar {
            return Ok(ColumnarValue::Scalar(datafusion::common::ScalarValue::try_from_array(&result, 0)?));
        }
        Ok(ColumnarValue::Array(result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn local(zone: &str, instant: &str) -> String {
        let ctx = SessionContext::new();
        register(&ctx);
        let sql = format!(
            "SELECT CAST(timezone('{zone}', CAST('{instant}' AS TIMESTAMP) AT TIME ZONE 'UTC') AS VARCHAR) AS t"
        );
        let batches = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
        datafusion::arrow::util::display::array_value_to_string(batches[0].column(0), 0).unwrap()
    }

    #[tokio::test]
    async fn wall_clock_of_an_instant_across_both_dst_changes() {
        // Saturday 18:10 MDT is Sunday 00:10 UTC.
        assert_eq!(local("America/Boise", "2025-06-08T00:10:00").await, "2025-06-07T18:10:00");
        // 2025-03-09 09:30 UTC: after the spring change (MDT, -6); 08:30 UTC: before it (MST, -7).
        assert_eq!(local("America/Boise", "2025-03-09T09:30:00").await, "2025-03-09T03:30:00");
        assert_eq!(local("America/Boise", "2025-03-09T08:30:00").await, "2025-03-09T01:30:00");
        // 2025-11-02 07:30 UTC = 01:30 MDT (first 01:30); 08:30 UTC = 01:30 MST (second 01:30).
        assert_eq!(local("America/Boise", "2025-11-02T07:30:00").await, "2025-11-02T01:30:00");
        assert_eq!(local("America/Boise", "2025-11-02T08:30:00").await, "2025-11-02T01:30:00");
        assert_eq!(local("UTC", "2025-11-02T08:30:00").await, "2025-11-02T08:30:00");
    }

    #[tokio::test]
    async fn an_unknown_zone_is_an_error_naming_it() {
        let ctx = SessionContext::new();
        register(&ctx);
        let err = ctx
            .sql("SELECT timezone('Mars/Olympus', CAST('2025-01-01T00:00:00' AS TIMESTAMP) AT TIME ZONE 'UTC')")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap_err();
        assert!(err.to_string().contains("unknown time zone `Mars/Olympus`"), "{err}");
    }
}
